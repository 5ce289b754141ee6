"""Live events over WebSocket (SPEC §8): delivered after commit, only to those who may
see the record at delivery time, with cursors that let a reconnecting client replay
exactly what it missed."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from meihua.models import DataScope, Event, User
from meihua.resolvers.errors import LimitExceeded
from meihua.schema.relay import to_global_id
from meihua.subscriptions.bus import EventBus
from meihua.subscriptions.events import record_event, transaction
from meihua.subscriptions.hub import EventHub

STAGE_EVENTS = """
subscription($after: String) {
  opportunityStageChanged(after: $after) {
    cursor at status actor { username }
    opportunity { name } fromStage { name } toStage { name winRate }
  }
}
"""
RECORD_CHANGED = """
subscription($id: ID!, $after: String) {
  recordChanged(id: $id, after: $after) {
    cursor kind fields version actor { username }
    record { ... on Customer { name version } }
  }
}
"""
NOTIFICATIONS = """
subscription { myNotifications { cursor kind title actor { username } record { id } } }
"""
CREATE_CUSTOMER = "mutation($n: String!) { createCustomer(input: {name: $n}) { id } }"
CREATE_OPPORTUNITY = """
mutation($c: ID!, $n: String!) {
  createOpportunity(input: {customerId: $c, name: $n, amount: "1000.00"}) { id }
}
"""
MOVE = "mutation($id: ID!, $s: ID!) { moveOpportunityStage(id: $id, stageId: $s) { id } }"
STAGES = "{ opportunityStages { id name } }"


@pytest.fixture
async def team(org):
    """Sales: manager Mei (department tree) over reps An and Bo (own records only)."""
    sales = await org.department("Sales")
    rep = await org.default_role("Sales Rep")
    manager_role = await org.default_role("Sales Manager")
    mei = await org.user("mei", department=sales, roles=[manager_role])
    an = await org.user("an", department=sales, roles=[rep], manager=mei)
    bo = await org.user("bo", department=sales, roles=[rep], manager=mei)
    return mei, an, bo


async def opportunity_of(gql, user: User, name: str) -> str:
    customer = (await gql.ok(CREATE_CUSTOMER, {"n": f"{name} Ltd"}, as_user=user))[
        "createCustomer"
    ]["id"]
    return (await gql.ok(CREATE_OPPORTUNITY, {"c": customer, "n": name}, as_user=user))[
        "createOpportunity"
    ]["id"]


async def stage_ids(gql, user: User) -> list[str]:
    return [s["id"] for s in (await gql.ok(STAGES, as_user=user))["opportunityStages"]]


async def test_a_stage_change_reaches_the_manager_in_scope_and_not_a_peer(gql, live, team):
    mei, an, bo = team
    deal = await opportunity_of(gql, an, "Turbines")
    own_deal = await opportunity_of(gql, bo, "Valves")
    stages = await stage_ids(gql, an)
    manager, peer = await live(mei), await live(bo)
    watching_manager = await manager.subscribe(STAGE_EVENTS)
    watching_peer = await peer.subscribe(STAGE_EVENTS)
    await asyncio.sleep(0.2)

    await gql.ok(MOVE, {"id": deal, "s": stages[2]}, as_user=an)
    seen = (await manager.next(watching_manager))["opportunityStageChanged"]
    assert seen["opportunity"]["name"] == "Turbines"
    assert seen["actor"]["username"] == "an"
    assert seen["toStage"]["winRate"] == 60
    assert seen["status"] == "OPEN"

    # Bo's next event is about his own deal: An's never reached him.
    await gql.ok(MOVE, {"id": own_deal, "s": stages[1]}, as_user=bo)
    assert (await peer.next(watching_peer))["opportunityStageChanged"]["opportunity"][
        "name"
    ] == "Valves"
    assert (await manager.next(watching_manager))["opportunityStageChanged"]["opportunity"][
        "name"
    ] == "Valves"
    assert await peer.silent()


async def test_a_client_that_reconnects_gets_exactly_what_it_missed_in_order(gql, live, team):
    mei, an, _ = team
    deal = await opportunity_of(gql, an, "Turbines")
    stages = await stage_ids(gql, an)
    first = await live(an)
    op = await first.subscribe(STAGE_EVENTS)
    await asyncio.sleep(0.2)
    await gql.ok(MOVE, {"id": deal, "s": stages[1]}, as_user=an)
    last_seen = (await first.next(op))["opportunityStageChanged"]["cursor"]
    await first.close()

    for stage in (stages[2], stages[3], stages[0]):
        await gql.ok(MOVE, {"id": deal, "s": stage}, as_user=an)

    again = await live(an)
    op = await again.subscribe(STAGE_EVENTS, {"after": last_seen})
    replayed = [(await again.next(op))["opportunityStageChanged"] for _ in range(3)]
    assert [e["toStage"]["name"] for e in replayed] == [
        "方案报价 Proposal and quote",
        "谈判审核 Negotiation",
        "初步接洽 Initial contact",
    ]
    cursors = [int(e["cursor"]) for e in replayed]
    assert cursors == sorted(cursors) and cursors[0] > int(last_seen)

    # Then it is live, without repeating any of the replayed events.
    await gql.ok(MOVE, {"id": deal, "s": stages[1]}, as_user=an)
    live_event = (await again.next(op))["opportunityStageChanged"]
    assert int(live_event["cursor"]) > cursors[-1]
    assert live_event["fromStage"]["name"] == "初步接洽 Initial contact"
    assert await again.silent()


async def test_replay_also_respects_scope(gql, live, team):
    _, an, bo = team
    deal = await opportunity_of(gql, an, "Turbines")
    stages = await stage_ids(gql, an)
    await gql.ok(MOVE, {"id": deal, "s": stages[1]}, as_user=an)
    peer = await live(bo)
    op = await peer.subscribe(STAGE_EVENTS, {"after": "0"})
    assert await peer.silent()
    assert op


async def test_record_changed_tells_who_changed_which_fields_and_the_new_version(gql, live, team):
    mei, an, _ = team
    customer = (await gql.ok(CREATE_CUSTOMER, {"n": "Acme"}, as_user=an))["createCustomer"]["id"]
    viewer = await live(mei)
    op = await viewer.subscribe(RECORD_CHANGED, {"id": customer})
    await asyncio.sleep(0.2)
    await gql.ok(
        'mutation($id: ID!) { updateCustomer(id: $id, input: {name: "Acme Group", level: "A"})'
        " { version } }",
        {"id": customer},
        as_user=an,
    )
    change = (await viewer.next(op))["recordChanged"]
    assert change["kind"] == "customer.changed"
    assert sorted(change["fields"]) == ["level", "name"]
    assert change["version"] == 2
    assert change["actor"]["username"] == "an"
    assert change["record"] == {"name": "Acme Group", "version": 2}


async def test_record_changed_on_a_record_out_of_sight_is_not_found(gql, live, team):
    _, an, bo = team
    customer = (await gql.ok(CREATE_CUSTOMER, {"n": "Acme"}, as_user=an))["createCustomer"]["id"]
    peer = await live(bo)
    op = await peer.subscribe(RECORD_CHANGED, {"id": customer})
    assert (await peer.error(op))["code"] == "NOT_FOUND"


async def test_a_task_assigned_to_me_is_a_notification(gql, live, team):
    mei, _, bo = team
    inbox = await live(bo)
    op = await inbox.subscribe(NOTIFICATIONS)
    await asyncio.sleep(0.2)
    await gql.ok(
        'mutation($to: ID!) { createTask(input: {title: "Call Acme", assigneeId: $to}) { id } }',
        {"to": to_global_id("User", bo.id)},
        as_user=mei,
    )
    note = (await inbox.next(op))["myNotifications"]
    assert note["kind"] == "TASK_ASSIGNED"
    assert note["title"] == "New task: Call Acme"
    assert note["actor"]["username"] == "mei"
    assert await inbox.silent()


async def test_a_deactivated_user_is_cut_off(gql, live, team, org):
    _, an, bo = team
    admin = await org.admin()
    client = await live(bo)
    op = await client.subscribe(STAGE_EVENTS)
    await asyncio.sleep(0.2)
    await gql.ok(
        "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
        {"id": to_global_id("User", bo.id)},
        as_user=admin,
    )
    assert (await client.error(op))["code"] == "UNAUTHENTICATED"
    with pytest.raises(ConnectionClosed):
        while True:
            await client.message()
    assert client.ws.close_code == 4403


async def test_a_cursor_older_than_the_retention_is_refused(gql, live, team):
    _, an, _ = team
    deal = await opportunity_of(gql, an, "Turbines")
    stages = await stage_ids(gql, an)
    for stage in stages[1:]:
        await gql.ok(MOVE, {"id": deal, "s": stage}, as_user=an)
    oldest = await Event.all().order_by("id").first()
    await Event.filter(id__lte=oldest.id + 2).delete()  # what pruning does
    client = await live(an)
    op = await client.subscribe(STAGE_EVENTS, {"after": str(oldest.id)})
    assert await client.error(op) == {"code": "BAD_USER_INPUT", "field": "after"}


async def test_a_subscriber_that_falls_behind_is_closed_with_its_resume_cursor(db, org):
    admin = await org.admin()
    hub = EventHub(EventBus("memory://"), queue_size=10, poll_interval=0.02)
    await hub.start()

    def everything(sight, event, batch):
        return True

    try:
        feed = hub.follow(admin.id, everything, None)
        pending = asyncio.ensure_future(anext(feed))  # subscribes, then waits
        await asyncio.sleep(0.05)
        for n in range(30):
            async with transaction():
                await record_event("customer.changed", record_type="CUSTOMER", record_id=n)
        received = []
        with pytest.raises(LimitExceeded) as ended:
            received.append(await pending)
            while True:
                received.append(await anext(feed))
        assert len(received) < 30
        if received:
            assert ended.value.extensions["cursor"] == str(received[-1].id)
        await feed.aclose()
    finally:
        await hub.stop()


async def test_cursors_become_visible_in_commit_order(db, org, monkeypatch):
    """A reader that has seen cursor N never later finds a smaller one committed.

    Commits are slowed down after the event rows are written, the moment an
    earlier id could otherwise commit after a later one.
    """
    write_rows = Event.bulk_create.__func__

    async def slow_bulk_create(cls, objects, *args, **kwargs):
        result = await write_rows(cls, objects, *args, **kwargs)
        await asyncio.sleep(0.002 * (objects[0].record_id % 4))
        return result

    monkeypatch.setattr(Event, "bulk_create", classmethod(slow_bulk_create))
    seen: set[int] = set()
    found_late: list[int] = []
    done = False

    async def write(n: int) -> None:
        async with transaction():
            await record_event("customer.changed", record_type="CUSTOMER", record_id=n)

    async def read() -> None:
        while not done:
            ids = await Event.all().order_by("id").values_list("id", flat=True)
            highest = max(seen, default=0)
            found_late.extend(i for i in ids if i < highest and i not in seen)
            seen.update(ids)
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(n) for n in range(40)))
    done = True
    await reader
    assert found_late == []
    assert await Event.all().count() == 40


async def test_scope_changes_take_effect_for_open_subscriptions(gql, live, team, org):
    mei, an, bo = team
    deal = await opportunity_of(gql, an, "Turbines")
    stages = await stage_ids(gql, an)
    peer = await live(bo)
    op = await peer.subscribe(STAGE_EVENTS)
    await asyncio.sleep(0.2)
    wider = await org.role("Viewer of all", DataScope.ALL)
    admin = await org.admin()
    await gql.ok(
        "mutation($id: ID!, $roles: [ID!]!) { updateUser(id: $id, input: {roleIds: $roles})"
        " { id } }",
        {
            "id": to_global_id("User", bo.id),
            "roles": [to_global_id("Role", wider.id)],
        },
        as_user=admin,
    )
    await gql.ok(MOVE, {"id": deal, "s": stages[1]}, as_user=an)
    seen = (await peer.next(op))["opportunityStageChanged"]
    assert seen["opportunity"]["name"] == "Turbines"


POOL_EVENTS = """
subscription($after: String) {
  poolEvents(after: $after) {
    cursor kind reason rule at actor { username }
    customer { name inPool } pool { name } previousOwner { username } newOwner { username }
  }
}
"""
RELEASE = """
mutation($ids: [ID!]!, $reason: String, $pool: ID) {
  releaseCustomers(ids: $ids, reason: $reason, poolId: $pool) { id }
}
"""
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id } }"


async def test_pool_members_watch_releases_and_claims_live(gql, live, team):
    mei, an, bo = team
    customer = (await gql.ok(CREATE_CUSTOMER, {"n": "Acme"}, as_user=an))["createCustomer"]["id"]
    board = await live(bo)
    op = await board.subscribe(POOL_EVENTS)
    await asyncio.sleep(0.2)

    await gql.ok(RELEASE, {"ids": [customer], "reason": "No budget this year"}, as_user=an)
    released = (await board.next(op))["poolEvents"]
    assert released["kind"] == "RELEASED"
    assert released["reason"] == "No budget this year"
    assert released["customer"] == {"name": "Acme", "inPool": True}
    assert released["pool"] == {"name": "公海 Company pool"}
    assert released["previousOwner"] == {"username": "an"}
    assert released["actor"] == {"username": "an"}

    await gql.ok(CLAIM, {"id": customer}, as_user=mei)
    claimed = (await board.next(op))["poolEvents"]
    assert claimed["kind"] == "CLAIMED"
    assert claimed["newOwner"] == {"username": "mei"}
    assert int(claimed["cursor"]) > int(released["cursor"])
    assert await board.silent()


async def test_a_department_pool_is_watched_only_by_its_members(gql, live, team, org):
    mei, an, bo = team
    admin = await org.admin()
    north = await org.department("North")
    outsider = await org.user("olga", department=north, roles=[await org.default_role("Sales Rep")])
    sales_pool = (
        await gql.ok(
            "mutation($n: String!, $d: [ID!]!) {"
            " createPool(input: {name: $n, departmentIds: $d}) { id } }",
            {"n": "Sales pool", "d": [to_global_id("Department", an.department_id)]},
            as_user=admin,
        )
    )["createPool"]["id"]
    customer = (await gql.ok(CREATE_CUSTOMER, {"n": "Acme"}, as_user=an))["createCustomer"]["id"]
    elsewhere = (await gql.ok(CREATE_CUSTOMER, {"n": "Borealis"}, as_user=outsider))[
        "createCustomer"
    ]["id"]
    member, stranger = await live(bo), await live(outsider)
    watching_member = await member.subscribe(POOL_EVENTS)
    watching_stranger = await stranger.subscribe(POOL_EVENTS)
    await asyncio.sleep(0.2)

    await gql.ok(RELEASE, {"ids": [customer], "pool": sales_pool}, as_user=an)
    assert (await member.next(watching_member))["poolEvents"]["pool"] == {"name": "Sales pool"}

    # Olga's next event is her own release to the company pool, not Acme's.
    await gql.ok(RELEASE, {"ids": [elsewhere]}, as_user=outsider)
    seen = (await stranger.next(watching_stranger))["poolEvents"]
    assert seen["customer"]["name"] == "Borealis"
    assert await stranger.silent()


async def test_recycling_is_pushed_with_its_rule(gql, live, team):
    from datetime import UTC, datetime, timedelta

    from meihua.models import Customer, Pool
    from meihua.resolvers.recycling import recycle

    _, an, bo = team
    await gql.ok(CREATE_CUSTOMER, {"n": "Dormant"}, as_user=an)
    await Pool.filter(company_wide=True).update(recycle_not_dealt_after_days=30)
    board = await live(bo)
    op = await board.subscribe(POOL_EVENTS)
    await asyncio.sleep(0.2)
    await recycle(now=datetime.now(UTC) + timedelta(days=31))
    recycled = (await board.next(op))["poolEvents"]
    assert recycled["kind"] == "RECYCLED"
    assert recycled["rule"] == "NO_FOLLOW_UP_NOT_DEALT"
    assert recycled["actor"] is None
    assert recycled["previousOwner"] == {"username": "an"}
    assert (await Customer.get(name="Dormant")).owner_id is None


async def test_legacy_graphql_ws_clients_get_live_events_too(gql, ws_url, team):
    import json

    from websockets.asyncio.client import connect

    _, an, _ = team
    deal = await opportunity_of(gql, an, "Turbines")
    stages = await stage_ids(gql, an)
    async with connect(ws_url, subprotocols=["graphql-ws"]) as ws:
        init = {"Authorization": f"Bearer {gql.token(an)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": STAGE_EVENTS}}))
        await asyncio.sleep(0.2)
        await gql.ok(MOVE, {"id": deal, "s": stages[1]}, as_user=an)
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if message["type"] != "ka":
                break
    assert message["type"] == "data", message
    assert message["payload"]["data"]["opportunityStageChanged"]["opportunity"] == {
        "name": "Turbines"
    }


async def test_the_hub_stops_even_when_woken_at_that_moment(db):
    """Python 3.11's wait_for swallowed the stop when a wake-up landed with it."""
    for _ in range(20):
        hub = EventHub(EventBus("memory://"), poll_interval=5)
        await hub.start()
        await asyncio.sleep(0)
        hub._wake.set()
        await asyncio.wait_for(hub.stop(), 2)
