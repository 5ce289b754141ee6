"""Customers: first in owns (谁先录入谁拥有), versions, validation, search, ordering
and keyset pagination."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meihua.models import (
    Contact,
    Contract,
    Customer,
    CustomerTeamMember,
    Event,
    FollowUp,
    FollowUpMethod,
    Lead,
    OperationLog,
    Opportunity,
    OpportunityStage,
    RecordType,
    Task,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import from_global_id, to_global_id

CREATE = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { id name phone version owner { id } createdBy { id } }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateCustomerInput!, $v: Int) {
  updateCustomer(id: $id, input: $input, expectedVersion: $v) {
    id name phone region version
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Customer { name } } }"
LIST = """
query($filter: CustomerFilter, $orderBy: CustomerOrder,
      $first: Int, $after: String, $last: Int, $before: String) {
  customers(filter: $filter, orderBy: $orderBy,
            first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { id name } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    manager = await org.default_role("Sales Manager")
    return Team(
        alice=await org.user("alice", department=sales, roles=[rep], name="Alice Wang"),
        bob=await org.user("bob", department=sales, roles=[rep], name="Bob Li"),
        carol=await org.user("carol", department=support, roles=[rep], name="Carol Zhao"),
        boss=await org.user("boss", department=sales, roles=[manager], name="Boss Chen"),
    )


async def create(gql, user: User, name: str, **fields) -> dict:
    data = await gql.ok(CREATE, {"input": {"name": name, **fields}}, as_user=user)
    return data["createCustomer"]


def pk(global_id: str) -> int:
    kind, value = from_global_id(global_id)
    assert kind == "Customer"
    return value


async def state(customer_id: int) -> dict:
    row = await Customer.get(id=customer_id)
    return {
        k: getattr(row, k)
        for k in ("name", "name_key", "phone", "phone_key", "region", "remarks", "owner_id",
                  "version", "updated_at")
    }  # fmt: skip


async def listing(gql, user: User, **variables) -> dict:
    return (await gql.ok(LIST, variables, as_user=user))["customers"]


def names(conn: dict) -> list[str]:
    return [edge["node"]["name"] for edge in conn["edges"]]


# ---------------------------------------------------------------------------
# creating


async def test_create_customer_belongs_to_its_creator(gql, team):
    made = await create(gql, team.alice, "  Acme Trading  ", phone="138 0013 8000", region="East")
    assert made["name"] == "Acme Trading"  # trimmed
    assert made["version"] == 1
    assert made["owner"] == {"id": to_global_id("User", team.alice.id)}
    assert made["createdBy"] == {"id": to_global_id("User", team.alice.id)}
    row = await Customer.get(id=pk(made["id"]))
    assert (row.name, row.phone, row.region, row.owner_id) == (
        "Acme Trading", "138 0013 8000", "East", team.alice.id,
    )  # fmt: skip
    assert row.name_key == "acme trading"
    assert row.phone_key == "13800138000"


async def test_customers_without_phone_do_not_collide(gql, team):
    await create(gql, team.alice, "No Phone One")
    await create(gql, team.bob, "No Phone Two", phone="")
    await create(gql, team.carol, "No Phone Three", phone="   ")
    assert await Customer.filter(phone_key=None).count() == 3


# ---------------------------------------------------------------------------
# first in owns


@pytest.mark.parametrize(
    "again",
    [
        "Acme Trading Co",
        "  Acme Trading Co\t",  # trimmed
        "ACME TRADING CO",  # case-folded
        "acme trading co",
        "ＡＣＭＥ Ｔｒａｄｉｎｇ Ｃｏ",  # full-width letters
        "Acme　Trading　Co",  # full-width (ideographic) spaces
        "Acme   Trading \t Co",  # inner whitespace
    ],
)
async def test_same_name_after_normalization_is_duplicate(gql, team, again):
    await create(gql, team.alice, "Acme Trading Co", phone="13800000001")
    before = await Customer.all().count()

    result = await gql(CREATE, {"input": {"name": again, "phone": "13911112222"}}, as_user=team.bob)
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["field"] == "name"
    assert await Customer.all().count() == before
    assert not await Customer.filter(phone_key="13911112222").exists()


@pytest.mark.parametrize(
    "again",
    [
        "13800138000",
        "+86 138-0013-8000",
        "+86 13800138000",
        "0086 138 0013 8000",
        "(138) 0013 8000",
        "１３８００１３８０００",  # full-width digits
    ],
)
async def test_same_phone_after_normalization_is_duplicate(gql, team, again):
    await create(gql, team.alice, "First Co", phone="+86 138-0013-8000")
    before = await Customer.all().count()

    result = await gql(CREATE, {"input": {"name": "Second Co", "phone": again}}, as_user=team.bob)
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["field"] == "phone"
    assert await Customer.all().count() == before
    assert not await Customer.filter(name_key="second co").exists()


async def test_different_names_and_phones_are_not_duplicates(gql, team):
    await create(gql, team.alice, "Acme Trading", phone="13800138000")
    await create(gql, team.bob, "Acme Trading Group", phone="13800138001")
    await create(gql, team.bob, "Acme", phone="1380013800")
    assert await Customer.all().count() == 3


async def test_duplicate_names_the_owner_to_callers_who_may_see_the_customer(gql, team):
    await create(gql, team.alice, "Acme Trading")
    # the manager of Alice's department sees Alice's customers
    result = await gql(CREATE, {"input": {"name": "acme trading"}}, as_user=team.boss)
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["ownerName"] == "Alice Wang"
    assert "Alice Wang" in result.error["message"]
    # and so does Alice herself
    result = await gql(CREATE, {"input": {"name": "ACME TRADING"}}, as_user=team.alice)
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["ownerName"] == "Alice Wang"


@pytest.mark.parametrize("field", ["name", "phone"])
async def test_duplicate_says_nothing_of_an_owner_the_caller_may_not_see(gql, team, field):
    await create(gql, team.alice, "Acme Trading", phone="13800138000")
    attempt = {"name": "Acme Trading", "phone": None} if field == "name" else {
        "name": "Other", "phone": "138 0013 8000",
    }  # fmt: skip
    for outsider in (team.bob, team.carol):
        result = await gql(CREATE, {"input": attempt}, as_user=outsider)
        assert result.codes == ["DUPLICATE"]
        error = result.error
        assert set(error["extensions"]) == {"code", "field"}
        assert error["extensions"]["field"] == field
        for hint in ("Alice", "alice", "Wang", to_global_id("User", team.alice.id)):
            assert hint not in error["message"]


async def test_update_into_a_duplicate_name_changes_nothing(gql, team):
    await create(gql, team.alice, "Alpha Ltd", phone="13800000001")
    beta = await create(gql, team.alice, "Beta Ltd", phone="13800000002")
    before = await state(pk(beta["id"]))

    result = await gql(
        UPDATE,
        {"id": beta["id"], "input": {"name": "  ALPHA   LTD ", "region": "West"}},
        as_user=team.alice,
    )
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["field"] == "name"
    assert result.error["extensions"]["ownerName"] == "Alice Wang"
    assert await state(pk(beta["id"])) == before


async def test_update_into_a_duplicate_phone_changes_nothing(gql, team):
    await create(gql, team.bob, "Alpha Ltd", phone="13800000001")
    beta = await create(gql, team.alice, "Beta Ltd", phone="13800000002")
    before = await state(pk(beta["id"]))

    result = await gql(
        UPDATE,
        {"id": beta["id"], "input": {"phone": "+86 138 0000 0001", "name": "Beta 2"}},
        as_user=team.alice,
    )
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["field"] == "phone"
    assert "ownerName" not in result.error["extensions"]  # Bob's customer, Alice is SELF
    assert "Bob" not in result.error["message"]
    assert await state(pk(beta["id"])) == before


async def test_update_to_its_own_name_in_another_spelling_is_not_a_duplicate(gql, team):
    made = await create(gql, team.alice, "Beta Ltd", phone="13800000002")
    data = await gql.ok(
        UPDATE,
        {"id": made["id"], "input": {"name": "BETA LTD", "phone": "+86 13800000002"}},
        as_user=team.alice,
    )
    assert data["updateCustomer"]["name"] == "BETA LTD"
    assert data["updateCustomer"]["version"] == 2


async def test_clearing_a_phone_frees_it_for_others(gql, team):
    first = await create(gql, team.alice, "First Co", phone="13800138000")
    data = await gql.ok(UPDATE, {"id": first["id"], "input": {"phone": ""}}, as_user=team.alice)
    assert data["updateCustomer"]["phone"] is None
    row = await Customer.get(id=pk(first["id"]))
    assert (row.phone, row.phone_key) == (None, None)
    await create(gql, team.bob, "Second Co", phone="13800138000")


@pytest.mark.parametrize("field", ["name", "phone"])
async def test_concurrent_creation_of_the_same_customer_has_one_winner(gql, org, team, field):
    rep = await org.default_role("Sales Rep")
    users = [team.alice, team.bob, team.carol, team.boss] + [
        await org.user(f"rep{i}", roles=[rep]) for i in range(4)
    ]

    def attempt(i: int) -> dict:
        if field == "name":
            return {"name": f"Same Name{' ' * i}", "phone": f"1380000{i:04d}"}
        return {"name": f"Company {i}", "phone": "+86 139-0000-0000" if i % 2 else "13900000000"}

    results = await asyncio.gather(
        *(gql(CREATE, {"input": attempt(i)}, as_user=user) for i, user in enumerate(users))
    )

    winners = [(user, r) for user, r in zip(users, results, strict=True) if not r.errors]
    losers = [(user, r) for user, r in zip(users, results, strict=True) if r.errors]
    assert len(winners) == 1, [r.errors for r in results]
    assert await Customer.all().count() == 1
    row = await Customer.get()
    winner, reply = winners[0]
    assert row.owner_id == winner.id
    assert reply.data["createCustomer"]["id"] == to_global_id("Customer", row.id)
    # Losers of the race get the same answer as latecomers: the field at
    # fault, and the owner only for those who may see the customer (the
    # Sales manager sees Alice's and Bob's customers; reps see only their own).
    for loser, result in losers:
        assert result.codes == ["DUPLICATE"], result.errors
        extensions = result.error["extensions"]
        assert extensions["field"] == field
        may_see = loser == team.boss and winner in (team.alice, team.bob)
        assert extensions.get("ownerName") == (winner.name if may_see else None)


async def test_concurrent_renames_to_the_same_name_have_one_winner(gql, team):
    mine = await create(gql, team.alice, "Alice Original", phone="13800000001")
    theirs = await create(gql, team.bob, "Bob Original", phone="13800000002")
    before = {c["id"]: await state(pk(c["id"])) for c in (mine, theirs)}

    results = await asyncio.gather(
        gql(UPDATE, {"id": mine["id"], "input": {"name": "Target Co"}}, as_user=team.alice),
        gql(UPDATE, {"id": theirs["id"], "input": {"name": "TARGET  CO"}}, as_user=team.bob),
    )
    assert sorted(r.codes for r in results) == [[], ["DUPLICATE"]], [r.errors for r in results]
    assert await Customer.filter(name_key="target co").count() == 1
    for customer, result in zip((mine, theirs), results, strict=True):
        if result.errors:
            assert result.error["extensions"]["field"] == "name"
            assert await state(pk(customer["id"])) == before[customer["id"]]
        else:
            assert (await Customer.get(id=pk(customer["id"]))).version == 2


# ---------------------------------------------------------------------------
# versions


async def test_update_with_current_version_bumps_it(gql, team):
    made = await create(gql, team.alice, "Versioned Co")
    data = await gql.ok(
        UPDATE, {"id": made["id"], "input": {"region": "North"}, "v": 1}, as_user=team.alice
    )
    assert data["updateCustomer"]["version"] == 2
    assert data["updateCustomer"]["region"] == "North"
    row = await Customer.get(id=pk(made["id"]))
    assert (row.version, row.region) == (2, "North")

    data = await gql.ok(
        UPDATE, {"id": made["id"], "input": {"region": "South"}, "v": 2}, as_user=team.alice
    )
    assert data["updateCustomer"]["version"] == 3


async def test_update_with_stale_version_is_conflict_and_changes_nothing(gql, team):
    made = await create(gql, team.alice, "Versioned Co")
    # a teammate (the manager) edits first
    await gql.ok(
        UPDATE, {"id": made["id"], "input": {"region": "North"}, "v": 1}, as_user=team.boss
    )
    before = await state(pk(made["id"]))

    result = await gql(
        UPDATE,
        {"id": made["id"], "input": {"region": "South", "name": "Mine"}, "v": 1},
        as_user=team.alice,
    )
    assert result.codes == ["CONFLICT"]
    assert await state(pk(made["id"])) == before
    assert before["region"] == "North" and before["version"] == 2


async def test_update_without_version_still_bumps_it(gql, team):
    made = await create(gql, team.alice, "Versioned Co")
    data = await gql.ok(UPDATE, {"id": made["id"], "input": {"region": "X"}}, as_user=team.alice)
    assert data["updateCustomer"]["version"] == 2
    # so an edit based on version 1 now fails
    result = await gql(
        UPDATE, {"id": made["id"], "input": {"region": "Y"}, "v": 1}, as_user=team.alice
    )
    assert result.codes == ["CONFLICT"]
    assert (await Customer.get(id=pk(made["id"]))).region == "X"


# ---------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "\u3000"}, "name"),  # an ideographic space only
        ({"name": "x" * 201}, "name"),
        ({"name": "Ok", "phone": "1" * 41}, "phone"),
        ({"name": "Ok", "level": "A" * 21}, "level"),
        ({"name": "Ok", "region": "r" * 101}, "region"),
        ({"name": "Ok", "address": "a" * 301}, "address"),
        ({"name": "Ok", "remarks": "r" * 10_001}, "remarks"),
    ],
)
async def test_create_with_bad_input_writes_nothing(gql, team, fields, field):
    result = await gql(CREATE, {"input": fields}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await Customer.all().count() == 0


async def test_longest_allowed_values_are_accepted(gql, team):
    made = await create(
        gql, team.alice, "x" * 200, phone="1" * 40, level="A" * 20, remarks="r" * 10_000
    )
    row = await Customer.get(id=pk(made["id"]))
    assert len(row.name) == 200 and len(row.remarks) == 10_000


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "y" * 201}, "name"),
        ({"region": "r" * 101, "name": "Valid New Name"}, "region"),
        ({"phone": "9" * 41, "name": "Valid New Name"}, "phone"),
    ],
)
async def test_update_with_bad_input_changes_nothing(gql, team, fields, field):
    made = await create(gql, team.alice, "Stable Co", phone="13800138000", region="East")
    before = await state(pk(made["id"]))
    result = await gql(UPDATE, {"id": made["id"], "input": fields}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await state(pk(made["id"])) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # "㍿" is one character that normalizes to four (株式会社)
        ({"name": "㍿" * 100}, "name"),
        # "⑩" is one character that normalizes to two digits
        ({"name": "Ok", "phone": "⑩" * 30}, "phone"),
    ],
)
async def test_values_that_grow_when_normalized_are_refused_cleanly(gql, team, fields, field):
    result = await gql(CREATE, {"input": fields}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.error["extensions"]["field"] == field
    assert await Customer.all().count() == 0


# ---------------------------------------------------------------------------
# malformed ids


def _raw_id(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "make_id",
    [
        pytest.param(lambda c, u: "garbage", id="garbage"),
        pytest.param(lambda c, u: "", id="empty"),
        pytest.param(lambda c, u: "!!!", id="not-base64"),
        pytest.param(lambda c, u: to_global_id("User", u), id="user-id"),
        pytest.param(lambda c, u: to_global_id("Department", c), id="department-id"),
        pytest.param(lambda c, u: to_global_id("Customer", c + 1000), id="no-such-customer"),
        pytest.param(lambda c, u: to_global_id("Customer", 10**20), id="huge-number"),
        pytest.param(lambda c, u: to_global_id("Customer", -c), id="negative"),
        pytest.param(lambda c, u: _raw_id(f"Customer:{c}.0"), id="not-an-integer"),
        pytest.param(lambda c, u: _raw_id("Customer:"), id="no-key"),
        pytest.param(lambda c, u: str(c), id="raw-key"),
    ],
)
async def test_malformed_or_foreign_ids_are_not_found(gql, team, make_id):
    made = await create(gql, team.alice, "Target Co")
    customer_id = pk(made["id"])
    bad = make_id(customer_id, team.alice.id)
    before = await state(customer_id)

    result = await gql(UPDATE, {"id": bad, "input": {"region": "X"}}, as_user=team.alice)
    assert result.codes == ["NOT_FOUND"], result.errors
    assert await state(customer_id) == before

    result = await gql(NODE, {"id": bad}, as_user=team.alice)
    if bad.startswith(("VXNlcjo", "RGVwYXJ0bWVudDo")):
        # a User / Department id names that record, never the customer
        assert result.data["node"] == {"id": bad}, result
    else:
        assert result.codes == ["NOT_FOUND"], result.errors


# ---------------------------------------------------------------------------
# search and scope


async def test_search_by_normalized_name_fragment(gql, team):
    await create(gql, team.alice, "Acme Trading Co", phone="+86 138-0013-8000")
    await create(gql, team.alice, "ＢＥＴＡ Foods", phone="13912345678")
    await create(gql, team.alice, "Gamma   Logistics")
    await create(gql, team.bob, "Acme Rival")  # not Alice's

    async def search(term: str) -> set[str]:
        conn = await listing(gql, team.alice, filter={"search": term})
        assert conn["totalCount"] == len(conn["edges"])
        return set(names(conn))

    assert await search("acme") == {"Acme Trading Co"}
    assert await search("  TRADING ") == {"Acme Trading Co"}
    assert await search("ａｃｍｅ") == {"Acme Trading Co"}
    assert await search("beta") == {"ＢＥＴＡ Foods"}
    assert await search("beta foods") == {"ＢＥＴＡ Foods"}
    assert await search("gamma logistics") == {"Gamma   Logistics"}
    assert await search("o") == {"Acme Trading Co", "ＢＥＴＡ Foods", "Gamma   Logistics"}
    assert await search("nothing like it") == set()


async def test_search_by_phone_digits(gql, team):
    await create(gql, team.alice, "Acme Trading Co", phone="+86 138-0013-8000")
    await create(gql, team.alice, "Beta Foods", phone="13912345678")

    async def search(term: str) -> set[str]:
        return set(names(await listing(gql, team.alice, filter={"search": term})))

    assert await search("13800138000") == {"Acme Trading Co"}
    assert await search("138-0013-8000") == {"Acme Trading Co"}
    assert await search("+86 138 0013 8000") == {"Acme Trading Co"}
    assert await search("0013") == {"Acme Trading Co"}
    assert await search("5678") == {"Beta Foods"}
    assert await search("1") == {"Acme Trading Co", "Beta Foods"}
    assert await search("4444") == set()


async def test_search_treats_like_wildcards_literally(gql, team):
    await create(gql, team.alice, "Acme Trading")
    await create(gql, team.alice, "100% Cotton")
    await create(gql, team.alice, "snake_case Ltd")

    async def search(term: str) -> set[str]:
        return set(names(await listing(gql, team.alice, filter={"search": term})))

    assert await search("%") == {"100% Cotton"}
    assert await search("_") == {"snake_case Ltd"}
    assert await search("a%e") == set()


async def test_total_count_respects_scope_and_filter(gql, team):
    for i in range(3):
        await create(gql, team.alice, f"Alice Client {i}")
    for i in range(2):
        await create(gql, team.bob, f"Bob Client {i}")
    await create(gql, team.carol, "Carol Client")

    assert (await listing(gql, team.alice, first=1))["totalCount"] == 3
    assert (await listing(gql, team.bob, first=1))["totalCount"] == 2
    # the manager's DEPARTMENT_TREE (Sales) covers Alice and Bob, not Carol in Support
    conn = await listing(gql, team.boss, first=2)
    assert conn["totalCount"] == 5
    assert len(conn["edges"]) == 2
    conn = await listing(gql, team.boss, filter={"search": "bob"})
    assert conn["totalCount"] == 2
    conn = await listing(gql, team.boss, filter={"ownerId": to_global_id("User", team.carol.id)})
    assert conn["totalCount"] == 0 and conn["edges"] == []


# ---------------------------------------------------------------------------
# ordering and keyset pagination

FRUITS = [
    "apricot", "Banana", "ＣＨＥＲＲＹ", "damson", "Elderberry", "fig", "Grape", "huckleberry",
    "imbe", "Jackfruit", "kiwi", "Lime", "mango", "Nectarine", "olive", "Papaya", "quince",
    "Raspberry", "satsuma", "Tangerine", "ugli", "Vanilla", "watermelon", "Ximenia", "yuzu",
]  # fmt: skip
BASE = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)


