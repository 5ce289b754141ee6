"""Field-level permissions (字段权限): hidden fields read as null or masked on every
channel (lists, node, nested fields, exports, subscriptions, the operation log and
the timeline), READ and HIDDEN fields cannot be written, the most permissive role
wins, super admins are never restricted, pool customers have their own visibility,
and only settings:manage edits the matrix."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from meihua.models import (
    Contact,
    Customer,
    DataScope,
    FieldAccess,
    FieldPermission,
    RecordType,
    Role,
)
from meihua.schema.relay import to_global_id

PHONE = "13812345678"
MASKED = "138****5678"

SET = """
mutation($role: ID!, $entries: [FieldPermissionInput!]!) {
  setFieldPermissions(roleId: $role, entries: $entries) { recordType field access mask inPool }
}
"""
MATRIX = "query($role: ID!) { fieldPermissions(roleId: $role) { field access mask inPool } }"
CATALOGUE = "{ fieldCatalogue { recordType fields { name type hideable maskable } } }"
CREATE_CUSTOMER = """
mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id phone version } }
"""
UPDATE_CUSTOMER = """
mutation($id: ID!, $input: UpdateCustomerInput!) {
  updateCustomer(id: $id, input: $input) { id industry version }
}
"""
CREATE_CONTACT = """
mutation($input: CreateContactInput!) { createContact(input: $input) { id phone } }
"""
CUSTOMERS = """
query($filter: CustomerFilter) {
  customers(filter: $filter, first: 50) { edges { node { id name phone } } }
}
"""
NODE = "query($id: ID!) { node(id: $id) { ... on Customer { phone } } }"
CONTACTS_OF = """
query($id: ID!) { node(id: $id) { ... on Customer { contacts { name phone mobile } } } }
"""
EXPORT = "{ exportCustomers { content } }"
LOG = """
{ operationLog(first: 50) { edges { node { recordType changes { field oldValue newValue } } } } }
"""
TIMELINE = """
query($id: ID!) {
  timeline(recordId: $id, first: 50) {
    edges { node { operation { changes { field oldValue newValue } } } }
  }
}
"""
RELEASE = "mutation($ids: [ID!]!) { releaseCustomers(ids: $ids) { id } }"
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id } }"
POOL_EVENTS = "subscription { poolEvents { kind customer { name phone } } }"


def gid(role: Role) -> str:
    return to_global_id("Role", role.id)


async def restrict(gql, admin, role: Role, *entries: dict) -> None:
    await gql.ok(SET, {"role": gid(role), "entries": list(entries)}, as_user=admin)


async def rep_with_customer(gql, org, phone: str = PHONE):
    """The sales team, with a customer of An's (a Sales Rep) that has a phone."""
    team = await org.sales_team()
    created = await gql.ok(
        CREATE_CUSTOMER, {"input": {"name": "Acme", "phone": phone}}, as_user=team.an
    )
    return team, created["createCustomer"]["id"]


HIDE_PHONE = {"recordType": "CUSTOMER", "field": "phone", "access": "HIDDEN", "mask": "PHONE"}


async def test_a_hidden_phone_reads_masked_on_every_channel(gql, org):
    team, customer = await rep_with_customer(gql, org)
    rep = await org.default_role("Sales Rep")
    await restrict(gql, team.admin, rep, HIDE_PHONE)
    an = team.an

    listed = (await gql.ok(CUSTOMERS, as_user=an))["customers"]["edges"]
    assert [edge["node"]["phone"] for edge in listed] == [MASKED]
    assert (await gql.ok(NODE, {"id": customer}, as_user=an))["node"]["phone"] == MASKED

    exported = (await gql.ok(EXPORT, as_user=an))["exportCustomers"]["content"]
    assert MASKED in exported and PHONE not in exported

    logged = (await gql.ok(LOG, as_user=an))["operationLog"]["edges"]
    phones = [
        change
        for edge in logged
        for change in edge["node"]["changes"]
        if change["field"] == "phone"
    ]
    assert phones == [{"field": "phone", "oldValue": None, "newValue": MASKED}]
    timeline = (await gql.ok(TIMELINE, {"id": customer}, as_user=an))["timeline"]["edges"]
    assert PHONE not in str(timeline) and MASKED in str(timeline)

    # Searching by the hidden phone finds nothing: no oracle; the name still matches.
    found = await gql.ok(CUSTOMERS, {"filter": {"search": "12345678"}}, as_user=an)
    assert found["customers"]["edges"] == []
    found = await gql.ok(CUSTOMERS, {"filter": {"search": "Acme"}}, as_user=an)
    assert len(found["customers"]["edges"]) == 1

    # The manager's role has no entry, and super admins are never restricted.
    for user in (team.mei, team.admin):
        assert (await gql.ok(NODE, {"id": customer}, as_user=user))["node"]["phone"] == PHONE
        exported = (await gql.ok(EXPORT, as_user=user))["exportCustomers"]["content"]
        assert PHONE in exported


