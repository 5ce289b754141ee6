"""CSV export and import of customers, leads and contacts (导入导出)."""

from __future__ import annotations

import asyncio
import base64
import csv
import io

from meihua.models import (
    Contact,
    Customer,
    CustomerTeamMember,
    DataScope,
    Lead,
    OperationLog,
    RecordType,
    TeamAccess,
)
from meihua.resolvers import csv_io
from meihua.resolvers.customers import normalize_name
from meihua.resolvers.exports import CUSTOMER_COLUMNS

ALL = [
    "customer:create",
    "customer:import",
    "customer:export",
    "lead:import",
    "lead:export",
    "contact:create",
]
EXPORT = """
query($filter: CustomerFilter) {
  exportCustomers(filter: $filter) { filename content rowCount }
}
"""
EXPORT_LEADS = "{ exportLeads { filename content rowCount } }"
EXPORT_CONTACTS = "{ exportContacts { filename content rowCount } }"
REPORT = "{ dryRun total imported errors { line field code message } }"
IMPORT = f"""
mutation($content: String, $b64: String, $dry: Boolean) {{
  importCustomers(content: $content, contentBase64: $b64, dryRun: $dry) {REPORT}
}}
"""
IMPORT_LEADS = f"""
mutation($content: String) {{ importLeads(content: $content) {REPORT} }}
"""
IMPORT_CONTACTS = f"""
mutation($content: String) {{ importContacts(content: $content) {REPORT} }}
"""


async def _rep(org, username: str, permissions=ALL, scope=DataScope.SELF):
    role = await org.role(f"{username}-role", scope, permissions)
    return await org.user(username, roles=[role])


async def _customer(owner, name: str, **fields) -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner=owner, created_by=owner, **fields
    )


def _rows(content: str) -> list[dict[str, str]]:
    assert content.startswith(csv_io.BOM)
    return list(csv.DictReader(io.StringIO(content[1:])))


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


async def test_export_holds_only_what_the_viewer_sees(gql, org):
    alice = await _rep(org, "alice")
    bob = await _rep(org, "bob")
    await _customer(alice, "梅花科技", phone="13800000001", tags=["VIP", "华东"])
    await _customer(bob, "Bob Corp")
    data = await gql.ok(EXPORT, as_user=alice)
    export = data["exportCustomers"]
    assert export["filename"].startswith("customers-") and export["filename"].endswith(".csv")
    assert export["content"].startswith("\ufeff")
    rows = _rows(export["content"])
    assert export["rowCount"] == 1
    assert list(rows[0]) == CUSTOMER_COLUMNS
    assert rows[0]["name"] == "梅花科技"
    assert rows[0]["tags"] == "VIP;华东"
    assert rows[0]["dealStatus"] == "NOT_DEALT"
    # The filter narrows like the list does.
    data = await gql.ok(EXPORT, {"filter": {"search": "nothing"}}, as_user=alice)
    assert data["exportCustomers"]["rowCount"] == 0


async def test_export_needs_the_permission(gql, org):
    viewer = await _rep(org, "viewer", permissions=["lead:export"])
    await _customer(viewer, "Own Co")
    for query in (EXPORT, EXPORT_CONTACTS):
        result = await gql(query, as_user=viewer)
        assert result.codes == ["FORBIDDEN"]
    assert (await gql(EXPORT_LEADS, as_user=viewer)).data["exportLeads"]["rowCount"] == 0
    mute = await _rep(org, "mute", permissions=["customer:export"])
    assert (await gql(EXPORT_LEADS, as_user=mute)).codes == ["FORBIDDEN"]


async def test_export_beyond_the_cap_is_refused(gql, org, monkeypatch):
    alice = await _rep(org, "alice")
    for name in ("A", "B", "C"):
        await _customer(alice, name)
    monkeypatch.setattr("meihua.resolvers.exports.MAX_ROWS", 2)
    result = await gql(EXPORT, as_user=alice)
    assert result.codes == ["LIMIT_EXCEEDED"]
    assert "at most 2" in result.error["message"]


