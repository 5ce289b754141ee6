"""`meihua export` and `meihua import`: CSV files in and out from a shell.

The commands run for real (the console script in a subprocess) against the
test database of each backend, which the test fills and reads through the models.
"""

from __future__ import annotations

import csv
import io

from meihua.models import Contact, Customer, DataScope, DealStatus, Lead, OperationLog, User
from meihua.resolvers.csv_io import BOM
from meihua.resolvers.customers import normalize_name, normalize_phone
from meihua.resolvers.exports import CUSTOMER_COLUMNS
from tests.test_cli import meihua

EXPORT_CUSTOMERS = "{ exportCustomers { content } }"


async def _customer(owner: User, name: str, phone: str | None = None, **fields) -> Customer:
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        phone=phone,
        phone_key=normalize_phone(phone) if phone else None,
        owner=owner,
        created_by=owner,
        **fields,
    )


async def _rep(org, username: str, permissions: list[str]) -> User:
    role = await org.role(f"{username}-role", DataScope.SELF, permissions)
    return await org.user(username, roles=[role])


async def _records() -> dict[str, list[tuple]]:
    """Everything a CSV file carries, plus who owns it, in a stable order."""
    names = dict(await Customer.all().values_list("id", "name"))
    return {
        "customers": sorted(
            (
                c.name,
                c.phone,
                c.industry,
                c.region,
                c.source,
                c.level,
                c.address,
                c.remarks,
                c.tags,
                c.deal_status,
                c.owner_id,
            )  # fmt: skip
            for c in await Customer.all()
        ),
        "contacts": sorted(
            (
                names[c.customer_id],
                c.name,
                c.title,
                c.phone,
                c.mobile,
                c.email,
                c.decision_role,
                c.is_primary,
                c.remarks,
            )  # fmt: skip
            for c in await Contact.all()
        ),
        "leads": sorted(
            (
                lead.company_name,
                lead.contact_name,
                lead.phone,
                lead.email,
                lead.source,
                lead.industry,
                lead.region,
                lead.remarks,
                lead.owner_id,
            )  # fmt: skip
            for lead in await Lead.all()
        ),
    }


def _csv_rows(text: str) -> list[dict[str, str]]:
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM), newline="")))


async def test_round_trip_through_files(db, org, gql, tmp_path):
    root = await org.admin()
    acme = await _customer(
        root, "梅花科技（上海）有限公司", "021-5555 0101", industry="软件", region="华东",
        source="展会", level="A", address="上海市浦东新区, 张江路 88 号",
        remarks='He said "你好", then left', tags=["VIP", "华东, 重点"],
    )  # fmt: skip
    beta = await _customer(
        root, "Beta, Ltd", address="line 1\nline 2", deal_status=DealStatus.DEALT, tags=[]
    )
    await Contact.create(
        customer=acme, name="王五", title="CTO", phone="021-5555 0102", email="wang@meihua.cn",
        decision_role="INITIATOR", is_primary=True, created_by=root,
    )  # fmt: skip
    await Contact.create(
        customer=acme,
        name="赵六",
        decision_role="KEY_USER",
        remarks='"关键", 用户',
        created_by=root,
    )
    await Contact.create(customer=beta, name="O'Brien", mobile="139 0000 0001", created_by=root)
    await Lead.create(
        company_name="线索公司, 北京", contact_name="张三", phone="13800000000",
        email="zhang@example.cn", remarks='say "hi"', owner=root, created_by=root,
    )  # fmt: skip
    before = await _records()

    for kind in ("customers", "contacts", "leads"):
        result = meihua("export", kind, "--output", f"{kind}.csv", cwd=tmp_path, DATABASE_URL=db)
        assert result.returncode == 0, result.stderr
        assert f"Exported {len(before[kind])} {kind} to {kind}.csv." in result.stdout
    # Byte for byte the file the API's export gives.
    api = (await gql.ok(EXPORT_CUSTOMERS, as_user=root))["exportCustomers"]["content"]
    assert (tmp_path / "customers.csv").read_bytes() == api.encode()

    await Contact.all().delete()
    await Customer.all().delete()
    await Lead.all().delete()
    for kind in ("customers", "contacts", "leads"):
        result = meihua("import", kind, f"{kind}.csv", cwd=tmp_path, DATABASE_URL=db)
        assert result.returncode == 0, result.stderr
        count = len(before[kind])
        assert f"Imported {count} of {count} {kind}." in result.stdout

    assert await _records() == before
    assert await OperationLog.filter(action="IMPORT", actor_id=root.id).count() == 3


