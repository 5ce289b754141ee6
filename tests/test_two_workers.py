"""Two server processes on one PostgreSQL database and one Redis (SPEC §4, §8).

The claim race is settled by the database, whichever process a claim lands on,
and an event made on one process reaches a subscriber of the other through
Redis. This is the scale-out set-up of a real deployment: `meihua serve` twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from meihua.models import Customer, Pool
from meihua.schema.relay import to_global_id

REDIS_URL = os.environ.get("MEIHUA_TEST_REDIS_URL")
MEIHUA = str(Path(sys.executable).with_name("meihua"))  # the installed console script
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { owner { id } } }"
POOL_EVENTS = "subscription { poolEvents { cursor kind customer { name } newOwner { id } } }"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def two_servers(db, settings) -> AsyncIterator[list[str]]:
    if not REDIS_URL:
        pytest.skip("Redis suite: set MEIHUA_TEST_REDIS_URL to run it")
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "BROADCAST_URL": REDIS_URL,
        "SECRET_KEY": settings.secret_key,
        "MEIHUA_RECYCLE_INTERVAL": "0",
    }
    ports = [_free_port(), _free_port()]
    servers = [
        subprocess.Popen(
            [MEIHUA, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        async with httpx.AsyncClient() as client:
            for url, server in zip(urls, servers, strict=True):
                for _ in range(200):
                    assert server.poll() is None, server.stderr.read().decode()
                    try:
                        if (await client.get(f"{url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
        yield urls
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


@pytest.mark.postgres_only
async def test_fifty_claims_over_two_processes_have_one_winner_and_one_event(two_servers, org, gql):
    first, second = two_servers
    sales = await org.department("Sales")
    rep = await org.default_role("Sales Rep")
    reps = [await org.user(f"rep{n:02}", department=sales, roles=[rep]) for n in range(50)]
    watcher = await org.user("watcher", department=sales, roles=[rep])
    pool = await Pool.get(company_wide=True)
    customer = await Customer.create(
        name="Contested Ltd",
        name_key="contested ltd",
        owner_id=None,
        pool_id=pool.id,
        pool_entered_at=datetime.now(UTC),
        created_by_id=watcher.id,
    )
    customer_id = to_global_id("Customer", customer.id)

    ws_url = second.replace("http", "ws") + "/graphql"
    async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"Authorization": f"Bearer {gql.token(watcher)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": POOL_EVENTS}})
        )
        await asyncio.sleep(0.5)  # the subscription is registered with the hub

        async with httpx.AsyncClient(timeout=30) as client:

            async def claim(n: int) -> dict:
                reply = await client.post(
                    f"{(first, second)[n % 2]}/graphql",
                    json={"query": CLAIM, "variables": {"id": customer_id}},
                    headers={"Authorization": f"Bearer {gql.token(reps[n])}"},
                )
                return reply.json()

            results = await asyncio.gather(*(claim(n) for n in range(50)))

        winners = [r for r in results if not r.get("errors")]
        codes = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
        assert len(winners) == 1, results
        assert codes == ["CONFLICT"] * 49
        await customer.refresh_from_db()
        assert winners[0]["data"]["claimCustomer"]["owner"]["id"] == to_global_id(
            "User", customer.owner_id
        )

        events = []
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                if message.get("type") == "next":
                    events.append(message["payload"]["data"]["poolEvents"])
        except TimeoutError:
            pass
    assert [(e["kind"], e["customer"]["name"]) for e in events] == [("CLAIMED", "Contested Ltd")]
    assert events[0]["newOwner"]["id"] == to_global_id("User", customer.owner_id)
