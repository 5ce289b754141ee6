"""Cross-site request forgery: what a page on another site can make a browser send.

A cross-site page can POST forms and `fetch` bodies typed form-urlencoded,
multipart/form-data, text/plain (or untyped) without a CORS preflight, and can
make the browser GET any URL. None of that may change data: such bodies are
refused unless they carry a header only a preflighted request can carry, and
mutations never run over GET.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from meihua.models import Department
from meihua.settings import Settings
from tests.conftest import SECRET, serving

CREATE = 'mutation { createDepartment(input: {name: "Forged"}) { name } }'
BODY = json.dumps({"query": CREATE})
SPA = "https://crm.example.com"

SIMPLE_TYPES = [
    "application/x-www-form-urlencoded",
    "text/plain",
    "text/plain;charset=UTF-8",  # what fetch() sends for a string body
    "multipart/form-data; boundary=x",
    None,  # fetch() with a Blob body and no type
    "text/plain; charset=application/json",  # still text/plain to a browser
    "Application/X-WWW-Form-Urlencoded",
]


def _headers(admin_token: str, content_type: str | None, **extra: str) -> dict[str, str]:
    # The token stands in for whatever credential a victim's browser might hold:
    # the request must fail on its shape, not for want of one.
    headers = {"Authorization": f"Bearer {admin_token}", **extra}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


async def _forged_departments() -> int:
    return await Department.filter(name="Forged").count()


# ------------------------------------------------------------------ simple bodies


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
async def test_a_body_a_form_could_send_is_refused_and_writes_nothing(http, gql, org, content_type):
    admin = await org.admin()
    reply = await http.post(
        "/graphql", content=BODY, headers=_headers(gql.token(admin), content_type)
    )
    assert reply.status_code == 415, reply.text
    [error] = reply.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "X-Meihua-CSRF" in error["message"] and "application/json" in error["message"]
    assert await _forged_departments() == 0


@pytest.mark.parametrize(
    ("content_type", "header"),
    [
        ("application/x-www-form-urlencoded", "X-Meihua-CSRF"),  # curl -d
        ("text/plain", "Apollo-Require-Preflight"),
        (None, "X-Meihua-CSRF"),
    ],
)
async def test_the_same_request_with_the_csrf_header_runs(http, gql, org, content_type, header):
    admin = await org.admin()
    reply = await http.post(
        "/graphql",
        content=BODY,
        headers=_headers(gql.token(admin), content_type, **{header: "1"}),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"data": {"createDepartment": {"name": "Forged"}}}
    assert await _forged_departments() == 1


async def test_an_empty_csrf_header_does_not_count(http, gql, org):
    admin = await org.admin()
    headers = _headers(gql.token(admin), "text/plain", **{"X-Meihua-CSRF": " "})
    reply = await http.post("/graphql", content=BODY, headers=headers)
    assert reply.status_code == 415, reply.text
    assert await _forged_departments() == 0


async def test_multipart_is_not_read_even_with_the_header(http, gql, org):
    # No operation takes a file upload (CSV imports send the file's text or
    # base64 inside the JSON), so a multipart body is never parsed at all.
    admin = await org.admin()
    reply = await http.post(
        "/graphql",
        files={"operations": (None, BODY), "map": (None, "{}")},
        headers={"Authorization": f"Bearer {gql.token(admin)}", "X-Meihua-CSRF": "1"},
    )
    assert reply.status_code == 400, reply.text
    assert await _forged_departments() == 0


async def test_json_needs_no_header(http, gql, org):
    admin = await org.admin()
    reply = await http.post(
        "/graphql", content=BODY, headers=_headers(gql.token(admin), "application/json")
    )
    assert reply.json() == {"data": {"createDepartment": {"name": "Forged"}}}


# --------------------------------------------------------------------------- GET


async def test_a_mutation_over_get_is_refused(http, gql, org):
    admin = await org.admin()
    reply = await http.get(
        "/graphql",
        params={"query": CREATE},
        headers={"Authorization": f"Bearer {gql.token(admin)}"},
    )
    assert reply.status_code == 400, reply.text
    assert "mutations are not allowed" in reply.text
    assert await _forged_departments() == 0


async def test_a_mutation_named_in_a_get_document_is_refused(http, gql, org):
    admin = await org.admin()
    document = f"query Harmless {{ __typename }} mutation Forge {CREATE.removeprefix('mutation')}"
    auth = {"Authorization": f"Bearer {gql.token(admin)}"}

    reply = await http.get(
        "/graphql", params={"query": document, "operationName": "Forge"}, headers=auth
    )
    assert reply.status_code == 400, reply.text
    assert await _forged_departments() == 0

    # The query beside it is still fine to run over GET.
    reply = await http.get(
        "/graphql", params={"query": document, "operationName": "Harmless"}, headers=auth
    )
    assert reply.json() == {"data": {"__typename": "Query"}}
    assert await _forged_departments() == 0


async def test_a_cookie_carries_no_authority(http, gql, org):
    # Browsers attach cookies to cross-site GETs; Meihua reads only the
    # Authorization header, which a cross-site page cannot set unasked.
    admin = await org.admin()
    token = gql.token(admin)
    reply = await http.get(
        "/graphql",
        params={"query": "{ me { username } }"},
        headers={"Cookie": f"token={token}; Authorization=Bearer {token}"},
    )
    assert [e["extensions"]["code"] for e in reply.json()["errors"]] == ["UNAUTHENTICATED"]


# -------------------------------------------------------------------------- CORS


@pytest.fixture
async def spa_client(db) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=db, secret_key=SECRET, cors_origins=(SPA,))
    async with serving(settings) as client:
        yield client


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-meihua-csrf",
    }


async def test_an_allowed_origin_may_send_the_csrf_header(spa_client):
    reply = await spa_client.options("/graphql", headers=_preflight(SPA))
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == SPA
    allowed = {h.strip().lower() for h in reply.headers["access-control-allow-headers"].split(",")}
    assert {"x-meihua-csrf", "apollo-require-preflight", "authorization"} <= allowed


async def test_another_origin_gets_no_cors_headers(spa_client):
    reply = await spa_client.options("/graphql", headers=_preflight("https://evil.example"))
    assert reply.status_code == 400
    assert "access-control-allow-origin" not in reply.headers
    # Its simple request is refused, and its page may not even read why.
    reply = await spa_client.post(
        "/graphql",
        content=BODY,
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
    )
    assert reply.status_code == 415
    assert "access-control-allow-origin" not in reply.headers
    assert await _forged_departments() == 0
