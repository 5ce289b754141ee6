"""The product catalogue (产品): everyone reads it, `product:manage` keeps it."""

from __future__ import annotations

import asyncio

import pytest

from meihua.models import Product, User
from meihua.schema.relay import from_global_id, to_global_id

FIELDS = "id name code unit unitPrice category description isActive version"
CREATE = f"""
mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{ {FIELDS} }} }}
"""
UPDATE = f"""
mutation($id: ID!, $input: UpdateProductInput!, $v: Int) {{
  updateProduct(id: $id, input: $input, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
ACTIVATE = "mutation($id: ID!) { activateProduct(id: $id) { id isActive version } }"
DEACTIVATE = "mutation($id: ID!) { deactivateProduct(id: $id) { id isActive version } }"
LIST = """
query($filter: ProductFilter, $orderBy: ProductOrder, $first: Int, $after: String) {
  products(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { node { code name unitPrice isActive } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Product { code unitPrice } } }"


@pytest.fixture
async def admin(org) -> User:
    """Holds the default Administrator role, which has `product:manage`."""
    return await org.user("ada", roles=[await org.default_role("Administrator")])


@pytest.fixture
async def rep(org) -> User:
    return await org.user("rita", roles=[await org.default_role("Sales Rep")])


async def add(gql, user: User, code: str, **fields) -> dict:
    product = {"name": f"Product {code}", "code": code, "unitPrice": "100.00", **fields}
    return (await gql.ok(CREATE, {"input": product}, as_user=user))["createProduct"]


def pk(global_id: str) -> int:
    kind, value = from_global_id(global_id)
    assert kind == "Product"
    return value


# ---------------------------------------------------------------------------
# creating


async def test_create_product_keeps_the_price_exact(gql, admin):
    made = await add(
        gql, admin, " CRM-PRO ", name="CRM Pro licence", unitPrice="1999.5", unit="seat",
        category="Software", description="Per seat and year",
    )  # fmt: skip
    assert made["code"] == "CRM-PRO"
    assert made["unitPrice"] == "1999.50"  # a string, to the cent
    assert (made["unit"], made["category"], made["isActive"], made["version"]) == (
        "seat", "Software", True, 1,
    )  # fmt: skip
    row = await Product.get(id=pk(made["id"]))
    assert str(row.unit_price) == "1999.50"


async def test_creating_products_needs_product_manage(gql, rep):
    result = await gql(
        CREATE, {"input": {"name": "Mine", "code": "X1", "unitPrice": "1"}}, as_user=rep
    )
    assert result.codes == ["FORBIDDEN"]
    assert not await Product.exists()


async def test_product_codes_are_unique(gql, admin):
    await add(gql, admin, "SKU-1")
    result = await gql(
        CREATE, {"input": {"name": "Other", "code": "SKU-1", "unitPrice": "5"}}, as_user=admin
    )
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["field"] == "code"
    assert await Product.all().count() == 1


async def test_the_same_code_entered_at_once_is_taken_once(gql, admin):
    results = await asyncio.gather(
        *(
            gql(
                CREATE,
                {"input": {"name": f"P{n}", "code": "RACE", "unitPrice": "1"}},
                as_user=admin,
            )
            for n in range(4)
        )
    )
    assert sorted(code for r in results for code in r.codes) == ["DUPLICATE"] * 3
    assert await Product.filter(code="RACE").count() == 1


@pytest.mark.parametrize(
    "price, field",
    [
        ("-0.01", "unitPrice"),
        ("12.345", "unitPrice"),
        ("NaN", "unitPrice"),
        ("Infinity", "unitPrice"),
        ("100000000000000", "unitPrice"),  # 10^14: more than the column holds
    ],
)
async def test_unit_price_is_whole_cents_and_not_negative(gql, admin, price, field):
    result = await gql(
        CREATE, {"input": {"name": "P", "code": "P", "unitPrice": price}}, as_user=admin
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert not await Product.exists()


async def test_a_free_product_is_allowed(gql, admin):
    assert (await add(gql, admin, "FREE", unitPrice="0"))["unitPrice"] == "0.00"


@pytest.mark.parametrize(
    "change, field",
    [({"name": " "}, "name"), ({"code": ""}, "code"), ({"unit": "x" * 21}, "unit")],
)
async def test_create_validates_the_fields(gql, admin, change, field):
    product = {"name": "P", "code": "P", "unitPrice": "1", **change}
    result = await gql(CREATE, {"input": product}, as_user=admin)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert not await Product.exists()


# ---------------------------------------------------------------------------
# updating, activating


async def test_update_changes_what_is_sent(gql, admin):
    made = await add(gql, admin, "SKU-1", category="Hardware")
    updated = (
        await gql.ok(
            UPDATE, {"id": made["id"], "input": {"unitPrice": "80", "category": ""}, "v": 1},
            as_user=admin,
        )
    )["updateProduct"]  # fmt: skip
    assert (updated["unitPrice"], updated["category"], updated["name"], updated["version"]) == (
        "80.00", None, "Product SKU-1", 2,
    )  # fmt: skip


async def test_update_with_a_stale_version_conflicts(gql, admin):
    made = await add(gql, admin, "SKU-1")
    await gql.ok(UPDATE, {"id": made["id"], "input": {"name": "New"}, "v": 1}, as_user=admin)
    result = await gql(
        UPDATE, {"id": made["id"], "input": {"name": "Newer"}, "v": 1}, as_user=admin
    )
    assert result.codes == ["CONFLICT"]
    assert (await Product.get(id=pk(made["id"]))).name == "New"


async def test_update_refuses_a_code_taken_by_another_product(gql, admin):
    await add(gql, admin, "SKU-1")
    second = await add(gql, admin, "SKU-2")
    result = await gql(UPDATE, {"id": second["id"], "input": {"code": "SKU-1"}}, as_user=admin)
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["field"] == "code"
    assert (await Product.get(id=pk(second["id"]))).code == "SKU-2"
    # Keeping one's own code is no clash.
    await gql.ok(UPDATE, {"id": second["id"], "input": {"code": "SKU-2"}}, as_user=admin)


async def test_deactivate_and_activate(gql, admin):
    made = await add(gql, admin, "SKU-1")
    off = (await gql.ok(DEACTIVATE, {"id": made["id"]}, as_user=admin))["deactivateProduct"]
    assert (off["isActive"], off["version"]) == (False, 2)
    again = (await gql.ok(DEACTIVATE, {"id": made["id"]}, as_user=admin))["deactivateProduct"]
    assert (again["isActive"], again["version"]) == (False, 2)  # nothing to do
    on = (await gql.ok(ACTIVATE, {"id": made["id"]}, as_user=admin))["activateProduct"]
    assert (on["isActive"], on["version"]) == (True, 3)


async def test_changing_products_needs_product_manage(gql, admin, rep):
    made = await add(gql, admin, "SKU-1")
    for query, variables in [
        (UPDATE, {"id": made["id"], "input": {"unitPrice": "1"}}),
        (DEACTIVATE, {"id": made["id"]}),
        (ACTIVATE, {"id": made["id"]}),
    ]:
        assert (await gql(query, variables, as_user=rep)).codes == ["FORBIDDEN"]
    row = await Product.get(id=pk(made["id"]))
    assert (str(row.unit_price), row.is_active, row.version) == ("100.00", True, 1)


async def test_changing_a_missing_product_is_not_found(gql, admin):
    missing = to_global_id("Product", 999)
    assert (await gql(UPDATE, {"id": missing, "input": {"name": "X"}}, as_user=admin)).codes == [
        "NOT_FOUND"
    ]
    assert (await gql(DEACTIVATE, {"id": missing}, as_user=admin)).codes == ["NOT_FOUND"]


# ---------------------------------------------------------------------------
# reading


async def test_every_signed_in_user_reads_the_catalogue(gql, admin, rep):
    await add(gql, admin, "B-2", name="Beta", unitPrice="20")
    await add(gql, admin, "A-1", name="Alpha", unitPrice="10.5")
    products = (await gql.ok(LIST, as_user=rep))["products"]
    assert products["totalCount"] == 2
    assert [e["node"]["name"] for e in products["edges"]] == ["Alpha", "Beta"]  # by name
    assert products["edges"][0]["node"]["unitPrice"] == "10.50"
    found = (await gql.ok(NODE, {"id": to_global_id("Product", 1)}, as_user=rep))["node"]
    assert found["code"] == "B-2"
    assert (await gql(LIST)).codes == ["UNAUTHENTICATED"]


async def test_catalogue_filters(gql, admin):
    await add(gql, admin, "HW-1", name="Router", category="Hardware")
    await add(gql, admin, "HW-2", name="Switch", category="Hardware")
    await add(gql, admin, "SW-1", name="Router firmware", category="Software")
    old = await add(gql, admin, "HW-0", name="Old router", category="Hardware")
    await gql.ok(DEACTIVATE, {"id": old["id"]}, as_user=admin)

    async def codes(**filter) -> list[str]:
        data = await gql.ok(LIST, {"filter": filter, "orderBy": {"field": "CODE"}}, as_user=admin)
        return [e["node"]["code"] for e in data["products"]["edges"]]

    assert await codes(search="router") == ["HW-0", "HW-1", "SW-1"]
    assert await codes(search="sw-") == ["SW-1"]  # the code too
    assert await codes(category="Hardware") == ["HW-0", "HW-1", "HW-2"]
    assert await codes(category="Hardware", isActive=True) == ["HW-1", "HW-2"]
    assert await codes(isActive=False) == ["HW-0"]


async def test_catalogue_pages(gql, admin):
    for n in range(5):
        await add(gql, admin, f"P-{n}")
    seen, after = [], None
    while True:
        data = await gql.ok(
            LIST, {"first": 2, "after": after, "orderBy": {"field": "CODE"}}, as_user=admin
        )
        page = data["products"]
        seen += [e["node"]["code"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"P-{n}" for n in range(5)]
