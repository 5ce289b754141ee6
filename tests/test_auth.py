"""Login, bearer tokens and passwords (spec §2 users, §9 auth)."""

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from meihua.models import User
from meihua.resolvers.auth import TokenSigner, verify_password
from meihua.schema.relay import to_global_id
from tests.conftest import PASSWORD, SECRET

LOGIN = """
mutation($username: String!, $password: String!) {
  login(username: $username, password: $password) { token user { id username } }
}
"""
ME = "{ me { id username } }"
CHANGE_PASSWORD = """
mutation($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new) { token user { id } }
}
"""
NEW_PASSWORD = "a-brand-new-passphrase"


async def login(gql, username, password=PASSWORD):
    return await gql(LOGIN, {"username": username, "password": password})


async def login_token(gql, username, password=PASSWORD) -> str:
    data = await gql.ok(LOGIN, {"username": username, "password": password})
    return data["login"]["token"]


async def assert_login_refused(gql, username, password=PASSWORD) -> dict:
    result = await login(gql, username, password)
    assert result.data is None
    assert result.codes == ["UNAUTHENTICATED"]
    return result.error


async def assert_token_refused(gql, token: str) -> None:
    result = await gql(ME, token=token)
    assert result.data is None
    assert result.codes == ["UNAUTHENTICATED"]


# --- login -------------------------------------------------------------------


async def test_login_returns_a_bearer_token_for_the_user(gql, org):
    alice = await org.user("alice")
    await org.user("bob")

    data = await gql.ok(LOGIN, {"username": "alice", "password": PASSWORD})

    assert data["login"]["user"] == {"id": to_global_id("User", alice.id), "username": "alice"}
    me = await gql.ok(ME, token=data["login"]["token"])
    assert me["me"] == {"id": to_global_id("User", alice.id), "username": "alice"}
    assert (await User.get(id=alice.id)).last_login_at is not None


async def test_login_ignores_surrounding_spaces_in_the_username(gql, org):
    await org.user("alice")
    token = await login_token(gql, "  alice ")
    assert (await gql.ok(ME, token=token))["me"]["username"] == "alice"


async def test_everything_but_login_needs_a_token(gql, org):
    await org.user("alice")
    for query in (ME, "{ permissions }", "{ departments { id } }"):
        result = await gql(query)
        assert result.codes == ["UNAUTHENTICATED"], query
    # A malformed header or a non-bearer scheme is the same as no token.
    result = await gql.http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Basic YWxpY2U6eA=="}
    )
    assert [e["extensions"]["code"] for e in result.json()["errors"]] == ["UNAUTHENTICATED"]
    await assert_token_refused(gql, "not-a-token")


async def test_unknown_user_and_wrong_password_get_the_identical_answer(gql, org):
    await org.user("alice")

    unknown = await assert_login_refused(gql, "nobody")
    wrong = await assert_login_refused(gql, "alice", "wrong-password-123")

    assert unknown["message"] == wrong["message"]
    assert unknown["extensions"] == wrong["extensions"] == {"code": "UNAUTHENTICATED"}
    assert (await User.get(username="alice")).last_login_at is None


async def test_deactivated_user_cannot_log_in_and_is_not_told_why(gql, org):
    alice = await org.user("alice")
    await org.user("bob")
    wrong = await assert_login_refused(gql, "bob", "wrong-password-123")
    alice.is_active = False
    await alice.save()

    refused = await assert_login_refused(gql, "alice", PASSWORD)

    assert refused["message"] == wrong["message"]
    assert refused["extensions"] == wrong["extensions"]


