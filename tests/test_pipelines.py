"""Pipelines (销售流程): stage groups admins configure, and opportunities in them."""

from __future__ import annotations

import asyncio

import pytest

from meihua.models import (
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    Pipeline,
    User,
)
from meihua.schema.relay import to_global_id
from tests.conftest import SalesTeam

PIPELINES = """
{ pipelines { id name description order active version stages { name winRate order } } }
"""
CREATE = """
mutation($input: CreatePipelineInput!) {
  createPipeline(input: $input) { id name order active stages { id name winRate order } }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdatePipelineInput!, $v: Int) {
  updatePipeline(id: $id, input: $input, expectedVersion: $v) { id name description active version }
}
"""
REORDER = "mutation($ids: [ID!]!) { reorderPipelines(ids: $ids) { name order } }"
DELETE = "mutation($id: ID!) { deletePipeline(id: $id) { deletedId } }"
ADD_STAGE = """
mutation($input: CreateOpportunityStageInput!) {
  createOpportunityStage(input: $input) { name order pipeline { name } }
}
"""
REORDER_STAGES = "mutation($ids: [ID!]!) { reorderOpportunityStages(ids: $ids) { name order } }"
DELETE_STAGE = "mutation($id: ID!) { deleteOpportunityStage(id: $id) { deletedId } }"
STAGES_OF = "query($p: ID) { opportunityStages(pipelineId: $p) { name } }"
CREATE_CUSTOMER = "mutation($n: String!) { createCustomer(input: {name: $n}) { id } }"
CREATE_OPPORTUNITY = """
mutation($input: CreateOpportunityInput!) {
  createOpportunity(input: $input) {
    id stage { name } pipeline { name } weightedAmount
  }
}
"""
MOVE = """
mutation($id: ID!, $s: ID!) { moveOpportunityStage(id: $id, stageId: $s) { stage { name } } }
"""
CHANGE = """
mutation($id: ID!, $p: ID!, $s: ID, $v: Int) {
  changeOpportunityPipeline(id: $id, pipelineId: $p, stageId: $s, expectedVersion: $v) {
    status stage { name } pipeline { name } weightedAmount version
    stageHistory { fromStage { name } toStage { name } toStatus actor { username } }
  }
}
"""
WIN = "mutation($id: ID!) { winOpportunity(id: $id) { status } }"
LIST = """
query($f: OpportunityFilter) { opportunities(filter: $f, first: 50) { edges { node { name } } } }
"""
STAGE_EVENTS = """
subscription { opportunityStageChanged { opportunity { name } fromStage { name }
  toStage { name pipeline { name } } } }
"""
SALES = "销售 Sales"
DEFAULT_STAGES = [
    ("初步接洽 Initial contact", 10, 1),
    ("需求确认 Needs confirmed", 30, 2),
    ("方案报价 Proposal and quote", 60, 3),
    ("谈判审核 Negotiation", 80, 4),
]
PROJECTS = {
    "name": "Projects",
    "description": "System integration projects",
    "stages": [
        {"name": "Scoping", "winRate": 20},
        {"name": "Design", "winRate": 50},
        {"name": "Contract", "winRate": 90},
    ],
}


def gid(row: Pipeline | OpportunityStage | Opportunity) -> str:
    return to_global_id(type(row).__name__, row.id)


@pytest.fixture
async def team(org) -> SalesTeam:
    return await org.sales_team()


async def projects(gql, admin: User) -> dict:
    return (await gql.ok(CREATE, {"input": PROJECTS}, as_user=admin))["createPipeline"]


async def deal_of(gql, user: User, name: str, **more) -> str:
    customer = await customer_of(gql, user, f"{name} Ltd")
    data = {"customerId": customer, "name": name, "amount": "1000.00", **more}
    return (await gql.ok(CREATE_OPPORTUNITY, {"input": data}, as_user=user))["createOpportunity"]


async def customer_of(gql, user: User, name: str) -> str:
    return (await gql.ok(CREATE_CUSTOMER, {"n": name}, as_user=user))["createCustomer"]["id"]


async def stage_names(pipeline_name: str) -> list[str]:
    rows = await OpportunityStage.filter(pipeline__name=pipeline_name).order_by("order")
    return [row.name for row in rows]


# --- configuring ------------------------------------------------------------------------