async def _fruit_customers(owner: User, created_at) -> list[Customer]:
    """25 customers, inserted out of name order, with `created_at(i)`."""
    rows = []
    for i in range(len(FRUITS)):
        name = FRUITS[(i * 7) % len(FRUITS)]  # a permutation
        row = await Customer.create(
            name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
        )
        await Customer.filter(id=row.id).update(created_at=created_at(i))
        rows.append(await Customer.get(id=row.id))
    return rows


def _order(descending: bool, field: str = "CREATED_AT") -> dict:
    return {"field": field, "descending": descending}


async def _walk_forward(gql, user, order, size) -> list[str]:
    seen, after = [], None
    for _ in range(50):
        conn = await listing(gql, user, orderBy=order, first=size, after=after)
        info = conn["pageInfo"]
        assert len(conn["edges"]) <= size
        assert info["hasPreviousPage"] == (after is not None)
        if conn["edges"]:
            assert info["startCursor"] == conn["edges"][0]["cursor"]
            assert info["endCursor"] == conn["edges"][-1]["cursor"]
        seen += names(conn)
        if not info["hasNextPage"]:
            return seen
        assert len(conn["edges"]) == size
        after = info["endCursor"]
    raise AssertionError("pagination never ended")


async def _walk_backward(gql, user, order, size) -> list[str]:
    seen, before = [], None
    for _ in range(50):
        conn = await listing(gql, user, orderBy=order, last=size, before=before)
        info = conn["pageInfo"]
        assert len(conn["edges"]) <= size
        assert info["hasNextPage"] == (before is not None)
        seen = names(conn) + seen
        if not info["hasPreviousPage"]:
            return seen
        assert len(conn["edges"]) == size
        before = info["startCursor"]
    raise AssertionError("pagination never ended")


