"""Team-membership expiry (SPEC §2): an expired seat grants nothing everywhere the
access layer answers, and the periodic job clears it away once, with its log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from meihua import clock
from meihua.models import (
    Contact,
    Customer,
    CustomerTeamMember,
    Event,
    OperationLog,
    Opportunity,
    OpportunityStage,
    TeamAccess,
    User,
)
from meihua.resolvers.team_expiry import clear_expired_seats
from meihua.schema.relay import to_global_id
from meihua.settings import Settings
from tests.test_cli import meihua

NOW = datetime.now(UTC)
EXPIRED = NOW - timedelta(minutes=1)
LATER = NOW + timedelta(hours=1)

CUSTOMERS = "{ customers(first: 100) { totalCount edges { node { name } } } }"
CONTACTS = "{ contacts(first: 100) { totalCount edges { node { name } } } }"
OPPORTUNITIES = "{ opportunities(first: 100) { totalCount edges { node { name } } } }"
EXPORT = "{ exportCustomers { rowCount content } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
NESTED = """
query($id: ID!) {
  node(id: $id) { ... on Contact { customer { name } } }
}
"""
UPDATE_OPPORTUNITY = """
mutation($id: ID!) { updateOpportunity(id: $id, input: {name: "Bigger"}) { name } }
"""


@pytest.fixture
async def acme(org):
    """Alice (rep in Sales) owns Acme; Carol (rep in Support) sits on its team with WRITE."""
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", department=await org.department("Sales"), roles=[rep])
    carol = await org.user("carol", department=await org.department("Support"), roles=[rep])
    customer = await Customer.create(
        name="Acme", name_key="acme", owner_id=alice.id, created_by_id=alice.id
    )
    await Contact.create(customer_id=customer.id, name="Li Lei", created_by_id=alice.id)
    await Opportunity.create(
        customer_id=customer.id,
        name="Turbines",
        amount="1000.00",
        stage=await OpportunityStage.all().order_by("order").first(),
        owner_id=alice.id,
        created_by_id=alice.id,
    )
    seat = await CustomerTeamMember.create(
        customer_id=customer.id, user_id=carol.id, access=TeamAccess.WRITE, added_by_id=alice.id
    )
    return alice, carol, customer, seat


async def expire(seat: CustomerTeamMember, at: datetime = EXPIRED) -> None:
    await CustomerTeamMember.filter(id=seat.id).update(expires_at=at)


async def counts(gql, user: User) -> list[int]:
    return [
        (await gql.ok(query, as_user=user))[root]["totalCount"]
        for query, root in ((CUSTOMERS, "customers"), (CONTACTS, "contacts"),
                            (OPPORTUNITIES, "opportunities"))
    ]  # fmt: skip


async def test_an_expired_seat_hides_everything_under_the_customer(gql, acme):
    _, carol, customer, seat = acme
    contact = await Contact.get(customer_id=customer.id)
    opportunity = await Opportunity.get(customer_id=customer.id)
    assert await counts(gql, carol) == [1, 1, 1]
    assert (await gql.ok(EXPORT, as_user=carol))["exportCustomers"]["rowCount"] == 1
    nested = await gql.ok(NESTED, {"id": to_global_id("Contact", contact.id)}, as_user=carol)
    assert nested["node"]["customer"]["name"] == "Acme"

    await expire(seat)  # no job has run: the access layer compares with now

    assert await counts(gql, carol) == [0, 0, 0]
    export = (await gql.ok(EXPORT, as_user=carol))["exportCustomers"]
    assert export["rowCount"] == 0 and "Acme" not in export["content"]
    for type_name, pk in (("Customer", customer.id), ("Contact", contact.id),
                          ("Opportunity", opportunity.id)):  # fmt: skip
        result = await gql(NODE, {"id": to_global_id(type_name, pk)}, as_user=carol)
        assert result.data["node"] is None or result.codes == ["NOT_FOUND"], result
    result = await gql(UPDATE_OPPORTUNITY, {"id": to_global_id("Opportunity", opportunity.id)},
                       as_user=carol)  # fmt: skip
    assert result.codes == ["NOT_FOUND"]
    assert (await Opportunity.get(id=opportunity.id)).name == "Turbines"


async def test_a_write_seat_writes_until_it_expires(gql, acme):
    _, carol, customer, seat = acme
    opportunity = await Opportunity.get(customer_id=customer.id)
    variables = {"id": to_global_id("Opportunity", opportunity.id)}
    await expire(seat, LATER)
    assert (await gql.ok(UPDATE_OPPORTUNITY, variables, as_user=carol))["updateOpportunity"]
    await expire(seat)
    assert (await gql(UPDATE_OPPORTUNITY, variables, as_user=carol)).codes == ["NOT_FOUND"]


async def test_the_job_clears_expired_seats_once_with_their_log_and_event(acme, org):
    alice, carol, customer, seat = acme
    bob = await org.user("bob")
    await CustomerTeamMember.create(customer_id=customer.id, user_id=bob.id, expires_at=LATER)
    await expire(seat)

    cleared = await clear_expired_seats()

    assert [(s.customer_id, s.user_id, s.access) for s in cleared] == [
        (customer.id, carol.id, "WRITE")
    ]
    assert await CustomerTeamMember.filter(customer_id=customer.id).values_list(
        "user_id", flat=True
    ) == [bob.id]
    entry = await OperationLog.get(action="TEAM_EXPIRE")
    assert (entry.actor_id, entry.record_id, entry.customer_id) == (None, customer.id, customer.id)
    assert entry.changes["team"][0]["userId"] == carol.id
    assert entry.changes["team"][1] is None
    assert entry.summary == "Team membership expired: Carol"
    event = await Event.get(kind="customer.team_changed")
    assert (event.recipient_id, event.customer_id, event.owner_id, event.actor_id) == (
        carol.id,
        customer.id,
        alice.id,
        None,
    )
    assert event.payload["change"] == "TEAM_EXPIRE"

    assert await clear_expired_seats() == []
    assert await OperationLog.filter(action="TEAM_EXPIRE").count() == 1
    assert await Event.filter(kind="customer.team_changed").count() == 1


async def test_concurrent_passes_clear_each_seat_once(acme, org):
    _, _, customer, seat = acme
    others = [await org.user(f"user{n}") for n in range(5)]
    await CustomerTeamMember.bulk_create(
        [
            CustomerTeamMember(customer_id=customer.id, user_id=u.id, expires_at=EXPIRED)
            for u in others
        ]
    )
    await expire(seat)

    results = await asyncio.gather(*(clear_expired_seats() for _ in range(3)))

    assert sum(len(r) for r in results) == 6
    assert await CustomerTeamMember.all().count() == 0
    assert await OperationLog.filter(action="TEAM_EXPIRE").count() == 6
    assert await Event.filter(kind="customer.team_changed").count() == 6


async def test_the_clock_clears_expired_seats(acme):
    *_, seat = acme
    await expire(seat)
    await clock.tick(Settings())
    assert not await CustomerTeamMember.exists(id=seat.id)


async def test_the_team_list_shows_an_expired_seat_until_the_job_clears_it(gql, acme):
    alice, _, customer, seat = acme
    query = "query($id: ID!) { node(id: $id) { ... on Customer { team { active } } } }"
    variables = {"id": to_global_id("Customer", customer.id)}
    await expire(seat)
    assert (await gql.ok(query, variables, as_user=alice))["node"]["team"] == [{"active": False}]
    await clear_expired_seats()
    assert (await gql.ok(query, variables, as_user=alice))["node"]["team"] == []


async def test_meihua_recycle_clears_expired_seats(acme, db, tmp_path):
    *_, seat = acme
    await expire(seat)

    result = meihua("recycle", cwd=tmp_path, DATABASE_URL=db)

    assert result.returncode == 0, result.stderr
    assert "Cleared 1 expired team seat." in result.stdout
    assert not await CustomerTeamMember.exists(id=seat.id)