async def test_super_admins_holding_a_restricted_role_see_everything(gql, org):
    team, customer = await rep_with_customer(gql, org)
    rep = await org.default_role("Sales Rep")
    await restrict(gql, team.admin, rep, HIDE_PHONE)
    await team.admin.roles.add(rep)
    assert (await gql.ok(NODE, {"id": customer}, as_user=team.admin))["node"]["phone"] == PHONE


async def test_nested_contact_fields_hidden_as_null(gql, org):
    team, customer = await rep_with_customer(gql, org)
    await gql.ok(
        CREATE_CONTACT,
        {"input": {"customerId": customer, "name": "Wang", "phone": "13900001111"}},
        as_user=team.an,
    )
    rep = await org.default_role("Sales Rep")
    await restrict(
        gql, team.admin, rep, {"recordType": "CONTACT", "field": "phone", "access": "HIDDEN"}
    )
    nested = (await gql.ok(CONTACTS_OF, {"id": customer}, as_user=team.an))["node"]["contacts"]
    assert nested == [{"name": "Wang", "phone": None, "mobile": None}]
    listed = await gql.ok("{ contacts(first: 10) { edges { node { phone } } } }", as_user=team.an)
    assert listed["contacts"]["edges"] == [{"node": {"phone": None}}]
    exported = (await gql.ok("{ exportContacts { content } }", as_user=team.an))["exportContacts"][
        "content"
    ]
    assert "13900001111" not in exported
    # Searching contacts by the hidden phone finds nothing.
    found = await gql.ok(
        '{ contacts(first: 10, filter: {search: "0000111"}) { edges { node { name } } } }',
        as_user=team.an,
    )
    assert found["contacts"]["edges"] == []


async def test_subscription_payloads_mask_the_hidden_phone(gql, org, live):
    team, customer = await rep_with_customer(gql, org)
    rep = await org.default_role("Sales Rep")
    await restrict(gql, team.admin, rep, HIDE_PHONE)
    board = await live(team.bo)  # a pool member who sees what An releases
    watching = await board.subscribe(POOL_EVENTS)
    await asyncio.sleep(0.2)

    await gql.ok(RELEASE, {"ids": [customer]}, as_user=team.an)
    event = (await board.next(watching))["poolEvents"]
    assert event["kind"] == "RELEASED"
    assert event["customer"] == {"name": "Acme", "phone": MASKED}


async def test_read_and_hidden_fields_cannot_be_written(gql, org):
    team, customer = await rep_with_customer(gql, org)
    rep = await org.default_role("Sales Rep")
    await restrict(
        gql,
        team.admin,
        rep,
        HIDE_PHONE,
        {"recordType": "CUSTOMER", "field": "industry", "access": "READ"},
    )
    before = await Customer.get(name="Acme")

    for field, value in (("industry", "Energy"), ("phone", "13900000000")):
        refused = await gql(
            UPDATE_CUSTOMER, {"id": customer, "input": {field: value}}, as_user=team.an
        )
        assert refused.error["extensions"] == {"code": "FORBIDDEN", "field": field}
    after = await Customer.get(name="Acme")
    assert (after.industry, after.phone, after.version) == (None, PHONE, before.version)

    refused = await gql(
        CREATE_CUSTOMER, {"input": {"name": "Borealis", "phone": "13700000000"}}, as_user=team.bo
    )
    assert refused.error["extensions"] == {"code": "FORBIDDEN", "field": "phone"}
    assert not await Customer.exists(name="Borealis")

    # Fields left editable still are.
    ok = await gql.ok(UPDATE_CUSTOMER, {"id": customer, "input": {"level": "A"}}, as_user=team.an)
    assert ok["updateCustomer"]["version"] == before.version + 1


