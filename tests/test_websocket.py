"""GraphQL over WebSocket at /graphql, on a real uvicorn server in the test's event loop.

Both protocols of SPEC §8: `graphql-transport-ws` and the legacy `graphql-ws`; the
token travels in the `connection_init` payload, and every operation on an open socket
is checked again (a user deactivated mid-connection is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from meihua.models import User

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
ME = "{ me { username } }"
TIMEOUT = 5


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection, *, skip: tuple[str, ...] = ("ka", "ping")) -> dict:
    """The next protocol message, keep-alives skipped."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if message.get("type") not in skip:
            return message


async def closed_with(ws: ClientConnection) -> int:
    """Wait for the server to close the socket; its close code."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    return ws.close_code


async def answers_until_closed(ws: ClientConnection, op_id: str, query: str) -> list[dict]:
    """Run an operation on a socket the server is closing: what came back before the close."""
    messages = []
    with contextlib.suppress(ConnectionClosed):
        await send(ws, {"id": op_id, "type": "subscribe", "payload": {"query": query}})
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    return messages


def signed_out(messages: list[dict]) -> bool:
    """Every answer is UNAUTHENTICATED (there may be none: the close can come first)."""
    payloads = [m["payload"] for m in messages if m["type"] == "next"]
    return all(
        p.get("data") is None
        and [e["extensions"]["code"] for e in p["errors"]] == ["UNAUTHENTICATED"]
        for p in payloads
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def transport_init(ws: ClientConnection, payload: dict | None) -> None:
    message: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        message["payload"] = payload
    await send(ws, message)


async def transport_run(ws: ClientConnection, op_id: str, query: str) -> list[dict]:
    """Run a single-result operation; every message for it up to `complete`."""
    await send(ws, {"id": op_id, "type": "subscribe", "payload": {"query": query}})
    messages = []
    while True:
        message = await receive(ws)
        assert message.get("id") == op_id, message
        messages.append(message)
        if message["type"] in ("complete", "error"):
            return messages


# ------------------------------------------------------------------ graphql-transport-ws


async def test_transport_ws_query_with_a_valid_token(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        assert ws.subprotocol == TRANSPORT_WS
        await transport_init(ws, bearer(gql.token(alice)))
        assert (await receive(ws))["type"] == "connection_ack"

        messages = await transport_run(ws, "1", ME)
        assert messages == [
            {"id": "1", "type": "next", "payload": {"data": {"me": {"username": "alice"}}}},
            {"id": "1", "type": "complete"},
        ]
        # The socket stays open for more operations.
        messages = await transport_run(ws, "2", "{ me { isActive department { name } } }")
        assert messages[0]["payload"] == {
            "data": {"me": {"isActive": True, "department": {"name": "Office"}}}
        }


async def test_transport_ws_lowercase_authorization_key_works(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, {"authorization": f"Bearer {gql.token(alice)}"})
        assert (await receive(ws))["type"] == "connection_ack"


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": 42},
    ],
    ids=["no-payload", "empty-payload", "bad-token", "wrong-scheme", "not-a-string"],
)
async def test_transport_ws_without_a_valid_token_is_closed_4403(ws_url, org, payload):
    await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, payload)
        assert await closed_with(ws) == 4403


async def test_transport_ws_token_signed_with_another_key_is_closed_4403(ws_url, org):
    from datetime import timedelta

    from meihua.resolvers.auth import TokenSigner

    alice = await org.user("alice")
    forged = TokenSigner("some-other-secret-key-of-32-bytes!", timedelta(hours=1)).issue(alice)
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, bearer(forged))
        assert await closed_with(ws) == 4403


async def test_transport_ws_deactivated_user_is_closed_4403(ws_url, gql, org):
    alice = await org.user("alice")
    token = gql.token(alice)
    await User.filter(id=alice.id).update(is_active=False)
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, bearer(token))
        assert await closed_with(ws) == 4403


async def test_transport_ws_operation_before_init_is_refused(ws_url, org):
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": ME}})
        assert await closed_with(ws) == 4401


async def test_user_deactivated_after_connecting_is_cut_off(ws_url, gql, org):
    boss = await org.admin("boss")
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, bearer(gql.token(alice)))
        assert (await receive(ws))["type"] == "connection_ack"
        first = await transport_run(ws, "1", ME)
        assert first[0]["payload"] == {"data": {"me": {"username": "alice"}}}

        # An admin deactivates alice through the API while her socket is open.
        await gql.ok(
            "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
            {"id": (await gql.ok(ME.replace("username", "id"), as_user=alice))["me"]["id"]},
            as_user=boss,
        )

        # The socket is closed (ws_session); an operation that gets in first is refused.
        second = await answers_until_closed(ws, "2", ME)
        assert ws.close_code == 4403
        assert signed_out(second), second
        assert "alice" not in json.dumps(second)


async def test_password_change_ends_open_sockets_too(ws_url, gql, org):
    """`changePassword` ends a user's other sessions, including a live socket."""
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, bearer(gql.token(alice)))
        assert (await receive(ws))["type"] == "connection_ack"
        await gql.ok(
            'mutation { changePassword(currentPassword: "correct-horse-battery", '
            'newPassword: "another-long-password") { token } }',
            as_user=alice,
        )
        messages = await answers_until_closed(ws, "1", ME)
        assert ws.close_code == 4403
        assert signed_out(messages), messages


