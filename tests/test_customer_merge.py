"""Likely duplicates and merging customers (疑似重复 / 合并客户)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meihua.models import (
    Contact,
    Contract,
    Customer,
    CustomerTeamMember,
    DealStatus,
    FieldAccess,
    FieldPermission,
    FollowUp,
    FollowUpMethod,
    Lead,
    OperationLog,
    Opportunity,
    OpportunityStage,
    Pool,
    PoolMovement,
    PoolMovementKind,
    RecordType,
    Role,
    Task,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name, normalize_phone
from meihua.resolvers.duplicates import core_name
from meihua.schema.relay import to_global_id
from tests.conftest import all_tables

MERGE = """
mutation($keep: ID!, $merge: [ID!]!, $v: Int, $mv: [Int!]) {
  mergeCustomers(keepId: $keep, mergeIds: $merge, expectedVersion: $v, mergeVersions: $mv) {
    id name phone industry tags dealStatus version
    team { access user { username } }
    contacts { name }
  }
}
"""
DUPLICATES = """
query($id: ID, $first: Int! = 20) {
  likelyDuplicates(customerId: $id, first: $first) { customers { name } reasons score }
}
"""
RECORD_CHANGED = """
subscription($id: ID!) { recordChanged(id: $id) { kind recordId version fields } }
"""


async def customer(owner: User | None, name: str, **fields) -> Customer:
    pool = await Pool.get(company_wide=True)
    phone = fields.pop("phone", None)
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        phone=phone,
        phone_key=normalize_phone(phone),
        owner_id=owner.id if owner else None,
        created_by_id=(owner or await User.first()).id,
        pool_id=pool.id,
        **fields,
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


# --- likely duplicates -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "core"),
    [
        ("北京华为技术有限公司", "北京华为技术"),
        ("华为 股份有限公司", "华为"),
        ("acme co., ltd.", "acme"),
        ("acme, inc.", "acme"),
        ("tesco", "tesco"),
        ("公司", "公司"),
    ],
)
def test_the_core_name_drops_company_suffixes_and_punctuation(name, core):
    assert core_name(normalize_name(name)) == core


async def test_likely_duplicates_are_grouped_with_reason_and_score(org, gql):
    t = await org.sales_team()
    await customer(t.an, "Acme Co., Ltd.")
    await customer(t.bo, "ACME Inc")
    await customer(t.an, "华为技术有限公司")
    await customer(t.bo, "华为")
    await customer(t.an, "Globex Corporation", phone="010-8888 1234")
    await customer(t.bo, "Initech", phone="+86 10 8888 1234")
    hooli = await customer(t.an, "Hooli")
    pied = await customer(t.bo, "Pied Piper")
    await Contact.create(customer=hooli, name="G", email="gavin@hooli.com", created_by=t.an)
    await Contact.create(customer=pied, name="R", email=" Gavin@Hooli.com", created_by=t.bo)
    await customer(t.an, "Umbrella Holdings")
    await customer(t.bo, "Umbrela Holdings")
    await customer(t.olga, "Acme Group")  # North: outside Mei's sight
    await customer(t.an, "Vandelay Industries")

    groups = (await gql.ok(DUPLICATES, as_user=t.mei))["likelyDuplicates"]
    found = {
        frozenset(c["name"] for c in g["customers"]): (g["reasons"], g["score"]) for g in groups
    }
    assert found[frozenset({"Acme Co., Ltd.", "ACME Inc"})] == (["SAME_NAME"], 0.95)
    assert found[frozenset({"Globex Corporation", "Initech"})] == (["SAME_PHONE"], 0.9)
    assert found[frozenset({"Hooli", "Pied Piper"})] == (["SAME_EMAIL"], 0.9)
    assert found[frozenset({"华为技术有限公司", "华为"})][0] == ["NAME_CONTAINED"]
    assert found[frozenset({"Umbrella Holdings", "Umbrela Holdings"})][0] == ["SIMILAR_NAME"]
    assert len(found) == 5  # Vandelay stands alone; Olga's Acme is out of sight
    assert [g["score"] for g in groups] == sorted((g["score"] for g in groups), reverse=True)

    # Olga sees her own Acme only: no group.
    assert (await gql.ok(DUPLICATES, as_user=t.olga))["likelyDuplicates"] == []
    # An (SELF) sees his own customers alone: none of them repeat one another.
    assert (await gql.ok(DUPLICATES, as_user=t.an))["likelyDuplicates"] == []


async def test_hidden_phones_and_emails_do_not_make_duplicates(org, gql):
    t = await org.sales_team()
    await customer(t.an, "Globex Corporation", phone="010-8888 1234")
    await customer(t.bo, "Initech", phone="+86 10 8888 1234")
    hooli = await customer(t.an, "Hooli")
    pied = await customer(t.bo, "Pied Piper")
    await Contact.create(customer=hooli, name="G", email="gavin@hooli.com", created_by=t.an)
    await Contact.create(customer=pied, name="R", email="gavin@hooli.com", created_by=t.bo)
    manager = await Role.get(name="Sales Manager")
    for record_type, name in (("CUSTOMER", "phone"), ("CONTACT", "email")):
        await FieldPermission.create(
            role=manager,
            record_type=RecordType(record_type),
            field=name,
            access=FieldAccess.HIDDEN,
        )

    # A shared number or address would confirm what the mask hides from Mei.
    assert (await gql.ok(DUPLICATES, as_user=t.mei))["likelyDuplicates"] == []
    reasons = [
        g["reasons"] for g in (await gql.ok(DUPLICATES, as_user=t.admin))["likelyDuplicates"]
    ]
    assert sorted(reasons) == [["SAME_EMAIL"], ["SAME_PHONE"]]


async def test_duplicates_of_one_customer(org, gql):
    t = await org.sales_team()
    acme = await customer(t.an, "Acme Co., Ltd.")
    await customer(t.bo, "ACME Inc")
    await customer(t.an, "Umbrella Holdings")
    await customer(t.bo, "Umbrela Holdings")
    olgas = await customer(t.olga, "Acme Group")
    groups = (await gql.ok(DUPLICATES, {"id": gid(acme)}, as_user=t.mei))["likelyDuplicates"]
    assert [[c["name"] for c in g["customers"]] for g in groups] == [["Acme Co., Ltd.", "ACME Inc"]]
    error = (await gql(DUPLICATES, {"id": gid(olgas)}, as_user=t.mei)).error
    assert error["extensions"]["code"] == "NOT_FOUND"


# --- merging ---------------------------------------------------------------------


async def _books(t, keep: Customer, gone: Customer) -> dict:
    """Everything hanging off `gone` (Bo's), some of it on `keep` (An's) too."""
    stage = await OpportunityStage.first()
    now = datetime.now(UTC)
    contact = await Contact.create(customer=gone, name="Bo's contact", created_by=t.bo)
    await Contact.create(customer=keep, name="An's contact", created_by=t.an)
    deal = await Opportunity.create(
        customer=gone, name="Turbines", amount=Decimal("100"), stage=stage, owner=t.bo,
        created_by=t.bo,
    )  # fmt: skip
    await Contract.create(
        number="HT-1", title="Turbines", customer=gone, owner=t.bo, created_by=t.bo,
        signing_contact=contact, opportunity=deal,
    )  # fmt: skip
    await FollowUp.create(
        target_type=RecordType.CUSTOMER, target_id=gone.id, customer=gone, author=t.bo,
        method=FollowUpMethod.PHONE, content="called", occurred_at=now,
    )  # fmt: skip
    await FollowUp.create(
        target_type=RecordType.CONTACT, target_id=contact.id, customer=gone, author=t.bo,
        method=FollowUpMethod.VISIT, content="visited", occurred_at=now,
    )  # fmt: skip
    await Task.create(
        title="Call back", assignee=t.bo, creator=t.bo, related_type=RecordType.CUSTOMER,
        related_id=gone.id, customer=gone,
    )  # fmt: skip
    await CustomerTeamMember.create(customer=gone, user=t.olga, access=TeamAccess.READ)
    await CustomerTeamMember.create(
        customer=gone, user=t.admin, access=TeamAccess.WRITE, expires_at=now + timedelta(days=9)
    )
    await CustomerTeamMember.create(
        customer=keep, user=t.admin, access=TeamAccess.READ, expires_at=now + timedelta(days=1)
    )
    await PoolMovement.create(
        customer=gone, kind=PoolMovementKind.CLAIMED, actor=t.bo, new_owner=t.bo, created_at=now
    )
    await OperationLog.create(
        actor=t.bo, action="UPDATE", record_type=RecordType.CUSTOMER, record_id=gone.id,
        customer=gone, changes={}, summary="edited",
    )  # fmt: skip
    await Lead.create(company_name="Acme", converted_customer=gone, created_by=t.bo)
    return {"contact": contact, "deal": deal}


async def test_merge_moves_everything_into_the_kept_customer(org, gql, live):
    t = await org.sales_team()
    keep = await customer(t.an, "Acme Co., Ltd.", tags=["vip"], industry="Energy")
    gone = await customer(
        t.bo, "ACME Inc", phone="010-1234 5678", industry="Utilities", region="Beijing",
        tags=["VIP", "north"], deal_status=DealStatus.DEALT,
    )  # fmt: skip
    await _books(t, keep, gone)
    counts = {table: await model.all().count() for table, model in _COUNTED.items()}
    watcher = await live(t.mei)
    on_keep = await watcher.subscribe(RECORD_CHANGED, {"id": gid(keep)})
    on_gone = await watcher.subscribe(RECORD_CHANGED, {"id": gid(gone)})
    await asyncio.sleep(0.2)

    merged = (
        await gql.ok(MERGE, {"keep": gid(keep), "merge": [gid(gone)], "v": 1}, as_user=t.mei)
    )["mergeCustomers"]

    # The kept customer keeps its own values and takes the missing ones.
    assert merged["name"] == "Acme Co., Ltd." and merged["industry"] == "Energy"
    assert merged["phone"] == "010-1234 5678" and merged["dealStatus"] == "DEALT"
    assert merged["tags"] == ["vip", "north"] and merged["version"] == 2
    assert sorted(c["name"] for c in merged["contacts"]) == ["An's contact", "Bo's contact"]
    team = {m["user"]["username"]: m["access"] for m in merged["team"]}
    assert team == {"bo": "WRITE", "olga": "READ", t.admin.username: "WRITE"}
    admin_seat = await CustomerTeamMember.get(customer_id=keep.id, user_id=t.admin.id)
    assert admin_seat.expires_at > datetime.now(UTC) + timedelta(days=8)  # the longer one

    assert not await Customer.exists(id=gone.id)
    for model in (Contact, Opportunity, Contract, FollowUp, Task, PoolMovement):
        assert not await model.exists(customer_id=gone.id)
        assert await model.exists(customer_id=keep.id)
    assert await FollowUp.exists(target_type=RecordType.CUSTOMER, target_id=keep.id)
    assert await Task.exists(related_type=RecordType.CUSTOMER, related_id=keep.id)
    assert await Lead.exists(converted_customer_id=keep.id)
    assert await OperationLog.filter(customer_id=keep.id, summary="edited").exists()
    after = {table: await model.all().count() for table, model in _COUNTED.items()}
    # Admin's two seats become one; Bo, who owned the merged customer, gets one.
    assert after == counts | {"customer": counts["customer"] - 1}

    (entry,) = await OperationLog.filter(action="MERGE")
    assert entry.record_id == keep.id and entry.actor_id == t.mei.id
    assert "ACME Inc" in entry.summary and "Acme Co., Ltd." in entry.summary
    assert entry.changes["moved"][1]["contacts"] == 1

    events = {}
    for _ in range(2):
        message = await watcher.message()
        events[message["id"]] = message["payload"]["data"]["recordChanged"]
    changed, removed = events[on_keep], events[on_gone]
    assert changed["kind"] == "customer.changed" and changed["version"] == 2
    assert "phone" in changed["fields"]
    assert removed["kind"] == "customer.deleted" and removed["recordId"] == gid(gone)

    # The timeline of the kept customer now holds the merged one's follow-ups and log.
    timeline = await gql.ok(
        "query($id: ID!) { timeline(recordId: $id, first: 50) { edges { node { summary } } } }",
        {"id": gid(keep)},
        as_user=t.mei,
    )
    summaries = [e["node"]["summary"] for e in timeline["timeline"]["edges"]]
    assert any("called" in s for s in summaries) and any("Merged" in s for s in summaries)


async def test_refused_merges_change_nothing(org, gql):
    t = await org.sales_team()
    keep = await customer(t.an, "Acme Co., Ltd.")
    gone = await customer(t.bo, "ACME Inc")
    olgas = await customer(t.olga, "Acme North")
    await _books(t, keep, gone)
    before = await _snapshot()

    async def refused(user: User, variables: dict) -> str:
        return (await gql(MERGE, variables, as_user=user)).error["extensions"]["code"]

    pair = {"keep": gid(keep), "merge": [gid(gone)]}
    assert await refused(t.mei, {"keep": gid(keep), "merge": [gid(olgas)]}) == "NOT_FOUND"
    assert await refused(t.mei, {"keep": gid(olgas), "merge": [gid(gone)]}) == "NOT_FOUND"
    assert await refused(t.olga, pair) == "NOT_FOUND"
    assert await refused(t.an, pair) == "NOT_FOUND"  # Bo's customer is out of An's sight
    await CustomerTeamMember.create(customer=gone, user=t.an, access=TeamAccess.WRITE)
    before = await _snapshot()
    # Reps lack customer:delete; with it, a WRITE seat is not ownership of Bo's customer.
    assert await refused(t.an, pair) == "FORBIDDEN"
    assert await refused(t.mei, {"keep": gid(keep), "merge": [gid(keep)]}) == "BAD_USER_INPUT"
    assert await refused(t.mei, {"keep": gid(keep), "merge": []}) == "BAD_USER_INPUT"
    assert await refused(t.mei, pair | {"v": 7}) == "CONFLICT"
    assert await refused(t.mei, pair | {"mv": [3]}) == "CONFLICT"
    assert await _snapshot() == before


async def test_a_merge_failing_midway_changes_nothing(org, gql, monkeypatch):
    from meihua.resolvers import customer_merge

    t = await org.sales_team()
    keep = await customer(t.an, "Acme Co., Ltd.")
    gone = await customer(t.bo, "ACME Inc", phone="010-1234 5678")
    await _books(t, keep, gone)
    before = await _snapshot()

    async def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(customer_merge, "log_operation", broken)
    reply = await gql(MERGE, {"keep": gid(keep), "merge": [gid(gone)]}, as_user=t.mei)
    assert reply.errors
    assert await _snapshot() == before


_COUNTED = {
    "customer": Customer,
    "contact": Contact,
    "opportunity": Opportunity,
    "contract": Contract,
    "followup": FollowUp,
    "task": Task,
    "team": CustomerTeamMember,
    "pool_movement": PoolMovement,
    "lead": Lead,
}


async def _snapshot() -> dict:
    from tortoise import connections

    conn = connections.get("default")
    rows = {}
    for table in all_tables():
        if table == "event":
            continue
        rows[table] = await conn.execute_query_dict(f'SELECT * FROM "{table}" ORDER BY 1')
    return rows


async def test_the_duplicate_search_compares_a_bounded_window(org):
    from meihua.resolvers.access import Viewer
    from meihua.resolvers.duplicates import find_duplicates

    t = await org.sales_team()
    old = await customer(t.an, "Acme Co., Ltd.")
    await customer(t.bo, "ACME Inc")
    await customer(t.an, "Umbrella Holdings")
    await customer(t.bo, "Umbrella Ltd")
    viewer = await Viewer.load(t.mei)
    groups = await find_duplicates(viewer, scan_max=2, limit=10)
    assert [g.customer_ids for g in groups] == [[old.id + 2, old.id + 3]]
    # Named, a customer outside the window is compared with the window.
    groups = await find_duplicates(viewer, scan_max=2, limit=10, customer_id=old.id)
    assert groups == []
    groups = await find_duplicates(viewer, scan_max=4, limit=10, customer_id=old.id)
    assert [g.customer_ids for g in groups] == [[old.id, old.id + 1]]


def test_the_scan_window_is_configured():
    from meihua.settings import ConfigurationError, Settings

    assert Settings.from_env({"MEIHUA_DUPLICATE_SCAN_MAX": "500"}).duplicate_scan_max == 500
    with pytest.raises(ConfigurationError, match="MEIHUA_DUPLICATE_SCAN_MAX"):
        Settings.from_env({"MEIHUA_DUPLICATE_SCAN_MAX": "1"})


async def test_several_customers_merge_at_once(org, gql):
    t = await org.sales_team()
    keep = await customer(t.an, "Acme Co., Ltd.")
    first = await customer(t.bo, "ACME Inc", region="Beijing")
    second = await customer(t.an, "Acme Group", region="Shanghai", level="A")
    for row, name in ((first, "One"), (second, "Two"), (keep, "Kept")):
        await Contact.create(customer=row, name=name, created_by=t.an)
    merged = (
        await gql.ok(
            MERGE,
            {"keep": gid(keep), "merge": [gid(first), gid(second)], "mv": [1, 1]},
            as_user=t.mei,
        )
    )["mergeCustomers"]
    assert sorted(c["name"] for c in merged["contacts"]) == ["Kept", "One", "Two"]
    stored = await Customer.get(id=keep.id)
    assert (stored.region, stored.level) == ("Beijing", "A")  # the first one set wins
    assert await Customer.all().count() == 1
    assert await OperationLog.filter(action="MERGE").count() == 1
    # Bo owned one of them: he keeps working on it from the team; An owns the kept one.
    assert {m["user"]["username"] for m in merged["team"]} == {"bo"}
