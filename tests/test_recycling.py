"""Recycling (回收): customers nobody works on go back to their pool by themselves.

The pass takes `now`, so most tests freeze time by passing it. Rules of the
company pool here: not dealt and no follow-up for 30 days, dealt and no
follow-up for 90 days, no deal 60 days after being taken; warn 3 days ahead.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from meihua import clock
from meihua.clock import prune_events, run_periodically
from meihua.models import (
    Customer,
    CustomerTeamMember,
    DealStatus,
    Event,
    OperationLog,
    Pool,
    PoolMovement,
    PoolMovementKind,
    RecycleRule,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.resolvers.recycling import recycle
from meihua.schema.relay import to_global_id
from meihua.settings import ConfigurationError, Settings
from tests.test_cli import MEIHUA, _clean_env, meihua

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
DUE = """
query($by: DateTime) {
  recyclePreview(by: $by, first: 100) { edges { node { customer { name } rule dueAt reason } } }
}
"""


def listed(data: dict) -> list[dict]:
    return [edge["node"] for edge in data["recyclePreview"]["edges"]]


FOLLOW_UP = """
mutation($input: CreateFollowUpInput!) { createFollowUp(input: $input) { id } }
"""


@dataclass
class Shop:
    pool: Pool
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales


@pytest.fixture
async def shop(org) -> Shop:
    pool = await Pool.get(company_wide=True)
    pool.recycle_not_dealt_after_days = 30
    pool.recycle_dealt_after_days = 90
    pool.recycle_no_deal_after_days = 60
    pool.warning_days = 3
    await pool.save()
    sales = await org.department("Sales")
    rep = await org.default_role("Sales Rep")
    return Shop(
        pool=pool,
        alice=await org.user("alice", department=sales, roles=[rep]),
        bob=await org.user("bob", department=sales, roles=[rep]),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
    )


async def customer(
    shop: Shop,
    name: str,
    owner: User | None,
    *,
    taken: timedelta | None,
    followed: timedelta | None = None,
    dealt: bool = False,
    locked: bool = False,
    now: datetime = NOW,
) -> Customer:
    """A customer of the pool, taken and last followed up that long before `now`."""
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        owner_id=owner.id if owner else None,
        created_by_id=(owner or shop.alice).id,
        pool_id=shop.pool.id,
        taken_at=now - taken if taken is not None else None,
        last_followup_at=now - followed if followed is not None else None,
        deal_status=DealStatus.DEALT if dealt else DealStatus.NOT_DEALT,
        locked=locked,
    )


def days(n: float) -> timedelta:
    return timedelta(days=n)


async def recycled_by() -> dict[str, RecycleRule]:
    """Customer name → the rule of its RECYCLED movement."""
    names = dict(await Customer.all().values_list("id", "name"))
    rows = await PoolMovement.filter(kind=PoolMovementKind.RECYCLED)
    return {names[m.customer_id]: m.rule for m in rows}


async def test_a_pass_moves_more_customers_than_a_statement_takes_parameters(shop):
    # Both databases cap a statement at about 32 000 parameters: nothing in a
    # pass may list the moved customers' ids in one statement.
    many = 33_000
    await Customer.bulk_create(
        [
            Customer(
                name=f"Quiet {i}",
                name_key=f"quiet {i}",
                owner_id=shop.alice.id,
                created_by_id=shop.alice.id,
                pool_id=shop.pool.id,
                taken_at=NOW - days(100),
                last_followup_at=NOW - days(40),
            )
            for i in range(many)
        ],
        batch_size=5_000,
    )
    first = await Customer.filter(name="Quiet 0").first()
    await CustomerTeamMember.create(customer=first, user=shop.bob, access=TeamAccess.READ)

    report = await recycle(NOW)

    assert len(report.moved) == many
    assert await Customer.filter(owner_id__isnull=True).count() == many
    assert await PoolMovement.filter(kind=PoolMovementKind.RECYCLED).count() == many
    assert await Event.filter(kind="pool.recycled").count() == many
    assert not await CustomerTeamMember.exists()


async def test_each_rule_moves_exactly_its_customers(shop):
    alice = shop.alice
    await customer(shop, "Quiet", alice, taken=days(100), followed=days(40))
    await customer(shop, "Talked to lately", alice, taken=days(50), followed=days(10))
    await customer(shop, "Never closes", alice, taken=days(70), followed=days(5))
    await customer(shop, "Quiet client", alice, taken=days(200), followed=days(100), dealt=True)
    await customer(shop, "Client", alice, taken=days(200), followed=days(40), dealt=True)
    await customer(shop, "Fresh claim", alice, taken=days(2), followed=days(200))
    await customer(shop, "From before pools", alice, taken=None)
    await customer(shop, "Locked", alice, taken=days(300), locked=True)
    await customer(shop, "In the pool", None, taken=None)

    report = await recycle(NOW)

    assert await recycled_by() == {
        "Quiet": RecycleRule.NO_FOLLOW_UP_NOT_DEALT,
        "From before pools": RecycleRule.NO_FOLLOW_UP_NOT_DEALT,
        "Quiet client": RecycleRule.NO_FOLLOW_UP_DEALT,
        "Never closes": RecycleRule.NO_DEAL,
    }
    owners = dict(await Customer.all().values_list("name", "owner_id"))
    assert {name for name, owner in owners.items() if owner is not None} == {
        "Talked to lately",
        "Client",
        "Fresh claim",
        "Locked",
    }
    assert sorted(c.name for c in report.moved) == [
        "From before pools",
        "Never closes",
        "Quiet",
        "Quiet client",
    ]
    assert report.counts == {
        (shop.pool.name, RecycleRule.NO_FOLLOW_UP_NOT_DEALT): 2,
        (shop.pool.name, RecycleRule.NO_FOLLOW_UP_DEALT): 1,
        (shop.pool.name, RecycleRule.NO_DEAL): 1,
    }
    assert {c.previous_owner for c in report.moved} == {"Alice"}


async def test_a_recycled_customer_is_back_in_its_pool_with_its_history(shop):
    quiet = await customer(shop, "Quiet", shop.alice, taken=days(100), followed=days(40))
    await CustomerTeamMember.create(customer=quiet, user=shop.bob, access=TeamAccess.WRITE)

    await recycle(NOW)

    row = await Customer.get(id=quiet.id)
    assert row.owner_id is None
    assert row.previous_owner_id == shop.alice.id  # the old owner, not the new NULL
    assert row.pool_id == shop.pool.id
    assert row.pool_entered_at == NOW
    assert row.taken_at is None
    assert row.version == quiet.version + 1
    assert not await CustomerTeamMember.filter(customer_id=quiet.id).exists()

    [movement] = await PoolMovement.filter(customer_id=quiet.id)
    assert movement.kind == PoolMovementKind.RECYCLED
    assert movement.rule == RecycleRule.NO_FOLLOW_UP_NOT_DEALT
    assert movement.actor_id is None
    assert movement.previous_owner_id == shop.alice.id
    assert movement.new_owner_id is None
    assert movement.pool_id == shop.pool.id
    assert movement.reason == "No follow-up for 30 days (not dealt customer)"
    assert movement.created_at == NOW

    [event] = await Event.filter(kind="pool.recycled")
    assert (event.record_type, event.record_id, event.owner_id) == ("CUSTOMER", quiet.id, None)
    assert event.actor_id is None and event.recipient_id is None
    assert event.payload["movement_id"] == movement.id
    assert event.payload["previous_owner_id"] == shop.alice.id
    assert event.payload["rule"] == "NO_FOLLOW_UP_NOT_DEALT"
    assert event.payload["pool_id"] == shop.pool.id

    [entry] = await OperationLog.filter(customer_id=quiet.id)
    assert (entry.action, entry.actor_id) == ("RECYCLE", None)
    assert entry.changes == {"owner_id": [shop.alice.id, None]}
    assert "No follow-up for 30 days" in entry.summary


async def test_a_second_pass_moves_nothing(shop):
    await customer(shop, "Quiet", shop.alice, taken=days(100), followed=days(40))
    assert len((await recycle(NOW)).moved) == 1
    again = await recycle(NOW + days(1))
    assert again.moved == [] and again.counts == {}
    assert await PoolMovement.all().count() == 1


async def test_rules_that_are_off_move_nothing(shop):
    shop.pool.recycle_not_dealt_after_days = None
    shop.pool.recycle_dealt_after_days = None
    shop.pool.recycle_no_deal_after_days = None
    await shop.pool.save()
    await customer(shop, "Forgotten", shop.alice, taken=days(1000))
    await customer(shop, "Forgotten client", shop.alice, taken=days(1000), dealt=True)

    report = await recycle(NOW)

    assert report.moved == [] and report.warned == 0
    assert await Customer.filter(owner_id=None).count() == 0


async def test_each_pool_applies_its_own_rules(shop):
    strict = await Pool.create(name="Strict", recycle_not_dealt_after_days=5, warning_days=0)
    lenient = await customer(shop, "Lenient", shop.alice, taken=days(10), followed=days(10))
    tight = await customer(shop, "Tight", shop.alice, taken=days(10), followed=days(10))
    await Customer.filter(id=tight.id).update(pool_id=strict.id)

    report = await recycle(NOW)

    assert [(c.name, c.pool) for c in report.moved] == [("Tight", "Strict")]
    assert (await Customer.get(id=lenient.id)).owner_id == shop.alice.id
    assert (await PoolMovement.get(customer_id=tight.id)).pool_id == strict.id


async def test_concurrent_passes_move_each_customer_once(shop):
    names = [f"Quiet {n}" for n in range(12)]
    for name in names:
        await customer(shop, name, shop.alice, taken=days(100), followed=days(40))

    reports = await asyncio.gather(recycle(NOW), recycle(NOW), recycle(NOW))

    assert sorted(c.name for r in reports for c in r.moved) == sorted(names)
    movements = await PoolMovement.all().values_list("customer_id", flat=True)
    assert sorted(movements) == sorted(set(movements)) and len(movements) == len(names)
    assert await Event.filter(kind="pool.recycled").count() == len(names)
    assert await OperationLog.filter(action="RECYCLE").count() == len(names)
    previous = await Customer.all().values_list("previous_owner_id", flat=True)
    assert set(previous) == {shop.alice.id}


async def test_owners_are_warned_once_within_the_window(shop):
    # Due in 2 days: the last follow-up was 28 days ago (and no deal is due in 20).
    soon = await customer(shop, "Soon", shop.alice, taken=days(40), followed=days(28))
    await customer(shop, "Later", shop.alice, taken=days(40), followed=days(20))
    await customer(shop, "Locked", shop.alice, taken=days(40), followed=days(28), locked=True)
    await customer(shop, "Bob's", shop.bob, taken=days(58), followed=days(1))  # no deal in 2

    report = await recycle(NOW)

    assert report.moved == [] and report.warned == 2
    warnings = {e.payload["name"]: e for e in await Event.filter(kind="customer.recycle_warning")}
    assert set(warnings) == {"Soon", "Bob's"}
    mine = warnings["Soon"]
    assert (mine.record_type, mine.record_id, mine.customer_id) == ("CUSTOMER", soon.id, soon.id)
    assert mine.owner_id == mine.recipient_id == shop.alice.id
    assert mine.payload["due_at"] == (NOW + days(2)).isoformat()
    assert mine.payload["rule"] == "NO_FOLLOW_UP_NOT_DEALT"
    assert warnings["Bob's"].recipient_id == shop.bob.id
    assert warnings["Bob's"].payload["rule"] == "NO_DEAL"
    assert (await Customer.get(id=soon.id)).recycle_warned_at == NOW

    again = await recycle(NOW + timedelta(hours=12))
    assert again.warned == 0
    assert await Event.filter(kind="customer.recycle_warning").count() == 2


async def test_a_follow_up_starts_the_warning_over(shop, gql):
    now = datetime.now(UTC)
    soon = await customer(
        shop, "Soon", shop.alice, taken=days(100), followed=days(88), dealt=True, now=now
    )
    assert (await recycle(now)).warned == 1

    variables = {
        "input": {
            "targetId": to_global_id("Customer", soon.id),
            "method": "PHONE",
            "content": "Still interested",
        }
    }
    await gql.ok(FOLLOW_UP, variables, as_user=shop.alice)
    row = await Customer.get(id=soon.id)
    assert row.recycle_warned_at is None
    assert row.last_followup_at >= now

    assert (await recycle(now + days(1))).warned == 0  # due in 90 days again
    later = await recycle(now + days(88))
    assert later.warned == 1 and later.moved == []
    assert await Event.filter(kind="customer.recycle_warning").count() == 2


async def test_the_due_list_shows_the_owner_what_goes_back(shop, gql):
    now = datetime.now(UTC)
    alice = shop.alice
    await customer(shop, "Soon", alice, taken=days(40), followed=days(28), now=now)
    await customer(shop, "Overdue", alice, taken=days(50), followed=days(45), now=now)
    await customer(shop, "In ten days", alice, taken=days(40), followed=days(20), now=now)
    await customer(shop, "Locked", alice, taken=days(50), followed=days(45), locked=True, now=now)
    await customer(shop, "Client", alice, taken=days(100), followed=days(88.5), dealt=True, now=now)
    await customer(shop, "Bob's", shop.bob, taken=days(40), followed=days(29), now=now)

    due = listed(await gql.ok(DUE, as_user=alice))

    # In the order entered, each with when and why.
    assert [d["customer"]["name"] for d in due] == ["Soon", "Overdue", "Client"]
    soon, overdue, client = due
    assert soon["rule"] == "NO_FOLLOW_UP_NOT_DEALT"
    assert soon["reason"] == "No follow-up for 30 days (not dealt customer)"
    assert datetime.fromisoformat(soon["dueAt"]) == now + days(2)
    assert client["rule"] == "NO_FOLLOW_UP_DEALT"
    assert datetime.fromisoformat(client["dueAt"]) == now + days(1.5)
    assert datetime.fromisoformat(overdue["dueAt"]) >= now  # the next pass takes it

    later = {"by": (now + days(15)).isoformat()}
    due = listed(await gql.ok(DUE, later, as_user=alice))
    assert [d["customer"]["name"] for d in due] == ["Soon", "Overdue", "In ten days", "Client"]

    # Bob sees only his own; his manager sees the whole department's.
    due = listed(await gql.ok(DUE, as_user=shop.bob))
    assert [d["customer"]["name"] for d in due] == ["Bob's"]
    due = listed(await gql.ok(DUE, as_user=shop.boss))
    assert {d["customer"]["name"] for d in due} == {"Overdue", "Client", "Soon", "Bob's"}


PREVIEW = """
query($by: DateTime, $filter: RecyclePreviewFilter, $first: Int, $after: String) {
  recyclePreview(by: $by, filter: $filter, first: $first, after: $after) {
    totalCount
    edges { node { customer { name } rule reason } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_the_preview_lists_exactly_what_a_pass_on_that_day_recycles(shop, gql):
    by = datetime.now(UTC) + days(10)
    alice, bob, second = shop.alice, shop.bob, timedelta(seconds=1)

    async def seed(name: str, owner: User = alice, **clocks) -> Customer:
        return await customer(shop, name, owner, now=by, **clocks)

    # Each rule's boundary from both sides: a clock must be strictly older than the days.
    await seed("Quiet", taken=days(40), followed=days(30) + second)
    await seed("Quiet to the second", taken=days(40), followed=days(30))
    await seed("Client", taken=days(200), followed=days(90) + second, dealt=True)
    await seed("Client to the second", taken=days(200), followed=days(90), dealt=True)
    await seed("No deal", taken=days(60) + second, followed=days(1))
    await seed("No deal to the second", taken=days(60), followed=days(1))
    await seed("Fresh claim", taken=days(30) - second, followed=days(300))
    await seed("Both rules", taken=days(100), followed=days(50))  # the pass's first rule wins
    await seed("Never taken", taken=None)
    await seed("Locked", taken=days(300), locked=True)
    await customer(shop, "In the pool", None, taken=None, now=by)
    shared = await seed("Bob's, shared", bob, taken=days(40), followed=days(31))
    await CustomerTeamMember.create(customer=shared, user=alice, access=TeamAccess.READ)
    await seed("Bob's", bob, taken=days(100), followed=days(40))

    async def preview(as_user: User, **variables) -> dict[str, str]:
        data = await gql.ok(PREVIEW, {"by": by.isoformat(), **variables}, as_user=as_user)
        return {n["customer"]["name"]: n["rule"] for n in listed(data)}

    # The manager sees the department; alice her own and the one she is on the team of.
    planned = await preview(shop.boss, first=100)
    assert set(await preview(alice, first=100)) == {
        "Quiet", "Client", "No deal", "Both rules", "Never taken", "Bob's, shared",
    }  # fmt: skip
    assert await preview(shop.boss, first=100, filter={"rule": "NO_DEAL"}) == {"No deal": "NO_DEAL"}
    owner = {"ownerId": to_global_id("User", bob.id)}
    assert set(await preview(shop.boss, first=100, filter=owner)) == {"Bob's, shared", "Bob's"}
    pool = {"poolId": to_global_id("Pool", shop.pool.id)}
    assert await preview(shop.boss, first=100, filter=pool) == planned

    # Paginated, not capped: two pages of three and three, and the count of all.
    first = await gql.ok(PREVIEW, {"by": by.isoformat(), "first": 3}, as_user=shop.boss)
    page = first["recyclePreview"]
    assert page["totalCount"] == 7 and page["pageInfo"]["hasNextPage"]
    rest = {"by": by.isoformat(), "first": 5, "after": page["pageInfo"]["endCursor"]}
    rest = (await gql.ok(PREVIEW, rest, as_user=shop.boss))["recyclePreview"]
    names = [e["node"]["customer"]["name"] for e in page["edges"] + rest["edges"]]
    assert sorted(names) == sorted(planned) and not rest["pageInfo"]["hasNextPage"]

    await recycle(by)

    assert {name: rule.value for name, rule in (await recycled_by()).items()} == planned
    assert planned == {
        "Quiet": "NO_FOLLOW_UP_NOT_DEALT",
        "Client": "NO_FOLLOW_UP_DEALT",
        "No deal": "NO_DEAL",
        "Both rules": "NO_FOLLOW_UP_NOT_DEALT",
        "Never taken": "NO_FOLLOW_UP_NOT_DEALT",
        "Bob's, shared": "NO_FOLLOW_UP_NOT_DEALT",
        "Bob's": "NO_FOLLOW_UP_NOT_DEALT",
    }
    # Every recycled customer's history names the rule, in its code and in words.
    history = await PoolMovement.filter(kind=PoolMovementKind.RECYCLED).order_by("id")
    assert all(move.rule is not None and move.reason for move in history)
    no_deal = await PoolMovement.get(rule=RecycleRule.NO_DEAL)
    assert no_deal.reason == "No deal within 60 days of being taken"
    assert await preview(shop.boss, first=100) == {}


async def test_the_preview_refuses_dates_no_rule_can_count_back_from(shop, gql):
    for by in ("0001-01-03T00:00:00+00:00", "9999-12-31T00:00:00+00:00"):
        reply = await gql(DUE, {"by": by}, as_user=shop.boss)
        assert reply.error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_due_list_is_empty_while_recycling_is_off(org, gql):
    alice = await org.user("alice", roles=[await org.default_role("Sales Rep")])
    pool = await Pool.get(company_wide=True)
    await Customer.create(
        name="Forgotten", name_key="forgotten", owner_id=alice.id, created_by_id=alice.id,
        pool_id=pool.id,
    )  # fmt: skip
    assert listed(await gql.ok(DUE, as_user=alice)) == []


async def test_prune_events_keeps_the_retention_window(db):
    def event(age: timedelta) -> Event:
        return Event(kind="customer.updated", record_type="CUSTOMER", record_id=1,
                     payload={}, created_at=NOW - age)  # fmt: skip

    old = days(7) + timedelta(seconds=1)
    await Event.bulk_create([event(days(8)), event(old), event(days(6)), event(timedelta(0))])

    assert await prune_events(timedelta(hours=168), NOW) == 2
    ages = sorted(NOW - e.created_at for e in await Event.all())
    assert ages == [timedelta(0), days(6)]


async def test_the_loop_goes_on_after_an_error(db, monkeypatch):
    calls = 0
    stop = asyncio.Event()

    async def flaky(now=None):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        stop.set()

    monkeypatch.setattr(clock, "recycle", flaky)
    settings = Settings(recycle_interval=0)
    await asyncio.wait_for(run_periodically(settings, stop, at_once=True), 30)
    assert calls == 2


async def test_the_loop_recycles_and_stops(shop):
    await customer(shop, "Quiet", shop.alice, taken=days(100), followed=days(40),
                   now=datetime.now(UTC))  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.create_task(run_periodically(Settings(), stop, at_once=True))
    try:
        for _ in range(600):
            if await Customer.filter(owner_id=None).exists():
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 30)
    assert await recycled_by() == {"Quiet": RecycleRule.NO_FOLLOW_UP_NOT_DEALT}


def test_recycling_settings():
    assert Settings.from_env({}).recycle_interval == 300
    assert Settings.from_env({}).event_retention_hours == 168
    assert Settings.from_env({"MEIHUA_RECYCLE_INTERVAL": "0"}).recycle_interval == 0
    for name, value in (
        ("MEIHUA_RECYCLE_INTERVAL", "-1"),
        ("MEIHUA_RECYCLE_INTERVAL", "often"),
        ("MEIHUA_EVENT_RETENTION_HOURS", "0"),
    ):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({name: value})


async def test_meihua_recycle_prints_what_moved(shop, db, tmp_path):
    now = datetime.now(UTC)
    await customer(shop, "Quiet Ltd", shop.alice, taken=days(100), followed=days(40), now=now)
    await customer(shop, "Busy Ltd", shop.alice, taken=days(40), followed=days(1), now=now)

    result = meihua("recycle", cwd=tmp_path, DATABASE_URL=db)

    assert result.returncode == 0, result.stderr
    assert "Moved 1 customer back to their pools:" in result.stdout
    assert "No follow-up for 30 days (not dealt customer): 1" in result.stdout
    assert "Quiet Ltd (was Alice's)" in result.stdout
    assert "Busy Ltd" not in result.stdout
    assert await recycled_by() == {"Quiet Ltd": RecycleRule.NO_FOLLOW_UP_NOT_DEALT}

    again = meihua("recycle", cwd=tmp_path, DATABASE_URL=db)
    assert again.returncode == 0, again.stderr
    assert "Nothing to recycle." in again.stdout


async def test_meihua_clock_recycles_until_stopped(shop, db, tmp_path):
    await customer(shop, "Quiet Ltd", shop.alice, taken=days(100), followed=days(40),
                   now=datetime.now(UTC))  # fmt: skip
    process = subprocess.Popen(
        [*MEIHUA, "clock"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=db, MEIHUA_RECYCLE_INTERVAL="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if await Customer.filter(owner_id=None).exists() or process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert await recycled_by() == {"Quiet Ltd": RecycleRule.NO_FOLLOW_UP_NOT_DEALT}
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "recycling every 300 s" in out
    assert "Meihua clock stopped." in out