async def test_reactivated_user_can_log_in_again(gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    alice_id = to_global_id("User", alice.id)
    await gql.ok(
        "mutation($id: ID!) { deactivateUser(id: $id) { id } }", {"id": alice_id}, as_user=admin
    )
    await assert_login_refused(gql, "alice")

    await gql.ok(
        "mutation($id: ID!) { reactivateUser(id: $id) { isActive } }",
        {"id": alice_id},
        as_user=admin,
    )

    token = await login_token(gql, "alice")
    assert (await gql.ok(ME, token=token))["me"]["username"] == "alice"


# --- tokens ------------------------------------------------------------------


async def test_token_stops_working_once_the_user_is_deactivated(gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    token = await login_token(gql, "alice")
    assert (await gql.ok(ME, token=token))["me"]["username"] == "alice"

    await gql.ok(
        "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
        {"id": to_global_id("User", alice.id)},
        as_user=admin,
    )

    await assert_token_refused(gql, token)
    # Mutations are refused too, not only queries.
    result = await gql('mutation { createDepartment(input: {name: "X"}) { id } }', token=token)
    assert result.codes == ["UNAUTHENTICATED"]


async def test_reactivation_does_not_revive_old_tokens(gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    old_token = await login_token(gql, "alice")
    alice_id = to_global_id("User", alice.id)
    await gql.ok(
        "mutation($id: ID!) { deactivateUser(id: $id) { id } }", {"id": alice_id}, as_user=admin
    )
    await gql.ok(
        "mutation($id: ID!) { reactivateUser(id: $id) { id } }", {"id": alice_id}, as_user=admin
    )

    await assert_token_refused(gql, old_token)


async def test_change_password_ends_old_sessions_and_returns_a_fresh_token(gql, org):
    alice = await org.user("alice")
    old_token = await login_token(gql, "alice")
    other_session = await login_token(gql, "alice")

    data = await gql.ok(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": NEW_PASSWORD}, token=old_token
    )

    assert data["changePassword"]["user"]["id"] == to_global_id("User", alice.id)
    await assert_token_refused(gql, old_token)
    await assert_token_refused(gql, other_session)
    assert (await gql.ok(ME, token=data["changePassword"]["token"]))["me"]["username"] == "alice"
    await assert_login_refused(gql, "alice", PASSWORD)
    await login_token(gql, "alice", NEW_PASSWORD)


async def test_admin_password_reset_ends_the_users_sessions(gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    token = await login_token(gql, "alice")

    await gql.ok(
        "mutation($id: ID!, $pw: String!) { updateUser(id: $id, input: {password: $pw}) { id } }",
        {"id": to_global_id("User", alice.id), "pw": NEW_PASSWORD},
        as_user=admin,
    )

    await assert_token_refused(gql, token)
    await assert_login_refused(gql, "alice", PASSWORD)
    await login_token(gql, "alice", NEW_PASSWORD)


async def test_other_edits_do_not_end_sessions(gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    token = await login_token(gql, "alice")

    await gql.ok(
        'mutation($id: ID!) { updateUser(id: $id, input: {name: "Alice Li"}) { id } }',
        {"id": to_global_id("User", alice.id)},
        as_user=admin,
    )

    assert (await gql.ok(ME, token=token))["me"]["username"] == "alice"


async def test_expired_token_is_refused(gql, org):
    alice = await org.user("alice")
    expired = TokenSigner(SECRET, timedelta(minutes=-1)).issue(alice)
    await assert_token_refused(gql, expired)

    past = datetime.now(UTC) - timedelta(hours=1)
    handmade = jwt.encode(
        {
            "sub": str(alice.id),
            "ver": alice.token_version,
            "iat": past - timedelta(hours=1),
            "exp": past,
        },
        SECRET,
        algorithm="HS256",
    )
    await assert_token_refused(gql, handmade)
    # The same claims with a future expiry are accepted: only the expiry was at fault.
    fresh = TokenSigner(SECRET, timedelta(minutes=5)).issue(alice)
    assert (await gql.ok(ME, token=fresh))["me"]["username"] == "alice"


async def test_token_signed_with_another_key_is_refused(gql, org):
    alice = await org.user("alice")
    forged = TokenSigner("some-other-secret-key-of-32-bytes!!", timedelta(hours=1)).issue(alice)
    await assert_token_refused(gql, forged)


async def test_unsigned_token_is_refused(gql, org):
    alice = await org.user("alice")
    claims = {
        "sub": str(alice.id),
        "ver": alice.token_version,
        "exp": datetime.now(UTC) + timedelta(hours=1),
    }
    await assert_token_refused(gql, jwt.encode(claims, None, algorithm="none"))


async def test_token_without_expiry_is_refused(gql, org):
    alice = await org.user("alice")
    claims = {"sub": str(alice.id), "ver": alice.token_version}
    await assert_token_refused(gql, jwt.encode(claims, SECRET, algorithm="HS256"))


# --- the password is never readable ----------------------------------------


INTROSPECT_TYPES = """
{ __schema { mutationType { name } types { name kind fields { name } } } }
"""


async def test_no_output_field_exposes_a_password(gql, org):
    # Introspection works without signing in.
    data = await gql.ok('{ __type(name: "User") { fields { name } } }')
    user_fields = {f["name"] for f in data["__type"]["fields"]}
    assert {"id", "username", "name", "isActive", "isSuperAdmin"} <= user_fields
    assert not {f for f in user_fields if "password" in f.lower() or "hash" in f.lower()}

    # No readable type anywhere has such a field (the `changePassword` operation
    # on the Mutation root is the only name that may mention passwords).
    schema = (await gql.ok(INTROSPECT_TYPES))["__schema"]
    leaks = [
        f"{t['name']}.{f['name']}"
        for t in schema["types"]
        if t["kind"] in ("OBJECT", "INTERFACE") and t["name"] != schema["mutationType"]["name"]
        for f in t["fields"] or []
        if "password" in f["name"].lower() or "hash" in f["name"].lower()
    ]
    assert leaks == []


async def test_password_hash_is_not_in_any_response(gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    reply = await gql.http.post(
        "/graphql", json={"query": LOGIN, "variables": {"username": "alice", "password": PASSWORD}}
    )
    token = reply.json()["data"]["login"]["token"]
    listing = await gql.http.post(
        "/graphql",
        json={"query": "{ users { edges { node { id username name } } } me { id } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    for text in (reply.text, listing.text):
        assert alice.password_hash not in text
        assert "$argon2" not in text
    assert admin.password_hash not in listing.text


# --- changePassword errors -----------------------------------------------------


async def test_change_password_with_wrong_current_password_changes_nothing(gql, org):
    alice = await org.user("alice")
    token = await login_token(gql, "alice")
    before = await User.get(id=alice.id)

    result = await gql(
        CHANGE_PASSWORD, {"current": "not-my-password", "new": NEW_PASSWORD}, token=token
    )

    assert result.data is None
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "currentPassword"
    after = await User.get(id=alice.id)
    assert after.password_hash == before.password_hash
    assert after.token_version == before.token_version
    assert after.version == before.version
    assert (await gql.ok(ME, token=token))["me"]["username"] == "alice"
    await assert_login_refused(gql, "alice", NEW_PASSWORD)
    await login_token(gql, "alice", PASSWORD)


async def test_change_password_refuses_a_short_new_password(gql, org):
    alice = await org.user("alice")
    token = await login_token(gql, "alice")

    result = await gql(CHANGE_PASSWORD, {"current": PASSWORD, "new": "short"}, token=token)

    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "newPassword"
    stored = await User.get(id=alice.id)
    assert verify_password(stored.password_hash, PASSWORD)
    assert (await gql.ok(ME, token=token))["me"]["username"] == "alice"


async def test_change_password_needs_a_signed_in_user(gql, org):
    alice = await org.user("alice")
    result = await gql(CHANGE_PASSWORD, {"current": PASSWORD, "new": NEW_PASSWORD})
    assert result.codes == ["UNAUTHENTICATED"]
    assert verify_password((await User.get(id=alice.id)).password_hash, PASSWORD)


@pytest.mark.parametrize("password", ["", "1234567"])
async def test_login_with_empty_or_short_password_is_just_refused(gql, org, password):
    await org.user("alice")
    await assert_login_refused(gql, "alice", password)