async def test_imports_refuse_rows_filling_a_read_only_field(gql, org):
    team = await org.sales_team()
    importer = await org.role("Importers", DataScope.SELF, ["customer:import"])
    user = await org.user("ivy", department=team.east, roles=[importer])
    await restrict(
        gql,
        team.admin,
        importer,
        {"recordType": "CUSTOMER", "field": "phone", "access": "READ"},
    )
    report = await gql.ok(
        "mutation($c: String!) { importCustomers(content: $c) "
        "{ imported errors { line field code } } }",
        {"c": "name,phone\nAcme,13800000000\nBorealis,\n"},
        as_user=user,
    )
    assert report["importCustomers"] == {
        "imported": 1,
        "errors": [{"line": 2, "field": "phone", "code": "FORBIDDEN"}],
    }
    assert await Customer.exists(name="Borealis")
    assert not await Customer.exists(name="Acme")


async def test_the_most_permissive_role_wins(gql, org):
    team, customer = await rep_with_customer(gql, org)
    rep = await org.default_role("Sales Rep")
    readers = await org.role("Phone readers", DataScope.SELF)
    await restrict(gql, team.admin, rep, HIDE_PHONE)
    await restrict(
        gql, team.admin, readers, {"recordType": "CUSTOMER", "field": "phone", "access": "READ"}
    )
    await team.an.roles.add(readers)
    assert (await gql.ok(NODE, {"id": customer}, as_user=team.an))["node"]["phone"] == PHONE
    # READ wins over HIDDEN, but READ still may not write.
    refused = await gql(
        UPDATE_CUSTOMER, {"id": customer, "input": {"phone": "13900000000"}}, as_user=team.an
    )
    assert refused.error["extensions"] == {"code": "FORBIDDEN", "field": "phone"}

    # A role without any entry leaves the field EDIT.
    await team.an.roles.add(await org.role("Plain", DataScope.SELF))
    await gql.ok(
        UPDATE_CUSTOMER, {"id": customer, "input": {"phone": "13900000000"}}, as_user=team.an
    )


async def test_a_contact_phone_is_hidden_while_its_customer_sits_in_the_pool(gql, org):
    team, customer = await rep_with_customer(gql, org)
    await gql.ok(
        CREATE_CONTACT,
        {"input": {"customerId": customer, "name": "Wang", "phone": "13900001111"}},
        as_user=team.an,
    )
    rep = await org.default_role("Sales Rep")
    await restrict(
        gql,
        team.admin,
        rep,
        {"recordType": "CONTACT", "field": "phone", "access": "HIDDEN", "inPool": True},
    )

    def phones(data: dict) -> list:
        return [contact["phone"] for contact in data["node"]["contacts"]]

    # Owned: the general rule (none) applies.
    assert phones(await gql.ok(CONTACTS_OF, {"id": customer}, as_user=team.an)) == ["13900001111"]
    await gql.ok(RELEASE, {"ids": [customer]}, as_user=team.an)
    assert phones(await gql.ok(CONTACTS_OF, {"id": customer}, as_user=team.bo)) == [None]
    exported = (await gql.ok("{ exportContacts { content } }", as_user=team.bo))["exportContacts"][
        "content"
    ]
    assert "13900001111" not in exported

    await gql.ok(CLAIM, {"id": customer}, as_user=team.bo)
    assert phones(await gql.ok(CONTACTS_OF, {"id": customer}, as_user=team.bo)) == ["13900001111"]


async def test_filtering_or_sorting_by_a_hidden_field_is_refused(gql, org):
    team, _ = await rep_with_customer(gql, org)
    rep = await org.default_role("Sales Rep")
    await restrict(
        gql,
        team.admin,
        rep,
        {"recordType": "CUSTOMER", "field": "industry", "access": "HIDDEN"},
        {"recordType": "CUSTOMER", "field": "lastFollowUpAt", "access": "HIDDEN"},
    )
    refused = await gql(CUSTOMERS, {"filter": {"industry": "Energy"}}, as_user=team.an)
    assert refused.error["extensions"] == {"code": "FORBIDDEN", "field": "industry"}
    refused = await gql(
        "{ customers(orderBy: {field: LAST_FOLLOW_UP_AT}) { totalCount } }", as_user=team.an
    )
    assert refused.error["extensions"] == {"code": "FORBIDDEN", "field": "lastFollowUpAt"}
    # The manager, unrestricted, filters as before.
    await gql.ok(CUSTOMERS, {"filter": {"industry": "Energy"}}, as_user=team.mei)


