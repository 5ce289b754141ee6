"""Payment plans (回款计划) with derived status, payments (回款) that never exceed what a
contract owes (also when they race), receivables (应收) per contract and customer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from meihua.models import (
    Contract,
    ContractStatus,
    Customer,
    CustomerTeamMember,
    DataScope,
    Event,
    OperationLog,
    Payment,
    PaymentPlan,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import from_global_id, to_global_id
from meihua.settings import Settings
from tests.conftest import GraphQLClient, serving

CREATE_PLAN = """
mutation($contract: ID!, $input: CreatePaymentPlanInput!) {
  createPaymentPlan(contractId: $contract, input: $input) {
    id period plannedAmount plannedOn method reminderDays status paidAmount version
  }
}
"""
UPDATE_PLAN = """
mutation($id: ID!, $input: UpdatePaymentPlanInput!, $v: Int) {
  updatePaymentPlan(id: $id, input: $input, expectedVersion: $v) {
    id period plannedAmount version
  }
}
"""
DELETE_PLAN = "mutation($id: ID!) { deletePaymentPlan(id: $id) { deletedId } }"
PAY = """
mutation($input: CreatePaymentInput!) {
  createPayment(input: $input) {
    id amount paidOn method planId createdBy { username }
    contract { paidAmount outstandingAmount }
  }
}
"""
DELETE_PAYMENT = "mutation($id: ID!) { deletePayment(id: $id) { deletedId } }"
CONTRACT = """
query($id: ID!) {
  node(id: $id) {
    ... on Contract {
      total paidAmount outstandingAmount
      paymentPlans { period plannedAmount paidAmount status }
      payments { amount paidOn planId }
    }
  }
}
"""
RECEIVABLES = """
query($filter: ReceivableFilter) {
  receivables(filter: $filter, first: 50) {
    totalCount edges { node { title outstandingAmount } }
  }
}
"""
RECEIVABLE = "query($id: ID!) { node(id: $id) { ... on Customer { receivable } } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"

TIMEZONE = ZoneInfo("Asia/Shanghai")  # the settings' default company timezone


def today() -> datetime:
    return datetime.now(TIMEZONE)


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).date().isoformat()


@dataclass
class Books:
    alice: User  # Sales Rep in Sales: payment:create only
    bob: User  # Sales Rep in Sales
    fiona: User  # Finance: sees all, all payment rights
    acme: Customer  # alice's
    signed: Contract  # alice's, APPROVED, total 10 000.00


async def make_contract(owner: User, customer: Customer, title: str, total: str, status):
    number = f"HT-TEST-{await Contract.all().count() + 1:06d}"
    return await Contract.create(
        number=number, title=title, customer=customer, owner=owner, created_by=owner,
        total=Decimal(total), status=status,
    )  # fmt: skip


@pytest.fixture
async def books(org) -> Books:
    sales = await org.department("Sales")
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", department=sales, roles=[rep])
    acme = await Customer.create(
        name="Acme", name_key=normalize_name("Acme"), owner=alice, created_by=alice
    )
    return Books(
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep]),
        fiona=await org.user("fiona", roles=[await org.default_role("Finance")]),
        acme=acme,
        signed=await make_contract(alice, acme, "Signed", "10000.00", ContractStatus.APPROVED),
    )


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


def pk(global_id: str) -> int:
    return from_global_id(global_id)[1]


async def plan(gql, user: User, contract: Contract, period: int, amount: str, on: str, **more):
    variables = {
        "contract": gid("Contract", contract.id),
        "input": {"period": period, "plannedAmount": amount, "plannedOn": on, **more},
    }
    return (await gql.ok(CREATE_PLAN, variables, as_user=user))["createPaymentPlan"]


async def pay(gql, user: User, contract: Contract, amount: str, **more):
    variables = {"input": {"contractId": gid("Contract", contract.id), "amount": amount,
                           "paidOn": day(0), **more}}  # fmt: skip
    return await gql(PAY, variables, as_user=user)


async def books_state() -> tuple:
    """What a refused plan or payment must leave as it was."""
    return (
        await PaymentPlan.all().order_by("id").values(),
        await Payment.all().order_by("id").values(),
        await OperationLog.all().count(),
        await Event.all().count(),
    )


async def contract_view(gql, user: User, contract: Contract) -> dict:
    return (await gql.ok(CONTRACT, {"id": gid("Contract", contract.id)}, as_user=user))["node"]


# ---------------------------------------------------------------------------
# plans


async def test_plans_are_listed_with_a_derived_status(gql, books):
    overdue = await plan(gql, books.fiona, books.signed, 1, "3000.00", day(-1), method="Bank")
    assert (overdue["status"], overdue["paidAmount"], overdue["reminderDays"]) == (
        "OVERDUE", "0.00", 3
    )  # fmt: skip
    due_today = await plan(gql, books.alice, books.signed, 2, "3000.00", day(0))
    assert due_today["status"] == "PENDING"  # today in the company's timezone is not late
    later = await plan(gql, books.fiona, books.signed, 3, "4000.00", day(30), reminderDays=7)
    assert later["status"] == "PENDING"

    first, second, third = (pk(p["id"]) for p in (overdue, due_today, later))
    await pay(gql, books.fiona, books.signed, "3000.00", planId=gid("PaymentPlan", first))
    await pay(gql, books.fiona, books.signed, "1000.00", planId=gid("PaymentPlan", second))
    await pay(gql, books.fiona, books.signed, "4000.01", planId=gid("PaymentPlan", third))
    view = await contract_view(gql, books.alice, books.signed)
    assert view["paymentPlans"] == [
        {"period": 1, "plannedAmount": "3000.00", "paidAmount": "3000.00", "status": "PAID"},
        {"period": 2, "plannedAmount": "3000.00", "paidAmount": "1000.00", "status": "PARTIAL"},
        {"period": 3, "plannedAmount": "4000.00", "paidAmount": "4000.01", "status": "PAID"},
    ]
    await PaymentPlan.filter(id=second).update(planned_on=day(-2))
    view = await contract_view(gql, books.alice, books.signed)
    assert view["paymentPlans"][1]["status"] == "OVERDUE"
    entry = await OperationLog.filter(action="CREATE_PAYMENT_PLAN").order_by("id").first()
    assert entry.changes["payment_plan"][1]["planned_amount"] == "3000.00"


@contextlib.asynccontextmanager
async def client_in(timezone: str, settings: Settings, gql) -> AsyncIterator[GraphQLClient]:
    """A GraphQL client of a server whose company sits in `timezone`."""
    async with serving(replace(settings, timezone=timezone)) as http:
        yield GraphQLClient(http, gql.signer)


async def test_overdue_is_judged_by_the_company_date(gql, settings, books):
    # Kiritimati (UTC+14) is always a calendar day or two ahead of Pago Pago (UTC-11).
    pago_today = datetime.now(ZoneInfo("Pacific/Pago_Pago")).date()
    await PaymentPlan.create(
        contract=books.signed, period=1, planned_amount=Decimal("1.00"), planned_on=pago_today
    )
    seen = {}
    for timezone in ("Pacific/Pago_Pago", "Pacific/Kiritimati"):
        async with client_in(timezone, settings, gql) as client:
            view = await client.ok(CONTRACT, {"id": gid("Contract", books.signed.id)},
                                   as_user=books.alice)  # fmt: skip
            seen[timezone] = view["node"]["paymentPlans"][0]["status"]
    assert seen == {"Pacific/Pago_Pago": "PENDING", "Pacific/Kiritimati": "OVERDUE"}


async def test_plans_are_edited_with_versions_and_periods_stay_unique(gql, books):
    made = await plan(gql, books.fiona, books.signed, 1, "500.00", day(10))
    await plan(gql, books.fiona, books.signed, 2, "500.00", day(40))
    data = await gql.ok(
        UPDATE_PLAN, {"id": made["id"], "v": 1, "input": {"plannedAmount": "750.50"}},
        as_user=books.fiona,
    )  # fmt: skip
    assert data["updatePaymentPlan"] == {
        "id": made["id"], "period": 1, "plannedAmount": "750.50", "version": 2
    }  # fmt: skip
    assert await OperationLog.exists(action="UPDATE_PAYMENT_PLAN")
    before = await books_state()
    stale = await gql(UPDATE_PLAN, {"id": made["id"], "v": 1, "input": {"plannedAmount": "1"}},
                      as_user=books.fiona)  # fmt: skip
    assert stale.codes == ["CONFLICT"]
    taken = await gql(UPDATE_PLAN, {"id": made["id"], "input": {"period": 2}}, as_user=books.fiona)
    assert taken.codes == ["DUPLICATE"]
    assert taken.error["extensions"]["field"] == "period"
    again = await gql(
        CREATE_PLAN,
        {"contract": gid("Contract", books.signed.id),
         "input": {"period": 2, "plannedAmount": "1.00", "plannedOn": day(1)}},
        as_user=books.fiona,
    )  # fmt: skip
    assert again.codes == ["DUPLICATE"]
    assert await books_state() == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"period": 0}, "period"),
        ({"plannedAmount": "0"}, "plannedAmount"),
        ({"plannedAmount": "-5.00"}, "plannedAmount"),
        ({"plannedAmount": "1.234"}, "plannedAmount"),
        ({"reminderDays": -1}, "reminderDays"),
        ({"method": "x" * 41}, "method"),
    ],
)
async def test_bad_plans_are_refused(gql, books, fields, field):
    before = await books_state()
    variables = {
        "contract": gid("Contract", books.signed.id),
        "input": {"period": 1, "plannedAmount": "100.00", "plannedOn": day(5), **fields},
    }
    result = await gql(CREATE_PLAN, variables, as_user=books.fiona)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await books_state() == before


async def test_plans_of_contracts_out_of_reach(gql, books):
    made = await plan(gql, books.fiona, books.signed, 1, "500.00", day(10))
    await CustomerTeamMember.create(customer=books.acme, user=books.bob, access=TeamAccess.READ)
    voided = await make_contract(books.alice, books.acme, "Void", "10.00", ContractStatus.VOIDED)
    before = await books_state()
    new_plan = {"period": 9, "plannedAmount": "1.00", "plannedOn": day(1)}
    cases = [
        (CREATE_PLAN, {"contract": gid("Contract", books.signed.id), "input": new_plan},
         books.bob, "FORBIDDEN"),  # READ team member
        (UPDATE_PLAN, {"id": made["id"], "input": {"period": 5}}, books.alice,
         "FORBIDDEN"),  # reps lack payment:update
        (DELETE_PLAN, {"id": made["id"]}, books.alice, "FORBIDDEN"),  # and payment:delete
        (CREATE_PLAN, {"contract": gid("Contract", voided.id), "input": new_plan},
         books.fiona, "CONFLICT"),
    ]  # fmt: skip
    for query, variables, user, code in cases:
        assert (await gql(query, variables, as_user=user)).codes == [code]
    await CustomerTeamMember.all().delete()
    for query, variables in (
        (CREATE_PLAN, {"contract": gid("Contract", books.signed.id), "input": new_plan}),
        (UPDATE_PLAN, {"id": made["id"], "input": {"period": 5}}),
        (DELETE_PLAN, {"id": made["id"]}),
        (NODE, {"id": made["id"]}),
    ):
        assert (await gql(query, variables, as_user=books.bob)).codes == ["NOT_FOUND"]
    assert await books_state() == before


async def test_a_plan_with_payments_is_not_deleted(gql, books):
    made = await plan(gql, books.fiona, books.signed, 1, "500.00", day(10))
    spare = await plan(gql, books.fiona, books.signed, 2, "500.00", day(40))
    await pay(gql, books.fiona, books.signed, "100.00", planId=made["id"])
    before = await books_state()
    assert (await gql(DELETE_PLAN, {"id": made["id"]}, as_user=books.fiona)).codes == ["CONFLICT"]
    assert await books_state() == before
    await gql.ok(DELETE_PLAN, {"id": spare["id"]}, as_user=books.fiona)
    assert not await PaymentPlan.exists(id=pk(spare["id"]))
    assert await OperationLog.exists(action="DELETE_PAYMENT_PLAN")


# ---------------------------------------------------------------------------
# payments


async def test_payments_reduce_what_is_outstanding_exactly(gql, books):
    for amount in ("0.10", "0.20", "3333.33", "3333.33"):
        result = await pay(gql, books.alice, books.signed, amount, method="Transfer")
        assert not result.errors, result.errors
    payment = result.data["createPayment"]
    assert payment["createdBy"] == {"username": "alice"}
    assert payment["contract"] == {"paidAmount": "6666.96", "outstandingAmount": "3333.04"}
    result = await pay(gql, books.fiona, books.signed, "3333.04")  # exactly what is left
    assert result.data["createPayment"]["contract"]["outstandingAmount"] == "0.00"
    view = await contract_view(gql, books.alice, books.signed)
    assert (view["total"], view["paidAmount"], view["outstandingAmount"]) == (
        "10000.00", "10000.00", "0.00"
    )  # fmt: skip
    assert [p["amount"] for p in view["payments"]] == [
        "0.10", "0.20", "3333.33", "3333.33", "3333.04"
    ]  # fmt: skip
    entry = await OperationLog.filter(action="CREATE_PAYMENT").order_by("id").first()
    assert entry.changes["payment"][1]["amount"] == "0.10"
    assert await Event.filter(kind="contract.changed", record_id=books.signed.id).count() == 5


@pytest.mark.parametrize(
    ("amount", "more", "field"),
    [
        ("0", {}, "amount"),
        ("-1.00", {}, "amount"),
        ("0.001", {}, "amount"),
        ("10000.01", {}, "amount"),  # more than is outstanding
        ("1.00", {"paidOn": "tomorrow"}, "paidOn"),
        ("1.00", {"planId": "other"}, "planId"),
    ],
)
async def test_bad_payments_are_refused(gql, books, amount, more, field):
    other = await make_contract(books.alice, books.acme, "Other", "50.00", ContractStatus.APPROVED)
    others_plan = await PaymentPlan.create(
        contract=other, period=1, planned_amount=Decimal("50.00"), planned_on=day(3)
    )
    values = {"tomorrow": day(1), "other": gid("PaymentPlan", others_plan.id)}
    more = {k: values.get(v, v) for k, v in more.items()}
    before = await books_state()
    result = await pay(gql, books.fiona, books.signed, amount, **more)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await books_state() == before


@pytest.mark.parametrize(
    "status", [ContractStatus.DRAFT, ContractStatus.PENDING_APPROVAL, ContractStatus.REJECTED,
               ContractStatus.VOIDED],
)  # fmt: skip
async def test_payments_only_on_approved_contracts(gql, books, status):
    await Contract.filter(id=books.signed.id).update(status=status)
    before = await books_state()
    assert (await pay(gql, books.fiona, books.signed, "1.00")).codes == ["CONFLICT"]
    assert await books_state() == before


async def test_payments_out_of_reach(gql, org, books):
    await CustomerTeamMember.create(customer=books.acme, user=books.bob, access=TeamAccess.READ)
    auditor = await org.user("auditor", roles=[await org.role("Auditor", DataScope.ALL, [])])
    before = await books_state()
    assert (await pay(gql, books.bob, books.signed, "1.00")).codes == ["FORBIDDEN"]  # READ team
    assert (await pay(gql, auditor, books.signed, "1.00")).codes == ["FORBIDDEN"]  # no right
    await CustomerTeamMember.all().delete()
    assert (await pay(gql, books.bob, books.signed, "1.00")).codes == ["NOT_FOUND"]
    assert await books_state() == before


async def test_payments_racing_for_the_last_amount_do_not_overpay(gql, books):
    await Payment.create(
        contract=books.signed, amount=Decimal("9000.00"), paid_on=day(-3), created_by=books.fiona
    )
    results = await asyncio.gather(
        pay(gql, books.fiona, books.signed, "1000.00"),
        pay(gql, books.alice, books.signed, "1000.00"),
    )
    assert sorted(r.codes for r in results) == [[], ["BAD_USER_INPUT"]]
    assert await Payment.filter(contract=books.signed).count() == 2
    view = await contract_view(gql, books.fiona, books.signed)
    assert view["outstandingAmount"] == "0.00"


async def test_many_payments_racing_stop_at_the_total(gql, books):
    results = await asyncio.gather(
        *(pay(gql, books.fiona, books.signed, "3000.00") for _ in range(5))
    )
    assert sorted(r.codes for r in results) == [[], [], [], ["BAD_USER_INPUT"], ["BAD_USER_INPUT"]]
    amounts = await Payment.filter(contract=books.signed).values_list("amount", flat=True)
    assert sum(amounts) == Decimal("9000.00")


async def test_deleting_a_payment_makes_it_owed_again(gql, books):
    result = await pay(gql, books.alice, books.signed, "2500.00")
    payment_id = result.data["createPayment"]["id"]
    assert (await gql(NODE, {"id": payment_id}, as_user=books.alice)).data["node"]["id"] == (
        payment_id
    )
    before = await books_state()
    for user, code in ((books.alice, "FORBIDDEN"), (books.bob, "NOT_FOUND")):
        result = await gql(DELETE_PAYMENT, {"id": payment_id}, as_user=user)
        assert result.codes == [code]
    assert (await gql(NODE, {"id": payment_id}, as_user=books.bob)).codes == ["NOT_FOUND"]
    assert await books_state() == before

    await gql.ok(DELETE_PAYMENT, {"id": payment_id}, as_user=books.fiona)
    assert not await Payment.exists(id=pk(payment_id))
    view = await contract_view(gql, books.alice, books.signed)
    assert view["outstandingAmount"] == "10000.00"
    entry = await OperationLog.get(action="DELETE_PAYMENT")
    assert entry.changes["payment"][0]["amount"] == "2500.00"


# ---------------------------------------------------------------------------
# receivables


async def test_receivables_list_approved_contracts_still_owed_in_scope(gql, org, books):
    paid_up = await make_contract(books.alice, books.acme, "Paid up", "100.00",
                                  ContractStatus.APPROVED)  # fmt: skip
    await Payment.create(
        contract=paid_up, amount=Decimal("100.00"), paid_on=day(0), created_by=books.fiona
    )
    await make_contract(books.alice, books.acme, "Draft", "500.00", ContractStatus.DRAFT)
    late = await make_contract(books.alice, books.acme, "Late", "800.00", ContractStatus.APPROVED)
    await PaymentPlan.create(contract=late, period=1, planned_amount=Decimal("300.00"),
                             planned_on=day(-5))  # fmt: skip
    await Payment.create(contract=late, amount=Decimal("0.10"), paid_on=day(0),
                         created_by=books.fiona)  # fmt: skip
    on_time = await PaymentPlan.create(
        contract=books.signed, period=1, planned_amount=Decimal("100.00"), planned_on=day(-5)
    )
    await Payment.create(contract=books.signed, plan=on_time, amount=Decimal("100.00"),
                         paid_on=day(-5), created_by=books.fiona)  # fmt: skip
    bobs = await Customer.create(name="Bobs", name_key="bobs", owner=books.bob,
                                 created_by=books.bob)  # fmt: skip
    await make_contract(books.bob, bobs, "Bob's", "70.00", ContractStatus.APPROVED)

    async def owed(user: User, **filter) -> dict[str, str]:
        conn = (await gql.ok(RECEIVABLES, {"filter": filter}, as_user=user))["receivables"]
        assert conn["totalCount"] == len(conn["edges"])
        return {e["node"]["title"]: e["node"]["outstandingAmount"] for e in conn["edges"]}

    assert await owed(books.alice) == {"Signed": "9900.00", "Late": "799.90"}
    assert await owed(books.bob) == {"Bob's": "70.00"}
    assert await owed(books.fiona) == {"Signed": "9900.00", "Late": "799.90", "Bob's": "70.00"}
    assert await owed(books.fiona, overdueOnly=True) == {"Late": "799.90"}
    assert await owed(books.fiona, customerId=gid("Customer", bobs.id)) == {"Bob's": "70.00"}
    assert await owed(books.fiona, ownerId=gid("User", books.alice.id)) == {
        "Signed": "9900.00", "Late": "799.90"
    }  # fmt: skip

    async def receivable(user: User, customer: Customer):
        result = await gql(RECEIVABLE, {"id": gid("Customer", customer.id)}, as_user=user)
        return result.data["node"]["receivable"] if not result.errors else result.codes

    assert await receivable(books.alice, books.acme) == "10699.90"
    assert await receivable(books.fiona, bobs) == "70.00"
    assert await receivable(books.alice, bobs) == ["NOT_FOUND"]
    # a contract on Acme owned outside alice's scope does not count for her
    await make_contract(books.bob, books.acme, "Bob's on Acme", "5.00", ContractStatus.APPROVED)
    assert await receivable(books.alice, books.acme) == "10699.90"
    assert await receivable(books.fiona, books.acme) == "10704.90"
