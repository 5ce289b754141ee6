"""Conformance of /graphql's WebSocket to graphql-transport-ws, and the socket's limits.

Close codes as the protocol defines them (4400, 4401, 4403, 4406, 4408, 4409,
4429), ping/pong, the cap on operations per socket, and sockets closed when the
token they signed in with expires or their user is signed out; on a real
uvicorn server, like tests/test_websocket.py. The legacy graphql-ws protocol
keeps working and gets the same limits.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from meihua.resolvers.auth import TokenSigner
from meihua.schema.relay import to_global_id
from meihua.settings import ConfigurationError, Settings
from tests.conftest import SECRET

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
ME = "{ me { username } }"
POOL = "subscription { poolEvents { cursor } }"
TIMEOUT = 5


@pytest.fixture
def settings(db, request) -> Settings:
    """The suite's settings; a test changes some with `with_settings`."""
    return Settings(database_url=db, secret_key=SECRET, **getattr(request, "param", {}))


def with_settings(**changes: Any):
    return pytest.mark.parametrize("settings", [changes], indirect=True, ids=["settings"])


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Wait for the server to close the socket; its close code and reason."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    return ws.close_code, ws.close_reason


async def signed_in(ws: ClientConnection, token: str) -> None:
    await send(ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert (await receive(ws))["type"] == "connection_ack"


async def run(ws: ClientConnection, op_id: str, query: str) -> list[dict[str, Any]]:
    """A single-result operation's messages, up to its `complete`."""
    await send(ws, {"id": op_id, "type": "subscribe", "payload": {"query": query}})
    messages = [await receive(ws)]
    while messages[-1]["type"] not in ("complete", "error"):
        messages.append(await receive(ws))
    return messages


async def legacy_answers(ws: ClientConnection) -> bool:
    """Whether a legacy socket still serves operations (it runs only subscriptions, so
    this one starts a subscription the schema rejects and looks for the error)."""
    await send(ws, {"id": "probe", "type": "start", "payload": {"query": "subscription { nope }"}})
    message = await receive(ws)
    return message["type"] == "error" and message["id"] == "probe"


def short_lived(user, seconds: int) -> str:
    """A token for `user` that expires within `seconds` (JWT expiry is whole seconds)."""
    return TokenSigner(SECRET, timedelta(seconds=seconds)).issue(user)


# ------------------------------------------------------------------------------ 4400


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        b'{"type": "ping"}',
        "[]",
        '"connection_init"',
        {},
        {"type": "hello"},
        {"type": "next", "id": "1", "payload": {"data": {}}},
        {"type": "ping", "payload": "hi"},
        {"type": "complete"},
        {"type": "subscribe", "payload": {"query": ME}},
        {"type": "subscribe", "id": "", "payload": {"query": ME}},
        {"type": "subscribe", "id": ["1"], "payload": {"query": ME}},
        {"type": "subscribe", "id": "1"},
        {"type": "subscribe", "id": "1", "payload": "{ me { username } }"},
        {"type": "subscribe", "id": "1", "payload": {"query": 42}},
        {"type": "subscribe", "id": "1", "payload": {"query": ME, "variables": [1]}},
        {"type": "subscribe", "id": "1", "payload": {"query": ME, "operationName": 7}},
        {"type": "subscribe", "id": "1", "payload": {"query": "{ me {"}},
    ],
    ids=[
        "not-json",
        "binary-frame",
        "json-array",
        "json-string",
        "no-type",
        "unknown-type",
        "server-to-client-type",
        "ping-payload-not-object",
        "complete-without-id",
        "subscribe-without-id",
        "subscribe-empty-id",
        "subscribe-list-id",
        "subscribe-without-payload",
        "subscribe-payload-not-object",
        "query-not-string",
        "variables-not-object",
        "operation-name-not-string",
        "query-syntax-error",
    ],
)
async def test_an_invalid_message_closes_4400(ws_url, gql, org, raw):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await ws.send(raw if isinstance(raw, str | bytes) else json.dumps(raw))
        code, reason = await closed_with(ws)
        assert code == 4400, reason
        assert reason


async def test_a_connection_init_payload_that_is_not_an_object_closes_4400(ws_url, org):
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(ws, {"type": "connection_init", "payload": "Bearer abc"})
        assert (await closed_with(ws))[0] == 4400


async def test_a_null_connection_init_payload_is_allowed_and_then_refused_for_no_token(ws_url, org):
    """The protocol allows `payload: null`; with no token in it the answer is 4403, not 4400."""
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(ws, {"type": "connection_init", "payload": None})
        assert (await closed_with(ws))[0] == 4403


# ------------------------------------------------------------------------------ 4401


async def test_subscribe_before_connection_ack_closes_4401(ws_url, org):
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": POOL}})
        assert await closed_with(ws) == (4401, "Unauthorized")


