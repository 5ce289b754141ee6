"""The contract approval flow (合同审批): configuring steps, submitting, approving and
rejecting step by step, who may decide (and see) what, concurrency, and voiding."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import pytest

from meihua.models import (
    ApprovalRecord,
    ApprovalStep,
    ApproverKind,
    Contract,
    ContractItem,
    ContractStatus,
    Customer,
    CustomerTeamMember,
    DataScope,
    Event,
    OperationLog,
    Payment,
    Product,
    Role,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

STATE = "id status currentStep version"
SUBMIT = f"mutation($id: ID!) {{ submitContract(id: $id) {{ {STATE} }} }}"
APPROVE = f"""
mutation($id: ID!, $comment: String, $v: Int) {{
  approveContract(id: $id, comment: $comment, expectedVersion: $v) {{ {STATE} }}
}}
"""
REJECT = f"""
mutation($id: ID!, $comment: String!) {{
  rejectContract(id: $id, comment: $comment) {{ {STATE} }}
}}
"""
VOID = f"mutation($id: ID!, $r: String!) {{ voidContract(id: $id, reason: $r) {{ {STATE} }} }}"
UPDATE = """
mutation($id: ID!, $input: UpdateContractInput!) {
  updateContract(id: $id, input: $input) { id title status }
}
"""
STEPS = "{ approvalSteps { order kind user { username } role { name } } }"
SET_STEPS = """
mutation($steps: [ApprovalStepInput!]!) {
  setApprovalSteps(steps: $steps) { order kind user { username } role { name } }
}
"""
NODE = """
query($id: ID!) {
  node(id: $id) {
    ... on Contract {
      number status customer { name }
      approvals { decision step comment actor { username } }
    }
  }
}
"""
AWAITING = """
query($awaiting: Boolean = true) {
  contracts(filter: {awaitingMyApproval: $awaiting}) { totalCount edges { node { number } } }
}
"""


@dataclass
class Company:
    boss: User  # Sales Manager in Sales (has contract:approve); alice's manager
    alice: User  # Sales Rep in Sales
    bob: User  # Sales Rep in Sales, no manager
    carol: User  # Sales Rep in Support
    dave: User  # in Support, a reviewer who sees only his own records
    fiona: User  # Finance
    frank: User  # Finance
    root: User  # super admin
    admin: User  # Administrator (settings:manage)
    acme: Customer  # alice's
    finance: Role
    reviewer: Role


@pytest.fixture
async def company(org) -> Company:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    finance = await org.default_role("Finance")
    reviewer = await org.role("Reviewer", DataScope.SELF, ["contract:approve"])
    boss = await org.user("boss", department=sales, roles=[await org.default_role("Sales Manager")])
    alice = await org.user("alice", department=sales, roles=[rep], manager=boss)
    return Company(
        boss=boss,
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        dave=await org.user("dave", department=support, roles=[reviewer]),
        fiona=await org.user("fiona", roles=[finance]),
        frank=await org.user("frank", roles=[finance]),
        root=await org.admin("root"),
        admin=await org.user("admin", roles=[await org.default_role("Administrator")]),
        acme=await Customer.create(
            name="Acme", name_key=normalize_name("Acme"), owner=alice, created_by=alice
        ),
        finance=finance,
        reviewer=reviewer,
    )


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


async def draft(owner: User, customer: Customer, total: str = "1000.00", lines: int = 1):
    """A DRAFT contract, straight through the models."""
    product, _ = await Product.get_or_create(
        code="P-1", defaults={"name": "Service", "unit_price": Decimal(total)}
    )
    number = f"HT-TEST-{await Contract.all().count() + 1:06d}"
    contract = await Contract.create(
        number=number, title="Service", customer=customer, owner=owner, created_by=owner,
        total=Decimal(total) if lines else Decimal("0.00"),
    )  # fmt: skip
    for _ in range(lines):
        await ContractItem.create(
            contract=contract, product=product, quantity=1, unit_price=Decimal(total),
            amount=Decimal(total),
        )  # fmt: skip
    return contract


async def use_steps(*steps: tuple) -> None:
    await ApprovalStep.all().delete()
    for order, (kind, user, role) in enumerate(steps, start=1):
        await ApprovalStep.create(order=order, kind=kind, user=user, role=role)


async def state(contract: Contract) -> tuple:
    row = await Contract.get(id=contract.id)
    return row.status, row.current_step


async def written(contract: Contract) -> tuple:
    """What a refused decision must leave as it was."""
    row = await Contract.get(id=contract.id)
    return (
        row.status, row.current_step, row.version,
        await ApprovalRecord.filter(contract_id=contract.id).count(),
        await OperationLog.filter(record_id=contract.id).count(),
        await Event.all().count(),
    )  # fmt: skip


async def recipients(kind: str, contract: Contract) -> set[int]:
    return set(
        await Event.filter(kind=kind, record_id=contract.id).values_list("recipient_id", flat=True)
    )


# ---------------------------------------------------------------------------
# configuring the flow


async def test_the_default_flow_is_one_finance_step(gql, company):
    data = await gql.ok(STEPS, as_user=company.alice)
    assert data["approvalSteps"] == [
        {"order": 1, "kind": "ROLE", "user": None, "role": {"name": "Finance"}}
    ]


async def test_admins_replace_the_flow(gql, company):
    steps = [
        {"kind": "USER", "userId": gid("User", company.dave.id)},
        {"kind": "OWNER_MANAGER"},
        {"kind": "ROLE", "roleId": gid("Role", company.finance.id)},
    ]
    data = await gql.ok(SET_STEPS, {"steps": steps}, as_user=company.admin)
    assert data["setApprovalSteps"] == [
        {"order": 1, "kind": "USER", "user": {"username": "dave"}, "role": None},
        {"order": 2, "kind": "OWNER_MANAGER", "user": None, "role": None},
        {"order": 3, "kind": "ROLE", "user": None, "role": {"name": "Finance"}},
    ]
    assert await ApprovalStep.all().count() == 3
    assert (await gql.ok(STEPS, as_user=company.bob))["approvalSteps"] == data["setApprovalSteps"]


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"kind": "USER"}], "steps.0.userId"),
        ([{"kind": "USER", "userId": "inactive"}], "steps.0.userId"),
        ([{"kind": "OWNER_MANAGER"}, {"kind": "ROLE"}], "steps.1.roleId"),
        ([{"kind": "OWNER_MANAGER", "userId": "dave"}], "steps.0.userId"),
        ([{"kind": "USER", "userId": "dave", "roleId": "finance"}], "steps.0.roleId"),
        ([{"kind": "ROLE", "roleId": "dave"}], "steps.0.roleId"),  # a user id, not a role id
    ],
)
async def test_a_flow_with_bad_steps_is_refused(gql, org, company, steps, field):
    gone = await org.user("gone")
    await User.filter(id=gone.id).update(is_active=False)
    ids = {
        "inactive": gid("User", gone.id),
        "dave": gid("User", company.dave.id),
        "finance": gid("Role", company.finance.id),
    }
    steps = [{k: ids.get(v, v) for k, v in step.items()} for step in steps]
    before = await ApprovalStep.all().values()
    result = await gql(SET_STEPS, {"steps": steps}, as_user=company.admin)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await ApprovalStep.all().values() == before


async def test_only_settings_managers_change_the_flow(gql, company):
    before = await ApprovalStep.all().values()
    for user in (company.alice, company.fiona, company.boss):
        result = await gql(SET_STEPS, {"steps": []}, as_user=user)
        assert result.codes == ["FORBIDDEN"]
    assert await ApprovalStep.all().values() == before


async def test_the_flow_cannot_shrink_under_a_waiting_contract(gql, company):
    await use_steps(
        (ApproverKind.ROLE, None, company.finance), (ApproverKind.ROLE, None, company.finance)
    )
    contract = await draft(company.alice, company.acme)
    await Contract.filter(id=contract.id).update(
        status=ContractStatus.PENDING_APPROVAL, current_step=2
    )
    before = await ApprovalStep.all().values()
    one_step = [{"kind": "ROLE", "roleId": gid("Role", company.finance.id)}]
    result = await gql(SET_STEPS, {"steps": one_step}, as_user=company.admin)
    assert result.codes == ["CONFLICT"]
    assert await ApprovalStep.all().values() == before


# ---------------------------------------------------------------------------
# submitting


async def test_submitting_puts_the_contract_at_step_one_and_asks_its_approvers(gql, company):
    contract = await draft(company.alice, company.acme)
    data = await gql.ok(SUBMIT, {"id": gid("Contract", contract.id)}, as_user=company.alice)
    assert data["submitContract"]["status"] == "PENDING_APPROVAL"
    assert data["submitContract"]["currentStep"] == 1
    record = await ApprovalRecord.get(contract_id=contract.id)
    assert (record.decision, record.actor_id, record.step) == ("SUBMITTED", company.alice.id, None)
    # a ROLE step asks each active holder of the role, personally
    assert await recipients("approval.requested", contract) == {company.fiona.id, company.frank.id}
    entry = await OperationLog.get(record_id=contract.id, action="SUBMITTED")
    assert entry.changes["status"] == ["DRAFT", "PENDING_APPROVAL"]


async def test_without_steps_a_submission_is_approved_at_once(gql, company):
    await ApprovalStep.all().delete()
    contract = await draft(company.alice, company.acme)
    data = await gql.ok(SUBMIT, {"id": gid("Contract", contract.id)}, as_user=company.alice)
    assert data["submitContract"]["status"] == "APPROVED"
    decisions = await ApprovalRecord.filter(contract_id=contract.id).order_by("id")
    assert [r.decision for r in decisions] == ["SUBMITTED", "APPROVED"]
    assert await recipients("approval.decided", contract) == {company.alice.id}


async def test_what_cannot_be_submitted(gql, company):
    empty = await draft(company.alice, company.acme, lines=0)
    before = await written(empty)
    result = await gql(SUBMIT, {"id": gid("Contract", empty.id)}, as_user=company.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "items"
    assert await written(empty) == before

    contract = await draft(company.alice, company.acme)
    await CustomerTeamMember.create(
        customer=company.acme, user=company.carol, access=TeamAccess.READ
    )
    before = await written(contract)
    for user, code in ((company.bob, "NOT_FOUND"), (company.carol, "FORBIDDEN")):
        result = await gql(SUBMIT, {"id": gid("Contract", contract.id)}, as_user=user)
        assert result.codes == [code]
    assert await written(contract) == before

    await gql.ok(SUBMIT, {"id": gid("Contract", contract.id)}, as_user=company.alice)
    before = await written(contract)
    result = await gql(SUBMIT, {"id": gid("Contract", contract.id)}, as_user=company.alice)
    assert result.codes == ["CONFLICT"]
    assert await written(contract) == before


# ---------------------------------------------------------------------------
# deciding


async def test_a_three_step_flow_from_submission_to_approval(gql, company):
    await use_steps(
        (ApproverKind.USER, company.dave, None),
        (ApproverKind.OWNER_MANAGER, None, None),
        (ApproverKind.ROLE, None, company.finance),
    )
    contract = await draft(company.alice, company.acme)
    cid = gid("Contract", contract.id)
    await gql.ok(SUBMIT, {"id": cid}, as_user=company.alice)
    assert await recipients("approval.requested", contract) == {company.dave.id}

    # dave sees nothing of alice's, except what waits for his decision
    data = await gql.ok(NODE, {"id": cid}, as_user=company.dave)
    assert data["node"]["status"] == "PENDING_APPROVAL"
    assert data["node"]["customer"] is None  # the customer stays out of his sight
    awaiting = (await gql.ok(AWAITING, as_user=company.dave))["contracts"]
    assert awaiting["totalCount"] == 1
    assert (await gql.ok(AWAITING, as_user=company.fiona))["contracts"]["totalCount"] == 0
    others = await gql.ok(AWAITING, {"awaiting": False}, as_user=company.dave)
    assert others["contracts"]["totalCount"] == 0  # all he sees is what waits for him

    # not yet finance's turn; bob does not even see it
    before = await written(contract)
    assert (await gql(APPROVE, {"id": cid}, as_user=company.fiona)).codes == ["FORBIDDEN"]
    assert (await gql(APPROVE, {"id": cid}, as_user=company.bob)).codes == ["NOT_FOUND"]
    assert await written(contract) == before

    step1 = await gql.ok(APPROVE, {"id": cid, "comment": "Terms fine"}, as_user=company.dave)
    assert step1["approveContract"]["currentStep"] == 2
    assert (await gql(NODE, {"id": cid}, as_user=company.dave)).codes == ["NOT_FOUND"]
    assert await recipients("approval.decided", contract) == {company.alice.id}
    latest = await Event.filter(kind="approval.requested").order_by("-id").first()
    assert latest.recipient_id == company.boss.id  # step 2: alice's manager

    await gql.ok(APPROVE, {"id": cid}, as_user=company.boss)  # alice's manager
    assert await state(contract) == ("PENDING_APPROVAL", 3)
    done = await gql.ok(APPROVE, {"id": cid, "comment": "OK"}, as_user=company.frank)
    assert done["approveContract"] == {
        "id": cid, "status": "APPROVED", "currentStep": None, "version": 5
    }  # fmt: skip

    history = (await gql.ok(NODE, {"id": cid}, as_user=company.alice))["node"]["approvals"]
    assert history == [
        {"decision": "SUBMITTED", "step": None, "comment": None, "actor": {"username": "alice"}},
        {"decision": "APPROVED", "step": 1, "comment": "Terms fine",
         "actor": {"username": "dave"}},
        {"decision": "APPROVED", "step": 2, "comment": None, "actor": {"username": "boss"}},
        {"decision": "APPROVED", "step": 3, "comment": "OK", "actor": {"username": "frank"}},
    ]  # fmt: skip
    actions = (
        await OperationLog.filter(record_id=contract.id)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["SUBMITTED", "APPROVED", "APPROVED", "APPROVED"]
    # approving what is already approved
    assert (await gql(APPROVE, {"id": cid}, as_user=company.fiona)).codes == ["CONFLICT"]


async def test_an_owner_without_a_manager_is_approved_by_the_super_admins(gql, company):
    await use_steps((ApproverKind.OWNER_MANAGER, None, None))
    bobs = await Customer.create(
        name="Bobs", name_key="bobs", owner=company.bob, created_by=company.bob
    )
    contract = await draft(company.bob, bobs)
    cid = gid("Contract", contract.id)
    await gql.ok(SUBMIT, {"id": cid}, as_user=company.bob)
    assert await recipients("approval.requested", contract) == {company.root.id}
    # boss sees bob's contracts (his department) but is not bob's manager
    assert (await gql(APPROVE, {"id": cid}, as_user=company.boss)).codes == ["FORBIDDEN"]
    await gql.ok(APPROVE, {"id": cid}, as_user=company.root)
    assert await state(contract) == ("APPROVED", None)


async def test_deciding_needs_the_approve_permission_too(gql, org, company):
    # carol holds the step's role, but the role does not carry contract:approve
    plain_role = await org.role("Contract desk", DataScope.SELF, [])
    await company.carol.roles.add(plain_role)
    await use_steps((ApproverKind.ROLE, None, plain_role))
    contract = await draft(company.alice, company.acme)
    cid = gid("Contract", contract.id)
    await gql.ok(SUBMIT, {"id": cid}, as_user=company.alice)
    # nobody able to decide holds the role: the request falls to the super admins
    assert await recipients("approval.requested", contract) == {company.root.id}
    before = await written(contract)
    assert (await gql(APPROVE, {"id": cid}, as_user=company.carol)).codes == ["NOT_FOUND"]
    assert (await gql(NODE, {"id": cid}, as_user=company.carol)).codes == ["NOT_FOUND"]
    assert await written(contract) == before


async def test_a_rejection_says_why_and_the_owner_may_resubmit(gql, company):
    contract = await draft(company.alice, company.acme)
    cid = gid("Contract", contract.id)
    await gql.ok(SUBMIT, {"id": cid}, as_user=company.alice)
    before = await written(contract)
    result = await gql(REJECT, {"id": cid, "comment": "   "}, as_user=company.fiona)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "comment"
    assert (await gql(REJECT, {"id": cid, "comment": "No"}, as_user=company.alice)).codes == [
        "FORBIDDEN"  # the owner sees it, but is no approver
    ]
    assert (await gql(REJECT, {"id": cid, "comment": "No"}, as_user=company.bob)).codes == [
        "NOT_FOUND"
    ]
    assert await written(contract) == before

    data = await gql.ok(REJECT, {"id": cid, "comment": "Price too low"}, as_user=company.fiona)
    assert data["rejectContract"]["status"] == "REJECTED"
    assert data["rejectContract"]["currentStep"] is None
    record = await ApprovalRecord.get(contract_id=contract.id, decision="REJECTED")
    assert (record.step, record.comment, record.actor_id) == (1, "Price too low", company.fiona.id)
    decided = await Event.get(kind="approval.decided", record_id=contract.id)
    assert decided.recipient_id == company.alice.id
    assert decided.payload["decision"] == "REJECTED"

    edited = await gql.ok(
        UPDATE, {"id": cid, "input": {"title": "Repriced"}}, as_user=company.alice
    )
    assert edited["updateContract"]["status"] == "REJECTED"
    again = await gql.ok(SUBMIT, {"id": cid}, as_user=company.alice)
    assert again["submitContract"]["status"] == "PENDING_APPROVAL"
    assert again["submitContract"]["currentStep"] == 1


async def test_two_approvers_at_once_decide_a_step_once(gql, company):
    contract = await draft(company.alice, company.acme)
    cid = gid("Contract", contract.id)
    await gql.ok(SUBMIT, {"id": cid}, as_user=company.alice)
    results = await asyncio.gather(
        gql(APPROVE, {"id": cid}, as_user=company.fiona),
        gql(APPROVE, {"id": cid}, as_user=company.frank),
    )
    assert sorted(r.codes for r in results) == [[], ["CONFLICT"]]
    assert await state(contract) == ("APPROVED", None)
    assert await ApprovalRecord.filter(contract_id=contract.id, decision="APPROVED").count() == 1
    assert await Event.filter(kind="approval.decided", record_id=contract.id).count() == 1


async def test_approvers_of_the_same_version_cannot_both_advance_a_long_flow(gql, company):
    await use_steps(
        (ApproverKind.ROLE, None, company.finance), (ApproverKind.ROLE, None, company.finance)
    )
    contract = await draft(company.alice, company.acme)
    cid = gid("Contract", contract.id)
    submitted = await gql.ok(SUBMIT, {"id": cid}, as_user=company.alice)
    seen = submitted["submitContract"]["version"]
    results = await asyncio.gather(
        gql(APPROVE, {"id": cid, "v": seen}, as_user=company.fiona),
        gql(APPROVE, {"id": cid, "v": seen}, as_user=company.frank),
    )
    assert sorted(r.codes for r in results) == [[], ["CONFLICT"]]
    assert await state(contract) == ("PENDING_APPROVAL", 2)
    assert await ApprovalRecord.filter(contract_id=contract.id, decision="APPROVED").count() == 1


# ---------------------------------------------------------------------------
# voiding


async def test_voiding_an_approved_contract(gql, company):
    contract = await draft(company.alice, company.acme)
    cid = gid("Contract", contract.id)
    before = await written(contract)
    assert (await gql(VOID, {"id": cid, "r": "Typo"}, as_user=company.fiona)).codes == [
        "CONFLICT"  # only approved contracts are voided
    ]
    assert await written(contract) == before

    await Contract.filter(id=contract.id).update(status=ContractStatus.APPROVED)
    before = await written(contract)
    cases = [
        (company.alice, "Typo", "FORBIDDEN"),  # reps lack contract:void
        (company.bob, "Typo", "NOT_FOUND"),
        (company.fiona, "  ", "BAD_USER_INPUT"),  # a reason is required
    ]
    for user, reason, code in cases:
        assert (await gql(VOID, {"id": cid, "r": reason}, as_user=user)).codes == [code]
    assert await written(contract) == before

    data = await gql.ok(VOID, {"id": cid, "r": "Customer withdrew"}, as_user=company.fiona)
    assert data["voidContract"]["status"] == "VOIDED"
    record = await ApprovalRecord.get(contract_id=contract.id)
    assert (record.decision, record.comment) == ("VOIDED", "Customer withdrew")
    assert await OperationLog.exists(record_id=contract.id, action="VOIDED")
    assert await recipients("approval.decided", contract) == {company.alice.id}


async def test_a_contract_with_payments_is_not_voided(gql, company):
    contract = await draft(company.alice, company.acme)
    await Contract.filter(id=contract.id).update(status=ContractStatus.APPROVED)
    await Payment.create(
        contract=contract, amount=Decimal("10.00"), paid_on="2026-01-01",
        created_by=company.fiona,
    )  # fmt: skip
    before = await written(contract)
    result = await gql(VOID, {"id": gid("Contract", contract.id), "r": "x"}, as_user=company.fiona)
    assert result.codes == ["CONFLICT"]
    assert await written(contract) == before
