"""Opportunities (商机): creating them on customers, moving them through the
pipeline, winning and losing, weighted amounts, product lines, transfers,
deletion, the scoped list, and the nested fields that reach them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from meihua.models import (
    Contract,
    Customer,
    CustomerTeamMember,
    Event,
    OperationLog,
    Opportunity,
    OpportunityProduct,
    OpportunityStage,
    OpportunityStageChange,
    Product,
    RecordType,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import from_global_id, to_global_id

FIELDS = """
  id name amount status lostReason expectedCloseDate remarks closedAt version
  winRate weightedAmount
  stage { id name winRate }
  owner { id }
  customer { id name }
"""
CREATE = f"""
mutation($input: CreateOpportunityInput!) {{ createOpportunity(input: $input) {{ {FIELDS} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $input: UpdateOpportunityInput!, $v: Int) {{
  updateOpportunity(id: $id, input: $input, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
DELETE = "mutation($id: ID!) { deleteOpportunity(id: $id) { deletedId } }"
MOVE = f"""
mutation($id: ID!, $stageId: ID!, $v: Int) {{
  moveOpportunityStage(id: $id, stageId: $stageId, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
WIN = f"""
mutation($id: ID!, $v: Int) {{ winOpportunity(id: $id, expectedVersion: $v) {{ {FIELDS} }} }}
"""
LOSE = f"""
mutation($id: ID!, $reason: String!, $v: Int) {{
  loseOpportunity(id: $id, reason: $reason, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
SET_PRODUCTS = """
mutation($id: ID!, $items: [OpportunityProductInput!]!, $v: Int) {
  setOpportunityProducts(id: $id, items: $items, expectedVersion: $v) {
    amount version
    products { quantity unitPrice discount amount product { code } }
  }
}
"""
TRANSFER = """
mutation($ids: [ID!]!, $ownerId: ID!) {
  transferOpportunities(ids: $ids, ownerId: $ownerId) { id owner { id } version }
}
"""
LIST = """
query($filter: OpportunityFilter, $orderBy: OpportunityOrder, $first: Int, $after: String) {
  opportunities(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Opportunity { name customer { name } } } }"
HISTORY = """
query($id: ID!) {
  node(id: $id) {
    ... on Opportunity {
      stageHistory { fromStage { id } toStage { id } fromStatus toStatus reason actor { id } }
    }
  }
}
"""
OF_CUSTOMER = """
query($id: ID!) { node(id: $id) { ... on Customer { opportunities { name } } } }
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales: transfers and deletes
    fiona: User  # Finance (ALL): sees every opportunity, may change none
    ada: User  # Administrator (ALL)
    acme: Customer  # alice's
    bolt: Customer  # bob's
    cosmo: Customer  # carol's


async def customer(owner: User, name: str) -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
    )


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    users = {
        "alice": await org.user("alice", department=sales, roles=[rep]),
        "bob": await org.user("bob", department=sales, roles=[rep]),
        "carol": await org.user("carol", department=support, roles=[rep]),
        "boss": await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        "fiona": await org.user("fiona", roles=[await org.default_role("Finance")]),
        "ada": await org.user("ada", roles=[await org.default_role("Administrator")]),
    }
    return Team(
        **users,
        acme=await customer(users["alice"], "Acme"),
        bolt=await customer(users["bob"], "Bolt"),
        cosmo=await customer(users["carol"], "Cosmo"),
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


def pk(global_id: str) -> int:
    return from_global_id(global_id)[1]


async def stages() -> list[OpportunityStage]:
    return await OpportunityStage.all().order_by("order")


async def share(customer_row: Customer, user: User, access: TeamAccess) -> None:
    await CustomerTeamMember.create(customer=customer_row, user=user, access=access)


async def product(code: str, price: str = "100.00", active: bool = True) -> Product:
    return await Product.create(name=f"Product {code}", code=code, unit_price=price,
                                is_active=active)  # fmt: skip


async def create(gql, user: User, customer_row: Customer, **fields) -> dict:
    data = {"customerId": gid(customer_row), "name": "Deal", "amount": "1000.00", **fields}
    return (await gql.ok(CREATE, {"input": data}, as_user=user))["createOpportunity"]


async def written() -> tuple:
    """Everything an opportunity mutation may write, to prove a failure wrote nothing."""
    rows = await Opportunity.all().order_by("id").values_list(
        "id", "name", "amount", "stage_id", "status", "owner_id", "version", "lost_reason",
        "expected_close_date",
    )  # fmt: skip
    lines = (
        await OpportunityProduct.all()
        .order_by("id")
        .values_list("opportunity_id", "product_id", "quantity", "unit_price", "discount")
    )
    return (
        [tuple(str(v) for v in row) for row in rows],
        [tuple(str(v) for v in line) for line in lines],
        await OpportunityStageChange.all().count(),
        await OperationLog.all().count(),
        await Event.all().count(),
    )


async def history(opportunity_id: str) -> list[tuple]:
    rows = await OpportunityStageChange.filter(opportunity_id=pk(opportunity_id)).order_by("id")
    return [(r.from_stage_id, r.to_stage_id, r.from_status, r.to_status, r.actor_id) for r in rows]


# ---------------------------------------------------------------------------
# creating


async def test_create_starts_at_the_first_stage_owned_by_the_creator(gql, team):
    first = (await stages())[0]
    made = await create(gql, team.alice, team.acme, name=" ERP rollout ", amount="12500",
                        expectedCloseDate="2030-06-30", remarks="Budget approved")  # fmt: skip
    assert (made["name"], made["amount"], made["status"], made["version"]) == (
        "ERP rollout", "12500.00", "OPEN", 1,
    )  # fmt: skip
    assert made["stage"] == {"id": gid(first), "name": first.name, "winRate": 10}
    assert made["owner"] == {"id": gid(team.alice)}
    assert made["customer"] == {"id": gid(team.acme), "name": "Acme"}
    assert (made["expectedCloseDate"], made["remarks"]) == ("2030-06-30", "Budget approved")
    assert (made["winRate"], made["weightedAmount"], made["closedAt"]) == (10, "1250.00", None)

    row = await Opportunity.get(id=pk(made["id"]))
    assert (row.owner_id, row.created_by_id, row.customer_id) == (
        team.alice.id, team.alice.id, team.acme.id,
    )  # fmt: skip
    # The history starts with the first placement, from no stage.
    assert await history(made["id"]) == [(None, first.id, None, "OPEN", team.alice.id)]
    event = await Event.get(kind="opportunity.stage_changed")
    assert (event.record_type, event.record_id, event.owner_id, event.customer_id) == (
        "OPPORTUNITY", row.id, team.alice.id, team.acme.id,
    )  # fmt: skip
    assert event.payload == {
        "fromStageId": None, "toStageId": first.id, "fromStatus": None, "status": "OPEN",
    }  # fmt: skip
    log = await OperationLog.get(record_type=RecordType.OPPORTUNITY, record_id=row.id)
    assert (log.action, log.actor_id, log.customer_id) == ("CREATE", team.alice.id, team.acme.id)
    assert log.changes["amount"] == [None, "12500.00"]


async def test_create_at_a_chosen_stage_with_products(gql, team):
    third = (await stages())[2]
    router, licence = await product("RT-1", "99.90"), await product("LIC", "1000.00")
    made = await create(
        gql, team.alice, team.acme, stageId=gid(third), amount="1",
        products=[
            {"productId": gid(router), "quantity": "3"},  # the list price
            {"productId": gid(licence), "quantity": "2", "unitPrice": "900", "discount": "10"},
        ],
    )  # fmt: skip
    assert made["stage"]["id"] == gid(third)
    # The lines set the amount: 3 × 99.90 + 2 × 900 × 0.9 = 299.70 + 1620.00.
    assert made["amount"] == "1919.70"
    assert made["weightedAmount"] == "1151.82"  # 60 %
    lines = await OpportunityProduct.filter(opportunity_id=pk(made["id"])).order_by("id")
    assert [(line.product_id, str(line.unit_price)) for line in lines] == [
        (router.id, "99.90"), (licence.id, "900.00"),
    ]  # fmt: skip


async def test_create_on_a_customer_out_of_sight_is_not_found(gql, team):
    before = await written()
    for target in (gid(team.cosmo), to_global_id("Customer", 999)):
        data = {"customerId": target, "name": "Deal", "amount": "1"}
        result = await gql(CREATE, {"input": data}, as_user=team.alice)
        assert result.codes == ["NOT_FOUND"]
    assert await written() == before


async def test_create_needs_write_access_on_the_customer(gql, team):
    await share(team.bolt, team.alice, TeamAccess.READ)
    before = await written()
    data = {"customerId": gid(team.bolt), "name": "Deal", "amount": "1"}
    assert (await gql(CREATE, {"input": data}, as_user=team.alice)).codes == ["FORBIDDEN"]
    assert await written() == before

    await CustomerTeamMember.filter(customer=team.bolt, user=team.alice).update(
        access=TeamAccess.WRITE
    )
    made = await create(gql, team.alice, team.bolt)
    assert made["owner"] == {"id": gid(team.alice)}


async def test_create_needs_the_permission(gql, team):
    """Finance sees every customer but may not open opportunities."""
    before = await written()
    data = {"customerId": gid(team.acme), "name": "Deal", "amount": "1"}
    assert (await gql(CREATE, {"input": data}, as_user=team.fiona)).codes == ["FORBIDDEN"]
    assert await written() == before


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"amount": "1e20"}, "amount"),
        ({"stageId": to_global_id("OpportunityStage", 999)}, "stageId"),
        ({"stageId": to_global_id("Customer", 1)}, "stageId"),
        ({"remarks": "x" * 10_001}, "remarks"),
        ({"products": [{"productId": "PRODUCT", "quantity": "1"}]}, "products.0.quantity"),
        ({"products": [{"productId": "PRODUCT", "quantity": "0"}]}, "products.0.quantity"),
        ({"products": [{"productId": "PRODUCT", "quantity": "1", "discount": "101"}]},
         "products.0.discount"),
        ({"products": [{"productId": "PRODUCT", "quantity": "1", "unitPrice": "-5"}]},
         "products.0.unitPrice"),
        ({"products": [{"productId": to_global_id("Product", 999), "quantity": "1"}]},
         "products.0.productId"),
        ({"products": [{"productId": "INACTIVE", "quantity": "1"}]}, "products.0.productId"),
    ],
)  # fmt: skip
async def test_create_validates_its_input(gql, team, change, field):
    on_sale = await product("ON")
    off_sale = await product("OFF", active=False)
    if "products" in change:
        line = change["products"][0]
        line["productId"] = {"PRODUCT": gid(on_sale), "INACTIVE": gid(off_sale)}.get(
            line["productId"], line["productId"]
        )
        if field == "products.0.quantity" and line["quantity"] == "1":
            line["quantity"] = "1.001"
    before = await written()
    data = {"customerId": gid(team.acme), "name": "Deal", "amount": "1", **change}
    result = await gql(CREATE, {"input": data}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await written() == before


# ---------------------------------------------------------------------------
# moving through the pipeline


async def test_move_records_history_event_and_log(gql, team):
    first, second, third = (await stages())[:3]
    made = await create(gql, team.alice, team.acme)
    moved = (
        await gql.ok(MOVE, {"id": made["id"], "stageId": gid(third), "v": 1}, as_user=team.alice)
    )["moveOpportunityStage"]
    assert (moved["stage"]["id"], moved["status"], moved["version"]) == (gid(third), "OPEN", 2)
    assert moved["weightedAmount"] == "600.00"
    assert await history(made["id"]) == [
        (None, first.id, None, "OPEN", team.alice.id),
        (first.id, third.id, "OPEN", "OPEN", team.alice.id),
    ]
    events = await Event.filter(kind="opportunity.stage_changed").order_by("id")
    assert events[-1].payload == {
        "fromStageId": first.id, "toStageId": third.id, "fromStatus": "OPEN", "status": "OPEN",
    }  # fmt: skip
    assert events[-1].actor_id == team.alice.id
    log = await OperationLog.get(action="MOVE_STAGE")
    assert log.changes == {"stage_id": [first.id, third.id]}
    assert second.id not in {row[1] for row in await history(made["id"])}


async def test_moves_out_of_sight_or_read_only_write_nothing(gql, team):
    mine = await create(gql, team.alice, team.acme)
    third = (await stages())[2]
    await share(team.acme, team.bob, TeamAccess.READ)
    before = await written()
    attempts = [
        (team.carol, "NOT_FOUND"),  # another department
        (team.bob, "FORBIDDEN"),  # READ on the customer's team
        (team.fiona, "FORBIDDEN"),  # sees all, may not update
    ]
    for user, code in attempts:
        result = await gql(MOVE, {"id": mine["id"], "stageId": gid(third)}, as_user=user)
        assert result.codes == [code], user.username
    assert await written() == before
    # The manager above alice may move it.
    await gql.ok(MOVE, {"id": mine["id"], "stageId": gid(third)}, as_user=team.boss)


async def test_move_to_an_unknown_stage_is_bad_input(gql, team):
    made = await create(gql, team.alice, team.acme)
    before = await written()
    for stage_id in (to_global_id("OpportunityStage", 999), gid(team.acme)):
        result = await gql(MOVE, {"id": made["id"], "stageId": stage_id}, as_user=team.alice)
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.error["extensions"]["field"] == "stageId"
    assert await written() == before


async def test_moving_to_the_current_stage_changes_nothing(gql, team):
    made = await create(gql, team.alice, team.acme)
    before = await written()
    same = await gql.ok(
        MOVE, {"id": made["id"], "stageId": made["stage"]["id"]}, as_user=team.alice
    )
    assert same["moveOpportunityStage"]["version"] == 1
    assert await written() == before


async def test_a_move_from_a_stale_version_conflicts(gql, team):
    second, third = (await stages())[1:3]
    made = await create(gql, team.alice, team.acme)
    await gql.ok(MOVE, {"id": made["id"], "stageId": gid(second), "v": 1}, as_user=team.alice)
    before = await written()
    for stage in (third, second):  # even "moving" to where it already is
        result = await gql(MOVE, {"id": made["id"], "stageId": gid(stage), "v": 1},
                           as_user=team.boss)  # fmt: skip
        assert result.codes == ["CONFLICT"]
        assert result.error["extensions"]["currentVersion"] == 2
    assert await written() == before


async def test_two_moves_from_the_same_version_have_one_winner(gql, team):
    first, second, third, fourth = await stages()
    made = await create(gql, team.alice, team.acme)
    results = await asyncio.gather(
        *(
            gql(MOVE, {"id": made["id"], "stageId": gid(stage), "v": 1}, as_user=user)
            for stage, user in ((second, team.alice), (third, team.boss), (fourth, team.ada))
        )
    )
    assert sorted(code for r in results for code in r.codes) == ["CONFLICT", "CONFLICT"]
    winner = next(r.data["moveOpportunityStage"] for r in results if not r.errors)
    row = await Opportunity.get(id=pk(made["id"]))
    assert (gid(await row.stage), row.version) == (winner["stage"]["id"], 2)
    moves = (await history(made["id"]))[1:]
    assert len(moves) == 1 and moves[0][:2] == (first.id, row.stage_id)


async def test_concurrent_moves_without_versions_chain_up_in_the_history(gql, team):
    """Each move starts where the one before it ended: none is lost from the history."""
    all_stages = await stages()
    made = await create(gql, team.alice, team.acme)
    results = await asyncio.gather(
        *(
            gql(MOVE, {"id": made["id"], "stageId": gid(stage)}, as_user=team.alice)
            for stage in all_stages[1:]
        )
    )
    assert all(not r.errors for r in results)
    rows = await history(made["id"])
    assert len(rows) == len(all_stages)
    for before, after in zip(rows, rows[1:], strict=False):
        assert after[0] == before[1]
    row = await Opportunity.get(id=pk(made["id"]))
    assert (row.stage_id, row.version) == (rows[-1][1], len(all_stages))


async def test_moving_a_closed_opportunity_reopens_it(gql, team):
    first, second = (await stages())[:2]
    made = await create(gql, team.alice, team.acme)
    await gql.ok(LOSE, {"id": made["id"], "reason": "Went quiet"}, as_user=team.alice)
    reopened = (await gql.ok(MOVE, {"id": made["id"], "stageId": gid(second)}, as_user=team.alice))[
        "moveOpportunityStage"
    ]
    assert (reopened["status"], reopened["closedAt"], reopened["lostReason"]) == (
        "OPEN", None, None,
    )  # fmt: skip
    assert reopened["weightedAmount"] == "300.00"
    assert (await history(made["id"]))[-1][:4] == (first.id, second.id, "LOST", "OPEN")
    event = await Event.filter(kind="opportunity.stage_changed").order_by("-id").first()
    assert (event.payload["fromStatus"], event.payload["status"]) == ("LOST", "OPEN")


# ---------------------------------------------------------------------------
# winning and losing


async def test_winning_closes_it_at_a_full_win_rate(gql, team):
    first = (await stages())[0]
    made = await create(gql, team.alice, team.acme, amount="8000")
    won = (await gql.ok(WIN, {"id": made["id"], "v": 1}, as_user=team.alice))["winOpportunity"]
    assert (won["status"], won["winRate"], won["weightedAmount"], won["version"]) == (
        "WON", 100, "8000.00", 2,
    )  # fmt: skip
    assert won["closedAt"] is not None
    assert won["stage"]["id"] == gid(first)  # won at the stage it was in
    assert (await history(made["id"]))[-1] == (first.id, first.id, "OPEN", "WON", team.alice.id)
    event = await Event.filter(kind="opportunity.stage_changed").order_by("-id").first()
    assert event.payload["status"] == "WON"
    assert await OperationLog.filter(action="WIN", record_id=pk(made["id"])).exists()

    before = await written()
    again = await gql(WIN, {"id": made["id"]}, as_user=team.alice)
    assert again.codes == ["CONFLICT"]
    assert await written() == before


@pytest.mark.parametrize("reason", ["", "   "])
async def test_losing_needs_a_reason(gql, team, reason):
    made = await create(gql, team.alice, team.acme)
    before = await written()
    result = await gql(LOSE, {"id": made["id"], "reason": reason}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "reason"
    assert await written() == before


async def test_losing_keeps_the_reason_at_a_zero_win_rate(gql, team):
    made = await create(gql, team.alice, team.acme)
    lost = (
        await gql.ok(LOSE, {"id": made["id"], "reason": " Price too high "}, as_user=team.alice)
    )["loseOpportunity"]
    assert (lost["status"], lost["lostReason"], lost["winRate"], lost["weightedAmount"]) == (
        "LOST", "Price too high", 0, "0.00",
    )  # fmt: skip
    change = await OpportunityStageChange.filter(to_status="LOST").get()
    assert (change.reason, change.from_status) == ("Price too high", "OPEN")
    assert (await OperationLog.get(action="LOSE")).summary == "Price too high"
    # A lost deal can still be won (the customer came back).
    won = (await gql.ok(WIN, {"id": made["id"]}, as_user=team.alice))["winOpportunity"]
    assert (won["status"], won["lostReason"]) == ("WON", None)


@pytest.mark.parametrize("query", [WIN, LOSE])
async def test_closing_out_of_sight_or_read_only_writes_nothing(gql, team, query):
    made = await create(gql, team.alice, team.acme)
    await share(team.acme, team.bob, TeamAccess.READ)
    before = await written()
    for user, code in ((team.carol, "NOT_FOUND"), (team.bob, "FORBIDDEN")):
        result = await gql(query, {"id": made["id"], "reason": "No budget"}, as_user=user)
        assert result.codes == [code]
    stale = await gql(query, {"id": made["id"], "reason": "No budget", "v": 7}, as_user=team.alice)
    assert stale.codes == ["CONFLICT"]
    assert await written() == before


# ---------------------------------------------------------------------------
# weighted amount


async def test_weighted_amount_is_exact_and_rounded_half_up(gql, team, org):
    second = (await stages())[1]
    odd = await create(gql, team.alice, team.acme, amount="33.33", stageId=gid(second))
    assert odd["weightedAmount"] == "10.00"  # 9.999
    tiny = await create(gql, team.alice, team.acme, amount="0.05")
    assert tiny["weightedAmount"] == "0.01"  # 0.005, half up
    # The stage's win rate is read live: changing it re-weights open deals.
    await OpportunityStage.filter(id=second.id).update(win_rate=25)
    again = (await gql.ok(NODE.replace("name customer", "weightedAmount customer"),
                          {"id": odd["id"]}, as_user=team.alice))["node"]  # fmt: skip
    assert again["weightedAmount"] == "8.33"  # 8.3325


# ---------------------------------------------------------------------------
# updating


async def test_update_changes_what_is_sent_and_logs_the_difference(gql, team):
    made = await create(gql, team.alice, team.acme, expectedCloseDate="2030-01-31")
    updated = (
        await gql.ok(
            UPDATE,
            {"id": made["id"], "v": 1,
             "input": {"name": "Bigger deal", "amount": "2500.5", "expectedCloseDate": None}},
            as_user=team.alice,
        )
    )["updateOpportunity"]  # fmt: skip
    assert (updated["name"], updated["amount"], updated["expectedCloseDate"]) == (
        "Bigger deal", "2500.50", None,
    )  # fmt: skip
    assert updated["version"] == 2
    log = await OperationLog.get(action="UPDATE")
    assert log.changes == {
        "name": ["Deal", "Bigger deal"],
        "amount": ["1000.00", "2500.50"],
        "expected_close_date": ["2030-01-31", None],
    }
    event = await Event.get(kind="opportunity.updated")
    assert event.payload == {
        "fields": ["amount", "expected_close_date", "name"], "version": 2,
    }  # fmt: skip
    # Leaving a field out keeps it.
    kept = (
        await gql.ok(
            UPDATE, {"id": made["id"], "input": {"remarks": "Call Monday"}}, as_user=team.alice
        )  # fmt: skip
    )["updateOpportunity"]
    assert (kept["name"], kept["amount"], kept["remarks"]) == (
        "Bigger deal", "2500.50", "Call Monday",
    )  # fmt: skip


async def test_update_from_a_stale_version_conflicts(gql, team):
    made = await create(gql, team.alice, team.acme)
    await gql.ok(UPDATE, {"id": made["id"], "input": {"name": "A"}, "v": 1}, as_user=team.alice)
    before = await written()
    result = await gql(UPDATE, {"id": made["id"], "input": {"name": "B"}, "v": 1},
                       as_user=team.boss)  # fmt: skip
    assert result.codes == ["CONFLICT"]
    assert await written() == before


async def test_update_out_of_sight_or_read_only_writes_nothing(gql, team):
    made = await create(gql, team.alice, team.acme)
    await share(team.acme, team.bob, TeamAccess.READ)
    before = await written()
    for user, code in ((team.carol, "NOT_FOUND"), (team.bob, "FORBIDDEN"),
                       (team.fiona, "FORBIDDEN")):  # fmt: skip
        result = await gql(UPDATE, {"id": made["id"], "input": {"name": "Mine"}}, as_user=user)
        assert result.codes == [code]
    assert await written() == before


async def test_a_write_team_member_may_update(gql, team):
    made = await create(gql, team.alice, team.acme)
    await share(team.acme, team.carol, TeamAccess.WRITE)
    data = await gql.ok(UPDATE, {"id": made["id"], "input": {"name": "Shared"}}, as_user=team.carol)
    assert data["updateOpportunity"]["name"] == "Shared"


async def test_the_amount_follows_the_product_lines(gql, team):
    lines = [{"productId": gid(await product("P")), "quantity": "2"}]
    made = await create(gql, team.alice, team.acme, products=lines)
    assert made["amount"] == "200.00"
    before = await written()
    result = await gql(UPDATE, {"id": made["id"], "input": {"amount": "999"}}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "amount"
    assert await written() == before
    # Sending the amount it already has is no change.
    await gql.ok(UPDATE, {"id": made["id"], "input": {"amount": "200"}}, as_user=team.alice)


# ---------------------------------------------------------------------------
# product lines


async def test_line_amounts_are_exact_and_rounded_half_up(gql, team):
    made = await create(gql, team.alice, team.acme)
    half, odd, big = await product("HALF", "0.25"), await product("ODD"), await product("BIG")
    items = [
        {"productId": gid(half), "quantity": "1", "discount": "50"},  # 0.125
        {"productId": gid(odd), "quantity": "3", "unitPrice": "33.33", "discount": "12.5"},
        {"productId": gid(big), "quantity": "1234567.89", "unitPrice": "98765.43",
         "discount": "33.33"},
    ]  # fmt: skip
    data = (await gql.ok(SET_PRODUCTS, {"id": made["id"], "items": items}, as_user=team.alice))[
        "setOpportunityProducts"
    ]
    amounts = [line["amount"] for line in data["products"]]
    # 0.125 → 0.13 (not banker's 0.12); 87.49125 → 87.49; 81292483434.31246809 → .31
    assert amounts == ["0.13", "87.49", "81292483434.31"]
    assert data["amount"] == "81292483521.93"  # their sum
    assert [line["product"]["code"] for line in data["products"]] == ["HALF", "ODD", "BIG"]
    assert data["products"][1]["discount"] == "12.50"


async def test_setting_lines_replaces_them_and_logs_it(gql, team):
    made = await create(gql, team.alice, team.acme)
    first, second = await product("A", "10.00"), await product("B", "20.00")
    await gql.ok(SET_PRODUCTS, {"id": made["id"], "items": [
        {"productId": gid(first), "quantity": "1"}, {"productId": gid(second), "quantity": "1"},
    ]}, as_user=team.alice)  # fmt: skip
    data = (
        await gql.ok(
            SET_PRODUCTS,
            {
                "id": made["id"],
                "v": 2,
                "items": [
                    {"productId": gid(second), "quantity": "5"},
                ],
            },
            as_user=team.alice,
        )  # fmt: skip
    )["setOpportunityProducts"]
    assert (data["amount"], data["version"]) == ("100.00", 3)
    assert [(p["product"]["code"], p["quantity"]) for p in data["products"]] == [("B", "5.00")]
    assert await OpportunityProduct.all().count() == 1
    log = await OperationLog.filter(action="UPDATE").order_by("-id").first()
    assert log.changes["amount"] == ["30.00", "100.00"]
    assert log.changes["products"][1] == [
        {"productId": second.id, "quantity": "5.00", "unitPrice": "20.00", "discount": "0.00"}
    ]
    stale = await gql(SET_PRODUCTS, {"id": made["id"], "v": 2, "items": []}, as_user=team.alice)
    assert stale.codes == ["CONFLICT"]


async def test_removing_every_line_keeps_the_amount(gql, team):
    lines = [{"productId": gid(await product("P")), "quantity": "3"}]
    made = await create(gql, team.alice, team.acme, products=lines)
    data = (await gql.ok(SET_PRODUCTS, {"id": made["id"], "items": []}, as_user=team.alice))[
        "setOpportunityProducts"
    ]
    assert (data["amount"], data["products"]) == ("300.00", [])
    # Without lines the amount is typed again.
    await gql.ok(UPDATE, {"id": made["id"], "input": {"amount": "50"}}, as_user=team.alice)


async def test_an_inactive_product_stays_on_its_lines_but_joins_no_new_ones(gql, team):
    old, new = await product("OLD"), await product("NEW")
    made = await create(gql, team.alice, team.acme,
                        products=[{"productId": gid(old), "quantity": "1"}])  # fmt: skip
    await Product.filter(id=old.id).update(is_active=False)
    other = await create(gql, team.alice, team.acme, name="Other")
    before = await written()
    refused = await gql(SET_PRODUCTS, {"id": other["id"], "items": [
        {"productId": gid(new), "quantity": "1"}, {"productId": gid(old), "quantity": "1"},
    ]}, as_user=team.alice)  # fmt: skip
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.error["extensions"]["field"] == "items.1.productId"
    assert await written() == before
    # The deal that already sold it may keep (and re-price) its line.
    kept = await gql.ok(SET_PRODUCTS, {"id": made["id"], "items": [
        {"productId": gid(old), "quantity": "2"}, {"productId": gid(new), "quantity": "1"},
    ]}, as_user=team.alice)  # fmt: skip
    assert kept["setOpportunityProducts"]["amount"] == "300.00"


@pytest.mark.parametrize(
    "line, field",
    [
        ({"quantity": "-1"}, "items.0.quantity"),
        ({"quantity": "0.001"}, "items.0.quantity"),
        ({"quantity": "1", "discount": "100.01"}, "items.0.discount"),
        ({"quantity": "1", "discount": "-1"}, "items.0.discount"),
        ({"quantity": "1", "unitPrice": "0.001"}, "items.0.unitPrice"),
        ({"quantity": "9999999999.99", "unitPrice": "99999999999999.99"}, "items.0.quantity"),
    ],
)
async def test_lines_are_validated(gql, team, line, field):
    made = await create(gql, team.alice, team.acme)
    item = {"productId": gid(await product("P")), **line}
    before = await written()
    result = await gql(SET_PRODUCTS, {"id": made["id"], "items": [item]}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await written() == before


async def test_setting_lines_out_of_sight_or_read_only_writes_nothing(gql, team):
    made = await create(gql, team.alice, team.acme)
    item = {"productId": gid(await product("P")), "quantity": "1"}
    await share(team.acme, team.bob, TeamAccess.READ)
    before = await written()
    for user, code in ((team.carol, "NOT_FOUND"), (team.bob, "FORBIDDEN")):
        result = await gql(SET_PRODUCTS, {"id": made["id"], "items": [item]}, as_user=user)
        assert result.codes == [code]
    assert await written() == before


# ---------------------------------------------------------------------------
# transferring


async def test_transfer_hands_opportunities_over(gql, team):
    one = await create(gql, team.alice, team.acme, name="One")
    two = await create(gql, team.alice, team.acme, name="Two")
    moved = (
        await gql.ok(
            TRANSFER, {"ids": [two["id"], one["id"]], "ownerId": gid(team.bob)}, as_user=team.boss
        )  # fmt: skip
    )["transferOpportunities"]
    assert [m["id"] for m in moved] == [two["id"], one["id"]]
    assert {m["owner"]["id"] for m in moved} == {gid(team.bob)}
    assert {m["version"] for m in moved} == {2}
    logs = await OperationLog.filter(action="TRANSFER").order_by("record_id")
    assert [(log.record_id, log.changes) for log in logs] == [
        (pk(one["id"]), {"owner_id": [team.alice.id, team.bob.id]}),
        (pk(two["id"]), {"owner_id": [team.alice.id, team.bob.id]}),
    ]
    events = await Event.filter(kind="opportunity.transferred")
    assert {(e.recipient_id, e.owner_id) for e in events} == {(team.bob.id, team.bob.id)}
    # Alice (SELF scope) no longer sees them; Bob does.
    assert (await gql(NODE, {"id": one["id"]}, as_user=team.alice)).codes == ["NOT_FOUND"]
    assert (await gql.ok(NODE, {"id": one["id"]}, as_user=team.bob))["node"]["name"] == "One"


async def test_transfer_needs_the_permission(gql, team):
    made = await create(gql, team.alice, team.acme)
    before = await written()
    result = await gql(TRANSFER, {"ids": [made["id"]], "ownerId": gid(team.bob)},
                       as_user=team.alice)  # fmt: skip
    assert result.codes == ["FORBIDDEN"]
    assert await written() == before


async def test_transfer_is_all_or_nothing(gql, team):
    mine = await create(gql, team.alice, team.acme)
    theirs = await create(gql, team.carol, team.cosmo)  # outside boss's department tree
    before = await written()
    result = await gql(TRANSFER, {"ids": [mine["id"], theirs["id"]], "ownerId": gid(team.bob)},
                       as_user=team.boss)  # fmt: skip
    assert result.codes == ["NOT_FOUND"]
    assert await written() == before


async def test_transfer_needs_an_active_new_owner(gql, team, org):
    made = await create(gql, team.alice, team.acme)
    gone = await org.user("gone")
    await User.filter(id=gone.id).update(is_active=False)
    before = await written()
    for owner in (gid(gone), to_global_id("User", 999)):
        result = await gql(TRANSFER, {"ids": [made["id"]], "ownerId": owner}, as_user=team.boss)
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.error["extensions"]["field"] == "ownerId"
    assert await written() == before


async def test_transfer_names_at_least_one_opportunity(gql, team):
    result = await gql(TRANSFER, {"ids": [], "ownerId": gid(team.bob)}, as_user=team.boss)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ids"


# ---------------------------------------------------------------------------
# deleting


async def test_delete_removes_it_with_its_lines_and_history(gql, team):
    lines = [{"productId": gid(await product("P")), "quantity": "1"}]
    made = await create(gql, team.alice, team.acme, products=lines)
    data = await gql.ok(DELETE, {"id": made["id"]}, as_user=team.boss)
    assert data["deleteOpportunity"]["deletedId"] == made["id"]
    assert not await Opportunity.exists()
    assert not await OpportunityProduct.exists()
    assert not await OpportunityStageChange.exists()
    log = await OperationLog.get(action="DELETE")
    assert (log.record_id, log.actor_id, log.summary) == (
        pk(made["id"]), team.boss.id, "Deleted opportunity Deal",
    )  # fmt: skip


async def test_an_opportunity_under_contract_cannot_be_deleted(gql, team):
    made = await create(gql, team.alice, team.acme)
    await Contract.create(number="HT-1", title="ERP", customer=team.acme,
                          opportunity_id=pk(made["id"]), owner=team.alice,
                          created_by=team.alice)  # fmt: skip
    before = await written()
    result = await gql(DELETE, {"id": made["id"]}, as_user=team.boss)
    assert result.codes == ["CONFLICT"]
    assert await written() == before


async def test_delete_out_of_sight_or_without_permission_writes_nothing(gql, team):
    made = await create(gql, team.alice, team.acme)
    before = await written()
    for user, code in ((team.carol, "NOT_FOUND"), (team.alice, "FORBIDDEN")):
        assert (await gql(DELETE, {"id": made["id"]}, as_user=user)).codes == [code]
    assert await written() == before


# ---------------------------------------------------------------------------
# reading


async def names(gql, user: User, **filter) -> list[str]:
    data = await gql.ok(LIST, {"filter": filter, "orderBy": {"field": "NAME", "descending": False}},
                        as_user=user)  # fmt: skip
    return [edge["node"]["name"] for edge in data["opportunities"]["edges"]]


async def test_the_list_shows_what_the_caller_may_see(gql, team):
    await create(gql, team.alice, team.acme, name="A1")
    await create(gql, team.bob, team.bolt, name="B1")
    await create(gql, team.carol, team.cosmo, name="C1")
    assert await names(gql, team.alice) == ["A1"]
    assert await names(gql, team.boss) == ["A1", "B1"]
    assert await names(gql, team.fiona) == ["A1", "B1", "C1"]
    await share(team.cosmo, team.alice, TeamAccess.READ)  # the customer's team sees its deals
    assert await names(gql, team.alice) == ["A1", "C1"]
    assert (await gql(LIST)).codes == ["UNAUTHENTICATED"]


async def test_the_list_filters(gql, team):
    second = (await stages())[1]
    await create(gql, team.alice, team.acme, name="Router deal", expectedCloseDate="2030-03-01")
    await create(gql, team.alice, team.acme, name="Switch deal", stageId=gid(second),
                 expectedCloseDate="2030-05-01")  # fmt: skip
    lost = await create(gql, team.bob, team.bolt, name="Router refresh")
    await gql.ok(LOSE, {"id": lost["id"], "reason": "Budget"}, as_user=team.bob)

    assert await names(gql, team.ada, search="router") == ["Router deal", "Router refresh"]
    assert await names(gql, team.ada, customerId=gid(team.bolt)) == ["Router refresh"]
    assert await names(gql, team.ada, ownerId=gid(team.alice)) == ["Router deal", "Switch deal"]
    assert await names(gql, team.ada, stageId=gid(second)) == ["Switch deal"]
    assert await names(gql, team.ada, status="LOST") == ["Router refresh"]
    assert await names(gql, team.ada, status="OPEN", expectedCloseFrom="2030-04-01") == [
        "Switch deal"
    ]
    assert await names(gql, team.ada, expectedCloseTo="2030-04-01") == ["Router deal"]
    # Filtering by someone else's customer shows only what one may see anyway.
    assert await names(gql, team.alice, customerId=gid(team.bolt)) == []


async def test_the_list_pages(gql, team):
    for n in range(5):
        await create(gql, team.alice, team.acme, name=f"Deal {n}")
    seen, after = [], None
    while True:
        data = await gql.ok(LIST, {"first": 2, "after": after, "orderBy": {"field": "CREATED_AT"}},
                            as_user=team.alice)  # fmt: skip
        page = data["opportunities"]
        assert page["totalCount"] == 5
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"Deal {n}" for n in reversed(range(5))]  # newest first


async def test_node_and_history(gql, team):
    first, second = (await stages())[:2]
    made = await create(gql, team.alice, team.acme)
    await gql.ok(MOVE, {"id": made["id"], "stageId": gid(second)}, as_user=team.boss)
    await gql.ok(LOSE, {"id": made["id"], "reason": "Lost to rival"}, as_user=team.alice)
    rows = (await gql.ok(HISTORY, {"id": made["id"]}, as_user=team.alice))["node"]["stageHistory"]
    assert rows == [
        {"fromStage": None, "toStage": {"id": gid(first)}, "fromStatus": None,
         "toStatus": "OPEN", "reason": None, "actor": {"id": gid(team.alice)}},
        {"fromStage": {"id": gid(first)}, "toStage": {"id": gid(second)}, "fromStatus": "OPEN",
         "toStatus": "OPEN", "reason": None, "actor": {"id": gid(team.boss)}},
        {"fromStage": {"id": gid(second)}, "toStage": {"id": gid(second)}, "fromStatus": "OPEN",
         "toStatus": "LOST", "reason": "Lost to rival", "actor": {"id": gid(team.alice)}},
    ]  # fmt: skip
    assert (await gql(NODE, {"id": made["id"]}, as_user=team.carol)).codes == ["NOT_FOUND"]
    assert (await gql(HISTORY, {"id": made["id"]}, as_user=team.carol)).codes == ["NOT_FOUND"]


async def test_customer_opportunities_shows_only_those_in_sight(gql, team):
    await create(gql, team.alice, team.acme, name="Alice's")
    await Opportunity.create(customer=team.acme, name="Carol's", amount="1",
                             stage=(await stages())[0], owner=team.carol,
                             created_by=team.carol)  # fmt: skip

    async def seen(user: User) -> list[str]:
        node = (await gql.ok(OF_CUSTOMER, {"id": gid(team.acme)}, as_user=user))["node"]
        return sorted(o["name"] for o in node["opportunities"])

    assert await seen(team.alice) == ["Alice's"]
    assert await seen(team.boss) == ["Alice's"]
    assert await seen(team.ada) == ["Alice's", "Carol's"]


async def test_the_customer_of_an_opportunity_is_null_when_out_of_sight(gql, team):
    made = await create(gql, team.alice, team.acme)
    await Customer.filter(id=team.acme.id).update(owner_id=team.carol.id)
    node = (await gql.ok(NODE, {"id": made["id"]}, as_user=team.alice))["node"]
    assert node == {"id": made["id"], "name": "Deal", "customer": None}


NESTED = """
query($first: Int) {
  customers(first: $first) {
    edges { node {
      name
      opportunities {
        name weightedAmount
        stage { name } owner { name } customer { name }
        stageHistory { toStage { name } actor { name } }
        products { amount product { code } }
      }
    } }
  }
}
"""


async def test_nested_opportunities_cost_the_same_for_ten_or_a_hundred(gql, team, statements):
    all_stages = await stages()
    item = await product("P")

    async def build(n: int, prefix: str) -> None:
        for i in range(n):
            row = await customer(team.alice, f"{prefix} {i}")
            opportunity = await Opportunity.create(
                customer=row, name=f"{prefix} deal {i}", amount="100",
                stage=all_stages[i % 4], owner=team.alice, created_by=team.alice,
            )  # fmt: skip
            await OpportunityStageChange.create(opportunity=opportunity,
                                                to_stage=all_stages[i % 4], to_status="OPEN",
                                                actor=team.alice)  # fmt: skip
            await OpportunityProduct.create(opportunity=opportunity, product=item,
                                            quantity=1, unit_price="100")  # fmt: skip

    await build(9, "Small")  # with acme: 10 customers
    statements.count = 0
    small = await gql.ok(NESTED, {"first": 100}, as_user=team.alice)
    ten = statements.count
    await build(90, "Large")
    statements.count = 0
    large = await gql.ok(NESTED, {"first": 100}, as_user=team.alice)
    hundred = statements.count

    assert len(small["customers"]["edges"]) == 10
    assert len(large["customers"]["edges"]) == 100
    deals = [o for e in large["customers"]["edges"] for o in e["node"]["opportunities"]]
    assert len(deals) == 99 and all(len(d["products"]) == 1 for d in deals)
    assert ten == hundred, (ten, hundred)


async def pages(gql, user, order: dict, size: int) -> list[str]:
    seen, after = [], None
    while True:
        data = await gql.ok(LIST, {"first": size, "after": after, "orderBy": order}, as_user=user)
        page = data["opportunities"]
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("descending", [False, True])
async def test_the_list_pages_by_amount_and_by_expected_close(gql, team, descending):
    deals = [  # name, amount, expected close
        ("A", "900.50", "2030-05-01"),
        ("B", "1200.00", None),
        ("C", "900.50", "2030-04-01"),
        ("D", "80.00", "2030-05-01"),
        ("E", "1200.00", None),
    ]
    for name, amount, close in deals:
        await create(gql, team.alice, team.acme, name=name, amount=amount, expectedCloseDate=close)

    by_amount = await pages(gql, team.alice, {"field": "AMOUNT", "descending": descending}, 2)
    expected = ["D", "A", "C", "B", "E"]  # ties in creation order
    assert by_amount == (list(reversed(expected)) if descending else expected)

    by_close = await pages(
        gql, team.alice, {"field": "EXPECTED_CLOSE_DATE", "descending": descending}, 2
    )
    expected = ["C", "A", "D", "B", "E"]  # undated after every dated one
    assert by_close == (list(reversed(expected)) if descending else expected)