async def test_existing_stages_are_the_default_pipeline(gql, team):
    (sales,) = (await gql.ok(PIPELINES, as_user=team.an))["pipelines"]
    assert (sales["name"], sales["order"], sales["active"]) == (SALES, 1, True)
    assert [(s["name"], s["winRate"], s["order"]) for s in sales["stages"]] == DEFAULT_STAGES
    # The spec's opportunityStages still lists the default pipeline's stages.
    stages = (await gql.ok(STAGES_OF, {}, as_user=team.an))["opportunityStages"]
    assert [s["name"] for s in stages] == [name for name, _, _ in DEFAULT_STAGES]


async def test_an_admin_creates_a_pipeline_with_ordered_stages(gql, team):
    made = await projects(gql, team.admin)
    assert (made["name"], made["order"], made["active"]) == ("Projects", 2, True)
    assert [(s["name"], s["winRate"], s["order"]) for s in made["stages"]] == [
        ("Scoping", 20, 1),
        ("Design", 50, 2),
        ("Contract", 90, 3),
    ]
    listed = (await gql.ok(PIPELINES, as_user=team.an))["pipelines"]
    assert [(p["name"], p["description"]) for p in listed] == [
        (SALES, None),
        ("Projects", "System integration projects"),
    ]
    stages = (await gql.ok(STAGES_OF, {"p": made["id"]}, as_user=team.an))["opportunityStages"]
    assert [s["name"] for s in stages] == ["Scoping", "Design", "Contract"]
    unknown = await gql(STAGES_OF, {"p": to_global_id("Pipeline", 99)}, as_user=team.an)
    assert unknown.codes == ["BAD_USER_INPUT"]


async def test_only_settings_managers_configure_pipelines(gql, team):
    refused = await gql(CREATE, {"input": PROJECTS}, as_user=team.mei)
    assert refused.codes == ["FORBIDDEN"]
    sales = await Pipeline.get(name=SALES)
    for document, variables in [
        (UPDATE, {"id": gid(sales), "input": {"name": "Mine"}}),
        (REORDER, {"ids": [gid(sales)]}),
        (DELETE, {"id": gid(sales)}),
        (ADD_STAGE, {"input": {"name": "X", "winRate": 5, "pipelineId": gid(sales)}}),
    ]:
        assert (await gql(document, variables, as_user=team.an)).codes == ["FORBIDDEN"]
    assert await Pipeline.all().count() == 1
    assert (await Pipeline.get(id=sales.id)).name == SALES


@pytest.mark.parametrize(
    "change, code, field",
    [
        ({"name": SALES}, "DUPLICATE", "name"),
        ({"name": "  "}, "BAD_USER_INPUT", "name"),
        ({"stages": []}, "BAD_USER_INPUT", "stages"),
        ({"stages": [{"name": "A", "winRate": 101}]}, "BAD_USER_INPUT", "stages.0.winRate"),
        ({"stages": [{"name": "A", "winRate": -1}]}, "BAD_USER_INPUT", "stages.0.winRate"),
        (
            {"stages": [{"name": "A", "winRate": 1}, {"name": "A", "winRate": 2}]},
            "DUPLICATE",
            "stages",
        ),
    ],
)
async def test_a_bad_pipeline_is_refused_and_nothing_is_created(gql, team, change, code, field):
    refused = await gql(CREATE, {"input": {**PROJECTS, **change}}, as_user=team.admin)
    assert refused.codes == [code]
    assert refused.error["extensions"]["field"] == field
    assert await Pipeline.all().count() == 1
    assert await OpportunityStage.all().count() == 4


async def test_updating_a_pipeline_checks_its_version(gql, team):
    made = await projects(gql, team.admin)
    renamed = (
        await gql.ok(
            UPDATE,
            {"id": made["id"], "input": {"name": "Solutions", "description": ""}, "v": 1},
            as_user=team.admin,
        )
    )["updatePipeline"]
    assert (renamed["name"], renamed["description"], renamed["version"]) == ("Solutions", None, 2)
    old = {"id": made["id"], "input": {"name": "Old"}, "v": 1}
    stale = await gql(UPDATE, old, as_user=team.admin)
    assert stale.codes == ["CONFLICT"]
    assert stale.error["extensions"]["currentVersion"] == 2
    assert (await Pipeline.get(name="Solutions")).version == 2


