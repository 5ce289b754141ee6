"""The HTTP surface and the API conventions of SPEC §9 that every operation shares.

Checked-in SDL, authentication on every root field, error masking and codes,
GET/GraphiQL/health, query limits, CORS, `node(id:)` and the settings behind them.
"""

from __future__ import annotations

import json
import logging

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    Undefined,
    get_named_type,
    is_leaf_type,
)

import meihua.resolvers.customers as customer_rules
from meihua.models import Department
from meihua.schema import build_schema, print_sdl
from meihua.schema.relay import to_global_id
from meihua.settings import DEV_SECRET_KEY, ConfigurationError, Settings
from tests.conftest import serving

SECRET = "test-secret-key-of-at-least-32-bytes"
MAX_QUERY_DEPTH = Settings.query_depth_max


# --------------------------------------------------------------------------- SDL


def test_checked_in_sdl_is_up_to_date(repo_root):
    checked_in = (repo_root / "schema.graphql").read_text(encoding="utf-8")
    assert checked_in == print_sdl(), (
        "schema.graphql is out of date with the code: run "
        "`meihua export-schema > schema.graphql` and commit the result."
    )


# ------------------------------------------------------------------ auth on every field

_GRAPHQL_SCHEMA = build_schema()._schema

# Fields anyone may call without a token. Keep this list short and deliberate.
PUBLIC_FIELDS = {("Mutation", "login")}

# Values for custom scalars; a new scalar must be taught here (the test says so).
_SCALAR_DUMMIES = {
    "String": '"dummy"',
    "ID": '"dummy-id"',
    "Int": "1",
    "Float": "1.5",
    "Boolean": "true",
    "DateTime": '"2030-01-01T00:00:00+00:00"',
    "Date": '"2030-01-01"',
    "Decimal": '"1.00"',
    "JSON": "{}",
}


def _required(arg_or_field) -> bool:
    return isinstance(arg_or_field.type, GraphQLNonNull) and arg_or_field.default_value is Undefined


def _dummy(type_) -> str:
    """A GraphQL literal that passes validation for `type_` (required parts only)."""
    if isinstance(type_, GraphQLNonNull):
        return _dummy(type_.of_type)
    if isinstance(type_, GraphQLList):
        return f"[{_dummy(type_.of_type)}]"
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        parts = [f"{name}: {_dummy(f.type)}" for name, f in type_.fields.items() if _required(f)]
        return "{" + ", ".join(parts) + "}"
    assert isinstance(type_, GraphQLScalarType), type_
    assert type_.name in _SCALAR_DUMMIES, (
        f"tests/test_api.py: add a dummy value for the new scalar {type_.name!r} to _SCALAR_DUMMIES"
    )
    return _SCALAR_DUMMIES[type_.name]


def _operation(root: str, name: str) -> str:
    field = getattr(_GRAPHQL_SCHEMA, f"{root.lower()}_type").fields[name]
    args = [f"{arg}: {_dummy(a.type)}" for arg, a in field.args.items() if _required(a)]
    call = f"{name}({', '.join(args)})" if args else name
    selection = "" if is_leaf_type(get_named_type(field.type)) else " { __typename }"
    keyword = "query" if root == "Query" else "mutation"
    return f"{keyword} {{ {call}{selection} }}"


def _root_fields() -> list[tuple[str, str]]:
    found = []
    for root in ("Query", "Mutation"):
        type_ = getattr(_GRAPHQL_SCHEMA, f"{root.lower()}_type")
        found += [(root, name) for name in type_.fields if (root, name) not in PUBLIC_FIELDS]
    return found


ROOT_FIELDS = _root_fields()


def test_every_root_field_is_covered_by_the_auth_check():
    """The list below is generated from the schema, so a new field is checked automatically."""
    names = {name for _, name in ROOT_FIELDS}
    # The contract core (SPEC §9) is part of what gets checked.
    assert {"me", "node", "permissions", "customers"} <= names
    assert {"createDepartment", "createRole", "createUser", "deactivateUser"} <= names
    assert {"createCustomer", "updateCustomer"} <= names
    assert "login" not in names
    assert len(ROOT_FIELDS) == sum(
        len(getattr(_GRAPHQL_SCHEMA, f"{r}_type").fields) for r in ("query", "mutation")
    ) - len(PUBLIC_FIELDS)


