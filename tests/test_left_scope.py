"""Out-of-scope events (SPEC §8): when a record leaves a subscriber's sight, the
subscription gets one event saying so, with no field values, and then nothing
more about it; subscribers still in scope go on as before."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from meihua.models import Customer, CustomerTeamMember, Pool, TeamAccess, User
from meihua.resolvers.recycling import recycle
from meihua.resolvers.team_expiry import clear_expired_seats
from meihua.schema.relay import to_global_id
from meihua.settings import ConfigurationError, Settings
from meihua.subscriptions.scope import Watched

RECORD_CHANGED = """
subscription($id: ID!) {
  recordChanged(id: $id) {
    cursor kind fields version
    leftScope { recordId recordType reason }
    record { id ... on Customer { name phone region } }
  }
}
"""
NOTIFICATIONS = """
subscription {
  myNotifications { kind title recordId leftScope { recordId recordType reason } record { id } }
}
"""
TRANSFER = """
mutation($ids: [ID!]!, $to: ID!) {
  transferCustomers(ids: $ids, ownerId: $to, input: {previousOwner: REMOVE}) { id }
}
"""
UPDATE = """
mutation($id: ID!, $region: String!) { updateCustomer(id: $id, input: {region: $region}) { id } }
"""
SET_ROLES = """
mutation($id: ID!, $roles: [ID!]!) { updateUser(id: $id, input: {roleIds: $roles}) { id } }
"""
SETTLE = 0.3  # for a new subscription to reach the hub


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


async def customer_of(owner: User, name: str = "Acme", **fields) -> Customer:
    return await Customer.create(
        name=name,
        name_key=name.lower(),
        phone="13812345678",
        owner_id=owner.id,
        created_by_id=owner.id,
        **fields,
    )


async def watch(live, user: User, customer: Customer):
    client = await live(user)
    op = await client.subscribe(RECORD_CHANGED, {"id": gid(customer)})
    await asyncio.sleep(SETTLE)
    return client, op


async def left_scope(client, op: str) -> dict:
    """The next event, which must be a bare left-scope notice."""
    message = await client.message()
    assert message.get("id") == op and message["type"] == "next", message
    assert "Acme" not in json.dumps(message) and "13812345678" not in json.dumps(message)
    event = message["payload"]["data"]["recordChanged"]
    assert event["kind"] == "record.left_scope"
    assert (event["fields"], event["version"], event["record"]) == ([], None, None)
    return event["leftScope"]


async def test_a_customer_transferred_away_leaves_once_then_silence(gql, live, org):
    team = await org.sales_team()
    acme = await customer_of(team.an)
    rep, rep_op = await watch(live, team.an, acme)
    admin, admin_op = await watch(live, team.admin, acme)

    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.olga)}, as_user=team.admin)

    assert await left_scope(rep, rep_op) == {
        "recordId": gid(acme),
        "recordType": "Customer",
        "reason": "TRANSFERRED",
    }
    assert (await admin.next(admin_op))["recordChanged"]["kind"] == "customer.transferred"

    await gql.ok(UPDATE, {"id": gid(acme), "region": "North"}, as_user=team.olga)
    changed = (await admin.next(admin_op))["recordChanged"]
    assert changed["kind"] == "customer.changed"
    assert changed["record"]["region"] == "North"
    assert await rep.silent()


async def test_a_customer_that_comes_back_is_followed_again(gql, live, org):
    team = await org.sales_team()
    acme = await customer_of(team.an)
    rep, op = await watch(live, team.an, acme)
    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.olga)}, as_user=team.admin)
    assert (await left_scope(rep, op))["reason"] == "TRANSFERRED"

    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.an)}, as_user=team.admin)
    back = (await rep.next(op))["recordChanged"]
    assert (back["kind"], back["record"]["name"]) == ("customer.transferred", "Acme")
    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.olga)}, as_user=team.admin)
    assert (await left_scope(rep, op))["reason"] == "TRANSFERRED"
    assert await rep.silent()


async def test_a_recycled_customer_leaves_a_rep_outside_its_pool(live, org):
    team = await org.sales_team()
    east_pool = await Pool.create(name="East pool", recycle_not_dealt_after_days=30)
    await east_pool.departments.add(team.east)
    # Assigned from the East pool to Olga in North, who is no member of it.
    acme = await customer_of(
        team.olga, pool_id=east_pool.id, taken_at=datetime.now(UTC) - timedelta(days=100)
    )
    rep, op = await watch(live, team.olga, acme)
    pool_member, member_op = await watch(live, team.an, acme)  # not hers: NOT_FOUND
    assert (await pool_member.error(member_op))["code"] == "NOT_FOUND"

    assert [c.name for c in (await recycle()).moved] == ["Acme"]

    assert (await left_scope(rep, op))["reason"] == "RECYCLED"
    assert await rep.silent()


async def test_an_expired_team_seat_leaves_after_the_cleanup_job(gql, live, org):
    team = await org.sales_team()
    acme = await customer_of(team.an)
    seat = await CustomerTeamMember.create(
        customer_id=acme.id,
        user_id=team.olga.id,
        access=TeamAccess.WRITE,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    member, op = await watch(live, team.olga, acme)
    await gql.ok(UPDATE, {"id": gid(acme), "region": "East"}, as_user=team.an)
    assert (await member.next(op))["recordChanged"]["record"]["region"] == "East"

    await CustomerTeamMember.filter(id=seat.id).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert [s.user_id for s in await clear_expired_seats()] == [team.olga.id]

    assert (await left_scope(member, op))["reason"] == "TEAM_EXPIRED"
    await gql.ok(UPDATE, {"id": gid(acme), "region": "West"}, as_user=team.an)
    assert await member.silent()


async def test_an_event_after_the_seat_expired_tells_before_any_job_runs(gql, live, org):
    team = await org.sales_team()
    acme = await customer_of(team.an)
    seat = await CustomerTeamMember.create(
        customer_id=acme.id, user_id=team.olga.id, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    member, op = await watch(live, team.olga, acme)
    await CustomerTeamMember.filter(id=seat.id).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )

    await gql.ok(UPDATE, {"id": gid(acme), "region": "East"}, as_user=team.an)
    assert (await left_scope(member, op))["reason"] is None
    await clear_expired_seats()  # already told: the cleanup says nothing more
    await gql.ok(UPDATE, {"id": gid(acme), "region": "West"}, as_user=team.an)
    assert await member.silent()


async def test_a_manager_narrowed_to_own_records_is_told_what_left(gql, live, org):
    team = await org.sales_team()
    reps_acme = await customer_of(team.an)
    own = await customer_of(team.mei, "Meiwa")
    manager, op = await watch(live, team.mei, reps_acme)
    own_op = await manager.subscribe(RECORD_CHANGED, {"id": gid(own)})
    await asyncio.sleep(SETTLE)
    rep_role = await org.default_role("Sales Rep")

    await gql.ok(SET_ROLES, {"id": gid(team.mei), "roles": [gid(rep_role)]}, as_user=team.admin)

    assert await left_scope(manager, op) == {
        "recordId": gid(reps_acme),
        "recordType": "Customer",
        "reason": "SCOPE_CHANGED",
    }
    await gql.ok(UPDATE, {"id": gid(reps_acme), "region": "East"}, as_user=team.an)
    await gql.ok(UPDATE, {"id": gid(own), "region": "South"}, as_user=team.mei)
    # Her own customer is still hers: its change comes, the rep's does not.
    message = await manager.message()
    assert message["id"] == own_op, message
    assert message["payload"]["data"]["recordChanged"]["record"]["region"] == "South"
    assert await manager.silent()


async def test_notifications_say_when_a_customer_handed_over_goes_again(gql, live, org):
    team = await org.sales_team()
    acme = await customer_of(team.an)
    inbox = await live(team.bo)
    op = await inbox.subscribe(NOTIFICATIONS)
    await asyncio.sleep(SETTLE)

    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.bo)}, as_user=team.admin)
    assert (await inbox.next(op))["myNotifications"]["kind"] == "CUSTOMER_TRANSFERRED"
    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.olga)}, as_user=team.admin)

    note = (await inbox.next(op))["myNotifications"]
    assert note == {
        "kind": "LEFT_SCOPE",
        "title": "No longer visible to you",
        "recordId": gid(acme),
        "leftScope": {"recordId": gid(acme), "recordType": "Customer", "reason": "TRANSFERRED"},
        "record": None,
    }
    await gql.ok(UPDATE, {"id": gid(acme), "region": "North"}, as_user=team.olga)
    assert await inbox.silent()


async def test_subscribers_in_scope_get_no_notice(gql, live, org):
    team = await org.sales_team()
    acme = await customer_of(team.an)
    manager, op = await watch(live, team.mei, acme)

    # From An to Bo: both in Mei's tree, so nothing leaves her sight.
    await gql.ok(TRANSFER, {"ids": [gid(acme)], "to": gid(team.bo)}, as_user=team.admin)
    assert (await manager.next(op))["recordChanged"]["kind"] == "customer.transferred"
    assert await manager.silent()


def test_a_subscription_remembers_a_bounded_number_of_records():
    watched = Watched(2, {("CUSTOMER", 1): ("CONTACT", 9)})
    watched.remember(("CUSTOMER", 2), ("CUSTOMER", 2))
    watched.remember(("CUSTOMER", 1), ("CONTACT", 9))  # heard of again: kept longest
    watched.remember(("LEAD", 3), ("LEAD", 3))
    assert watched.refs() == [("CUSTOMER", 1), ("LEAD", 3)]
    assert watched.forget(("CUSTOMER", 1)) == ("CONTACT", 9)
    assert watched.forget(("CUSTOMER", 1)) is None


def test_the_watch_limit_setting():
    assert Settings.from_env({}).subscription_watch_limit == 1000
    assert (
        Settings.from_env({"MEIHUA_SUBSCRIPTION_WATCH_LIMIT": "50"}).subscription_watch_limit == 50
    )
    with pytest.raises(ConfigurationError, match="MEIHUA_SUBSCRIPTION_WATCH_LIMIT"):
        Settings.from_env({"MEIHUA_SUBSCRIPTION_WATCH_LIMIT": "0"})
