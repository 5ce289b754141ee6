"""Contracts (合同): drafting with exact line totals, generated numbers, editing only
before approval, deletion, transfer, listing and nesting under customers."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from meihua.models import (
    Contact,
    Contract,
    ContractItem,
    ContractStatus,
    Customer,
    CustomerTeamMember,
    DataScope,
    Event,
    OperationLog,
    Opportunity,
    OpportunityStage,
    Product,
    RecordType,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import from_global_id, to_global_id

FIELDS = """
id number title status total version currency signedOn startsOn endsOn remarks
customerId opportunityId signingContactId
owner { id } createdBy { id } customer { id name }
items { productId quantity unitPrice discount amount }
"""
CREATE = f"""
mutation($input: CreateContractInput!) {{ createContract(input: $input) {{ {FIELDS} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $input: UpdateContractInput!, $v: Int) {{
  updateContract(id: $id, input: $input, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
DELETE = "mutation($id: ID!) { deleteContract(id: $id) { deletedId } }"
TRANSFER = """
mutation($ids: [ID!]!, $owner: ID!) {
  transferContracts(ids: $ids, ownerId: $owner) { id owner { id } version }
}
"""
LIST = """
query($filter: ContractFilter, $orderBy: ContractOrder, $first: Int, $after: String) {
  contracts(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { node { id number title } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Contract { number title } } }"
CUSTOMER_CONTRACTS = """
query($id: ID!) { node(id: $id) { ... on Customer { contracts { id title } } } }
"""


@dataclass
class Sales:
    alice: User  # Sales Rep (SELF) in Sales, reports to boss
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales
    admin: User  # Administrator (ALL)
    acme: Customer  # alice's
    globex: Customer  # carol's
    widget: Product  # on sale, 100.00
    gadget: Product  # on sale, 0.05
    retired: Product  # deactivated


async def make_customer(name: str, owner: User) -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner=owner, created_by=owner
    )


@pytest.fixture
async def sales(org) -> Sales:
    dept = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    boss = await org.user("boss", department=dept, roles=[await org.default_role("Sales Manager")])
    alice = await org.user("alice", department=dept, roles=[rep], manager=boss)
    carol = await org.user("carol", department=support, roles=[rep])
    return Sales(
        alice=alice,
        bob=await org.user("bob", department=dept, roles=[rep]),
        carol=carol,
        boss=boss,
        admin=await org.user("admin", roles=[await org.default_role("Administrator")]),
        acme=await make_customer("Acme", alice),
        globex=await make_customer("Globex", carol),
        widget=await Product.create(name="Widget", code="W-1", unit_price=Decimal("100.00")),
        gadget=await Product.create(name="Gadget", code="G-1", unit_price=Decimal("0.05")),
        retired=await Product.create(
            name="Old", code="O-1", unit_price=Decimal("9.00"), is_active=False
        ),
    )


def gid(type_name: str, pk: int) -> str:
    return to_global_id(type_name, pk)


def pk(global_id: str) -> int:
    return from_global_id(global_id)[1]


def line(product: Product, quantity: str, unit_price: str | None = None, discount=None) -> dict:
    item = {"productId": gid("Product", product.id), "quantity": quantity}
    if unit_price is not None:
        item["unitPrice"] = unit_price
    if discount is not None:
        item["discount"] = discount
    return item


async def create(gql, user: User, customer: Customer, **fields) -> dict:
    fields.setdefault("title", "Annual supply")
    payload = {"customerId": gid("Customer", customer.id), **fields}
    return (await gql.ok(CREATE, {"input": payload}, as_user=user))["createContract"]


async def snapshot() -> tuple:
    """Everything a failed contract mutation must leave untouched."""
    contracts = await Contract.all().order_by("id").values()
    items = await ContractItem.all().order_by("id").values()
    logs = await OperationLog.filter(record_type=RecordType.CONTRACT).count()
    events = await Event.all().count()
    return contracts, items, logs, events


# ---------------------------------------------------------------------------
# creating


async def test_a_new_contract_is_a_draft_of_its_creator_with_a_readable_number(gql, sales):
    made = await create(gql, sales.alice, sales.acme, items=[line(sales.widget, "2")])
    assert made["status"] == "DRAFT"
    assert made["owner"] == {"id": gid("User", sales.alice.id)}
    assert made["createdBy"] == {"id": gid("User", sales.alice.id)}
    assert made["customer"] == {"id": gid("Customer", sales.acme.id), "name": "Acme"}
    assert made["currency"] == "CNY"
    assert made["version"] == 1
    row = await Contract.get(id=pk(made["id"]))
    assert re.fullmatch(r"HT-\d{8}-\d{6}", made["number"])
    assert made["number"].endswith(f"-{row.id:06d}")
    assert row.number == made["number"]
    # the unit price defaults to the product's list price
    assert made["items"] == [
        {"productId": gid("Product", sales.widget.id), "quantity": "2.00",
         "unitPrice": "100.00", "discount": "0.00", "amount": "200.00"},
    ]  # fmt: skip
    assert made["total"] == "200.00"


async def test_line_amounts_are_exact_and_rounded_half_up_to_cents(gql, sales):
    made = await create(
        gql,
        sales.alice,
        sales.acme,
        items=[
            line(sales.widget, "3", "33.33", "12.5"),  # 87.49125 -> 87.49
            line(sales.gadget, "1", None, "50"),  # 0.025 -> 0.03 (half-up, not to even)
            line(sales.gadget, "0.07", "0.15", "0.5"),  # 0.0104475 -> 0.01
            line(sales.widget, "9999999.99", "0.10", "33.33"),  # 666699.99933… -> 666700.00
            line(sales.widget, "1", "0.10"),
            line(sales.widget, "1", "0.20"),  # 0.1 + 0.2 is 0.30, not 0.30000000000000004
        ],
    )
    amounts = [item["amount"] for item in made["items"]]
    assert amounts == ["87.49", "0.03", "0.01", "666700.00", "0.10", "0.20"]
    assert made["total"] == "666787.83"
    row = await Contract.get(id=pk(made["id"]))
    assert row.total == Decimal("666787.83")
    stored = await ContractItem.filter(contract_id=row.id).order_by("id")
    assert [item.amount for item in stored] == [Decimal(a) for a in amounts]


async def test_creating_logs_the_operation_and_records_an_event(gql, sales):
    made = await create(gql, sales.alice, sales.acme, items=[line(sales.widget, "1")])
    contract_id = pk(made["id"])
    entry = await OperationLog.get(record_type=RecordType.CONTRACT, record_id=contract_id)
    assert (entry.action, entry.actor_id, entry.customer_id) == (
        "CREATE", sales.alice.id, sales.acme.id
    )  # fmt: skip
    assert entry.changes["number"] == [None, made["number"]]
    assert entry.changes["total"] == [None, "100.00"]
    event = await Event.get(kind="contract.changed", record_id=contract_id)
    assert (event.owner_id, event.customer_id) == (sales.alice.id, sales.acme.id)


async def test_concurrent_creates_get_distinct_numbers(gql, sales):
    made = await asyncio.gather(
        *(create(gql, sales.alice, sales.acme, title=f"Order {i}") for i in range(10))
    )
    numbers = {contract["number"] for contract in made}
    assert len(numbers) == 10
    assert set(await Contract.all().values_list("number", flat=True)) == numbers


async def test_opportunity_and_signing_contact_belong_to_the_contract_customer(gql, sales):
    stage = await OpportunityStage.all().order_by("order").first()
    deal = await Opportunity.create(
        customer=sales.acme, name="Deal", amount=Decimal("5.00"), stage=stage,
        owner=sales.alice, created_by=sales.alice,
    )  # fmt: skip
    signer = await Contact.create(customer=sales.acme, name="Li Lei", created_by=sales.alice)
    made = await create(
        gql,
        sales.alice,
        sales.acme,
        opportunityId=gid("Opportunity", deal.id),
        signingContactId=gid("Contact", signer.id),
        signedOn="2026-01-05",
        startsOn="2026-02-01",
        endsOn="2026-12-31",
    )
    assert made["opportunityId"] == gid("Opportunity", deal.id)
    assert made["signingContactId"] == gid("Contact", signer.id)
    assert (made["signedOn"], made["startsOn"], made["endsOn"]) == (
        "2026-01-05", "2026-02-01", "2026-12-31"
    )  # fmt: skip

    elsewhere = await Opportunity.create(
        customer=sales.globex, name="Theirs", amount=Decimal("1.00"), stage=stage,
        owner=sales.alice, created_by=sales.alice,
    )  # fmt: skip
    stranger = await Contact.create(
        customer=sales.globex, name="Han Meimei", created_by=sales.carol
    )
    before = await snapshot()
    for field, value in (
        ("opportunityId", gid("Opportunity", elsewhere.id)),
        ("signingContactId", gid("Contact", stranger.id)),
        ("opportunityId", gid("Contact", signer.id)),  # not an opportunity id at all
    ):
        result = await gql(
            CREATE,
            {"input": {"customerId": gid("Customer", sales.acme.id), "title": "X", field: value}},
            as_user=sales.alice,
        )
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.error["extensions"]["field"] == field
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"items": [{"quantity": "1", "productId": "retired"}]}, "items.0.productId"),
        ({"items": [{"quantity": "0", "productId": "widget"}]}, "items.0.quantity"),
        ({"items": [{"quantity": "-1", "productId": "widget"}]}, "items.0.quantity"),
        ({"items": [{"quantity": "1.005", "productId": "widget"}]}, "items.0.quantity"),
        ({"items": [{"quantity": "1", "productId": "widget", "unitPrice": "0.001"}]},
         "items.0.unitPrice"),
        ({"items": [{"quantity": "1", "productId": "widget", "unitPrice": "NaN"}]},
         "items.0.unitPrice"),
        ({"items": [{"quantity": "1", "productId": "widget", "discount": "100.01"}]},
         "items.0.discount"),
        ({"items": [{"quantity": "1", "productId": "widget"},
                    {"quantity": "1", "productId": "widget", "discount": "-1"}]},
         "items.1.discount"),
        ({"startsOn": "2026-05-01", "endsOn": "2026-04-30"}, "endsOn"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_and_nothing_is_written(gql, sales, fields, field):
    products = {"widget": sales.widget, "retired": sales.retired}
    if "items" in fields:
        fields = {"items": [
            {**item, "productId": gid("Product", products[item["productId"]].id)}
            for item in fields["items"]
        ]}  # fmt: skip
    before = await snapshot()
    result = await gql(
        CREATE,
        {"input": {"customerId": gid("Customer", sales.acme.id), "title": "T", **fields}},
        as_user=sales.alice,
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await snapshot() == before


async def test_creating_on_a_customer_out_of_reach(gql, org, sales):
    await CustomerTeamMember.create(customer=sales.acme, user=sales.carol, access=TeamAccess.READ)
    finance = await org.user("fiona", roles=[await org.default_role("Finance")])
    before = await snapshot()
    cases = [
        (sales.bob, "NOT_FOUND"),  # another rep's customer
        (sales.carol, "FORBIDDEN"),  # team member with READ access only
        (finance, "FORBIDDEN"),  # sees everything, but lacks contract:create
    ]
    for user, code in cases:
        variables = {"input": {"customerId": gid("Customer", sales.acme.id), "title": "T"}}
        result = await gql(CREATE, variables, as_user=user)
        assert result.codes == [code], user.username
    assert await snapshot() == before
    # a WRITE team member may
    await CustomerTeamMember.filter(user=sales.carol).update(access=TeamAccess.WRITE)
    made = await create(gql, sales.carol, sales.acme)
    assert made["owner"]["id"] == gid("User", sales.carol.id)


# ---------------------------------------------------------------------------
# editing


async def test_a_draft_is_edited_with_versions_and_items_are_replaced(gql, sales):
    made = await create(
        gql, sales.alice, sales.acme, signedOn="2026-01-05", remarks="first",
        items=[line(sales.widget, "1")],
    )  # fmt: skip
    data = await gql.ok(
        UPDATE,
        {
            "id": made["id"],
            "v": 1,
            "input": {
                "title": "Renewal",
                "signedOn": None,
                "items": [line(sales.gadget, "10", "1.25", "10")],
            },
        },  # fmt: skip
        as_user=sales.alice,
    )
    updated = data["updateContract"]
    assert (updated["title"], updated["version"], updated["signedOn"]) == ("Renewal", 2, None)
    assert updated["remarks"] == "first"  # not sent: kept
    assert updated["total"] == "11.25"
    assert [i["productId"] for i in updated["items"]] == [gid("Product", sales.gadget.id)]
    assert await ContractItem.filter(contract_id=pk(made["id"])).count() == 1
    entry = await OperationLog.get(record_id=pk(made["id"]), action="UPDATE")
    assert entry.changes["title"] == ["Annual supply", "Renewal"]
    assert entry.changes["total"] == ["100.00", "11.25"]
    assert "items" in entry.changes

    before = await snapshot()
    stale = await gql(
        UPDATE, {"id": made["id"], "v": 1, "input": {"title": "Lost edit"}}, as_user=sales.alice
    )
    assert stale.codes == ["CONFLICT"]
    assert await snapshot() == before


@pytest.mark.parametrize("status", [ContractStatus.PENDING_APPROVAL, ContractStatus.APPROVED,
                                    ContractStatus.VOIDED])  # fmt: skip
async def test_only_drafts_and_rejected_contracts_change(gql, sales, status):
    made = await create(gql, sales.alice, sales.acme, items=[line(sales.widget, "1")])
    await Contract.filter(id=pk(made["id"])).update(status=status)
    before = await snapshot()
    result = await gql(UPDATE, {"id": made["id"], "input": {"title": "Y"}}, as_user=sales.alice)
    assert result.codes == ["CONFLICT"]
    assert (await gql(DELETE, {"id": made["id"]}, as_user=sales.admin)).codes == ["CONFLICT"]
    assert await snapshot() == before

    await Contract.filter(id=pk(made["id"])).update(status=ContractStatus.REJECTED)
    data = await gql.ok(UPDATE, {"id": made["id"], "input": {"title": "Y"}}, as_user=sales.alice)
    assert data["updateContract"]["title"] == "Y"


async def test_editing_someone_elses_contract(gql, org, sales):
    made = await create(gql, sales.alice, sales.acme)
    await CustomerTeamMember.create(customer=sales.acme, user=sales.carol, access=TeamAccess.READ)
    viewer_only = await org.user(
        "auditor", roles=[await org.role("Auditor", DataScope.ALL, ["contract:create"])]
    )
    before = await snapshot()
    for user, code in ((sales.bob, "NOT_FOUND"), (sales.carol, "FORBIDDEN"),
                       (viewer_only, "FORBIDDEN")):  # fmt: skip
        result = await gql(UPDATE, {"id": made["id"], "input": {"title": "Z"}}, as_user=user)
        assert result.codes == [code], user.username
    assert await snapshot() == before
    # alice's manager has her in scope
    data = await gql.ok(UPDATE, {"id": made["id"], "input": {"title": "Z"}}, as_user=sales.boss)
    assert data["updateContract"]["title"] == "Z"


async def test_a_draft_is_deleted_with_its_lines_and_the_deletion_is_logged(gql, sales):
    made = await create(gql, sales.alice, sales.acme, items=[line(sales.widget, "1")])
    contract_id = pk(made["id"])
    before = await snapshot()
    # reps and managers lack contract:delete; another rep cannot see it at all
    for user, code in ((sales.alice, "FORBIDDEN"), (sales.boss, "FORBIDDEN"),
                       (sales.bob, "NOT_FOUND")):  # fmt: skip
        assert (await gql(DELETE, {"id": made["id"]}, as_user=user)).codes == [code]
    assert await snapshot() == before

    data = await gql.ok(DELETE, {"id": made["id"]}, as_user=sales.admin)
    assert data["deleteContract"]["deletedId"] == made["id"]
    assert not await Contract.exists(id=contract_id)
    assert not await ContractItem.exists(contract_id=contract_id)
    entry = await OperationLog.get(record_id=contract_id, action="DELETE")
    assert entry.changes["number"] == [made["number"], None]
    assert await Event.exists(kind="contract.deleted", record_id=contract_id)


# ---------------------------------------------------------------------------
# transfer


async def test_transfer_hands_contracts_over_and_notifies_the_new_owner(gql, sales):
    first = await create(gql, sales.alice, sales.acme, title="One")
    second = await create(gql, sales.alice, sales.acme, title="Two")
    data = await gql.ok(
        TRANSFER,
        {"ids": [first["id"], second["id"]], "owner": gid("User", sales.bob.id)},
        as_user=sales.boss,
    )
    moved = data["transferContracts"]
    assert [c["owner"]["id"] for c in moved] == [gid("User", sales.bob.id)] * 2
    assert [c["version"] for c in moved] == [2, 2]
    assert set(await Contract.all().values_list("owner_id", flat=True)) == {sales.bob.id}
    entry = await OperationLog.get(record_id=pk(first["id"]), action="TRANSFER")
    assert entry.changes == {"owner_id": [sales.alice.id, sales.bob.id]}
    event = await Event.get(kind="contract.transferred", record_id=pk(first["id"]))
    assert event.recipient_id == sales.bob.id


async def test_transfer_is_all_or_nothing_and_needs_the_permission(gql, org, sales):
    mine = await create(gql, sales.alice, sales.acme)
    theirs = await create(gql, sales.carol, sales.globex)
    retired = await org.user("gone", department=await org.office())
    await User.filter(id=retired.id).update(is_active=False)
    before = await snapshot()
    bob = gid("User", sales.bob.id)
    cases = [
        (sales.alice, [mine["id"]], bob, "FORBIDDEN"),  # reps lack contract:transfer
        (sales.boss, [mine["id"], theirs["id"]], bob, "NOT_FOUND"),  # carol is in Support
        (sales.boss, [mine["id"]], gid("User", retired.id), "BAD_USER_INPUT"),
    ]
    for user, ids, owner, code in cases:
        result = await gql(TRANSFER, {"ids": ids, "owner": owner}, as_user=user)
        assert result.codes == [code]
    assert await snapshot() == before


# ---------------------------------------------------------------------------
# reading


async def test_list_filters_and_scope(gql, sales):
    a = await create(gql, sales.alice, sales.acme, title="Cloud storage", signedOn="2026-03-01")
    await create(gql, sales.alice, sales.acme, title="Printers", signedOn="2026-05-01")
    await create(gql, sales.carol, sales.globex, title="Cloud backup")
    await Contract.filter(id=pk(a["id"])).update(status=ContractStatus.APPROVED)

    async def titles(user: User, **filter) -> list[str]:
        data = await gql.ok(LIST, {"filter": filter, "first": 50}, as_user=user)
        conn = data["contracts"]
        assert conn["totalCount"] == len(conn["edges"])
        return sorted(edge["node"]["title"] for edge in conn["edges"])

    assert await titles(sales.alice) == ["Cloud storage", "Printers"]
    assert await titles(sales.bob) == []
    assert await titles(sales.boss) == ["Cloud storage", "Printers"]  # Support is not his
    assert await titles(sales.admin, search="cloud") == ["Cloud backup", "Cloud storage"]
    assert await titles(sales.admin, search=a["number"]) == ["Cloud storage"]
    assert await titles(sales.admin, status="APPROVED") == ["Cloud storage"]
    assert await titles(sales.admin, customerId=gid("Customer", sales.globex.id)) == [
        "Cloud backup"
    ]
    assert await titles(sales.admin, ownerId=gid("User", sales.carol.id)) == ["Cloud backup"]
    assert await titles(sales.admin, signedFrom="2026-03-01", signedTo="2026-04-30") == [
        "Cloud storage"
    ]
    assert await titles(sales.admin, signedFrom="2026-03-02") == ["Printers"]


async def test_list_pages_by_cursor(gql, sales):
    for i in range(5):
        await create(gql, sales.alice, sales.acme, title=f"C{i}")
    order = {"field": "TITLE", "descending": False}
    first = (await gql.ok(LIST, {"orderBy": order, "first": 3}, as_user=sales.alice))["contracts"]
    assert [e["node"]["title"] for e in first["edges"]] == ["C0", "C1", "C2"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await gql.ok(
        LIST, {"orderBy": order, "first": 3, "after": first["pageInfo"]["endCursor"]},
        as_user=sales.alice,
    )  # fmt: skip
    assert [e["node"]["title"] for e in rest["contracts"]["edges"]] == ["C3", "C4"]


async def test_node_and_customer_contracts_show_only_visible_contracts(gql, sales):
    mine = await create(gql, sales.alice, sales.acme, title="Mine")
    assert (await gql.ok(NODE, {"id": mine["id"]}, as_user=sales.alice))["node"]["title"] == "Mine"
    assert (await gql(NODE, {"id": mine["id"]}, as_user=sales.bob)).codes == ["NOT_FOUND"]

    # A contract on Acme owned by someone outside alice's scope stays hidden from her.
    hidden = await create(gql, sales.alice, sales.acme, title="Handed over")
    await Contract.filter(id=pk(hidden["id"])).update(owner_id=sales.carol.id)
    data = await gql.ok(CUSTOMER_CONTRACTS, {"id": gid("Customer", sales.acme.id)},
                        as_user=sales.alice)  # fmt: skip
    assert [c["title"] for c in data["node"]["contracts"]] == ["Mine"]
    data = await gql.ok(CUSTOMER_CONTRACTS, {"id": gid("Customer", sales.acme.id)},
                        as_user=sales.admin)  # fmt: skip
    assert [c["title"] for c in data["node"]["contracts"]] == ["Handed over", "Mine"]


async def test_contracts_of_many_customers_load_in_constant_queries(gql, sales, statements):
    customers = [sales.acme] + [await make_customer(f"Cust {i}", sales.alice) for i in range(3)]
    for customer in customers:
        await create(gql, sales.alice, customer, items=[line(sales.widget, "1")])
    query = """
    { customers(first: 50) { edges { node { id contracts {
        number total paidAmount outstandingAmount currency owner { id }
        items { amount } approvals { decision } paymentPlans { status } payments { amount }
    } receivable } } } }
    """
    statements.count = 0
    await gql.ok(query, as_user=sales.alice)
    few = statements.count
    for i in range(3, 12):
        customer = await make_customer(f"Cust {i}", sales.alice)
        await create(gql, sales.alice, customer, items=[line(sales.widget, "1")])
    statements.count = 0
    await gql.ok(query, as_user=sales.alice)
    assert few > 0 and statements.count == few, (few, statements.count)


async def test_contract_input_ids_must_be_of_the_right_kind(gql, sales):
    result = await gql(
        CREATE,
        {"input": {"customerId": gid("Product", sales.widget.id), "title": "T"}},
        as_user=sales.alice,
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "customerId"


@pytest.mark.parametrize("descending", [False, True])
async def test_list_pages_by_total_and_by_signing_day(gql, sales, descending):
    rows = [("A", "500.00", "2026-03-02"), ("B", "75.25", None), ("C", "500.00", "2026-01-15")]
    for title, total, signed in rows:
        made = await create(gql, sales.alice, sales.acme, title=title)
        await Contract.filter(id=pk(made["id"])).update(
            total=Decimal(total), signed_on=date.fromisoformat(signed) if signed else None
        )

    async def titles(field: str) -> list[str]:
        seen, after = [], None
        while True:
            variables = {"orderBy": {"field": field, "descending": descending}, "first": 1}
            page = (await gql.ok(LIST, {**variables, "after": after}, as_user=sales.alice))[
                "contracts"
            ]
            seen += [e["node"]["title"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return seen
            after = page["pageInfo"]["endCursor"]

    by_total = ["B", "A", "C"]  # the tie in creation order
    assert await titles("TOTAL") == (list(reversed(by_total)) if descending else by_total)
    by_signing = ["B", "C", "A"]  # unsigned as signed longest ago
    assert await titles("SIGNED_ON") == (list(reversed(by_signing)) if descending else by_signing)