@pytest.mark.parametrize(("root", "name"), ROOT_FIELDS, ids=[f"{r}.{n}" for r, n in ROOT_FIELDS])
@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no-token", "bad-token"])
async def test_root_field_needs_a_valid_token(gql, org, root, name, token):
    await org.admin()  # data exists, so an unguarded field would have something to leak
    departments_before = await Department.all().count()
    query = _operation(root, name)

    result = await gql(query, token=token)

    assert result.errors, f"{query} answered without a token: {result.data}"
    assert result.codes == ["UNAUTHENTICATED"], (query, result.errors)
    assert not result.data or result.data.get(name) is None, (query, result.data)
    assert await Department.all().count() == departments_before


async def test_login_needs_no_token(gql, org):
    await org.user("alice")
    data = await gql.ok(
        'mutation { login(username: "alice", password: "correct-horse-battery") { token } }'
    )
    assert data["login"]["token"]


async def test_introspection_works_without_a_token(gql):
    data = await gql.ok("{ __schema { queryType { name } mutationType { name } } }")
    assert data["__schema"] == {
        "queryType": {"name": "Query"},
        "mutationType": {"name": "Mutation"},
    }
    data = await gql.ok('{ __type(name: "Customer") { fields { name } } }')
    assert "version" in {f["name"] for f in data["__type"]["fields"]}


# ------------------------------------------------------------------------------ errors