async def test_export_has_no_row_cap(db, org, tmp_path):
    root = await org.admin()
    await Customer.bulk_create(
        [
            Customer(name=f"客户 {i}", name_key=f"客户 {i}", owner=root, created_by=root)
            for i in range(10_001)
        ],
        batch_size=1000,
    )
    result = meihua("export", "customers", "-o", "all.csv", cwd=tmp_path, DATABASE_URL=db)
    assert result.returncode == 0, result.stderr
    rows = _csv_rows((tmp_path / "all.csv").read_text(encoding="utf-8"))
    assert [row["name"] for row in rows] == [f"客户 {i}" for i in range(10_001)]


async def test_dry_run_changes_nothing(db, org, tmp_path):
    await org.admin()
    (tmp_path / "new.csv").write_text("name,tags\nNew Co,VIP;华东\nOther Co,\n", encoding="utf-8")

    result = meihua("import", "customers", "new.csv", "--dry-run", cwd=tmp_path, DATABASE_URL=db)
    assert result.returncode == 0, result.stderr
    assert "Would import 2 of 2 customers (dry run: no change)." in result.stdout
    assert await Customer.all().count() == 0
    assert await OperationLog.all().count() == 0


async def test_bad_rows_are_listed_and_the_good_ones_imported(db, org, tmp_path):
    root = await org.admin()
    await _customer(root, "已有客户")
    # What Excel on a Chinese Windows saves: GBK, no BOM.
    rows = [
        "name,dealStatus",
        "北京梅花,DEALT",
        "  ,DEALT",
        "上海梅花,maybe",
        "已有客户,",
        "广州梅花,",
    ]
    content = "\r\n".join(rows) + "\r\n"
    (tmp_path / "gbk.csv").write_bytes(content.encode("gbk"))

    result = meihua("import", "customers", "gbk.csv", cwd=tmp_path, DATABASE_URL=db)
    assert result.returncode == 1
    assert "Imported 2 of 5 customers." in result.stdout
    assert "3 rejected:" in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  line")]
    assert [line.split(":")[0] for line in lines] == [
        "line 3 (name)",
        "line 4 (dealStatus)",
        "line 5 (name)",
    ]
    assert "Traceback" not in result.stderr
    names = await Customer.all().order_by("id").values_list("name", flat=True)
    assert names == ["已有客户", "北京梅花", "广州梅花"]
    assert (await Customer.get(name="北京梅花")).deal_status == DealStatus.DEALT


async def test_a_self_scoped_rep_exports_only_their_own(db, org, tmp_path):
    alice = await _rep(org, "alice", ["customer:export"])
    bob = await _rep(org, "bob", ["customer:export"])
    await _customer(alice, "Alice 客户")
    await _customer(bob, "Bob 客户")

    result = meihua(
        "export", "customers", "--as", "Alice", "-o", "-", cwd=tmp_path, DATABASE_URL=db
    )
    assert result.returncode == 0, result.stderr
    rows = _csv_rows(result.stdout)  # nothing but the file on standard output
    assert list(rows[0]) == CUSTOMER_COLUMNS
    assert [row["name"] for row in rows] == ["Alice 客户"]
    assert "Exported 1 customers to standard output." in result.stderr


async def test_the_acting_user_must_exist_be_active_and_be_allowed(db, org, tmp_path):
    def export_leads(*args: str):
        return meihua("export", "leads", "-o", "x.csv", *args, cwd=tmp_path, DATABASE_URL=db)

    nobody = export_leads()
    assert nobody.returncode != 0
    assert "There is no active super admin to act as" in nobody.stderr
    ghost = export_leads("--as", "ghost")
    assert ghost.returncode != 0
    assert "There is no user 'ghost'." in ghost.stderr

    carol = await _rep(org, "carol", ["lead:export"])
    (tmp_path / "c.csv").write_text("name\nCarol Co\n", encoding="utf-8")
    forbidden = meihua(
        "import", "customers", "c.csv", "--as", "carol", cwd=tmp_path, DATABASE_URL=db
    )
    assert forbidden.returncode != 0
    assert "`customer:import` permission" in forbidden.stderr

    carol.is_active = False
    await carol.save(update_fields=["is_active"])
    inactive = export_leads("--as", "carol")
    assert inactive.returncode != 0
    assert "User 'carol' is deactivated." in inactive.stderr

    for result in (nobody, ghost, forbidden, inactive):
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.csv").exists()
    assert await Customer.all().count() == 0