async def test_round_trip_into_an_empty_database(gql, org, db):
    alice = await _rep(org, "alice")
    acme = await _customer(
        alice, "Acme 上海", phone="021-5555 0101", region="华东", tags=["VIP"], remarks='say "hi"'
    )
    await _customer(alice, "Beta, Ltd", level="A", address="line 1\nline 2")
    await Contact.create(customer=acme, name="王五", title="CTO", is_primary=True, created_by=alice)
    await Contact.create(customer=acme, name="赵六", decision_role="KEY_USER", created_by=alice)
    await Lead.create(company_name="线索公司", contact_name="张三", owner=alice, created_by=alice)
    customers = (await gql.ok(EXPORT, as_user=alice))["exportCustomers"]["content"]
    contacts = (await gql.ok(EXPORT_CONTACTS, as_user=alice))["exportContacts"]["content"]
    leads = (await gql.ok(EXPORT_LEADS, as_user=alice))["exportLeads"]["content"]
    await Contact.all().delete()
    await Customer.all().delete()
    await Lead.all().delete()

    report = (await gql.ok(IMPORT, {"content": customers}, as_user=alice))["importCustomers"]
    assert report == {"dryRun": False, "total": 2, "imported": 2, "errors": []}
    report = await gql.ok(IMPORT_CONTACTS, {"content": contacts}, as_user=alice)
    assert report["importContacts"]["errors"] == [] and report["importContacts"]["imported"] == 2
    report = (await gql.ok(IMPORT_LEADS, {"content": leads}, as_user=alice))["importLeads"]
    assert report["imported"] == 1

    assert (await gql.ok(EXPORT, as_user=alice))["exportCustomers"]["content"] == customers
    again = (await gql.ok(EXPORT_CONTACTS, as_user=alice))["exportContacts"]["content"]
    assert again == contacts
    assert (await gql.ok(EXPORT_LEADS, as_user=alice))["exportLeads"]["content"] == leads
    imported = await Customer.get(name="Acme 上海")
    assert imported.owner_id == alice.id and imported.phone_key == "02155550101"
    entries = await OperationLog.filter(action="IMPORT").order_by("id")
    assert [e.record_type for e in entries] == [
        RecordType.CUSTOMER,
        RecordType.CONTACT,
        RecordType.LEAD,
    ]
    assert entries[0].changes == {"imported": [None, 2]}


async def test_ten_thousand_rows_with_a_few_bad_ones(gql, org):
    alice = await _rep(org, "alice")
    bob = await _rep(org, "bob")
    await _customer(bob, "Taken Co")
    rows = [[f"Customer {i}", f"139{i:08d}"] for i in range(10_000)]
    rows[10] = ["   ", "13900000010"]  # blank name: line 12
    rows[20] = ["X" * 201, ""]  # too long: line 22
    rows[30] = ["taken co", ""]  # someone else's customer: line 32
    rows[40] = ["CUSTOMER 5", ""]  # same name as line 7 once normalized: line 42
    rows[50] = ["Other", "139 0000 0006"]  # same phone as line 8: line 52
    content = _csv(["name", "phone"], rows)
    report = (await gql.ok(IMPORT, {"content": content}, as_user=alice))["importCustomers"]
    assert report["total"] == 10_000
    assert report["imported"] == 9_995
    assert [(e["line"], e["field"], e["code"]) for e in report["errors"]] == [
        (12, "name", "BAD_USER_INPUT"),
        (22, "name", "BAD_USER_INPUT"),
        (32, "name", "DUPLICATE"),
        (42, "name", "DUPLICATE"),
        (52, "phone", "DUPLICATE"),
    ]
    assert "Bob" not in report["errors"][2]["message"]  # bob is out of alice's scope
    assert "Line 7" in report["errors"][3]["message"]
    assert await Customer.filter(owner_id=alice.id).count() == 9_995
    assert await OperationLog.filter(action="IMPORT").count() == 1


async def test_dry_run_writes_nothing(gql, org):
    alice = await _rep(org, "alice")
    content = _csv(["name", "dealStatus"], [["One", "DEALT"], ["Two", "maybe"]])
    data = await gql.ok(IMPORT, {"content": content, "dry": True}, as_user=alice)
    report = data["importCustomers"]
    assert report["dryRun"] is True and report["imported"] == 1
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "dealStatus")]
    assert await Customer.all().count() == 0
    assert await OperationLog.all().count() == 0


