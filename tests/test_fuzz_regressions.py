"""Bugs the schema fuzzer (tests/test_fuzz_schema.py) found, each pinned by its smallest case."""

from __future__ import annotations

AWAITING = """
query($awaiting: Boolean!) {
  contracts(filter: {awaitingMyApproval: $awaiting}) { totalCount edges { node { title } } }
}
"""


async def test_awaiting_my_approval_for_someone_who_approves_nothing(gql, org):
    """It answered INTERNAL: the empty result was built with a QuerySet method tortoise lacks."""
    rep = (await org.sales_team()).an
    made = await gql.ok('mutation { createCustomer(input: {name: "Acme"}) { id } }', as_user=rep)
    await gql.ok(
        'mutation($c: ID!) { createContract(input: {customerId: $c, title: "Deal"}) { id } }',
        {"c": made["createCustomer"]["id"]},
        as_user=rep,
    )
    awaiting = await gql.ok(AWAITING, {"awaiting": True}, as_user=rep)
    assert awaiting["contracts"] == {"totalCount": 0, "edges": []}
    others = await gql.ok(AWAITING, {"awaiting": False}, as_user=rep)
    assert others["contracts"]["edges"] == [{"node": {"title": "Deal"}}]


async def test_a_filter_longer_than_its_column_is_bad_input(gql, org):
    """It answered INTERNAL: tortoise refuses an equality filter longer than the column."""
    rep = (await org.sales_team()).an
    cases = [
        ("customers(filter: {level: $v}) { totalCount }", "level", 20),
        ("exportCustomers(filter: {industry: $v}) { rowCount }", "industry", 100),
        ("leads(filter: {source: $v}) { totalCount }", "source", 100),
    ]
    for selection, field, limit in cases:
        query = f"query($v: String) {{ {selection} }}"
        result = await gql(query, {"v": "x" * (limit + 1)}, as_user=rep)
        assert result.codes == ["BAD_USER_INPUT"], result.errors
        assert result.error["extensions"]["field"] == field
        assert (await gql(query, {"v": "x" * limit}, as_user=rep)).errors == []