# ------------------------------------------------------------------------------ 4403


@pytest.mark.parametrize("token", ["garbage", "expired", "other-key", "deactivated"])
async def test_connection_init_without_a_valid_sign_in_closes_4403(ws_url, gql, org, token):
    from meihua.models import User

    alice = await org.user("alice")
    tokens = {
        "garbage": "not-a-token",
        "expired": TokenSigner(SECRET, timedelta(minutes=-1)).issue(alice),
        "other-key": TokenSigner(
            "another-secret-key-of-32-bytes-or-more", timedelta(hours=1)
        ).issue(alice),
        "deactivated": gql.token(alice),
    }
    await User.filter(id=alice.id).update(is_active=token != "deactivated")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(
            ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens[token]}"}}
        )
        assert (await closed_with(ws))[0] == 4403


# ------------------------------------------------------------------------------ 4406


@pytest.mark.parametrize("offered", [["graphql-sse"], []], ids=["unknown", "none"])
async def test_a_socket_without_a_known_subprotocol_closes_4406(ws_url, offered):
    async with connect(ws_url, subprotocols=offered or None) as ws:
        assert ws.subprotocol is None
        assert (await closed_with(ws))[0] == 4406


# ------------------------------------------------------------------------------ 4408


@with_settings(ws_init_timeout=0.3)
async def test_no_connection_init_in_time_closes_4408(ws_url):
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(ws, {"type": "ping"})  # a ping is not an initialisation
        assert (await receive(ws))["type"] == "pong"
        assert (await closed_with(ws))[0] == 4408


@with_settings(ws_init_timeout=0.3)
async def test_a_legacy_socket_without_connection_init_in_time_closes_4408(ws_url):
    async with connect(ws_url, subprotocols=[LEGACY_WS]) as ws:
        assert (await closed_with(ws))[0] == 4408


@with_settings(ws_init_timeout=0.3)
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_socket_initialised_in_time_stays_open_past_the_timeout(ws_url, gql, org, protocol):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[protocol]) as ws:
        await signed_in(ws, gql.token(alice))
        await asyncio.sleep(0.6)
        if protocol == TRANSPORT_WS:
            assert (await run(ws, "1", ME))[0]["payload"]["data"] == {"me": {"username": "alice"}}
        else:
            assert await legacy_answers(ws)


# ------------------------------------------------------------------------------ 4409


