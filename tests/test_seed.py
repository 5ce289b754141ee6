"""Demo data (`meihua seed --demo`): a believable company that keeps every rule real data keeps."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meihua.models import (
    ApprovalRecord,
    Contact,
    Contract,
    ContractStatus,
    Customer,
    Department,
    FollowUp,
    Lead,
    LeadStatus,
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    Payment,
    PaymentPlan,
    PoolMovement,
    PoolMovementKind,
    Task,
    TaskStatus,
    User,
)
from meihua.resolvers.auth import verify_password
from meihua.resolvers.customers import normalize_name, normalize_phone
from meihua.resolvers.demo import DEMO_PASSWORD, seed_demo
from meihua.resolvers.errors import Conflict
from tests.test_cli import meihua


async def test_demo_company_keeps_the_crm_rules(db):
    summary = await seed_demo(30, seed=7)

    customers = await Customer.all()
    assert len(customers) == 30 == summary.counts["Customer"]
    # Every customer has an owner, unless its owner released it to the pool.
    released = set(
        await PoolMovement.filter(kind=PoolMovementKind.RELEASED).values_list(
            "customer_id", flat=True
        )
    )
    assert all((c.owner_id is None) == (c.id in released) for c in customers)
    assert all(c.owner_id or c.previous_owner_id for c in customers)
    # First in owns: names and phones are unique once normalized.
    assert all(c.name_key == normalize_name(c.name) for c in customers)
    assert all(c.phone_key == normalize_phone(c.phone) for c in customers)
    assert len({c.name_key for c in customers}) == 30
    assert len({c.phone_key for c in customers}) == 30

    contacts = defaultdict(list)
    for contact in await Contact.all():
        contacts[contact.customer_id].append(contact)
    for customer in customers:
        mine = contacts[customer.id]
        assert 1 <= len(mine) <= 3
        assert len({c.decision_role for c in mine}) == len(mine)  # different petals
        assert sum(c.is_primary for c in mine) == 1

    stage_ids = set(await OpportunityStage.all().values_list("id", flat=True))
    opportunities = await Opportunity.all()
    assert opportunities
    assert all(o.stage_id in stage_ids for o in opportunities)
    assert all(isinstance(o.amount, Decimal) and o.amount > 0 for o in opportunities)
    assert all((o.status == OpportunityStatus.OPEN) == (o.closed_at is None) for o in opportunities)

    approved = await Contract.filter(status=ContractStatus.APPROVED)
    assert approved
    for contract in approved:
        plans = await PaymentPlan.filter(contract_id=contract.id)
        paid = await Payment.filter(contract_id=contract.id).values_list("amount", flat=True)
        assert sum(p.planned_amount for p in plans) == contract.total
        assert sum(paid, Decimal(0)) <= contract.total

    for customer in customers:
        times = await FollowUp.filter(customer_id=customer.id).values_list("occurred_at", flat=True)
        assert times and customer.last_followup_at == max(times)
    assert await Task.filter(status=TaskStatus.OPEN).exists()
    assert await Lead.filter(status=LeadStatus.CONVERTED).exists()


async def test_demo_users_sign_in_and_report_up_a_manager_chain(db):
    summary = await seed_demo(5, seed=1)

    rep = await User.get(username="demo.sh.1").prefetch_related("roles", "department")
    assert verify_password(rep.password_hash, DEMO_PASSWORD)
    assert [r.name for r in rep.roles] == ["Sales Rep"]
    assert rep.department.name == "上海组"
    chain = []
    user = rep
    while user.manager_id is not None:
        user = await User.get(id=user.manager_id)
        chain.append(user.username)
    assert chain == ["demo.sh.lead", "demo.east", "demo.ceo"]
    shanghai = await Department.get(name="上海组")
    assert (await Department.get(id=shanghai.parent_id)).name == "华东销售部"
    assert "demo.finance" in summary.usernames


async def test_refuses_a_database_with_customers_and_later_inserts_still_work(db):
    await seed_demo(3, seed=2)

    with pytest.raises(Conflict):
        await seed_demo(3, seed=2)
    assert await Customer.all().count() == 3
    # Explicit ids must not leave the id sequences behind (PostgreSQL serials).
    owner = await User.get(username="demo.sh.1")
    extra = await Customer.create(name="新客户", name_key="新客户", owner=owner, created_by=owner)
    assert extra.id > max(await Customer.exclude(id=extra.id).values_list("id", flat=True))


def _names(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM customer ORDER BY id")]


def test_seed_command_fills_an_empty_database_once(tmp_path):
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"

    result = meihua(
        "seed", "--demo", "--customers", "20", "--seed-value", "5",
        cwd=tmp_path, DATABASE_URL=f"sqlite://{first}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert DEMO_PASSWORD in result.stdout and "20 Customer" in result.stdout
    assert len(_names(first)) == 20

    again = meihua("seed", "--demo", cwd=tmp_path, DATABASE_URL=f"sqlite://{first}")
    assert again.returncode == 1
    assert "already has customers" in again.stderr
    assert len(_names(first)) == 20

    same = meihua(
        "seed", "--demo", "--customers", "20", "--seed-value", "5",
        cwd=tmp_path, DATABASE_URL=f"sqlite://{second}",
    )  # fmt: skip
    assert same.returncode == 0, same.stderr
    assert _names(second) == _names(first)
    assert Counter(_names(first)).most_common(1)[0][1] == 1


async def _dump() -> list[tuple]:
    """Everything the demo wrote that a user sees, without the write-time stamps."""
    rows: list[tuple] = []
    for model, fields in [
        (Customer, ("name", "phone", "level", "created_at", "last_followup_at")),
        (Contact, ("name", "mobile", "decision_role", "created_at")),
        (Opportunity, ("name", "amount", "status", "created_at", "closed_at")),
        (OpportunityStageChange, ("to_status", "reason", "at")),
        (Contract, ("number", "total", "status", "signed_on")),
        (Payment, ("amount", "paid_on")),
        (FollowUp, ("target_type", "content", "occurred_at")),
    ]:
        rows += await model.all().order_by("id").values_list(*fields)
    return rows


async def test_same_seed_value_gives_the_same_data(db):
    today = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    await seed_demo(40, seed=11, today=today)
    first = await _dump()
    for model in (FollowUp, Payment, PaymentPlan, ApprovalRecord, Contract, Task):
        await model.all().delete()
    for model in (OpportunityStageChange, Opportunity, Lead, PoolMovement, Contact, Customer):
        await model.all().delete()
    for user in await User.filter(username__startswith="demo."):
        user.username = f"first.{user.username}"  # the demo refuses to make its users twice
        await user.save(update_fields=["username"])

    await seed_demo(40, seed=11, today=today)
    assert await _dump() == first
    assert await _dump() != [] and len(first) > 200


async def test_dates_spread_over_two_years_and_deals_move_through_stages(db):
    await seed_demo(200, seed=3)
    now = datetime.now(UTC)
    year_ago = now - timedelta(days=365)

    customers = await Customer.all()
    assert min(c.created_at for c in customers) < now - timedelta(days=600)
    contacts = await Contact.all()
    assert any(c.created_at < year_ago for c in contacts)
    created = {c.id: c.created_at for c in customers}
    assert all(c.created_at >= created[c.customer_id] for c in contacts)

    opportunities = await Opportunity.all()
    closed = [o.closed_at for o in opportunities if o.closed_at is not None]
    assert min(closed) < year_ago  # not all closed in the last few weeks
    assert sum(c > now - timedelta(days=30) for c in closed) < len(closed) / 4  # no pile-up
    assert all(o.closed_at >= o.created_at for o in opportunities if o.closed_at)
    signed = await Contract.all().values_list("signed_on", flat=True)
    assert min(signed) < year_ago.date()
    payments = await Payment.all()
    assert min(p.paid_on for p in payments) < year_ago.date()
    assert all(p.created_at.date() == p.paid_on for p in payments)  # entered when paid
    approvals = await ApprovalRecord.all().values_list("at", flat=True)
    assert min(approvals) < year_ago

    stages = [s.id for s in await OpportunityStage.all().order_by("order")]
    history = defaultdict(list)
    for change in await OpportunityStageChange.all().order_by("at", "id"):
        history[change.opportunity_id].append(change)
    for opportunity in opportunities:
        moves = [c for c in history[opportunity.id] if c.to_status == OpportunityStatus.OPEN]
        # Opened at the first stage and moved one stage at a time to where it stands.
        assert [c.to_stage_id for c in moves] == stages[: stages.index(opportunity.stage_id) + 1]
        assert all(c.at >= opportunity.created_at for c in moves)
        closes = [c for c in history[opportunity.id] if c.to_status != OpportunityStatus.OPEN]
        assert len(closes) == (opportunity.status != OpportunityStatus.OPEN)
    assert any(len(moves) > 2 for moves in history.values())


async def test_children_come_in_proportion_to_customers(db):
    summary = await seed_demo(300, seed=5)
    counts = summary.counts

    assert counts["Customer"] == 300 == await Customer.all().count()
    for model in (Contact, Opportunity, Contract, FollowUp, PoolMovement):
        assert counts[model.__name__] == await model.all().count()
    assert 1.5 <= counts["Contact"] / 300 <= 2.5  # one to three each
    assert 1.2 <= counts["Opportunity"] / 300 <= 1.8  # zero to three each
    assert 0.2 <= counts["Contract"] / 300 <= 0.55  # a quarter of deals are won
    assert 2 <= counts["FollowUp"] / 300 <= 3  # one to four each
    assert counts["OpportunityStageChange"] > 2 * counts["Opportunity"]
    assert 0 < counts["PoolMovement"] < 0.06 * 300  # a few went back to the pool