@pytest.mark.parametrize("descending", [False, True])
async def test_order_by_name(gql, team, descending):
    await _fruit_customers(team.alice, lambda i: BASE + timedelta(minutes=i))
    expected = sorted(FRUITS, key=normalize_name, reverse=descending)
    conn = await listing(gql, team.alice, orderBy=_order(descending, "NAME"), first=100)
    assert names(conn) == expected
    assert conn["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("descending", [False, True])
async def test_order_by_created_at(gql, team, descending):
    rows = await _fruit_customers(team.alice, lambda i: BASE - timedelta(days=i))
    expected = [r.name for r in sorted(rows, key=lambda r: r.created_at, reverse=descending)]
    conn = await listing(gql, team.alice, orderBy=_order(descending), first=100)
    assert names(conn) == expected


async def test_default_order_is_newest_first(gql, team):
    rows = await _fruit_customers(team.alice, lambda i: BASE + timedelta(hours=(i * 11) % 25))
    conn = await listing(gql, team.alice)
    expected = [r.name for r in sorted(rows, key=lambda r: r.created_at, reverse=True)]
    assert names(conn) == expected[:20]  # the default page size
    assert conn["pageInfo"]["hasNextPage"] is True


@pytest.mark.parametrize("size", [1, 4, 7, 25, 100])
@pytest.mark.parametrize("descending", [False, True])
async def test_pages_by_name_in_both_directions(gql, team, size, descending):
    await _fruit_customers(team.alice, lambda i: BASE)
    order = _order(descending, "NAME")
    expected = sorted(FRUITS, key=normalize_name, reverse=descending)
    assert await _walk_forward(gql, team.alice, order, size) == expected
    assert await _walk_backward(gql, team.alice, order, size) == expected


@pytest.mark.parametrize("size", [1, 3, 7, 10])
@pytest.mark.parametrize("descending", [False, True])
async def test_pages_over_equal_sort_values_in_both_directions(gql, team, size, descending):
    # five groups of five customers with identical created_at, to the microsecond
    rows = await _fruit_customers(
        team.alice, lambda i: BASE + timedelta(seconds=i // 5, microseconds=123_457 * (i // 5))
    )
    order = _order(descending)

    forward = await _walk_forward(gql, team.alice, order, size)
    assert sorted(forward) == sorted(FRUITS)  # each customer exactly once
    assert len(forward) == len(set(forward)) == 25
    created = {r.name: r.created_at for r in rows}
    times = [created[name] for name in forward]
    assert times == sorted(times, reverse=descending)
    # the whole list in one page and walking backwards agree on the order
    whole = names(await listing(gql, team.alice, orderBy=order, first=100))
    assert forward == whole
    assert await _walk_backward(gql, team.alice, order, size) == whole


@pytest.mark.parametrize("field", ["LAST_FOLLOW_UP_AT", "POOL_ENTERED_AT"])
@pytest.mark.parametrize("descending", [False, True])
async def test_pages_by_a_time_that_may_be_missing(gql, team, field, descending):
    column = {"LAST_FOLLOW_UP_AT": "last_followup_at", "POOL_ENTERED_AT": "pool_entered_at"}
    rows = await _fruit_customers(team.alice, lambda i: BASE)
    when = {}
    for i, row in enumerate(rows):
        # every third one never; the rest in ties of two
        when[row.name] = None if i % 3 == 0 else BASE - timedelta(days=i // 2)
        await Customer.filter(id=row.id).update(**{column[field]: when[row.name]})
    never = datetime(1970, 1, 1, tzinfo=UTC)
    order = _order(descending, field)

    forward = await _walk_forward(gql, team.alice, order, 4)
    assert sorted(forward) == sorted(FRUITS)
    times = [when[name] or never for name in forward]
    assert times == sorted(times, reverse=descending)
    # "never" counts as longest ago: last when the latest come first
    assert (when[forward[-1]] is None) == descending
    assert await _walk_backward(gql, team.alice, order, 4) == forward


async def test_paging_resumes_after_rows_are_added_before_the_cursor(gql, team):
    await _fruit_customers(team.alice, lambda i: BASE + timedelta(minutes=i))
    order = _order(False, "NAME")
    first = await listing(gql, team.alice, orderBy=order, first=5)
    # someone adds a customer that sorts before the page already read
    await create(gql, team.alice, "Aardvark Co")
    rest = await listing(gql, team.alice, orderBy=order, first=100,
                         after=first["pageInfo"]["endCursor"])  # fmt: skip
    expected = sorted(FRUITS, key=normalize_name)
    assert names(first) == expected[:5]
    assert names(rest) == expected[5:]


async def test_pages_stay_inside_the_scope(gql, team):
    for i in range(6):
        await create(gql, team.alice, f"Alice Client {i}")
        await create(gql, team.carol, f"Carol Client {i}")
    seen = await _walk_forward(gql, team.alice, _order(False, "NAME"), 4)
    assert seen == [f"Alice Client {i}" for i in range(6)]


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 101}, "first"),
        ({"first": -1}, "first"),
        ({"last": 101}, "last"),
        ({"last": -5}, "last"),
    ],
)
async def test_page_size_is_capped(gql, team, variables, field):
    result = await gql(LIST, variables, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field


async def test_a_full_page_of_one_hundred_is_allowed(gql, team):
    await _fruit_customers(team.alice, lambda i: BASE)
    conn = await listing(gql, team.alice, first=100)
    assert len(conn["edges"]) == 25


def _cursor(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("%%%", id="not-base64"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
        pytest.param(_cursor("just a string"), id="not-a-pair"),
        pytest.param(_cursor([1, 2, 3]), id="three-values"),
        pytest.param(_cursor(["not a date", 1]), id="bad-date"),
        pytest.param(_cursor(["2024-03-01T08:30:00+00:00"]), id="one-value"),
        pytest.param(_cursor([None, 1]), id="null-value"),
        pytest.param(_cursor([12345, 1]), id="number-for-date"),
        pytest.param(_cursor([["2024-01-01"], 1]), id="list-for-date"),
        pytest.param(_cursor([{"a": 1}, 1]), id="object-for-date"),
        pytest.param(_cursor(["2024-03-01T08:30:00+00:00", "x"]), id="bad-id"),
        pytest.param(_cursor(["2024-03-01T08:30:00+00:00", 10**30]), id="huge-id"),
    ],
)
@pytest.mark.parametrize("arg", ["after", "before"])
async def test_garbage_cursor_is_bad_input(gql, team, cursor, arg):
    await _fruit_customers(team.alice, lambda i: BASE)
    result = await gql(LIST, {arg: cursor, "first" if arg == "after" else "last": 5},
                       as_user=team.alice)  # fmt: skip
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.error["extensions"]["field"] == arg


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(_cursor([12345, 1]), id="number-for-name"),
        pytest.param(_cursor([None, 1]), id="null-for-name"),
        pytest.param(_cursor([["a"], 1]), id="list-for-name"),
    ],
)
async def test_garbage_name_cursor_is_bad_input(gql, team, cursor):
    await _fruit_customers(team.alice, lambda i: BASE)
    result = await gql(LIST, {"after": cursor, "orderBy": _order(False, "NAME")},
                       as_user=team.alice)  # fmt: skip
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.error["extensions"]["field"] == "after"


