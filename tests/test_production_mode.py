"""Production mode (MEIHUA_ENV=production): what a stranger can learn and what browsers are told.

No GraphiQL, no introspection and no "Did you mean …?" hints that would spell
the schema out anyway; errors reach clients masked; every response carries
security headers, Strict-Transport-Security only in production.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from meihua import app as app_module
from meihua.resolvers.auth import TokenSigner
from meihua.schema import extensions as schema_extensions
from meihua.settings import Settings
from tests.conftest import SECRET, serving

PRODUCTION = {"MEIHUA_ENV": "production", "SECRET_KEY": SECRET}


@contextlib.asynccontextmanager
async def client_for(db: str, **environ: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app configured from these environment variables, as an operator would."""
    settings = Settings.from_env({"DATABASE_URL": db, **environ})
    # A crash must reach the client as the app's own 500, not as an exception here.
    async with serving(settings, raise_app_exceptions=False) as client:
        yield client


@pytest.fixture
async def production(db) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(db, **PRODUCTION) as client:
        yield client


@pytest.fixture
async def development(db) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(db) as client:
        yield client


async def post(client: httpx.AsyncClient, query: str, variables=None, **headers) -> dict:
    reply = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


# ------------------------------------------------------------------ what is served


async def test_no_graphiql_page(production):
    reply = await production.get("/graphql", headers={"Accept": "text/html"})
    assert reply.status_code == 404
    assert "graphiql" not in reply.text.lower()


@pytest.mark.parametrize(
    "query",
    ["{ __schema { types { name } } }", '{ __type(name: "Customer") { fields { name } } }'],
)
async def test_introspection_is_refused(production, query):
    body = await post(production, query)
    assert body["data"] is None
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert "introspection has been disabled" in body["errors"][0]["message"]
    # __typename is not introspection; clients rely on it.
    assert await post(production, "{ __typename }") == {"data": {"__typename": "Query"}}


# Documents with a near miss, and the name graphql-core would suggest for each.
NEAR_MISSES = [
    ("{ customerz { totalCount } }", None, "customers"),
    ("{ customers(frist: 5) { totalCount } }", None, "first"),
    ("query($f: CustomerFiltr) { customers(filter: $f) { totalCount } }", None, "CustomerFilter"),
    (
        'mutation($m: FollowUpMethod!) { createFollowUp(input: {targetId: "x", method: $m,'
        ' content: "c"}) { id } }',
        {"m": "PHON"},
        "PHONE",
    ),
    (
        "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { id } }",
        {"i": {"name": "A", "phon": "1"}},
        "'phone'",
    ),
]


@pytest.mark.parametrize(
    ("environ", "suggested"),
    [
        (PRODUCTION, False),
        ({**PRODUCTION, "MEIHUA_INTROSPECTION": "true"}, True),
        ({}, True),
    ],
    ids=["production", "production-with-introspection", "development"],
)
async def test_field_suggestions_only_where_introspection_is_on(db, environ, suggested):
    async with client_for(db, **environ) as client:
        for query, variables, name in NEAR_MISSES:
            body = await post(client, query, variables)
            assert body["data"] is None, body
            assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
            messages = " ".join(e["message"] for e in body["errors"])
            assert ("Did you mean" in messages) is suggested, messages
            assert (name in messages) is suggested, messages


# ----------------------------------------------------------------- masked errors


async def test_a_crash_before_the_operation_is_masked(production, org, monkeypatch, caplog):
    token = TokenSigner(SECRET, timedelta(minutes=5)).issue(await org.admin())

    async def broken(*args, **kwargs):
        raise RuntimeError("SELECT password_hash FROM users; -- postgres://meihua:hunter2@db")

    # Authentication runs in a schema extension, before strawberry's error hooks.
    monkeypatch.setattr(schema_extensions, "authenticate", broken)
    reply = await production.post(
        "/graphql",
        json={"query": "{ me { username } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.json() == {
        "data": None,
        "errors": [{"message": "Internal server error.", "extensions": {"code": "INTERNAL"}}],
    }
    assert "hunter2" not in reply.text
    assert "hunter2" in caplog.text  # the operator still learns what happened


async def test_a_crash_in_the_http_layer_is_a_bare_500(production, monkeypatch):
    async def broken(self, request, response):
        raise RuntimeError("secret in /srv/meihua/app.py")

    monkeypatch.setattr(app_module.MeihuaGraphQL, "get_context", broken)
    reply = await production.post("/graphql", json={"query": "{ __typename }"})
    assert reply.status_code == 500
    assert reply.json() == {
        "errors": [{"message": "Internal server error.", "extensions": {"code": "INTERNAL"}}]
    }
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" in reply.headers


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("Decimal!", "12,5"),
        ("DateTime!", "yesterday"),
        ("Int!", 2**40),
        ("Boolean!", "yes"),
        ("[ID!]!", {"not": "a list"}),
    ],
)
async def test_bad_variables_echo_no_python_internals(production, type_name, value):
    body = await post(production, f"query($v: {type_name}) {{ __typename }}", {"v": value})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("Variable '$v'"), error
    for leak in ("Traceback", 'File "', "<class", "Error:", "Exception", "decimal.", "dateutil"):
        assert leak not in error["message"], error


# ------------------------------------------------------------------------ headers

SECURE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


async def _responses(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
    return {
        "graphql POST": await client.post("/graphql", json={"query": "{ __typename }"}),
        "graphql GET": await client.get("/graphql", params={"query": "{ __typename }"}),
        "csrf refusal": await client.post("/graphql", content=b"{}"),
        "healthz": await client.get("/healthz"),
        "not found": await client.get("/no-such-page"),
        "pool board": await client.get("/pool"),
        "asset": await client.get("/static/pool.js"),
        "preflight": await client.options(
            "/graphql",
            headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"},
        ),
    }


async def test_every_response_carries_the_security_headers(production):
    for name, reply in (await _responses(production)).items():
        for header, value in SECURE.items():
            assert reply.headers.get(header) == value, (name, reply.headers)
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"], name
        assert reply.headers["strict-transport-security"].startswith("max-age="), name


async def test_api_answers_are_not_cached_and_run_nothing(production):
    reply = await production.post("/graphql", json={"query": "{ __typename }"})
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["content-security-policy"].startswith("default-src 'none'")


async def test_pages_keep_their_own_policies(production):
    reply = await production.get("/pool")
    assert "script-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["cache-control"] == "no-cache"


async def test_development_has_no_strict_transport_and_keeps_graphiql_working(development):
    for name, reply in (await _responses(development)).items():
        assert "strict-transport-security" not in reply.headers, name
        assert reply.headers["x-content-type-options"] == "nosniff", name
    page = await development.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    # GraphiQL loads its scripts from a CDN: only framing is barred on pages.
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert page.headers["x-frame-options"] == "DENY"
