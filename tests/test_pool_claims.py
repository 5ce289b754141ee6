"""Claiming (领取) from the public pool: exactly one winner when many claim at
once, the pool's caps on owned customers and claims per day, the reclaim
cool-down, and failed claims that change nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from meihua.models import (
    Customer,
    DealStatus,
    Event,
    OperationLog,
    Pool,
    PoolMovement,
    PoolMovementKind,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

CLAIM = """
mutation($id: ID!) {
  claimCustomer(id: $id) { id inPool takenAt poolEnteredAt version owner { username } }
}
"""
RELEASE = """
mutation($ids: [ID!]!, $reason: String) {
  releaseCustomers(ids: $ids, reason: $reason) { id inPool }
}
"""


@dataclass
class Floor:
    pool: Pool  # the company-wide pool
    alice: User  # Sales Rep
    bob: User  # Sales Rep
    finance: User  # sees every customer, may not claim


@pytest.fixture
async def floor(org) -> Floor:
    rep = await org.default_role("Sales Rep")
    return Floor(
        pool=await Pool.get(company_wide=True),
        alice=await org.user("alice", roles=[rep]),
        bob=await org.user("bob", roles=[rep]),
        finance=await org.user("finance", roles=[await org.default_role("Finance")]),
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


async def pooled(pool: Pool, name: str, creator: User) -> Customer:
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        created_by_id=creator.id,
        pool_id=pool.id,
        pool_entered_at=datetime.now(UTC) - timedelta(days=1),
    )


async def owned(pool: Pool, name: str, owner: User, deal=DealStatus.NOT_DEALT) -> Customer:
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        owner_id=owner.id,
        created_by_id=owner.id,
        pool_id=pool.id,
        deal_status=deal,
        taken_at=datetime.now(UTC),
    )


async def claim(gql, user: User, customer: Customer):
    return await gql(CLAIM, {"id": gid(customer)}, as_user=user)


async def snapshot(customer: Customer) -> tuple:
    row = await Customer.get(id=customer.id)
    return (row.owner_id, row.version, row.taken_at, row.pool_entered_at)


# ---------------------------------------------------------------------------
# one claim


async def test_claim_takes_the_customer_with_history_log_and_live_event(gql, floor):
    acme = await pooled(floor.pool, "Acme", floor.bob)
    data = await gql.ok(CLAIM, {"id": gid(acme)}, as_user=floor.alice)
    claimed = data["claimCustomer"]
    assert claimed["inPool"] is False
    assert claimed["owner"] == {"username": "alice"}
    assert claimed["takenAt"] is not None and claimed["poolEnteredAt"] is None
    assert claimed["version"] == acme.version + 1

    movement = await PoolMovement.get(customer_id=acme.id)
    assert (movement.kind, movement.actor_id, movement.new_owner_id, movement.pool_id) == (
        PoolMovementKind.CLAIMED,
        floor.alice.id,
        floor.alice.id,
        floor.pool.id,
    )
    event = await Event.get(kind="pool.claimed")
    assert (event.record_id, event.actor_id, event.owner_id) == (
        acme.id,
        floor.alice.id,
        floor.alice.id,
    )
    entry = await OperationLog.get(action="CLAIM")
    assert entry.changes == {"owner_id": [None, floor.alice.id]}


async def test_an_owned_customer_cannot_be_claimed(gql, floor):
    acme = await owned(floor.pool, "Acme", floor.alice)
    before = await snapshot(acme)
    result = await claim(gql, floor.alice, acme)
    assert result.codes == ["CONFLICT"]
    # Bob cannot even see Alice's customer.
    assert (await claim(gql, floor.bob, acme)).codes == ["NOT_FOUND"]
    assert await snapshot(acme) == before
    assert not await PoolMovement.exists()


async def test_claiming_needs_the_permission(gql, floor):
    acme = await pooled(floor.pool, "Acme", floor.bob)
    before = await snapshot(acme)
    assert (await claim(gql, floor.finance, acme)).codes == ["FORBIDDEN"]
    assert await snapshot(acme) == before
    assert not await Event.filter(kind__startswith="pool.").exists()


# ---------------------------------------------------------------------------
# many at once


async def test_fifty_reps_claiming_one_customer_at_once_have_exactly_one_winner(gql, org, floor):
    rep = await org.default_role("Sales Rep")
    reps = [await org.user(f"rep{i:02d}", roles=[rep]) for i in range(50)]
    acme = await pooled(floor.pool, "Acme", floor.bob)

    results = await asyncio.gather(*(claim(gql, user, acme) for user in reps))

    winners = [user for user, result in zip(reps, results, strict=True) if not result.errors]
    assert len(winners) == 1, [r.errors for r in results if r.errors][:3]
    assert sorted(code for r in results for code in r.codes) == ["CONFLICT"] * 49
    row = await Customer.get(id=acme.id)
    assert row.owner_id == winners[0].id
    assert row.version == acme.version + 1
    assert await PoolMovement.filter(kind=PoolMovementKind.CLAIMED).count() == 1
    assert await Event.filter(kind="pool.claimed").count() == 1
    assert await OperationLog.filter(action="CLAIM").count() == 1


async def test_concurrent_claims_of_a_rep_one_below_the_cap_end_at_the_cap(gql, floor):
    await Pool.filter(id=floor.pool.id).update(max_owned=3)
    await owned(floor.pool, "Mine 1", floor.alice)
    await owned(floor.pool, "Mine 2", floor.alice)
    await owned(floor.pool, "Dealt", floor.alice, deal=DealStatus.DEALT)  # does not count
    targets = [await pooled(floor.pool, f"Target {i}", floor.bob) for i in range(5)]

    results = await asyncio.gather(*(claim(gql, floor.alice, c) for c in targets))

    codes = sorted(code for r in results for code in r.codes)
    assert codes == ["LIMIT_EXCEEDED"] * 4, [r.errors for r in results]
    refused = next(r for r in results if r.errors)
    assert refused.error["extensions"]["limit"] == 3
    not_dealt = Customer.filter(owner_id=floor.alice.id, deal_status=DealStatus.NOT_DEALT)
    assert await not_dealt.count() == 3
    assert await PoolMovement.filter(kind=PoolMovementKind.CLAIMED).count() == 1


async def test_the_cap_counts_only_customers_of_the_same_pool(gql, org, floor):
    other = await Pool.create(name="Elsewhere")
    await other.departments.add(await org.office())
    await Pool.filter(id=floor.pool.id).update(max_owned=1)
    await owned(other, "From elsewhere", floor.alice)
    acme = await pooled(floor.pool, "Acme", floor.bob)
    await gql.ok(CLAIM, {"id": gid(acme)}, as_user=floor.alice)
    second = await pooled(floor.pool, "Beta", floor.bob)
    assert (await claim(gql, floor.alice, second)).codes == ["LIMIT_EXCEEDED"]


# ---------------------------------------------------------------------------
# claims per day


async def test_daily_claim_cap_counts_from_midnight_company_time(gql, floor, settings):
    await Pool.filter(id=floor.pool.id).update(max_claims_per_day=2)
    customers = [await pooled(floor.pool, f"Lead {i}", floor.bob) for i in range(3)]
    for customer in customers[:2]:
        await gql.ok(CLAIM, {"id": gid(customer)}, as_user=floor.alice)
    before = await snapshot(customers[2])

    result = await claim(gql, floor.alice, customers[2])
    assert result.codes == ["LIMIT_EXCEEDED"]
    assert result.error["extensions"]["limit"] == 2
    assert await snapshot(customers[2]) == before
    # Bob has his own allowance.
    other = await pooled(floor.pool, "Bob's pick", floor.bob)
    await gql.ok(CLAIM, {"id": gid(other)}, as_user=floor.bob)

    # Yesterday's claims (before midnight where the company works) do not count.
    zone = ZoneInfo(settings.timezone)
    midnight = datetime.combine(datetime.now(zone).date(), time(), zone).astimezone(UTC)
    await PoolMovement.filter(new_owner_id=floor.alice.id).update(
        created_at=midnight - timedelta(minutes=1)
    )
    await gql.ok(CLAIM, {"id": gid(customers[2])}, as_user=floor.alice)


# ---------------------------------------------------------------------------
# the reclaim cool-down


async def test_a_rep_who_gave_a_customer_up_waits_for_the_cool_down(gql, floor):
    await Pool.filter(id=floor.pool.id).update(reclaim_cooldown_days=7)
    acme = await owned(floor.pool, "Acme", floor.alice)
    await gql.ok(RELEASE, {"ids": [gid(acme)], "reason": "no budget"}, as_user=floor.alice)
    released = await PoolMovement.get(customer_id=acme.id, kind=PoolMovementKind.RELEASED)
    before = await snapshot(acme)

    result = await claim(gql, floor.alice, acme)
    assert result.codes == ["FORBIDDEN"]
    until = datetime.fromisoformat(result.error["extensions"]["until"])
    assert until == released.created_at + timedelta(days=7)
    assert await snapshot(acme) == before
    assert await PoolMovement.filter(customer_id=acme.id).count() == 1

    # Eight days later the cool-down is over.
    await PoolMovement.filter(id=released.id).update(
        created_at=released.created_at - timedelta(days=8)
    )
    await gql.ok(CLAIM, {"id": gid(acme)}, as_user=floor.alice)


async def test_the_cool_down_also_follows_recycling_but_not_other_reps(gql, floor):
    await Pool.filter(id=floor.pool.id).update(reclaim_cooldown_days=3)
    acme = await pooled(floor.pool, "Acme", floor.bob)
    await PoolMovement.create(
        customer_id=acme.id,
        pool_id=floor.pool.id,
        kind=PoolMovementKind.RECYCLED,
        previous_owner_id=floor.alice.id,
        created_at=datetime.now(UTC) - timedelta(days=1),
    )
    result = await claim(gql, floor.alice, acme)
    assert result.codes == ["FORBIDDEN"]
    assert "until" in result.error["extensions"]
    await gql.ok(CLAIM, {"id": gid(acme)}, as_user=floor.bob)