async def test_gbk_bytes_decode(gql, org):
    alice = await _rep(org, "alice")
    raw = "name,region\r\n北京梅花有限公司,华北\r\n".encode("gbk")
    b64 = base64.b64encode(raw).decode()
    report = (await gql.ok(IMPORT, {"b64": b64}, as_user=alice))["importCustomers"]
    assert report["imported"] == 1
    assert (await Customer.get()).region == "华北"
    utf8 = base64.b64encode(("\ufeffname\n上海公司\n").encode()).decode()
    await gql.ok(IMPORT, {"b64": utf8}, as_user=alice)
    assert await Customer.filter(name="上海公司").exists()


async def test_refused_files_write_nothing(gql, org, monkeypatch):
    alice = await _rep(org, "alice")
    big = "name\n" + "x" * (csv_io.MAX_BYTES + 1)
    assert (await gql(IMPORT, {"content": big}, as_user=alice)).codes == ["LIMIT_EXCEEDED"]
    monkeypatch.setattr(csv_io, "MAX_ROWS", 2)
    result = await gql(IMPORT, {"content": "name\na\nb\nc\n"}, as_user=alice)
    assert result.codes == ["LIMIT_EXCEEDED"]
    result = await gql(IMPORT, {"content": "name,colour\na,red\n"}, as_user=alice)
    assert result.codes == ["BAD_USER_INPUT"] and "colour" in result.error["message"]
    result = await gql(IMPORT, {"content": "a", "b64": "YQ=="}, as_user=alice)
    assert result.codes == ["BAD_USER_INPUT"]
    lead_only = await _rep(org, "leadonly", permissions=["lead:import"])
    for query in (IMPORT, IMPORT_CONTACTS):
        result = await gql(query, {"content": "name\nA\n"}, as_user=lead_only)
        assert result.codes == ["FORBIDDEN"]
    assert await Customer.all().count() == 0


async def test_contacts_need_a_visible_writable_customer(gql, org):
    alice = await _rep(org, "alice")
    bob = await _rep(org, "bob")
    mine = await _customer(alice, "Mine Co")
    shared = await _customer(bob, "Bob Co")
    await CustomerTeamMember.create(customer=shared, user=alice, access=TeamAccess.READ)
    await Contact.create(customer=mine, name="Boss", is_primary=True, created_by=alice)
    content = _csv(
        ["customer", "name", "isPrimary"],
        [
            ["mine co", "Ann", ""],
            ["Bob Co", "Spy", ""],
            ["Nobody Inc", "Ghost", ""],
            ["Mine Co", "Two", "yes"],
            ["Mine Co", "", ""],
        ],
    )
    report = await gql.ok(IMPORT_CONTACTS, {"content": content}, as_user=alice)
    report = report["importContacts"]
    assert report["imported"] == 1
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (3, "customer"),
        (4, "customer"),
        (5, "isPrimary"),
        (6, "name"),
    ]
    ann = await Contact.get(name="Ann")
    assert ann.customer_id == mine.id and not ann.is_primary
    assert "may not change" in report["errors"][0]["message"]  # seen through a READ team
    assert "No customer" in report["errors"][1]["message"]
    assert not await Contact.filter(name="Spy").exists()


async def test_simultaneous_imports_of_one_customer_keep_one(gql, org):
    alice = await _rep(org, "alice")
    bob = await _rep(org, "bob")
    content = _csv(["name"], [["Contested Co"]])
    results = await asyncio.gather(
        gql(IMPORT, {"content": content}, as_user=alice),
        gql(IMPORT, {"content": content}, as_user=bob),
    )
    imported = [r.data["importCustomers"]["imported"] for r in results if not r.errors]
    refused = [r.codes for r in results if r.errors]
    # The loser either saw the winner's row (a DUPLICATE row error) or lost the
    # race on insert (the whole import refused with DUPLICATE).
    assert sorted(imported) in ([0, 1], [1])
    assert refused in ([], [["DUPLICATE"]])
    assert await Customer.filter(name_key="contested co").count() == 1
