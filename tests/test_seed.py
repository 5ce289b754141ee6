"""Demo data (`meihua seed --demo`): a believable company that keeps every rule real data keeps."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from meihua.models import (
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
    OpportunityStatus,
    Payment,
    PaymentPlan,
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
    assert all(c.owner_id is not None for c in customers)
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