# ---------------------------------------------------------------------------
# level, tags, address, remarks, deal status and the read-only fields

FULL = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    id level tags address remarks dealStatus locked lastFollowUpAt nextContactAt version
  }
}
"""
EDIT = """
mutation($id: ID!, $input: UpdateCustomerInput!, $v: Int) {
  updateCustomer(id: $id, input: $input, expectedVersion: $v) {
    id level tags address dealStatus version
  }
}
"""


async def test_create_with_every_editable_field(gql, team):
    data = await gql.ok(
        FULL,
        {
            "input": {
                "name": "Acme",
                "level": "A",
                "tags": [" VIP ", "key account"],
                "address": "1 Main St",
                "remarks": "Met at the fair",
                "dealStatus": "DEALT",
            }
        },
        as_user=team.alice,
    )
    made = data["createCustomer"]
    assert made["level"] == "A"
    assert made["tags"] == ["VIP", "key account"]
    assert (made["address"], made["remarks"]) == ("1 Main St", "Met at the fair")
    assert made["dealStatus"] == "DEALT"
    assert made["locked"] is False
    assert (made["lastFollowUpAt"], made["nextContactAt"]) == (None, None)


async def test_a_new_customer_has_not_dealt_and_no_tags(gql, team):
    made = (await gql.ok(FULL, {"input": {"name": "Plain"}}, as_user=team.alice))["createCustomer"]
    assert (made["dealStatus"], made["tags"], made["locked"]) == ("NOT_DEALT", [], False)


async def test_tags_are_trimmed_deduplicated_and_replaced_as_a_whole(gql, team):
    made = await create(gql, team.alice, "Acme")
    data = await gql.ok(
        EDIT, {"id": made["id"], "input": {"tags": ["VIP", "vip", " 华东 "]}}, as_user=team.alice
    )
    assert data["updateCustomer"]["tags"] == ["VIP", "华东"]
    data = await gql.ok(EDIT, {"id": made["id"], "input": {"level": "B"}}, as_user=team.alice)
    assert data["updateCustomer"]["tags"] == ["VIP", "华东"]  # untouched when not sent
    data = await gql.ok(EDIT, {"id": made["id"], "input": {"tags": []}}, as_user=team.alice)
    assert data["updateCustomer"]["tags"] == []
    assert (await Customer.get(id=pk(made["id"]))).tags == []


@pytest.mark.parametrize(
    "tags",
    [["ok", "  "], ["t" * 31], [f"tag {i}" for i in range(21)], ["a\x00b"], ["tab\there"]],
    ids=["blank", "long", "many", "nul", "control"],
)
async def test_bad_tags_change_nothing(gql, team, tags):
    made = await create(gql, team.alice, "Acme")
    result = await gql(
        EDIT, {"id": made["id"], "input": {"tags": tags, "level": "A"}}, as_user=team.alice
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "tags"
    row = await Customer.get(id=pk(made["id"]))
    assert (row.tags, row.level, row.version) == ([], None, 1)


async def test_deal_status_can_be_set_and_unknown_values_are_refused(gql, team):
    made = await create(gql, team.alice, "Acme")
    data = await gql.ok(
        EDIT, {"id": made["id"], "input": {"dealStatus": "DEALT"}}, as_user=team.alice
    )
    assert data["updateCustomer"]["dealStatus"] == "DEALT"
    result = await gql(
        EDIT, {"id": made["id"], "input": {"dealStatus": "MAYBE"}}, as_user=team.alice
    )
    assert result.codes == ["BAD_USER_INPUT"]


async def test_locked_and_follow_up_times_are_not_inputs(gql, team):
    made = await create(gql, team.alice, "Acme")
    for field, value in (
        ("locked", True),
        ("nextContactAt", "2030-01-01T00:00:00Z"),
        ("lastFollowUpAt", "2030-01-01T00:00:00Z"),
    ):
        result = await gql(EDIT, {"id": made["id"], "input": {field: value}}, as_user=team.alice)
        assert result.codes == ["BAD_USER_INPUT"], field
    row = await Customer.get(id=pk(made["id"]))
    assert (row.locked, row.next_contact_at, row.version) == (False, None, 1)


# ---------------------------------------------------------------------------
# filters


async def test_filters_by_level_industry_region_source_tag_locked_and_deal_status(gql, team):
    await gql.ok(
        FULL,
        {"input": {"name": "A1", "level": "A", "tags": ["VIP", "华东"], "dealStatus": "DEALT"}},
        as_user=team.alice,
    )
    await create(gql, team.alice, "B1", level="B", industry="Retail", region="East", source="展会")
    await gql.ok(
        FULL,
        {"input": {"name": "B2", "level": "B", "tags": ["vip-like", "VIP2"]}},
        as_user=team.alice,
    )
    await Customer.filter(name="B2").update(locked=True)
    await gql.ok(FULL, {"input": {"name": "Bob VIP", "tags": ["VIP"]}}, as_user=team.bob)

    async def search(**filter) -> set[str]:
        conn = await listing(gql, team.alice, filter=filter)
        assert conn["totalCount"] == len(conn["edges"])
        return set(names(conn))

    assert await search(level="A") == {"A1"}
    assert await search(level="B") == {"B1", "B2"}
    assert await search(industry="Retail") == {"B1"}
    assert await search(region="East") == {"B1"}
    assert await search(source="展会") == {"B1"}
    assert await search(tag="VIP") == {"A1"}  # exact tags only, and only in scope
    assert await search(tag="华东") == {"A1"}
    assert await search(tag="vip") == set()
    assert await search(tag="it's") == set()  # quotes are data, not SQL
    assert await search(tag="VIP' OR 1=1 --") == set()
    assert await search(locked=True) == {"B2"}
    assert await search(locked=False) == {"A1", "B1"}
    assert await search(dealStatus="DEALT") == {"A1"}
    assert await search(dealStatus="NOT_DEALT", level="B", locked=False) == {"B1"}


@pytest.mark.parametrize("field", ["search", "level", "industry", "region", "source", "tag"])
async def test_a_nul_character_in_a_filter_is_bad_input(gql, team, field):
    result = await gql(LIST, {"filter": {field: "a\x00b"}}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field


async def test_tag_filter_pages_with_a_total(gql, team):
    for i in range(5):
        await gql.ok(FULL, {"input": {"name": f"Tagged {i}", "tags": ["hot"]}}, as_user=team.alice)
    await create(gql, team.alice, "Untagged")
    conn = await listing(gql, team.alice, filter={"tag": "hot"}, first=2)
    assert conn["totalCount"] == 5 and len(conn["edges"]) == 2
    rest = await listing(
        gql, team.alice, filter={"tag": "hot"}, first=10, after=conn["pageInfo"]["endCursor"]
    )
    assert len(rest["edges"]) == 3
    assert set(names(conn)) | set(names(rest)) == {f"Tagged {i}" for i in range(5)}


# ---------------------------------------------------------------------------
# the operation log and live events of edits


async def test_create_and_update_write_the_log_and_a_change_event(gql, team):
    made = await create(gql, team.alice, "Acme", phone="13800000001", region="East")
    customer_id = pk(made["id"])
    created = await OperationLog.get(action="CREATE", record_id=customer_id)
    assert (created.record_type, created.customer_id, created.actor_id) == (
        RecordType.CUSTOMER,
        customer_id,
        team.alice.id,
    )
    assert created.changes["name"] == [None, "Acme"]
    assert created.changes["owner_id"] == [None, team.alice.id]
    assert "name_key" not in created.changes and "phone_key" not in created.changes

    await gql.ok(
        UPDATE,
        {"id": made["id"], "input": {"region": "West", "phone": "13800000001", "name": "Acme"}},
        as_user=team.boss,
    )
    updated = await OperationLog.get(action="UPDATE", record_id=customer_id)
    assert updated.changes == {"region": ["East", "West"]}  # only what really changed
    assert updated.actor_id == team.boss.id

    events = await Event.filter(kind="customer.changed", record_id=customer_id).order_by("id")
    assert [e.payload for e in events] == [
        {"fields": ["name", "owner_id", "phone", "region"], "version": 1},
        {"fields": ["region"], "version": 2},
    ]
    assert [(e.owner_id, e.customer_id, e.actor_id) for e in events] == [
        (team.alice.id, customer_id, team.alice.id),
        (team.alice.id, customer_id, team.boss.id),
    ]


async def test_failed_edits_log_nothing(gql, team):
    made = await create(gql, team.alice, "Acme")
    before = (await OperationLog.all().count(), await Event.all().count())
    await gql(UPDATE, {"id": made["id"], "input": {"region": "X"}, "v": 7}, as_user=team.alice)
    await gql(UPDATE, {"id": made["id"], "input": {"name": " "}}, as_user=team.alice)
    await gql(UPDATE, {"id": made["id"], "input": {"region": "X"}}, as_user=team.carol)
    await gql(CREATE, {"input": {"name": "acme"}}, as_user=team.bob)
    assert (await OperationLog.all().count(), await Event.all().count()) == before


# ---------------------------------------------------------------------------
# lock and unlock

LOCK = "mutation($ids: [ID!]!) { lockCustomers(ids: $ids) { id locked version } }"
UNLOCK = "mutation($ids: [ID!]!) { unlockCustomers(ids: $ids) { id locked version } }"


async def test_a_manager_locks_and_unlocks_customers(gql, team):
    first = await create(gql, team.alice, "First")
    second = await create(gql, team.bob, "Second")
    data = await gql.ok(LOCK, {"ids": [first["id"], second["id"]]}, as_user=team.boss)
    assert [(c["locked"], c["version"]) for c in data["lockCustomers"]] == [(True, 2), (True, 2)]
    assert await Customer.filter(locked=True).count() == 2
    entry = await OperationLog.get(action="LOCK", record_id=pk(first["id"]))
    assert entry.changes == {"locked": [False, True]}
    event = await Event.filter(kind="customer.changed", record_id=pk(first["id"])).order_by("-id")
    assert event[0].payload == {"fields": ["locked"], "version": 2}

    # locking again changes nothing; unlocking does
    data = await gql.ok(LOCK, {"ids": [first["id"]]}, as_user=team.boss)
    assert data["lockCustomers"][0]["version"] == 2
    data = await gql.ok(UNLOCK, {"ids": [first["id"]]}, as_user=team.boss)
    assert data["unlockCustomers"] == [{"id": first["id"], "locked": False, "version": 3}]
    assert await OperationLog.filter(action="UNLOCK").count() == 1


async def test_locking_needs_the_permission_and_sight_of_every_customer(gql, team):
    mine = await create(gql, team.alice, "Mine")
    carols = await create(gql, team.carol, "Carol's")
    # reps hold no customer:lock
    assert (await gql(LOCK, {"ids": [mine["id"]]}, as_user=team.alice)).codes == ["FORBIDDEN"]
    # Carol's customer is outside the Sales manager's scope: the whole call fails
    result = await gql(LOCK, {"ids": [mine["id"], carols["id"]]}, as_user=team.boss)
    assert result.codes == ["NOT_FOUND"]
    assert await Customer.filter(locked=True).count() == 0
    assert not await OperationLog.filter(action="LOCK").exists()


async def test_unlocking_needs_the_permission_and_sight_of_every_customer(gql, team):
    mine = await create(gql, team.alice, "Mine")
    carols = await create(gql, team.carol, "Carol's")
    await Customer.all().update(locked=True)
    assert (await gql(UNLOCK, {"ids": [mine["id"]]}, as_user=team.alice)).codes == ["FORBIDDEN"]
    result = await gql(UNLOCK, {"ids": [carols["id"], mine["id"]]}, as_user=team.boss)
    assert result.codes == ["NOT_FOUND"]
    assert await Customer.filter(locked=True).count() == 2
    assert not await OperationLog.filter(action="UNLOCK").exists()


async def test_a_team_read_member_cannot_lock(gql, team, org):
    made = await create(gql, team.alice, "Shared")
    locker = await org.role("Locker", "SELF", ["customer:lock"])
    await team.carol.roles.add(locker)
    await CustomerTeamMember.create(customer_id=pk(made["id"]), user_id=team.carol.id)
    result = await gql(LOCK, {"ids": [made["id"]]}, as_user=team.carol)
    assert result.codes == ["FORBIDDEN"]
    assert not (await Customer.get(id=pk(made["id"]))).locked
    await CustomerTeamMember.all().update(access=TeamAccess.WRITE)
    await gql.ok(LOCK, {"ids": [made["id"]]}, as_user=team.carol)
    assert (await Customer.get(id=pk(made["id"]))).locked


# ---------------------------------------------------------------------------
# deleting

DELETE = "mutation($id: ID!) { deleteCustomer(id: $id) { deletedId } }"


async def test_delete_takes_contacts_follow_ups_tasks_and_team_along(gql, team):
    made = await create(gql, team.alice, "Doomed")
    customer_id = pk(made["id"])
    contact = await Contact.create(customer_id=customer_id, name="Li", created_by_id=team.alice.id)
    now = datetime.now(UTC)
    for target_type, target_id in (
        (RecordType.CUSTOMER, customer_id),
        (RecordType.CONTACT, contact.id),
    ):
        await FollowUp.create(
            target_type=target_type,
            target_id=target_id,
            customer_id=customer_id,
            method=FollowUpMethod.VISIT,
            content="Visit",
            occurred_at=now,
            author_id=team.alice.id,
        )
        await Task.create(
            title="Next",
            assignee_id=team.alice.id,
            creator_id=team.alice.id,
            related_type=target_type,
            related_id=target_id,
            customer_id=customer_id,
        )
    await CustomerTeamMember.create(customer_id=customer_id, user_id=team.bob.id)
    lead = await Lead.create(
        company_name="Doomed", owner_id=team.alice.id, created_by_id=team.alice.id,
        converted_customer_id=customer_id, converted_contact_id=contact.id,
    )  # fmt: skip
    survivor = await create(gql, team.alice, "Survivor")
    await Task.create(
        title="Unrelated",
        assignee_id=team.alice.id,
        creator_id=team.alice.id,
        related_type=RecordType.CUSTOMER,
        related_id=pk(survivor["id"]),
        customer_id=pk(survivor["id"]),
    )

    data = await gql.ok(DELETE, {"id": made["id"]}, as_user=team.boss)
    assert data["deleteCustomer"]["deletedId"] == made["id"]
    assert not await Customer.exists(id=customer_id)
    assert await Contact.all().count() == 0
    assert await FollowUp.all().count() == 0
    assert await Task.all().values_list("title", flat=True) == ["Unrelated"]
    assert await CustomerTeamMember.all().count() == 0
    await lead.refresh_from_db()  # the lead stays, no longer pointing at what it became
    assert (lead.converted_customer_id, lead.converted_contact_id) == (None, None)
    entry = await OperationLog.get(action="DELETE")
    assert (entry.record_type, entry.record_id, entry.actor_id) == (
        RecordType.CUSTOMER,
        customer_id,
        team.boss.id,
    )
    assert entry.changes["name"] == ["Doomed", None]
    assert await Event.exists(kind="customer.deleted", record_id=customer_id)


@pytest.mark.parametrize("blocker", ["opportunity", "contract"])
async def test_a_customer_with_opportunities_or_contracts_is_not_deleted(gql, team, blocker):
    made = await create(gql, team.alice, "Busy")
    customer_id = pk(made["id"])
    contact = await Contact.create(customer_id=customer_id, name="Li", created_by_id=team.alice.id)
    if blocker == "opportunity":
        stage = await OpportunityStage.all().order_by("order").first()
        await Opportunity.create(
            customer_id=customer_id,
            name="Deal",
            amount=Decimal("10.00"),
            stage_id=stage.id,
            owner_id=team.bob.id,
            created_by_id=team.bob.id,
        )
    else:
        await Contract.create(
            number="HT-9",
            title="Supply",
            customer_id=customer_id,
            owner_id=team.alice.id,
            created_by_id=team.alice.id,
        )
    result = await gql(DELETE, {"id": made["id"]}, as_user=team.boss)
    assert result.codes == ["CONFLICT"]
    assert await Customer.exists(id=customer_id)
    assert await Contact.exists(id=contact.id)
    assert not await OperationLog.filter(action="DELETE").exists()


async def test_deleting_needs_the_permission_sight_and_ownership(gql, team, org):
    made = await create(gql, team.alice, "Kept")
    # reps hold no customer:delete, the Support rep cannot even see it
    assert (await gql(DELETE, {"id": made["id"]}, as_user=team.alice)).codes == ["FORBIDDEN"]
    assert (await gql(DELETE, {"id": made["id"]}, as_user=team.carol)).codes == ["NOT_FOUND"]
    # a WRITE team member with the permission still cannot delete someone else's customer
    deleter = await org.role("Deleter", "SELF", ["customer:delete"])
    await team.carol.roles.add(deleter)
    await CustomerTeamMember.create(
        customer_id=pk(made["id"]), user_id=team.carol.id, access=TeamAccess.WRITE
    )
    assert (await gql(DELETE, {"id": made["id"]}, as_user=team.carol)).codes == ["FORBIDDEN"]
    assert await Customer.exists(id=pk(made["id"]))
    assert not await OperationLog.filter(action="DELETE").exists()