async def test_the_matrix_is_read_and_edited_with_settings_manage_only(gql, org):
    team = await org.sales_team()
    rep = await org.default_role("Sales Rep")

    for document, variables in (
        (CATALOGUE, {}),
        (MATRIX, {"role": gid(rep)}),
        (SET, {"role": gid(rep), "entries": [HIDE_PHONE]}),
    ):
        refused = await gql(document, variables, as_user=team.mei)
        assert refused.codes == ["FORBIDDEN"]
    assert not await FieldPermission.exists()

    catalogue = (await gql.ok(CATALOGUE, as_user=team.admin))["fieldCatalogue"]
    fields = {entry["recordType"]: entry["fields"] for entry in catalogue}
    assert set(fields) == {"CUSTOMER", "CONTACT", "LEAD", "OPPORTUNITY", "CONTRACT"}
    customer = {field["name"]: field for field in fields["CUSTOMER"]}
    assert customer["phone"] == {
        "name": "phone",
        "type": "String",
        "hideable": True,
        "maskable": True,
    }
    assert customer["name"]["hideable"] is False
    assert "id" not in customer and "version" not in customer and "owner" not in customer
    assert "decisionRole" in {field["name"] for field in fields["CONTACT"]}

    for entry, field in (
        ({"recordType": "CUSTOMER", "field": "nickname", "access": "READ"}, "field"),
        ({"recordType": "CUSTOMER", "field": "version", "access": "READ"}, "field"),
        ({"recordType": "CUSTOMER", "field": "name", "access": "HIDDEN"}, "access"),
        ({"recordType": "CUSTOMER", "field": "locked", "access": "HIDDEN"}, "access"),
        ({**HIDE_PHONE, "field": "region", "mask": "PHONE", "access": "READ"}, "mask"),
        (
            {"recordType": "OPPORTUNITY", "field": "remarks", "access": "HIDDEN", "inPool": True},
            "inPool",
        ),
    ):
        refused = await gql(
            SET, {"role": gid(rep), "entries": [HIDE_PHONE, entry]}, as_user=team.admin
        )
        assert refused.error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert not await FieldPermission.exists()  # all or none

    await restrict(gql, team.admin, rep, HIDE_PHONE)
    matrix = (await gql.ok(MATRIX, {"role": gid(rep)}, as_user=team.admin))["fieldPermissions"]
    assert matrix == [{"field": "phone", "access": "HIDDEN", "mask": "PHONE", "inPool": False}]
    await restrict(gql, team.admin, rep, {**HIDE_PHONE, "access": None})
    assert (await gql.ok(MATRIX, {"role": gid(rep)}, as_user=team.admin))["fieldPermissions"] == []


async def test_field_rules_cost_one_query_however_many_rows(gql, org, statements):
    team = await org.sales_team()
    rep = await org.default_role("Sales Rep")
    await FieldPermission.create(
        role=rep, record_type=RecordType.CUSTOMER, field="phone", access=FieldAccess.HIDDEN
    )
    await FieldPermission.create(
        role=rep,
        record_type=RecordType.CONTACT,
        field="phone",
        access=FieldAccess.HIDDEN,
        in_pool=True,
    )
    query = "{ customers(first: 50) { edges { node { phone contacts { phone } } } } }"

    added = 0

    async def cost_with(more: int) -> int:
        nonlocal added
        for i in range(added, added + more):
            customer = await Customer.create(
                name=f"C{i}",
                name_key=f"c{i}",
                phone=f"1380000{i:04d}",
                owner=team.an,
                created_by=team.an,
                taken_at=datetime.now(UTC),
            )
            await Contact.create(customer=customer, name=f"P{i}", created_by=team.an)
        added += more
        statements.count = 0
        data = await gql.ok(query, as_user=team.an)
        assert {edge["node"]["phone"] for edge in data["customers"]["edges"]} == {None}
        return statements.count

    few = await cost_with(2)
    many = await cost_with(6)
    assert many == few, (few, many)


async def test_converting_a_lead_refuses_to_fill_a_read_only_contact_field(gql, org):
    team = await org.sales_team()
    converters = await org.role(
        "Converters",
        DataScope.SELF,
        ["lead:create", "lead:convert", "customer:create", "contact:create"],
    )
    user = await org.user("lu", department=team.east, roles=[converters])
    lead = (
        await gql.ok(
            "mutation($input: CreateLeadInput!) { createLead(input: $input) { id } }",
            {"input": {"companyName": "Acme", "contactName": "Wang", "phone": PHONE}},
            as_user=user,
        )
    )["createLead"]["id"]
    await restrict(
        gql,
        team.admin,
        converters,
        {"recordType": "CONTACT", "field": "phone", "access": "READ"},
    )
    refused = await gql(
        "mutation($id: ID!) { convertLead(id: $id) { status } }", {"id": lead}, as_user=user
    )
    assert refused.error["extensions"] == {"code": "FORBIDDEN", "field": "contact.phone"}
    assert not await Customer.exists(name="Acme")