async def test_the_last_active_pipeline_stays(gql, team):
    sales = await Pipeline.get(name=SALES)
    retire = await gql(UPDATE, {"id": gid(sales), "input": {"active": False}}, as_user=team.admin)
    assert retire.codes == ["CONFLICT"]
    assert (await gql(DELETE, {"id": gid(sales)}, as_user=team.admin)).codes == ["CONFLICT"]
    assert (await Pipeline.get(id=sales.id)).is_active
    # With a second pipeline, Sales may retire: new opportunities then start in Projects.
    await projects(gql, team.admin)
    await gql.ok(UPDATE, {"id": gid(sales), "input": {"active": False}}, as_user=team.admin)
    deal = await deal_of(gql, team.an, "Retired default")
    assert deal["pipeline"]["name"] == "Projects"
    refused = await gql(
        CREATE_OPPORTUNITY,
        {
            "input": {
                "customerId": await customer_of(gql, team.an, "Retired Ltd"),
                "name": "Into retired",
                "amount": "1",
                "pipelineId": gid(sales),
            }
        },
        as_user=team.an,
    )
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.error["extensions"]["field"] == "pipelineId"


async def test_reordering_pipelines_changes_the_default(gql, team):
    made = await projects(gql, team.admin)
    sales = await Pipeline.get(name=SALES)
    reordered = await gql.ok(REORDER, {"ids": [made["id"], gid(sales)]}, as_user=team.admin)
    assert reordered["reorderPipelines"] == [
        {"name": "Projects", "order": 1},
        {"name": SALES, "order": 2},
    ]
    deal = await deal_of(gql, team.an, "Default now Projects")
    assert (deal["pipeline"]["name"], deal["stage"]["name"]) == ("Projects", "Scoping")
    partial = await gql(REORDER, {"ids": [made["id"]]}, as_user=team.admin)
    assert partial.codes == ["BAD_USER_INPUT"]


async def test_stage_operations_work_within_one_pipeline(gql, team):
    made = await projects(gql, team.admin)
    # A stage name may repeat across pipelines, and a new stage goes last in its own.
    added = await gql.ok(
        ADD_STAGE,
        {"input": {"name": "初步接洽 Initial contact", "winRate": 5, "pipelineId": made["id"]}},
        as_user=team.admin,
    )
    assert added["createOpportunityStage"] == {
        "name": "初步接洽 Initial contact",
        "order": 4,
        "pipeline": {"name": "Projects"},
    }
    # Without a pipeline, the default one grows, as before pipelines existed.
    plain = await gql.ok(ADD_STAGE, {"input": {"name": "Pilot", "winRate": 50}}, as_user=team.admin)
    assert plain["createOpportunityStage"]["order"] == 5
    assert plain["createOpportunityStage"]["pipeline"]["name"] == SALES
    nowhere = {"name": "Lost", "winRate": 1, "pipelineId": to_global_id("Pipeline", 99)}
    refused = await gql(ADD_STAGE, {"input": nowhere}, as_user=team.admin)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.error["extensions"]["field"] == "pipelineId"

    ids = [s["id"] for s in made["stages"]]
    mixed = await gql(
        REORDER_STAGES,
        {"ids": [*reversed(ids), gid(await OpportunityStage.get(name="Pilot"))]},
        as_user=team.admin,
    )
    assert mixed.codes == ["BAD_USER_INPUT"]
    last = gid(await OpportunityStage.get(order=4, pipeline__name="Projects"))
    reordered = await gql.ok(REORDER_STAGES, {"ids": [last, *reversed(ids)]}, as_user=team.admin)
    assert [s["name"] for s in reordered["reorderOpportunityStages"]] == [
        "初步接洽 Initial contact",
        "Contract",
        "Design",
        "Scoping",
    ]
    assert await stage_names(SALES) == [name for name, _, _ in DEFAULT_STAGES] + ["Pilot"]


async def test_a_pipeline_keeps_at_least_one_stage(gql, team):
    made = await projects(gql, team.admin)
    for stage in made["stages"][:2]:
        await gql.ok(DELETE_STAGE, {"id": stage["id"]}, as_user=team.admin)
    refused = await gql(DELETE_STAGE, {"id": made["stages"][2]["id"]}, as_user=team.admin)
    assert refused.codes == ["CONFLICT"]
    assert await stage_names("Projects") == ["Contract"]
    assert (await OpportunityStage.get(name="Contract")).order == 1


async def test_a_pipeline_in_use_cannot_be_deleted(gql, team):
    made = await projects(gql, team.admin)
    deal = await deal_of(gql, team.an, "Rollout", pipelineId=made["id"])
    refused = await gql(DELETE, {"id": made["id"]}, as_user=team.admin)
    assert refused.codes == ["CONFLICT"]
    assert "Opportunities are in this pipeline" in refused.error["message"]
    # Moved away, its history still names the pipeline's stages.
    sales = await Pipeline.get(name=SALES)
    await gql.ok(CHANGE, {"id": deal["id"], "p": gid(sales)}, as_user=team.an)
    refused = await gql(DELETE, {"id": made["id"]}, as_user=team.admin)
    assert refused.codes == ["CONFLICT"]
    assert "history" in refused.error["message"]
    assert await stage_names("Projects") == ["Scoping", "Design", "Contract"]


