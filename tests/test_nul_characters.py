"""A NUL character in any text input is BAD_USER_INPUT naming the field, and writes nothing.

PostgreSQL fails a statement holding U+0000 and SQLite would store it, so the
check sits in front of every resolver: literals, variables, variable defaults,
nested input objects, lists, and subscriptions alike.
"""

from __future__ import annotations

import pytest

from meihua.models import Customer, OperationLog

CREATE = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"


@pytest.fixture
async def rep(org):
    return (await org.sales_team()).an


def bad_input(result, field: str) -> None:
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.error["extensions"]["field"] == field
    assert "NUL" in result.error["message"]
    assert result.data is None


async def test_a_nul_in_a_variable_creates_nothing(gql, rep):
    for field in ("name", "phone", "remarks", "address"):
        payload = {"name": "Acme", field: "Ac\x00me"}
        bad_input(await gql(CREATE, {"input": payload}, as_user=rep), field)
    assert await Customer.all().count() == 0
    assert await OperationLog.all().count() == 0


async def test_a_nul_in_a_literal_is_refused_too(gql, rep):
    result = await gql(
        'mutation { createCustomer(input: {name: "Ac\\u0000me"}) { id } }', as_user=rep
    )
    bad_input(result, "name")
    raw = await gql('mutation { createCustomer(input: {name: "Ac\x00me"}) { id } }', as_user=rep)
    bad_input(raw, "name")
    assert await Customer.all().count() == 0


async def test_lists_top_level_arguments_and_nested_objects_are_named(gql, rep, org):
    tags = "mutation($id: ID!, $t: [String!]) { updateCustomer(id: $id, input: {tags: $t}) { id } }"
    made = await gql.ok(CREATE, {"input": {"name": "Acme"}}, as_user=rep)
    customer = made["createCustomer"]["id"]
    bad_input(await gql(tags, {"id": customer, "t": ["ok", "b\x00d"]}, as_user=rep), "tags")

    release = 'mutation($ids: [ID!]!) { releaseCustomers(ids: $ids, reason: "gone\\u0000") { id } }'
    bad_input(await gql(release, {"ids": [customer]}, as_user=rep), "reason")
    bad_input(await gql('mutation { claimCustomer(id: "\\u0000") { id } }', as_user=rep), "id")

    steps = "mutation($s: [ApprovalStepInput!]!) { setApprovalSteps(steps: $s) { order } }"
    admin = await org.admin("boss")
    result = await gql(steps, {"s": [{"kind": "USER", "userId": "x\x00"}]}, as_user=admin)
    bad_input(result, "steps.0.userId")

    row = await Customer.get()
    assert (row.tags, row.owner_id, row.version) == ([], rep.id, 1)


async def test_a_variable_default_with_a_nul_is_refused(gql, rep):
    query = 'query($s: String = "a\\u0000b") { customers(filter: {search: $s}) { totalCount } }'
    bad_input(await gql(query, as_user=rep), "search")


async def test_other_control_characters_still_reach_the_resolvers(gql, rep):
    data = await gql.ok(
        CREATE, {"input": {"name": "Acme", "remarks": "line\nnext\ttab"}}, as_user=rep
    )
    assert data["createCustomer"]["id"]


async def test_a_subscription_with_a_nul_is_refused(live, rep):
    client = await live(rep)
    op = await client.subscribe(
        "subscription($a: String) { poolEvents(after: $a) { cursor } }", {"a": "1\x00"}
    )
    extensions = await client.error(op)
    assert extensions == {"code": "BAD_USER_INPUT", "field": "after"}