async def test_a_second_subscriber_with_a_running_id_closes_4409(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await send(ws, {"id": "board", "type": "subscribe", "payload": {"query": POOL}})
        await send(ws, {"id": "board", "type": "subscribe", "payload": {"query": POOL}})
        assert await closed_with(ws) == (4409, "Subscriber for board already exists")


async def test_a_close_reason_quoting_a_long_id_still_fits_the_close_frame(ws_url, gql, org):
    alice = await org.user("alice")
    long_id = "订单" * 100
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await send(ws, {"id": long_id, "type": "subscribe", "payload": {"query": POOL}})
        await send(ws, {"id": long_id, "type": "subscribe", "payload": {"query": POOL}})
        code, reason = await closed_with(ws)
        assert code == 4409
        assert reason.startswith("Subscriber for 订单订单")
        assert len(reason.encode()) <= 123


async def test_an_id_is_free_again_once_completed(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await send(ws, {"id": "board", "type": "subscribe", "payload": {"query": POOL}})
        await send(ws, {"id": "board", "type": "complete"})
        assert (await run(ws, "board", ME))[0]["payload"]["data"] == {"me": {"username": "alice"}}


# ------------------------------------------------------------------------------ 4429


async def test_a_second_connection_init_closes_4429(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await send(ws, {"type": "connection_init", "payload": {}})
        assert await closed_with(ws) == (4429, "Too many initialisation requests")


# ------------------------------------------------------------------------------ ping / pong


async def test_a_ping_is_answered_with_a_pong_carrying_its_payload(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        # Pings are allowed at any time, before connection_init too.
        await send(ws, {"type": "ping", "payload": {"sent": 1}})
        assert await receive(ws) == {"type": "pong", "payload": {"sent": 1}}
        await send(ws, {"type": "ping"})
        assert await receive(ws) == {"type": "pong"}
        await send(ws, {"type": "ping", "payload": None})
        assert await receive(ws) == {"type": "pong"}

        await signed_in(ws, gql.token(alice))
        await send(ws, {"type": "ping", "payload": {"latency": "probe"}})
        assert await receive(ws) == {"type": "pong", "payload": {"latency": "probe"}}


async def test_an_unrequested_pong_is_ignored(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await send(ws, {"type": "pong", "payload": {"heartbeat": True}})
        await signed_in(ws, gql.token(alice))
        await send(ws, {"type": "pong"})
        assert (await run(ws, "1", ME))[0]["payload"]["data"] == {"me": {"username": "alice"}}


# ------------------------------------------------------------------------------ operation cap


@with_settings(ws_max_operations=2)
async def test_an_operation_over_the_cap_gets_limit_exceeded_and_the_socket_stays(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        for op_id in ("1", "2"):
            await send(ws, {"id": op_id, "type": "subscribe", "payload": {"query": POOL}})
        await send(ws, {"id": "3", "type": "subscribe", "payload": {"query": POOL}})
        refused = await receive(ws)
        assert refused["id"] == "3" and refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": 2}

        # Completing one makes room again.
        await send(ws, {"id": "1", "type": "complete"})
        assert (await run(ws, "4", ME))[0]["payload"]["data"] == {"me": {"username": "alice"}}


@with_settings(ws_max_operations=1)
async def test_the_cap_holds_on_legacy_sockets_too(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[LEGACY_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await send(ws, {"id": "1", "type": "start", "payload": {"query": POOL}})
        await send(ws, {"id": "2", "type": "start", "payload": {"query": POOL}})
        refused = await receive(ws)
        assert refused["id"] == "2" and refused["type"] == "error", refused
        assert refused["payload"]["extensions"]["code"] == "LIMIT_EXCEEDED"


# ------------------------------------------------------------------------------ sign-in ends


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_socket_closes_4403_when_its_token_expires(ws_url, org, protocol):
    """Closed at expiry even with nothing sent: the close is scheduled, not checked per message."""
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[protocol]) as ws:
        await signed_in(ws, short_lived(alice, seconds=2))
        await send(
            ws,
            {
                "id": "board",
                "type": "subscribe" if protocol == TRANSPORT_WS else "start",
                "payload": {"query": POOL},
            },
        )
        assert await closed_with(ws) == (4403, "Token expired")


async def test_an_idle_socket_closes_4403_when_its_user_is_deactivated(ws_url, gql, org):
    admin = await org.admin()
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[TRANSPORT_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await gql.ok(
            "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
            {"id": to_global_id("User", alice.id)},
            as_user=admin,
        )
        assert await closed_with(ws) == (4403, "Signed out")


async def test_another_users_sign_out_leaves_the_socket_open(ws_url, gql, org):
    admin = await org.admin()
    alice, bob = await org.user("alice"), await org.user("bob")
    async with (
        connect(ws_url, subprotocols=[TRANSPORT_WS]) as alices,
        connect(ws_url, subprotocols=[TRANSPORT_WS]) as bobs,
    ):
        await signed_in(alices, gql.token(alice))
        await signed_in(bobs, gql.token(bob))
        await gql.ok(
            "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
            {"id": to_global_id("User", bob.id)},
            as_user=admin,
        )
        assert await closed_with(bobs) == (4403, "Signed out")
        assert (await run(alices, "1", ME))[0]["payload"]["data"] == {"me": {"username": "alice"}}


# ------------------------------------------------------------------------------ legacy shape checks


async def test_a_malformed_legacy_start_gets_an_error_and_the_socket_stays(ws_url, gql, org):
    alice = await org.user("alice")
    async with connect(ws_url, subprotocols=[LEGACY_WS]) as ws:
        await signed_in(ws, gql.token(alice))
        await send(ws, {"id": "1", "type": "start"})
        refused = await receive(ws)
        assert refused["id"] == "1" and refused["type"] == "error", refused
        assert refused["payload"]["extensions"]["code"] == "BAD_USER_INPUT"
        await ws.send("[]")
        assert (await receive(ws))["type"] == "error"

        assert await legacy_answers(ws)


# ------------------------------------------------------------------------------ settings


def test_websocket_limits_come_from_the_environment():
    assert (Settings.from_env({}).ws_init_timeout, Settings.from_env({}).ws_max_operations) == (
        10.0,
        50,
    )
    settings = Settings.from_env(
        {"MEIHUA_WS_INIT_TIMEOUT": "2.5", "MEIHUA_WS_MAX_OPERATIONS": "20"}
    )
    assert (settings.ws_init_timeout, settings.ws_max_operations) == (2.5, 20)


@pytest.mark.parametrize(
    "env",
    [
        {"MEIHUA_WS_INIT_TIMEOUT": "0"},
        {"MEIHUA_WS_INIT_TIMEOUT": "nan"},
        {"MEIHUA_WS_INIT_TIMEOUT": "soon"},
        {"MEIHUA_WS_MAX_OPERATIONS": "0"},
        {"MEIHUA_WS_MAX_OPERATIONS": "many"},
    ],
)
def test_bad_websocket_limits_are_refused(env):
    with pytest.raises(ConfigurationError, match=next(iter(env))):
        Settings.from_env(env)