async def test_an_unused_pipeline_is_deleted_with_its_stages(gql, team):
    made = await projects(gql, team.admin)
    second = (
        await gql.ok(
            CREATE,
            {"input": {"name": "Service", "stages": [{"name": "Quote", "winRate": 40}]}},
            as_user=team.admin,
        )
    )["createPipeline"]
    deleted = await gql.ok(DELETE, {"id": made["id"]}, as_user=team.admin)
    assert deleted["deletePipeline"]["deletedId"] == made["id"]
    assert [(p.name, p.order) for p in await Pipeline.all().order_by("order")] == [
        (SALES, 1),
        ("Service", 2),
    ]
    assert not await OpportunityStage.filter(name__in=["Scoping", "Design", "Contract"]).exists()
    assert second["order"] == 3


# --- opportunities in pipelines ---------------------------------------------------------


async def test_an_opportunity_starts_at_its_pipelines_first_stage(gql, team):
    made = await projects(gql, team.admin)
    default = await deal_of(gql, team.an, "Plain")
    assert (default["pipeline"]["name"], default["stage"]["name"]) == (SALES, DEFAULT_STAGES[0][0])
    project = await deal_of(gql, team.an, "Project", pipelineId=made["id"])
    # The weighted amount uses the stage's own win rate: 1000 × 20 %.
    assert (project["pipeline"]["name"], project["stage"]["name"]) == ("Projects", "Scoping")
    assert project["weightedAmount"] == "200.00"
    at_design = await deal_of(gql, team.an, "Design", stageId=made["stages"][1]["id"])
    assert (at_design["pipeline"]["name"], at_design["weightedAmount"]) == ("Projects", "500.00")


async def test_a_stage_of_another_pipeline_is_refused(gql, team):
    made = await projects(gql, team.admin)
    sales_stage = gid(await OpportunityStage.get(order=2, pipeline__name=SALES))
    refused = await gql(
        CREATE_OPPORTUNITY,
        {
            "input": {
                "customerId": await customer_of(gql, team.an, "Mismatch Ltd"),
                "name": "Mismatch",
                "amount": "1",
                "pipelineId": made["id"],
                "stageId": sales_stage,
            }
        },
        as_user=team.an,
    )
    assert refused.codes == ["BAD_USER_INPUT"]
    assert not await Opportunity.exists(name="Mismatch")

    deal = await deal_of(gql, team.an, "Stays")
    moved = await gql(MOVE, {"id": deal["id"], "s": made["stages"][1]["id"]}, as_user=team.an)
    assert moved.codes == ["BAD_USER_INPUT"]
    assert moved.error["extensions"]["field"] == "stageId"
    row = await Opportunity.get(name="Stays").prefetch_related("stage")
    assert (row.stage.name, row.version) == (DEFAULT_STAGES[0][0], 1)
    assert await OpportunityStageChange.filter(opportunity_id=row.id).count() == 1


async def test_changing_pipeline_starts_at_its_first_stage_and_is_history(gql, team):
    made = await projects(gql, team.admin)
    deal = await deal_of(gql, team.an, "Switch")
    await gql.ok(WIN, {"id": deal["id"]}, as_user=team.an)
    changed = (await gql.ok(CHANGE, {"id": deal["id"], "p": made["id"], "v": 2}, as_user=team.an))[
        "changeOpportunityPipeline"
    ]
    # Like a stage move, it reopens the won deal in the new pipeline.
    assert (changed["status"], changed["stage"]["name"], changed["pipeline"]["name"]) == (
        "OPEN",
        "Scoping",
        "Projects",
    )
    assert (changed["weightedAmount"], changed["version"]) == ("200.00", 3)
    assert changed["stageHistory"][-1] == {
        "fromStage": {"name": DEFAULT_STAGES[0][0]},
        "toStage": {"name": "Scoping"},
        "toStatus": "OPEN",
        "actor": {"username": "an"},
    }
    # Back, at a named stage of the other pipeline.
    sales = await Pipeline.get(name=SALES)
    third = gid(await OpportunityStage.get(order=3, pipeline=sales))
    back = await gql.ok(CHANGE, {"id": deal["id"], "p": gid(sales), "s": third}, as_user=team.an)
    assert back["changeOpportunityPipeline"]["stage"]["name"] == DEFAULT_STAGES[2][0]


