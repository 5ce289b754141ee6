"""Opportunity stages (商机阶段): the default pipeline, and admins configuring it."""

from __future__ import annotations

import asyncio

import pytest

from meihua.models import (
    Customer,
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

STAGES = "{ opportunityStages { id name winRate order version } }"
CREATE = """
mutation($input: CreateOpportunityStageInput!) {
  createOpportunityStage(input: $input) { id name winRate order version }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateOpportunityStageInput!, $v: Int) {
  updateOpportunityStage(id: $id, input: $input, expectedVersion: $v) {
    id name winRate order version
  }
}
"""
REORDER = """
mutation($ids: [ID!]!) { reorderOpportunityStages(ids: $ids) { id name order } }
"""
DELETE = "mutation($id: ID!) { deleteOpportunityStage(id: $id) { deletedId } }"
MOVE = """
mutation($id: ID!, $stageId: ID!) { moveOpportunityStage(id: $id, stageId: $stageId) { id } }
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on OpportunityStage { name winRate } } }"


@pytest.fixture
async def admin(org) -> User:
    """Holds the default Administrator role, which has `settings:manage`."""
    return await org.user("ada", roles=[await org.default_role("Administrator")])


@pytest.fixture
async def manager(org) -> User:
    """A Sales Manager: much may, but not configure the pipeline."""
    return await org.user("max", roles=[await org.default_role("Sales Manager")])


def gid(stage: OpportunityStage) -> str:
    return to_global_id("OpportunityStage", stage.id)


async def pipeline() -> list[tuple[str, int, int]]:
    return [
        (s.name, s.win_rate, s.order) for s in await OpportunityStage.all().order_by("order", "id")
    ]


async def stage_named(prefix: str) -> OpportunityStage:
    return await OpportunityStage.get(name__startswith=prefix)


async def opportunity_at(stage: OpportunityStage, owner: User) -> Opportunity:
    customer = await Customer.create(
        name="Acme", name_key=normalize_name("Acme"), owner_id=owner.id, created_by_id=owner.id
    )
    return await Opportunity.create(
        customer=customer,
        name="Deal",
        amount="1000.00",
        stage=stage,
        owner=owner,
        created_by=owner,
    )


# ---------------------------------------------------------------------------
# reading


async def test_everyone_starts_with_four_stages_in_order(gql, org):
    rep = await org.user("rita", roles=[await org.default_role("Sales Rep")])
    stages = (await gql.ok(STAGES, as_user=rep))["opportunityStages"]
    assert [(s["winRate"], s["order"]) for s in stages] == [(10, 1), (30, 2), (60, 3), (80, 4)]
    assert stages[0]["name"] == "初步接洽 Initial contact"


async def test_stages_need_a_signed_in_caller(gql, db):
    assert (await gql(STAGES)).codes == ["UNAUTHENTICATED"]


async def test_a_stage_is_a_node(gql, admin):
    stage = await stage_named("方案报价")
    found = (await gql.ok(NODE, {"id": gid(stage)}, as_user=admin))["node"]
    assert found == {"id": gid(stage), "name": stage.name, "winRate": 60}


# ---------------------------------------------------------------------------
# creating


async def test_a_new_stage_goes_last(gql, admin):
    made = (
        await gql.ok(CREATE, {"input": {"name": " Contract sent ", "winRate": 90}}, as_user=admin)
    )["createOpportunityStage"]
    assert (made["name"], made["winRate"], made["order"], made["version"]) == (
        "Contract sent", 90, 5, 1,
    )  # fmt: skip
    assert (await pipeline())[-1] == ("Contract sent", 90, 5)


@pytest.mark.parametrize("rate", [-1, 101, 1000])
async def test_win_rate_is_a_percentage(gql, admin, rate):
    before = await pipeline()
    result = await gql(CREATE, {"input": {"name": "Odd", "winRate": rate}}, as_user=admin)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "winRate"
    assert await pipeline() == before


async def test_win_rate_may_be_zero_or_a_hundred(gql, admin):
    for name, rate in (("Parked", 0), ("Signed", 100)):
        await gql.ok(CREATE, {"input": {"name": name, "winRate": rate}}, as_user=admin)
    assert [row[1:] for row in (await pipeline())[-2:]] == [(0, 5), (100, 6)]


async def test_stage_names_are_required_and_unique(gql, admin):
    before = await pipeline()
    blank = await gql(CREATE, {"input": {"name": "  ", "winRate": 50}}, as_user=admin)
    assert blank.codes == ["BAD_USER_INPUT"] and blank.error["extensions"]["field"] == "name"
    taken = (await stage_named("需求确认")).name
    again = await gql(CREATE, {"input": {"name": taken, "winRate": 50}}, as_user=admin)
    assert again.codes == ["DUPLICATE"] and again.error["extensions"]["field"] == "name"
    assert await pipeline() == before


async def test_configuring_stages_needs_settings_manage(gql, admin, manager):
    before = await pipeline()
    first = await stage_named("初步接洽")
    attempts = [
        (CREATE, {"input": {"name": "Mine", "winRate": 50}}),
        (UPDATE, {"id": gid(first), "input": {"winRate": 99}}),
        (REORDER, {"ids": [gid(s) for s in reversed(await OpportunityStage.all())]}),
        (DELETE, {"id": gid(first)}),
    ]
    for query, variables in attempts:
        assert (await gql(query, variables, as_user=manager)).codes == ["FORBIDDEN"]
    assert await pipeline() == before
    assert (await OpportunityStage.get(id=first.id)).version == 1


async def test_stages_added_at_once_get_distinct_places(gql, admin):
    results = await asyncio.gather(
        *(
            gql(CREATE, {"input": {"name": f"Extra {n}", "winRate": 50}}, as_user=admin)
            for n in range(4)
        )
    )
    assert all(not r.errors for r in results), [r.errors for r in results]
    assert [order for _, _, order in await pipeline()] == [1, 2, 3, 4, 5, 6, 7, 8]


# ---------------------------------------------------------------------------
# updating


async def test_update_renames_and_changes_the_win_rate(gql, admin):
    stage = await stage_named("谈判审核")
    updated = (
        await gql.ok(
            UPDATE, {"id": gid(stage), "input": {"name": "Negotiation", "winRate": 85}, "v": 1},
            as_user=admin,
        )
    )["updateOpportunityStage"]  # fmt: skip
    assert (updated["name"], updated["winRate"], updated["order"], updated["version"]) == (
        "Negotiation", 85, 4, 2,
    )  # fmt: skip


async def test_update_with_a_stale_version_conflicts(gql, admin):
    stage = await stage_named("谈判审核")
    await gql.ok(UPDATE, {"id": gid(stage), "input": {"winRate": 70}, "v": 1}, as_user=admin)
    result = await gql(UPDATE, {"id": gid(stage), "input": {"winRate": 75}, "v": 1}, as_user=admin)
    assert result.codes == ["CONFLICT"]
    assert (await OpportunityStage.get(id=stage.id)).win_rate == 70


async def test_update_validates_like_create(gql, admin):
    stage = await stage_named("谈判审核")
    other = await stage_named("需求确认")
    for change, field, code in [
        ({"winRate": 101}, "winRate", "BAD_USER_INPUT"),
        ({"name": ""}, "name", "BAD_USER_INPUT"),
        ({"name": other.name}, "name", "DUPLICATE"),
    ]:
        result = await gql(UPDATE, {"id": gid(stage), "input": change}, as_user=admin)
        assert result.codes == [code]
        assert result.error["extensions"]["field"] == field
    row = await OpportunityStage.get(id=stage.id)
    assert (row.name, row.win_rate, row.version) == (stage.name, 80, 1)


async def test_updating_a_missing_stage_is_not_found(gql, admin):
    result = await gql(
        UPDATE, {"id": to_global_id("OpportunityStage", 999), "input": {"winRate": 5}},
        as_user=admin,
    )  # fmt: skip
    assert result.codes == ["NOT_FOUND"]


# ---------------------------------------------------------------------------
# reordering


async def test_reorder_renumbers_the_pipeline(gql, admin):
    stages = await OpportunityStage.all().order_by("order")
    wanted = [stages[2], stages[0], stages[1], stages[3]]
    result = (await gql.ok(REORDER, {"ids": [gid(s) for s in wanted]}, as_user=admin))[
        "reorderOpportunityStages"
    ]
    assert [r["id"] for r in result] == [gid(s) for s in wanted]
    assert [r["order"] for r in result] == [1, 2, 3, 4]
    listed = (await gql.ok(STAGES, as_user=admin))["opportunityStages"]
    assert [s["id"] for s in listed] == [gid(s) for s in wanted]
    # Only stages whose place changed get a new version.
    versions = {s.id: s.version for s in await OpportunityStage.all()}
    assert [versions[s.id] for s in stages] == [2, 2, 2, 1]


@pytest.mark.parametrize(
    "pick",
    [
        lambda s: s[:3],  # one missing
        lambda s: s + s[:1],  # one twice
        lambda s: s[:3] + s[:1],  # one twice, one missing
        lambda s: [],
    ],
)
async def test_reorder_must_name_every_stage_once(gql, admin, pick):
    stages = await OpportunityStage.all().order_by("order")
    before = await pipeline()
    result = await gql(REORDER, {"ids": [gid(s) for s in pick(stages)]}, as_user=admin)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ids"
    assert await pipeline() == before


async def test_reorder_refuses_unknown_stages(gql, admin):
    stages = await OpportunityStage.all().order_by("order")
    ids = [gid(s) for s in stages] + [to_global_id("OpportunityStage", 999)]
    result = await gql(REORDER, {"ids": ids}, as_user=admin)
    assert result.codes == ["BAD_USER_INPUT"]


# ---------------------------------------------------------------------------
# deleting


async def test_an_unused_stage_is_deleted_and_the_rest_close_up(gql, admin):
    second = await stage_named("需求确认")
    data = await gql.ok(DELETE, {"id": gid(second)}, as_user=admin)
    assert data["deleteOpportunityStage"]["deletedId"] == gid(second)
    assert [(rate, order) for _, rate, order in await pipeline()] == [(10, 1), (60, 2), (80, 3)]


async def test_a_stage_with_opportunities_cannot_be_deleted(gql, admin):
    stage = await stage_named("需求确认")
    await opportunity_at(stage, admin)
    result = await gql(DELETE, {"id": gid(stage)}, as_user=admin)
    assert result.codes == ["CONFLICT"]
    assert await OpportunityStage.filter(id=stage.id).exists()


async def test_a_stage_named_in_history_cannot_be_deleted(gql, admin):
    """Once every deal has moved on, the history still says they passed through it."""
    first, second = await stage_named("初步接洽"), await stage_named("需求确认")
    opportunity = await opportunity_at(first, admin)
    await OpportunityStageChange.create(
        opportunity=opportunity, to_stage=first, to_status="OPEN", actor=admin
    )
    await gql.ok(
        MOVE, {"id": to_global_id("Opportunity", opportunity.id), "stageId": gid(second)},
        as_user=admin,
    )  # fmt: skip
    result = await gql(DELETE, {"id": gid(first)}, as_user=admin)
    assert result.codes == ["CONFLICT"]
    assert len(await pipeline()) == 4


async def test_the_last_stage_stays(gql, admin):
    stages = await OpportunityStage.all().order_by("order")
    for stage in stages[1:]:
        await gql.ok(DELETE, {"id": gid(stage)}, as_user=admin)
    result = await gql(DELETE, {"id": gid(stages[0])}, as_user=admin)
    assert result.codes == ["CONFLICT"]
    assert await pipeline() == [(stages[0].name, 10, 1)]


async def test_deleting_a_missing_stage_is_not_found(gql, admin):
    result = await gql(DELETE, {"id": to_global_id("OpportunityStage", 999)}, as_user=admin)
    assert result.codes == ["NOT_FOUND"]