async def test_transport_ws_errors_carry_codes(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await transport_init(ws, bearer(gql.token(alice)))
        assert (await receive(ws))["type"] == "connection_ack"
        messages = await transport_run(ws, "1", '{ node(id: "garbage") { id } }')
        codes = [e["extensions"]["code"] for e in messages[0]["payload"]["errors"]]
        assert codes == ["NOT_FOUND"]


# ------------------------------------------------------------------------ graphql-ws (legacy)


async def test_legacy_ws_valid_token_is_acknowledged(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[LEGACY_WS]) as ws:
        assert ws.subprotocol == LEGACY_WS
        await send(ws, {"type": "connection_init", "payload": bearer(gql.token(alice))})
        assert (await receive(ws))["type"] == "connection_ack"
        # The connection stays usable: stopping an unknown operation is harmless and a
        # client-initiated terminate closes it normally.
        await send(ws, {"type": "stop", "id": "nothing"})
        await send(ws, {"type": "connection_terminate"})
        assert await closed_with(ws) == 1000


@pytest.mark.parametrize(
    "payload",
    [{}, {"Authorization": "Bearer not-a-token"}],
    ids=["no-token", "bad-token"],
)
async def test_legacy_ws_without_a_valid_token_gets_connection_error(ws_url, org, payload):
    await org.user("alice")
    async with connect(ws_url, subprotocols=[LEGACY_WS]) as ws:
        await send(ws, {"type": "connection_init", "payload": payload})
        message = await receive(ws)
        assert message["type"] == "connection_error", message
        assert message["payload"]["message"]
        await closed_with(ws)  # and the socket does not stay open


async def test_legacy_ws_deactivated_user_gets_connection_error(ws_url, gql, org):
    alice = await org.user("alice")
    token = gql.token(alice)
    await User.filter(id=alice.id).update(is_active=False)
    async with connect(ws_url, subprotocols=[LEGACY_WS]) as ws:
        await send(ws, {"type": "connection_init", "payload": bearer(token)})
        assert (await receive(ws))["type"] == "connection_error"


# ----------------------------------------------------------------------------- origins


async def test_cross_site_websocket_is_refused(ws_url, gql, org):
    """A page on another site cannot open a socket riding on the browser (no CORS origin set)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url, subprotocols=[TRANSPORT_WS], origin="https://evil.example"):
            pass  # pragma: no cover
    assert refused.value.response.status_code == 403


async def test_same_origin_websocket_is_allowed(ws_url, gql, org):
    alice = await org.user("alice")
    origin = "http://" + ws_url.removeprefix("ws://").split("/")[0]
    async with connect(ws_url, subprotocols=[TRANSPORT_WS], origin=origin) as ws:
        await transport_init(ws, bearer(gql.token(alice)))
        assert (await receive(ws))["type"] == "connection_ack"
