from meihua.schema.relay import to_global_id


async def test_login_then_me(gql, org):
    user = await org.user("alice")
    data = await gql.ok(
        'mutation { login(username: "alice", password: "correct-horse-battery") { token } }'
    )
    me = await gql.ok("{ me { id username } }", token=data["login"]["token"])
    assert me["me"] == {"id": to_global_id("User", user.id), "username": "alice"}
