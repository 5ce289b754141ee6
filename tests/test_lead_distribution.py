"""Automatic lead distribution (线索自动分配): the rules, which rule takes a lead,
who gets it, and when the rules run."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest

from meihua.models import Event, Lead, LeadDistributionRule, LeadStatus, OperationLog, User
from meihua.resolvers import lead_distribution
from meihua.schema.relay import to_global_id

RULE = "id name position regions industries sources strategy active version users { username }"
RULES = f"{{ leadDistributionRules {{ {RULE} }} }}"
CREATE = f"""
mutation($input: CreateLeadDistributionRuleInput!) {{
  createLeadDistributionRule(input: $input) {{ {RULE} }}
}}
"""
UPDATE = f"""
mutation($id: ID!, $input: UpdateLeadDistributionRuleInput!, $v: Int) {{
  updateLeadDistributionRule(id: $id, input: $input, expectedVersion: $v) {{ {RULE} }}
}}
"""
REORDER = f"mutation($ids: [ID!]!) {{ reorderLeadDistributionRules(ids: $ids) {{ {RULE} }} }}"
DELETE = "mutation($id: ID!) { deleteLeadDistributionRule(id: $id) { deletedId } }"
DISTRIBUTE = """
mutation($ids: [ID!]) {
  distributeLeads(ids: $ids) {
    assigned leftInPool hasMore perUser { count user { username } }
  }
}
"""
CREATE_LEAD = """
mutation($input: CreateLeadInput!) {
  createLead(input: $input) { id inPool version owner { username } }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep
    bob: User  # Sales Rep
    carol: User  # Sales Rep
    dispatcher: User  # SELF with lead:create and lead:distribute
    gone: User  # deactivated


@pytest.fixture
async def team(org) -> Team:
    rep = await org.default_role("Sales Rep")
    distributor = await org.role("Distributor", "SELF", ["lead:create", "lead:distribute"])
    gone = await org.user("gone", roles=[rep])
    gone.is_active = False
    await gone.save()
    return Team(
        alice=await org.user("alice", roles=[rep], name="Alice Wang"),
        bob=await org.user("bob", roles=[rep], name="Bob Li"),
        carol=await org.user("carol", roles=[rep], name="Carol Zhao"),
        dispatcher=await org.user("dispatcher", roles=[distributor]),
        gone=gone,
    )


def uid(user: User) -> str:
    return to_global_id("User", user.id)


def lid(row: Lead) -> str:
    return to_global_id("Lead", row.id)


async def make_rule(gql, team: Team, name: str, users: list[User], **fields) -> dict:
    data = await gql.ok(
        CREATE,
        {"input": {"name": name, "userIds": [uid(u) for u in users], **fields}},
        as_user=team.dispatcher,
    )
    return data["createLeadDistributionRule"]


async def pooled(team: Team, company: str, **fields) -> Lead:
    """A lead waiting in the lead pool (straight through the model: no rule runs)."""
    return await Lead.create(
        company_name=company, owner_id=None, created_by_id=team.dispatcher.id, **fields
    )


async def enter(gql, team: Team, company: str, **fields) -> dict:
    """A lead entered into the pool through the API: the rules run at once."""
    data = await gql.ok(
        CREATE_LEAD,
        {"input": {"companyName": company, "ownerId": None, **fields}},
        as_user=team.dispatcher,
    )
    return data["createLead"]


async def owner_of(row: Lead) -> str | None:
    lead = await Lead.get(id=row.id).prefetch_related("owner")
    return lead.owner.username if lead.owner else None


async def rules_state() -> list[tuple]:
    rows = await LeadDistributionRule.all().order_by("id").prefetch_related("users")
    return [
        (r.name, r.position, r.regions, r.active, r.version, r.turns, sorted(u.id for u in r.users))
        for r in rows
    ]


# ---------------------------------------------------------------------------
# managing the rules


async def test_rules_are_listed_by_position_and_new_ones_go_last(gql, team):
    first = await make_rule(gql, team, "East", [team.alice], regions=["Shanghai"])
    second = await make_rule(gql, team, "Rest", [team.bob, team.alice])
    assert (first["position"], second["position"]) == (1, 2)
    assert second["strategy"] == "ROUND_ROBIN" and second["active"] is True
    assert [u["username"] for u in second["users"]] == ["alice", "bob"]
    assert second["regions"] == second["industries"] == second["sources"] == []

    data = await gql.ok(RULES, as_user=team.dispatcher)
    assert [r["name"] for r in data["leadDistributionRules"]] == ["East", "Rest"]


async def test_a_rule_can_be_put_at_a_position(gql, team):
    await make_rule(gql, team, "A", [team.alice])
    await make_rule(gql, team, "B", [team.alice])
    await make_rule(gql, team, "First", [team.alice], position=1)
    await make_rule(gql, team, "Way past the end", [team.alice], position=99)
    data = await gql.ok(RULES, as_user=team.dispatcher)
    rules = data["leadDistributionRules"]
    assert [(r["name"], r["position"]) for r in rules] == [
        ("First", 1),
        ("A", 2),
        ("B", 3),
        ("Way past the end", 4),
    ]


async def test_condition_values_are_trimmed_and_deduplicated(gql, team):
    rule = await make_rule(
        gql,
        team,
        "  East  ",
        [team.alice, team.alice],
        regions=[" Shanghai ", "shanghai", "Hangzhou", "  "],
        industries=["IT", "it "],
        sources=["展会"],
    )
    assert rule["name"] == "East"
    assert rule["regions"] == ["Shanghai", "Hangzhou"]
    assert rule["industries"] == ["IT"]
    assert rule["sources"] == ["展会"]
    assert [u["username"] for u in rule["users"]] == ["alice"]


async def test_updating_a_rule_checks_its_version(gql, team):
    rule = await make_rule(gql, team, "East", [team.alice], regions=["Shanghai"])
    data = await gql.ok(
        UPDATE,
        {
            "id": rule["id"],
            "input": {"userIds": [uid(team.bob)], "strategy": "LEAST_LOADED", "regions": []},
            "v": 1,
        },
        as_user=team.dispatcher,
    )
    updated = data["updateLeadDistributionRule"]
    assert updated["regions"] == [] and updated["strategy"] == "LEAST_LOADED"
    assert [u["username"] for u in updated["users"]] == ["bob"]
    assert (updated["name"], updated["version"]) == ("East", 2)

    before = await rules_state()
    result = await gql(
        UPDATE, {"id": rule["id"], "input": {"name": "Stale"}, "v": 1}, as_user=team.dispatcher
    )
    assert result.codes == ["CONFLICT"]
    assert await rules_state() == before


async def test_reordering_and_deleting_renumber_the_rules(gql, team):
    a = await make_rule(gql, team, "A", [team.alice])
    b = await make_rule(gql, team, "B", [team.alice])
    c = await make_rule(gql, team, "C", [team.alice])
    data = await gql.ok(REORDER, {"ids": [c["id"], a["id"], b["id"]]}, as_user=team.dispatcher)
    rules = data["reorderLeadDistributionRules"]
    assert [(r["name"], r["position"]) for r in rules] == [("C", 1), ("A", 2), ("B", 3)]

    before = await rules_state()
    result = await gql(REORDER, {"ids": [c["id"], a["id"]]}, as_user=team.dispatcher)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ids"
    assert await rules_state() == before

    data = await gql.ok(DELETE, {"id": c["id"]}, as_user=team.dispatcher)
    assert data["deleteLeadDistributionRule"]["deletedId"] == c["id"]
    data = await gql.ok(RULES, as_user=team.dispatcher)
    rules = data["leadDistributionRules"]
    assert [(r["name"], r["position"]) for r in rules] == [("A", 1), ("B", 2)]
    result = await gql(DELETE, {"id": c["id"]}, as_user=team.dispatcher)
    assert result.codes == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "  "}, "name"),
        ({"userIds": []}, "userIds"),
        ({"userIds": "gone"}, "userIds"),
        ({"regions": [f"r{i}" for i in range(51)]}, "regions"),
        ({"sources": ["x" * 101]}, "sources"),
        ({"position": 0}, "position"),
    ],
)
async def test_invalid_rules_are_refused(gql, team, change, field):
    await make_rule(gql, team, "Existing", [team.alice])
    before = await rules_state()
    if change.get("userIds") == "gone":
        change = {"userIds": [uid(team.alice), uid(team.gone)]}
    rule = {"name": "New", "userIds": [uid(team.alice)], **change}
    result = await gql(CREATE, {"input": rule}, as_user=team.dispatcher)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await rules_state() == before


