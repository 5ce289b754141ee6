"""Transfer (转移): customers change hands with their contacts, optionally their
opportunities and contracts; the previous owner stays on the team or leaves;
a list moves all or nothing; the new owner is told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import pytest

from meihua.models import (
    Contact,
    Contract,
    Customer,
    CustomerTeamMember,
    Event,
    OperationLog,
    Opportunity,
    OpportunityStage,
    RecordType,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

TRANSFER = """
mutation($ids: [ID!]!, $owner: ID!, $input: TransferCustomersInput) {
  transferCustomers(ids: $ids, ownerId: $owner, input: $input) {
    id name version owner { username } team { access user { username } }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales: may transfer
    acme: Customer  # Alice's


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", department=sales, roles=[rep])
    return Team(
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        acme=await customer(alice, "Acme"),
    )


async def customer(owner: User, name: str) -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
    )


async def opportunity(target: Customer, owner: User, name: str) -> Opportunity:
    stage = await OpportunityStage.all().order_by("order").first()
    return await Opportunity.create(
        customer_id=target.id,
        name=name,
        amount=Decimal("1000.00"),
        stage_id=stage.id,
        owner_id=owner.id,
        created_by_id=owner.id,
    )


async def contract(target: Customer, owner: User, number: str) -> Contract:
    return await Contract.create(
        number=number,
        title=number,
        customer_id=target.id,
        owner_id=owner.id,
        created_by_id=owner.id,
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


async def transfer(gql, user: User, customers, owner: User, **options):
    variables = {"ids": [gid(c) for c in customers], "owner": gid(owner), "input": options or None}
    return await gql(TRANSFER, variables, as_user=user)


async def owners(*rows) -> list[int]:
    return [(await type(row).get(id=row.id)).owner_id for row in rows]


async def seat(target: Customer, user: User) -> str | None:
    row = await CustomerTeamMember.get_or_none(customer_id=target.id, user_id=user.id)
    return row.access.value if row else None


# ---------------------------------------------------------------------------
# the move


async def test_transfer_moves_the_customer_and_its_contacts(gql, team):
    contact = await Contact.create(
        customer_id=team.acme.id, name="Li Lei", created_by_id=team.alice.id
    )
    result = await transfer(gql, team.boss, [team.acme], team.bob)
    assert not result.errors, result.errors
    [moved] = result.data["transferCustomers"]
    assert moved["owner"] == {"username": "bob"}
    assert moved["version"] == 2
    assert moved["team"] == []  # the previous owner is removed by default
    assert await owners(team.acme) == [team.bob.id]
    # contacts belong to the customer: Bob sees them, Alice no longer does
    assert not (await gql(NODE, {"id": gid(contact)}, as_user=team.bob)).errors
    assert (await gql(NODE, {"id": gid(contact)}, as_user=team.alice)).codes == ["NOT_FOUND"]
    assert (await gql(NODE, {"id": gid(team.acme)}, as_user=team.alice)).codes == ["NOT_FOUND"]


async def test_transfer_is_logged_and_the_new_owner_is_told(gql, team):
    await transfer(gql, team.boss, [team.acme], team.bob)
    entry = await OperationLog.get(action="TRANSFER", record_type=RecordType.CUSTOMER)
    assert entry.changes == {"owner_id": [team.alice.id, team.bob.id]}
    assert (entry.record_id, entry.customer_id, entry.actor_id) == (
        team.acme.id,
        team.acme.id,
        team.boss.id,
    )
    event = await Event.get(kind="customer.transferred")
    assert (event.recipient_id, event.owner_id, event.record_id, event.actor_id) == (
        team.bob.id,
        team.bob.id,
        team.acme.id,
        team.boss.id,
    )
    assert event.payload["fromOwnerId"] == team.alice.id
    assert event.payload["toOwnerId"] == team.bob.id


@pytest.mark.parametrize(
    ("choice", "expected"), [("KEEP_READ", "READ"), ("KEEP_WRITE", "WRITE"), ("REMOVE", None)]
)
async def test_the_previous_owner_keeps_read_write_or_nothing(gql, team, choice, expected):
    result = await transfer(gql, team.boss, [team.acme], team.bob, previousOwner=choice)
    assert not result.errors, result.errors
    assert await seat(team.acme, team.alice) == expected
    can_see = not (await gql(NODE, {"id": gid(team.acme)}, as_user=team.alice)).errors
    assert can_see is (expected is not None)


async def test_an_existing_seat_of_the_previous_owner_is_replaced(gql, team):
    # Bob owned it before and kept WRITE with an expiry; now it comes back to him
    await CustomerTeamMember.create(
        customer_id=team.acme.id, user_id=team.bob.id, access=TeamAccess.WRITE
    )
    await transfer(gql, team.boss, [team.acme], team.bob, previousOwner="KEEP_READ")
    assert await seat(team.acme, team.bob) is None  # the owner needs no seat
    assert await seat(team.acme, team.alice) == "READ"
    await transfer(gql, team.boss, [team.acme], team.alice, previousOwner="KEEP_WRITE")
    assert (await seat(team.acme, team.alice), await seat(team.acme, team.bob)) == (None, "WRITE")
    assert await CustomerTeamMember.all().count() == 1


async def test_opportunities_and_contracts_stay_unless_asked(gql, team):
    opp = await opportunity(team.acme, team.alice, "Deal")
    deal = await contract(team.acme, team.alice, "HT-1")
    await transfer(gql, team.boss, [team.acme], team.bob)
    assert await owners(opp, deal) == [team.alice.id, team.alice.id]


async def test_the_previous_owners_opportunities_and_contracts_move_when_asked(gql, team):
    mine = await opportunity(team.acme, team.alice, "Alice's deal")
    theirs = await opportunity(team.acme, team.carol, "Carol's deal")  # not the owner's
    signed = await contract(team.acme, team.alice, "HT-1")
    elsewhere = await opportunity(await customer(team.alice, "Other"), team.alice, "Other deal")

    result = await transfer(
        gql, team.boss, [team.acme], team.bob, withOpportunities=True, withContracts=True
    )
    assert not result.errors, result.errors
    assert await owners(mine, theirs, signed, elsewhere) == [
        team.bob.id,
        team.carol.id,
        team.bob.id,
        team.alice.id,
    ]
    assert (await Opportunity.get(id=mine.id)).version == 2
    logged = await OperationLog.filter(action="TRANSFER").values_list("record_type", "record_id")
    assert sorted(logged) == sorted(
        [
            (RecordType.CUSTOMER, team.acme.id),
            (RecordType.OPPORTUNITY, mine.id),
            (RecordType.CONTRACT, signed.id),
        ]
    )
    event = await Event.get(kind="customer.transferred")
    assert event.payload["opportunityIds"] == [mine.id]
    assert event.payload["contractIds"] == [signed.id]
    assert await Event.exists(kind="opportunity.transferred", record_id=mine.id)
    assert await Event.exists(kind="contract.transferred", record_id=signed.id)


async def test_only_opportunities_when_contracts_are_not_asked(gql, team):
    opp = await opportunity(team.acme, team.alice, "Deal")
    deal = await contract(team.acme, team.alice, "HT-1")
    await transfer(gql, team.boss, [team.acme], team.bob, withOpportunities=True)
    assert await owners(opp, deal) == [team.bob.id, team.alice.id]


async def test_several_customers_move_together(gql, team):
    others = [await customer(team.alice, f"Client {i}") for i in range(3)]
    bobs = await customer(team.bob, "Bob's own")
    result = await transfer(gql, team.boss, [team.acme, *others, bobs], team.carol)
    assert not result.errors, result.errors
    names = [c["name"] for c in result.data["transferCustomers"]]
    assert names == ["Acme", "Client 0", "Client 1", "Client 2", "Bob's own"]  # asked order
    assert set(await owners(team.acme, *others, bobs)) == {team.carol.id}
    assert await Event.filter(kind="customer.transferred", recipient_id=team.carol.id).count() == 5


async def test_transferring_to_the_current_owner_changes_nothing(gql, team):
    result = await transfer(gql, team.boss, [team.acme], team.alice)
    assert not result.errors
    assert (await Customer.get(id=team.acme.id)).version == 1
    assert await OperationLog.all().count() == 0


# ---------------------------------------------------------------------------
# who may transfer, and all or nothing


async def everything_stays(team: Team, *rows) -> None:
    assert await owners(team.acme, *rows) == [team.alice.id] + [r.owner_id for r in rows]
    assert await OperationLog.all().count() == 0
    assert await Event.all().count() == 0
    assert await CustomerTeamMember.all().count() == 0


async def test_transfer_needs_the_permission(gql, team):
    # Sales reps hold no customer:transfer, not even for their own customers
    result = await transfer(gql, team.alice, [team.acme], team.bob)
    assert result.codes == ["FORBIDDEN"]
    await everything_stays(team)


async def test_one_invisible_customer_fails_the_whole_list(gql, team):
    visible = await customer(team.bob, "Bob Co")
    hidden = await customer(team.carol, "Carol Co")  # Support: outside the boss's scope
    result = await transfer(gql, team.boss, [team.acme, visible, hidden], team.bob)
    assert result.codes == ["NOT_FOUND"]
    await everything_stays(team, visible, hidden)


async def test_a_team_member_cannot_give_the_customer_away(gql, team, org):
    mover = await org.role("Mover", "SELF", ["customer:transfer", "customer:update"])
    await team.carol.roles.add(mover)
    await CustomerTeamMember.create(
        customer_id=team.acme.id, user_id=team.carol.id, access=TeamAccess.WRITE
    )
    result = await transfer(gql, team.carol, [team.acme], team.carol)
    assert result.codes == ["FORBIDDEN"]
    assert await owners(team.acme) == [team.alice.id]
    assert await OperationLog.all().count() == 0


@pytest.mark.parametrize("target", ["ghost", "inactive", "customer-id"])
async def test_the_new_owner_must_be_an_active_user(gql, team, org, target):
    inactive = await org.user("gone")
    await User.filter(id=inactive.id).update(is_active=False)
    owner = {
        "ghost": to_global_id("User", 99_999),
        "inactive": gid(inactive),
        "customer-id": gid(team.acme),
    }[target]
    variables = {"ids": [gid(team.acme)], "owner": owner}
    result = await gql(TRANSFER, variables, as_user=team.boss)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ownerId"
    await everything_stays(team)


async def test_too_many_customers_at_once_is_bad_input(gql, team):
    ids = [to_global_id("Customer", i) for i in range(1, 202)]
    result = await gql(TRANSFER, {"ids": ids, "owner": gid(team.bob)}, as_user=team.boss)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ids"


async def test_concurrent_transfers_leave_one_consistent_owner(gql, team):
    opp = await opportunity(team.acme, team.alice, "Deal")
    results = await asyncio.gather(
        transfer(
            gql, team.boss, [team.acme], team.bob, withOpportunities=True, previousOwner="KEEP_READ"
        ),
        transfer(
            gql,
            team.boss,
            [team.acme],
            team.carol,
            withOpportunities=True,
            previousOwner="KEEP_READ",
        ),
    )
    row = await Customer.get(id=team.acme.id)
    failures = [r for r in results if r.errors]
    if failures:
        # carol is outside boss's scope: when her transfer commits first, boss
        # no longer sees the customer and the second transfer finds nothing.
        assert [f.codes for f in failures] == [["NOT_FOUND"]]
        assert (row.owner_id, row.version) == (team.carol.id, 2)
    else:
        assert row.owner_id in (team.bob.id, team.carol.id)
        assert row.version == 3
    # whoever moved second took the opportunity along from the first new owner
    assert (await Opportunity.get(id=opp.id)).owner_id == row.owner_id
    assert await seat(team.acme, await User.get(id=row.owner_id)) is None