async def test_unexpected_exception_is_masked_as_internal(gql, org, monkeypatch, caplog):
    admin = await org.admin()

    async def broken(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM x WHERE password = 'hunter2'")

    monkeypatch.setattr(customer_rules, "list_customers", broken)

    with caplog.at_level(logging.ERROR, logger="meihua"):
        reply = await gql.http.post(
            "/graphql",
            json={"query": "{ customers { totalCount } }"},
            headers={"Authorization": f"Bearer {gql.token(admin)}"},
        )

    body = reply.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL"}
    for leak in ("SELECT", "secret", "hunter2", "Traceback", "RuntimeError", "customers.py"):
        assert leak not in reply.text, f"{leak!r} reached the client: {reply.text}"
    # ...but the operator sees the real error in the server log.
    assert "SELECT secret FROM x" in caplog.text


async def test_other_fields_still_answer_beside_an_internal_error(gql, org, monkeypatch):
    admin = await org.admin()

    async def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(customer_rules, "list_customers", broken)
    # `customers` is non-null, so the error nulls the whole data; a sibling query
    # in another request is unaffected.
    result = await gql("{ customers { totalCount } }", as_user=admin)
    assert result.codes == ["INTERNAL"]
    assert (await gql.ok("{ me { username } }", as_user=admin))["me"] == {"username": "root"}


@pytest.mark.parametrize(
    "query",
    [
        "{ me { username ",  # syntax error
        "query { me { username } } }",  # trailing garbage
        "{ me { shoeSize } }",  # unknown field
        "{ noSuchRootField }",  # unknown root field
        "{ me }",  # object without a selection
        '{ customers(first: "many") { totalCount } }',  # wrong argument type
    ],
    ids=["syntax", "trailing", "unknown-field", "unknown-root", "no-selection", "arg-type"],
)
async def test_malformed_documents_are_bad_user_input(gql, org, query):
    admin = await org.admin()
    result = await gql(query, as_user=admin)
    assert result.data is None
    assert result.codes and set(result.codes) == {"BAD_USER_INPUT"}, result.errors
    assert all(e["message"] for e in result.errors)


async def test_bad_variables_are_bad_user_input(gql, org):
    admin = await org.admin()
    result = await gql(
        "query Q($n: Int!) { customers(first: $n) { totalCount } }",
        {"n": "twelve"},
        as_user=admin,
    )
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    result = await gql("query Q($n: Int!) { customers(first: $n) { totalCount } }", as_user=admin)
    assert result.codes == ["BAD_USER_INPUT"], result.errors


# ---------------------------------------------------------------------- HTTP transport


async def test_query_over_get(http, gql, org):
    admin = await org.admin()
    reply = await http.get(
        "/graphql",
        params={"query": "{ me { username isSuperAdmin } }"},
        headers={"Authorization": f"Bearer {gql.token(admin)}"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"data": {"me": {"username": "root", "isSuperAdmin": True}}}


async def test_query_over_get_with_variables_still_needs_a_token(http):
    reply = await http.get(
        "/graphql",
        params={
            "query": "query Q($id: ID!) { node(id: $id) { id } }",
            "variables": json.dumps({"id": to_global_id("Department", 1)}),
        },
    )
    assert [e["extensions"]["code"] for e in reply.json()["errors"]] == ["UNAUTHENTICATED"]


async def test_mutation_over_get_is_refused(http, gql, org):
    admin = await org.admin()
    before = await Department.all().count()
    reply = await http.get(
        "/graphql",
        params={"query": 'mutation { createDepartment(input: {name: "Sneaky"}) { id } }'},
        headers={"Authorization": f"Bearer {gql.token(admin)}"},
    )
    assert reply.status_code >= 400, reply.text
    assert "Sneaky" not in reply.text
    assert await Department.all().count() == before
    assert not await Department.filter(name="Sneaky").exists()


async def test_graphiql_is_served_to_browsers(http):
    reply = await http.get("/graphql", headers={"Accept": "text/html"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "graphiql" in reply.text.lower()


async def test_healthz(http):
    reply = await http.get("/healthz")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok"


# ------------------------------------------------------------------------ query limits


def _nested_department_query(depth: int) -> str:
    """`{ me { department { parent { parent … { id } } } } }` with `depth` levels."""
    inner = "id"
    for _ in range(depth - 2):
        inner = f"parent {{ {inner} }}"
    return f"{{ me {{ department {{ {inner} }} }} }}"


async def test_query_deeper_than_the_limit_is_refused(gql, org):
    admin = await org.admin()
    # A query at the limit is fine (and nothing here is close to a real client's needs).
    await gql.ok(_nested_department_query(MAX_QUERY_DEPTH), as_user=admin)

    result = await gql(_nested_department_query(MAX_QUERY_DEPTH + 3), as_user=admin)
    assert result.data is None
    assert result.codes == ["QUERY_TOO_COMPLEX"], result.errors
    assert "depth" in result.error["message"].lower()


async def test_depth_limit_applies_before_authentication(gql):
    result = await gql(_nested_department_query(MAX_QUERY_DEPTH + 3))
    assert result.data is None
    assert result.codes == ["QUERY_TOO_COMPLEX"], result.errors


# -------------------------------------------------------------------------------- CORS


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_preflight_from_an_allowed_origin(db):
    settings = Settings(database_url=db, secret_key=SECRET, cors_origins=("https://app.example",))
    async with serving(settings) as client:
        reply = await client.options("/graphql", headers=_preflight("https://app.example"))
        assert reply.status_code == 200, reply.text
        assert reply.headers["access-control-allow-origin"] == "https://app.example"
        allowed_headers = reply.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "POST" in reply.headers["access-control-allow-methods"]

        # The actual request is readable by the page too.
        reply = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Origin": "https://app.example"},
        )
        assert reply.headers["access-control-allow-origin"] == "https://app.example"


async def test_cors_preflight_from_another_origin_is_not_allowed(db):
    settings = Settings(database_url=db, secret_key=SECRET, cors_origins=("https://app.example",))
    async with serving(settings) as client:
        reply = await client.options("/graphql", headers=_preflight("https://evil.example"))
        assert "access-control-allow-origin" not in reply.headers
        reply = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in reply.headers


async def test_no_cors_origins_by_default(http):
    reply = await http.options("/graphql", headers=_preflight("https://app.example"))
    assert "access-control-allow-origin" not in reply.headers


# ------------------------------------------------------------------ production switches


async def test_introspection_and_graphiql_can_be_turned_off(db, org):
    settings = Settings(database_url=db, secret_key=SECRET, introspection=False, graphiql=False)
    async with serving(settings) as client:
        reply = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        body = reply.json()
        assert not (body.get("data") or {}).get("__schema"), body
        assert body["errors"], body

        reply = await client.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in reply.text.lower()

        # Ordinary operations still work.
        reply = await client.post(
            "/graphql",
            json={"query": '{ node(id: "x") { id } }'},
        )
        assert reply.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ------------------------------------------------------------------------------- node


@pytest.mark.parametrize(
    "global_id",
    [
        "garbage",
        "!!!",
        "",
        to_global_id("Department", 999_999),  # well-formed, nothing there
        to_global_id("Spaceship", 1),  # not a type of ours
        to_global_id("PasswordHash", 1),
    ],
    ids=["garbage", "symbols", "empty", "missing-row", "unknown-type", "internal-name"],
)
async def test_node_with_a_bad_id_is_not_found(gql, org, global_id):
    admin = await org.admin()
    result = await gql(
        "query Q($id: ID!) { node(id: $id) { id } }", {"id": global_id}, as_user=admin
    )
    assert result.codes == ["NOT_FOUND"], result.errors
    assert not result.data or result.data["node"] is None


async def test_node_with_a_good_id(gql, org):
    admin = await org.admin()
    office = await org.office()
    data = await gql.ok(
        "query Q($id: ID!) { node(id: $id) { id ... on Department { name } } }",
        {"id": to_global_id("Department", office.id)},
        as_user=admin,
    )
    assert data["node"] == {"id": to_global_id("Department", office.id), "name": "Office"}


# --------------------------------------------------------------------------- settings


def test_production_requires_a_secret_key():
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings.from_env({"MEIHUA_ENV": "production"})
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings.from_env({"MEIHUA_ENV": "production", "SECRET_KEY": ""})
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings.from_env({"MEIHUA_ENV": "production", "SECRET_KEY": "hunter2"})
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Settings.from_env({"MEIHUA_ENV": "production", "SECRET_KEY": DEV_SECRET_KEY})
    assert Settings.from_env({"MEIHUA_ENV": "production", "SECRET_KEY": "s" * 40}).production


def test_development_default_secret_warns_loudly(caplog):
    settings = Settings.from_env({})
    assert settings.secret_key == DEV_SECRET_KEY
    with caplog.at_level(logging.WARNING, logger="meihua"):
        settings.warn_if_insecure()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings and "SECRET_KEY" in caplog.text


def test_a_real_secret_does_not_warn(caplog):
    settings = Settings.from_env({"SECRET_KEY": "s" * 40})
    with caplog.at_level(logging.WARNING, logger="meihua"):
        settings.warn_if_insecure()
    assert "SECRET_KEY" not in caplog.text


def test_production_defaults():
    settings = Settings.from_env({"MEIHUA_ENV": "production", "SECRET_KEY": "s" * 40})
    assert settings.production
    assert settings.graphiql is False
    assert settings.introspection is False
    # ...which an operator can still turn back on explicitly.
    settings = Settings.from_env(
        {"MEIHUA_ENV": "production", "SECRET_KEY": "s" * 40, "MEIHUA_INTROSPECTION": "true"}
    )
    assert settings.introspection is True


def test_development_defaults_and_environment():
    settings = Settings.from_env({})
    assert settings.graphiql and settings.introspection
    assert settings.broadcast_url == "memory://"
    assert settings.database_url.startswith("sqlite://")
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://u@h/db",
            "BROADCAST_URL": "redis://h:6379",
            "MEIHUA_CORS_ORIGINS": "https://a.example, https://b.example,",
            "MEIHUA_PAGE_SIZE_MAX": "50",
        }
    )
    assert settings.database_url == "postgres://u@h/db"
    assert settings.broadcast_url == "redis://h:6379"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.page_size_max == 50


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEIHUA_TOKEN_LIFETIME_MINUTES", "forever"),
        ("MEIHUA_PAGE_SIZE_MAX", "1e3"),
        ("MEIHUA_PAGE_SIZE_MAX", "lots"),
        ("MEIHUA_TOKEN_LIFETIME_MINUTES", "0"),
        ("MEIHUA_PAGE_SIZE_MAX", "0"),
    ],
)
def test_bad_numbers_are_configuration_errors(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_unknown_database_schemes_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        Settings.from_env({"DATABASE_URL": "mysql://root@localhost/crm"})