async def test_an_update_to_inactive_users_is_refused(gql, team):
    rule = await make_rule(gql, team, "East", [team.alice])
    before = await rules_state()
    result = await gql(
        UPDATE, {"id": rule["id"], "input": {"userIds": [uid(team.gone)]}}, as_user=team.dispatcher
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "userIds"
    assert await rules_state() == before


async def test_reps_may_neither_manage_nor_run_the_rules(gql, team):
    rule = await make_rule(gql, team, "East", [team.alice])
    lead = await pooled(team, "Acme")
    before = await rules_state()
    attempts = [
        (RULES, None),
        (CREATE, {"input": {"name": "Mine", "userIds": [uid(team.alice)]}}),
        (UPDATE, {"id": rule["id"], "input": {"name": "Mine"}}),
        (REORDER, {"ids": [rule["id"]]}),
        (DELETE, {"id": rule["id"]}),
        (DISTRIBUTE, {"ids": [lid(lead)]}),
        (DISTRIBUTE, {}),
    ]
    for query, variables in attempts:
        result = await gql(query, variables, as_user=team.alice)
        assert result.codes == ["FORBIDDEN"], query
    assert await rules_state() == before
    assert await owner_of(lead) is None


# ---------------------------------------------------------------------------
# which rule takes a lead


async def test_the_first_matching_rule_by_position_wins(gql, team):
    broad = await make_rule(gql, team, "Broad", [team.bob])
    await make_rule(gql, team, "Shanghai", [team.alice], regions=["Shanghai"])
    assert (await enter(gql, team, "One", region="Shanghai"))["owner"] == {"username": "bob"}

    rules = await gql.ok(RULES, as_user=team.dispatcher)
    ids = [r["id"] for r in rules["leadDistributionRules"]]
    await gql.ok(REORDER, {"ids": ids[::-1]}, as_user=team.dispatcher)
    assert (await enter(gql, team, "Two", region="Shanghai"))["owner"] == {"username": "alice"}
    assert (await enter(gql, team, "Three", region="Beijing"))["owner"] == {"username": "bob"}
    assert broad["regions"] == []


async def test_empty_conditions_match_any_lead(gql, team):
    await make_rule(gql, team, "Everything", [team.alice])
    assert (await enter(gql, team, "Bare"))["owner"] == {"username": "alice"}
    entered = await enter(gql, team, "Full", region="X", industry="Y", source="Z")
    assert entered["owner"] == {"username": "alice"}


async def test_every_condition_must_hold_ignoring_case_and_spaces(gql, team):
    await make_rule(
        gql, team, "East IT fairs", [team.alice], regions=["Shanghai", "Hangzhou"],
        industries=["IT"], sources=["Trade Fair"],
    )  # fmt: skip
    matching = await enter(
        gql, team, "Match", region=" shanghai ", industry="it", source="TRADE FAIR"
    )
    assert matching["owner"] == {"username": "alice"}
    wrong_source = await enter(gql, team, "Web", region="Hangzhou", industry="IT", source="web")
    assert wrong_source["inPool"] is True
    no_industry = await enter(gql, team, "Blank", region="Hangzhou", source="Trade Fair")
    assert no_industry["inPool"] is True


async def test_unmatched_leads_stay_in_the_pool(gql, team):
    await make_rule(gql, team, "Shanghai", [team.alice], regions=["Shanghai"])
    entered = await enter(gql, team, "Far away", region="Urumqi")
    assert (entered["inPool"], entered["owner"], entered["version"]) == (True, None, 1)
    assert await OperationLog.filter(action="ASSIGN").count() == 0
    assert await Event.filter(kind="lead.assigned").count() == 0


async def test_inactive_rules_take_nothing(gql, team):
    await make_rule(gql, team, "Paused", [team.alice], active=False)
    await make_rule(gql, team, "Live", [team.bob])
    assert (await enter(gql, team, "Acme"))["owner"] == {"username": "bob"}


# ---------------------------------------------------------------------------
# who gets it


async def test_round_robin_hands_out_in_turn_by_user_id(gql, team):
    await make_rule(gql, team, "All", [team.carol, team.alice, team.bob])
    owners = [(await enter(gql, team, f"Lead {i}"))["owner"]["username"] for i in range(7)]
    assert owners == ["alice", "bob", "carol", "alice", "bob", "carol", "alice"]
    assert (await LeadDistributionRule.get(name="All")).turns == 7


async def test_concurrent_round_robin_never_gives_a_turn_twice(gql, team):
    await make_rule(gql, team, "All", [team.alice, team.bob, team.carol])
    entered = await asyncio.gather(*(enter(gql, team, f"Lead {i}") for i in range(20)))
    counts = Counter(lead["owner"]["username"] for lead in entered)
    assert sum(counts.values()) == 20
    assert max(counts.values()) - min(counts.values()) <= 1
    assert (await LeadDistributionRule.get(name="All")).turns == 20
    assert await Event.filter(kind="lead.assigned").count() == 20


async def test_concurrent_distribution_runs_share_the_turns(gql, team):
    await make_rule(gql, team, "All", [team.alice, team.bob])
    leads = [await pooled(team, f"Lead {i}") for i in range(20)]
    results = await asyncio.gather(
        *(gql.ok(DISTRIBUTE, {"ids": [lid(lead)]}, as_user=team.dispatcher) for lead in leads)
    )
    assert all(r["distributeLeads"]["assigned"] == 1 for r in results)
    owners = Counter(await Lead.all().values_list("owner_id", flat=True))
    assert owners == {team.alice.id: 10, team.bob.id: 10}
    assert (await LeadDistributionRule.get(name="All")).turns == 20


async def test_least_loaded_picks_the_user_with_the_fewest_open_leads(gql, team):
    for status in (LeadStatus.NEW, LeadStatus.FOLLOWING):
        await Lead.create(
            company_name="Busy", owner_id=team.alice.id, created_by_id=team.alice.id, status=status
        )
    await Lead.create(company_name="Open", owner_id=team.bob.id, created_by_id=team.bob.id)
    for status in (LeadStatus.CONVERTED, LeadStatus.INVALID, LeadStatus.INVALID):
        # closed leads are no load
        await Lead.create(
            company_name="Done", owner_id=team.carol.id, created_by_id=team.carol.id, status=status
        )
    await make_rule(gql, team, "Fair", [team.alice, team.bob, team.carol], strategy="LEAST_LOADED")
    owners = [(await enter(gql, team, f"Lead {i}"))["owner"]["username"] for i in range(4)]
    # carol 0 → 1; then bob and carol tie at 1 (bob has the lower id); then carol; then alice
    assert owners == ["carol", "bob", "carol", "alice"]


async def test_a_run_balances_a_batch_by_least_load(gql, team):
    await Lead.create(company_name="Busy", owner_id=team.alice.id, created_by_id=team.alice.id)
    await make_rule(gql, team, "Fair", [team.alice, team.bob], strategy="LEAST_LOADED")
    leads = [await pooled(team, f"Lead {i}") for i in range(5)]
    data = await gql.ok(DISTRIBUTE, {"ids": [lid(x) for x in leads]}, as_user=team.dispatcher)
    report = data["distributeLeads"]
    assert report["perUser"] == [
        {"count": 2, "user": {"username": "alice"}},
        {"count": 3, "user": {"username": "bob"}},
    ]


async def test_deactivated_users_are_skipped(gql, team):
    await make_rule(gql, team, "All", [team.alice, team.bob])
    team.alice.is_active = False
    await team.alice.save()
    owners = {(await enter(gql, team, f"Lead {i}"))["owner"]["username"] for i in range(3)}
    assert owners == {"bob"}


async def test_a_rule_with_only_deactivated_users_is_passed_over(gql, team):
    await make_rule(gql, team, "Alice only", [team.alice])
    await make_rule(gql, team, "Fallback", [team.bob])
    team.alice.is_active = False
    await team.alice.save()
    assert (await enter(gql, team, "Acme"))["owner"] == {"username": "bob"}


# ---------------------------------------------------------------------------
# when the rules run and what they record


async def test_a_lead_entered_into_the_pool_is_assigned_like_a_manual_assignment(gql, team):
    await make_rule(gql, team, "East", [team.alice], regions=["Shanghai"])
    entered = await enter(gql, team, "Acme", region="Shanghai")
    assert (entered["inPool"], entered["owner"], entered["version"]) == (
        False,
        {"username": "alice"},
        2,
    )
    row = await Lead.get(company_name="Acme")
    log = await OperationLog.get(record_id=row.id, action="ASSIGN")
    assert log.actor_id == team.dispatcher.id
    assert log.changes == {"owner_id": [None, team.alice.id]}
    assert "East" in log.summary and "Alice Wang" in log.summary
    event = await Event.get(kind="lead.assigned", record_id=row.id)
    assert (event.recipient_id, event.owner_id, event.actor_id) == (
        team.alice.id,
        team.alice.id,
        team.dispatcher.id,
    )
    assert await OperationLog.filter(record_id=row.id, action="CREATE").count() == 1


async def test_a_lead_entered_for_oneself_is_not_distributed(gql, team):
    await make_rule(gql, team, "Everything", [team.alice])
    data = await gql.ok(CREATE_LEAD, {"input": {"companyName": "Mine"}}, as_user=team.dispatcher)
    assert data["createLead"]["owner"] == {"username": "dispatcher"}
    assert (await LeadDistributionRule.get(name="Everything")).turns == 0


async def test_distributing_named_pooled_leads_reports_what_happened(gql, team):
    await make_rule(gql, team, "East", [team.alice, team.bob], regions=["Shanghai"])
    east = [await pooled(team, f"East {i}", region="Shanghai") for i in range(3)]
    west = await pooled(team, "West", region="Chengdu")
    invalid = await pooled(team, "Junk", region="Shanghai", status=LeadStatus.INVALID)
    ids = [lid(x) for x in [*east, west, invalid]]
    data = await gql.ok(DISTRIBUTE, {"ids": ids}, as_user=team.dispatcher)
    assert data["distributeLeads"] == {
        "assigned": 3,
        "leftInPool": 2,
        "hasMore": False,
        "perUser": [
            {"count": 2, "user": {"username": "alice"}},
            {"count": 1, "user": {"username": "bob"}},
        ],
    }
    assert [await owner_of(x) for x in east] == ["alice", "bob", "alice"]
    assert await owner_of(west) is None and await owner_of(invalid) is None
    events = await Event.filter(kind="lead.assigned").order_by("record_id")
    assert [(e.record_id, e.recipient_id) for e in events] == [
        (east[0].id, team.alice.id),
        (east[1].id, team.bob.id),
        (east[2].id, team.alice.id),
    ]
    assert await OperationLog.filter(action="ASSIGN").count() == 3


async def test_distributing_the_whole_pool(gql, team):
    await make_rule(gql, team, "East", [team.alice], regions=["Shanghai"])
    east = await pooled(team, "East", region="Shanghai")
    west = await pooled(team, "West", region="Chengdu")
    owned = await Lead.create(
        company_name="Bob's", region="Shanghai", owner_id=team.bob.id, created_by_id=team.bob.id
    )
    data = await gql.ok(DISTRIBUTE, as_user=team.dispatcher)
    report = data["distributeLeads"]
    assert (report["assigned"], report["leftInPool"], report["hasMore"]) == (1, 1, False)
    assert await owner_of(east) == "alice"
    assert await owner_of(west) is None
    assert await owner_of(owned) == "bob"
    assert (await Lead.get(id=owned.id)).version == 1


async def test_a_run_over_the_whole_pool_is_capped_and_reads_past_unmatched_leads(
    gql, team, monkeypatch
):
    monkeypatch.setattr(lead_distribution, "MAX_RUN", 3)
    monkeypatch.setattr(lead_distribution, "PAGE", 2)
    await make_rule(gql, team, "East", [team.alice], regions=["Shanghai"])
    for i in range(5):  # the oldest leads are ones no rule takes
        await pooled(team, f"West {i}", region="Chengdu")
    east = [await pooled(team, f"East {i}", region="Shanghai") for i in range(4)]

    data = await gql.ok(DISTRIBUTE, as_user=team.dispatcher)
    report = data["distributeLeads"]
    assert (report["assigned"], report["leftInPool"], report["hasMore"]) == (3, 6, True)
    assert [await owner_of(x) for x in east] == ["alice", "alice", "alice", None]

    data = await gql.ok(DISTRIBUTE, as_user=team.dispatcher)
    report = data["distributeLeads"]
    assert (report["assigned"], report["leftInPool"], report["hasMore"]) == (1, 5, False)


async def test_a_failed_run_changes_nothing(gql, team):
    await make_rule(gql, team, "All", [team.alice])
    waiting = await pooled(team, "Waiting")
    mine = await Lead.create(
        company_name="Mine", owner_id=team.dispatcher.id, created_by_id=team.dispatcher.id
    )
    bobs = await Lead.create(company_name="Bob's", owner_id=team.bob.id, created_by_id=team.bob.id)
    result = await gql(DISTRIBUTE, {"ids": [lid(waiting), lid(mine)]}, as_user=team.dispatcher)
    assert result.codes == ["CONFLICT"]  # only pooled leads are distributed
    for hidden in (lid(bobs), to_global_id("Lead", 999)):
        result = await gql(DISTRIBUTE, {"ids": [lid(waiting), hidden]}, as_user=team.dispatcher)
        assert result.codes == ["NOT_FOUND"]
    too_many = [to_global_id("Lead", i) for i in range(1, 1002)]
    result = await gql(DISTRIBUTE, {"ids": too_many}, as_user=team.dispatcher)
    assert result.codes == ["QUERY_TOO_COMPLEX"]  # over MEIHUA_LIST_INPUT_MAX
    assert result.error["extensions"]["field"] == "ids"

    assert await owner_of(waiting) is None
    assert (await LeadDistributionRule.get(name="All")).turns == 0
    assert await OperationLog.filter(action="ASSIGN").count() == 0
    assert await Event.filter(kind="lead.assigned").count() == 0