@pytest.mark.parametrize("case", ["same pipeline", "stage of another", "stale version"])
async def test_a_bad_pipeline_change_changes_nothing(gql, team, case):
    made = await projects(gql, team.admin)
    deal = await deal_of(gql, team.an, "Fixed")
    sales = await Pipeline.get(name=SALES)
    variables, code = {
        "same pipeline": ({"p": gid(sales)}, "BAD_USER_INPUT"),
        "stage of another": (
            {"p": made["id"], "s": gid(await OpportunityStage.get(order=2, pipeline=sales))},
            "BAD_USER_INPUT",
        ),
        "stale version": ({"p": made["id"], "v": 7}, "CONFLICT"),
    }[case]
    refused = await gql(CHANGE, {"id": deal["id"], **variables}, as_user=team.an)
    assert refused.codes == [code]
    row = await Opportunity.get(name="Fixed").prefetch_related("stage")
    assert (row.stage.pipeline_id, row.version) == (sales.id, 1)
    assert await OpportunityStageChange.filter(opportunity_id=row.id).count() == 1


async def test_only_who_may_change_the_deal_changes_its_pipeline(gql, team):
    made = await projects(gql, team.admin)
    deal = await deal_of(gql, team.an, "Ans deal")
    # Bo, a peer rep, does not see An's deal; Mei, An's manager, may move it.
    hidden = await gql(CHANGE, {"id": deal["id"], "p": made["id"]}, as_user=team.bo)
    assert hidden.codes == ["NOT_FOUND"]
    assert (await Opportunity.get(name="Ans deal").prefetch_related("stage")).stage.order == 1
    moved = await gql.ok(CHANGE, {"id": deal["id"], "p": made["id"]}, as_user=team.mei)
    assert moved["changeOpportunityPipeline"]["pipeline"]["name"] == "Projects"


async def test_the_list_filters_by_pipeline_within_scope(gql, team):
    made = await projects(gql, team.admin)
    await deal_of(gql, team.an, "An sales")
    await deal_of(gql, team.an, "An project", pipelineId=made["id"])
    await deal_of(gql, team.bo, "Bo project", pipelineId=made["id"])

    async def names(user: User, pipeline: str) -> list[str]:
        data = await gql.ok(LIST, {"f": {"pipelineId": pipeline}}, as_user=user)
        return sorted(edge["node"]["name"] for edge in data["opportunities"]["edges"])

    sales = gid(await Pipeline.get(name=SALES))
    assert await names(team.an, made["id"]) == ["An project"]
    assert await names(team.an, sales) == ["An sales"]
    assert await names(team.mei, made["id"]) == ["An project", "Bo project"]


async def test_a_pipeline_change_is_pushed_live(gql, team, live):
    made = await projects(gql, team.admin)
    deal = await deal_of(gql, team.an, "Live switch")
    manager = await live(team.mei)
    watching = await manager.subscribe(STAGE_EVENTS)
    await asyncio.sleep(0.2)
    await gql.ok(CHANGE, {"id": deal["id"], "p": made["id"]}, as_user=team.an)
    seen = (await manager.next(watching))["opportunityStageChanged"]
    assert seen == {
        "opportunity": {"name": "Live switch"},
        "fromStage": {"name": DEFAULT_STAGES[0][0]},
        "toStage": {"name": "Scoping", "pipeline": {"name": "Projects"}},
    }


async def test_a_lead_converts_into_a_named_pipeline(gql, team):
    made = await projects(gql, team.admin)
    lead = (
        await gql.ok(
            'mutation { createLead(input: {companyName: "Lead Co", contactName: "Li"}) { id } }',
            as_user=team.an,
        )
    )["createLead"]["id"]
    converted = await gql.ok(
        """
        mutation($id: ID!, $p: ID!) {
          convertLead(id: $id, input: {opportunity: {name: "From lead", amount: "10.00",
                                                     pipelineId: $p}}) {
            convertedOpportunityId
          }
        }
        """,
        {"id": lead, "p": made["id"]},
        as_user=team.an,
    )
    assert converted["convertLead"]["convertedOpportunityId"]
    row = await Opportunity.get(name="From lead").prefetch_related("stage__pipeline")
    assert (row.stage.name, row.stage.pipeline.name) == ("Scoping", "Projects")
