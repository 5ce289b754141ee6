"""Real-time benchmark: the public-pool claim race and live-event latency on one worker.

Seeds a scratch database, starts `meihua serve` (one worker) as a subprocess and
drives it from this process over HTTP and WebSocket, as real clients would.
bench/README.md says what is measured and how to read the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from meihua import db
from meihua.models import Customer, Department, Pool, Role, User
from meihua.resolvers.auth import TokenSigner
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

SECRET_KEY = "meihua-benchmark-secret-key-0123456789"
# uvicorn closes a connection idle for 5 s; the client lets go first, or a request sent as
# the server closes fails (seen on a loaded machine, where rounds take seconds).
KEEPALIVE = 3.0
PROBES = 30  # pool customers set aside for "is every subscription live yet?"
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id } }"
RELEASE = 'mutation($ids: [ID!]!) { releaseCustomers(ids: $ids, reason: "bench") { id } }'
IN_POOL = "{ customers(filter: {inPool: true}) { totalCount } }"
POOL_EVENTS = "subscription { poolEvents { cursor kind at customer { id name } actor { id } } }"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--subscribers", type=int, default=1000, help="WebSocket subscriptions to poolEvents")
    add("--events", type=int, default=50, help="pool movements to time, one at a time")
    add("--claimers", type=int, default=50, help="reps racing for one customer per round")
    add("--rounds", type=int, default=20, help="claim-race rounds")
    add("--gap", type=float, default=0.1, help="seconds between two timed movements")
    add("--timeout", type=float, default=30, help="idle seconds before giving up on an event")
    add(
        "--database-url",
        help="postgres://… server: a scratch database is made there and "
        "dropped afterwards (default: a temporary SQLite file)",
    )
    add("--broadcast-url", default="memory://", help="memory:// (default) or redis://…")
    add("--profile", metavar="FILE", help="run the server under cProfile, stats to FILE")
    add("--json", action="store_true", help="print machine-readable results")
    return parser.parse_args()


# --- set-up ----------------------------------------------------------------------


@asynccontextmanager
async def scratch_database(url: str | None, workdir: Path):
    """A database nobody else uses, removed afterwards."""
    if url is None:
        yield f"sqlite://{workdir / 'bench.sqlite3'}"
        return
    import asyncpg

    name = f"meihua_bench_{os.getpid()}"
    admin = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def seed(url: str, args: argparse.Namespace) -> dict:
    """Migrate, then add reps (Sales Rep role) and pool customers straight through the models."""
    await db.migrate(url)
    await db.open_database(url)
    try:
        pool, rep = await Pool.get(company_wide=True), await Role.get(name="Sales Rep")
        team = await Department.create(name="Bench", parent=await Department.get(parent_id=None))
        users = [
            await User.create(
                username=f"rep{n:03}", name=f"Rep {n}", password_hash="!", department=team
            )
            for n in range(args.claimers)
        ]
        await rep.users.add(*users)
        groups = {"race": args.rounds, "move": math.ceil(args.events / 2), "probe": PROBES}
        names = {g: [f"Bench {g} {n:04}" for n in range(count)] for g, count in groups.items()}
        await Customer.bulk_create(
            Customer(
                name=name,
                name_key=normalize_name(name),
                created_by_id=users[0].id,
                pool_id=pool.id,
                pool_entered_at=datetime.now().astimezone(),
            )
            for group in names.values()
            for name in group
        )
        ids = {c.name: to_global_id("Customer", c.id) for c in await Customer.all()}
        signer = TokenSigner(SECRET_KEY, timedelta(hours=6))
        tokens = [signer.issue(user) for user in users]
        return {"reps": tokens, **{g: [ids[name] for name in group] for g, group in names.items()}}
    finally:
        await db.close_database()


def start_server(url: str, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(
        os.environ,
        DATABASE_URL=url,
        BROADCAST_URL=args.broadcast_url,
        SECRET_KEY=SECRET_KEY,
        MEIHUA_RECYCLE_INTERVAL="0",
    )
    command = [shutil.which("meihua") or "meihua", "serve", "--port", str(port)]
    if args.profile:
        command = [sys.executable, "-m", "cProfile", "-o", args.profile, *command]
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT), port


async def wait_healthy(http: httpx.AsyncClient, server: subprocess.Popen, log: Path) -> None:
    for _ in range(600):
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with suppress(httpx.TransportError):
            if (await http.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    sys.exit("the server did not become healthy within 60 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_kb(pid: int) -> int:
    """The process's resident memory in kB (Linux /proc)."""
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())[1])


def spread(seconds: list[float]) -> dict:
    """Count, p50, p99 and max in milliseconds (nearest rank)."""
    ordered = sorted(seconds)
    if not ordered:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return round(ordered[max(math.ceil(p * len(ordered)) - 1, 0)] * 1000, 1)

    return {"n": len(ordered), "p50": rank(0.5), "p99": rank(0.99), "max": rank(1.0)}


async def graphql(http: httpx.AsyncClient, token: str, query: str, variables: dict) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    reply = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return reply.json()


# --- claim race ------------------------------------------------------------------


async def claim_race(http: httpx.AsyncClient, seeded: dict, pid: int) -> dict:
    """Each round, every rep claims the same pool customer at once: exactly one may win."""
    reps = seeded["reps"]
    pool_size = (await graphql(http, reps[0], IN_POOL, {}))["data"]["customers"]["totalCount"]
    every, winners, problems, busy, cpu = [], [], [], 0.0, cpu_seconds(pid)

    async def claim(token: str, gid: str) -> tuple[float, dict]:
        start = time.perf_counter()
        body = await graphql(http, token, CLAIM, {"id": gid})
        return time.perf_counter() - start, body

    for round_no, gid in enumerate(seeded["race"]):
        start = time.perf_counter()
        replies = await asyncio.gather(*(claim(token, gid) for token in reps))
        busy += time.perf_counter() - start
        won = [took for took, body in replies if (body.get("data") or {}).get("claimCustomer")]
        codes = Counter(
            e.get("extensions", {}).get("code") for _, b in replies for e in b.get("errors", [])
        )
        every += [took for took, _ in replies]
        winners += won
        if len(won) != 1 or set(codes) - {"CONFLICT"}:
            problems.append(f"claim race round {round_no}: {len(won)} winners, {dict(codes)}")
    cpu = cpu_seconds(pid) - cpu
    left = (await graphql(http, reps[0], IN_POOL, {}))["data"]["customers"]["totalCount"]
    if pool_size - left != len(seeded["race"]):
        problems.append(f"the pool shrank by {pool_size - left}, not {len(seeded['race'])}")
    return {
        "rounds": len(seeded["race"]),
        "claimers": len(reps),
        "latency_ms": {
            "every claim (1 winner + losers per round)": spread(every),
            "winning claims": spread(winners),
        },
        "claims_per_s": round(len(every) / busy, 1),
        "server_cpu_ms_per_claim": round(cpu / len(every) * 1000, 1),
        "problems": problems,
    }


# --- live events -----------------------------------------------------------------


class Subscriber:
    """One graphql-transport-ws socket subscribed to poolEvents, noting when each event came."""

    def __init__(self, ws, tally: Counter, wake: asyncio.Event) -> None:
        self.ws, self.tally, self.wake = ws, tally, wake
        self.got: dict[tuple[str, str], list[float]] = {}
        self.at: dict[tuple[str, str], str] = {}
        self.errors: list[str] = []
        self.reader = asyncio.create_task(self.read())

    @classmethod
    async def open(cls, url: str, token: str, tally: Counter, wake: asyncio.Event) -> Subscriber:
        ws = await connect(url, subprotocols=["graphql-transport-ws"], ping_interval=None)
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        if (ack := json.loads(await ws.recv()))["type"] != "connection_ack":
            sys.exit(f"the server refused a WebSocket: {ack}")
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": POOL_EVENTS}})
        )
        return cls(ws, tally, wake)

    async def read(self) -> None:
        try:
            async for raw in self.ws:
                arrived = time.perf_counter()
                message = json.loads(raw)
                if message["type"] == "ping":
                    await self.ws.send('{"type": "pong"}')
                elif message["type"] == "next" and not message["payload"].get("errors"):
                    event = message["payload"]["data"]["poolEvents"]
                    key = (event["customer"]["id"], event["kind"])
                    self.got.setdefault(key, []).append(arrived)
                    self.at[key] = event["at"]
                    self.tally[key] += 1
                    self.wake.set()
                else:
                    self.errors.append(raw[:300])
        except ConnectionClosed as closed:
            self.errors.append(f"socket closed: {closed}")


async def move(http: httpx.AsyncClient, token: str, gid: str, claim: bool) -> float:
    """Claim or release one customer; returns when its (committed) answer arrived."""
    query, variables = (CLAIM, {"id": gid}) if claim else (RELEASE, {"ids": [gid]})
    if (body := await graphql(http, token, query, variables)).get("errors"):
        sys.exit(f"a pool movement failed: {body['errors']}")
    return time.perf_counter()


async def reached(key, expected: int, tally: Counter, wake: asyncio.Event, idle: float) -> bool:
    """Wait until `expected` subscribers have the event, or nothing came for `idle` seconds."""
    while tally[key] < expected:
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), idle)
        except TimeoutError:
            return False
    return True


async def event_latency(
    http: httpx.AsyncClient, ws_url: str, seeded: dict, args: argparse.Namespace, pid: int
) -> dict:
    """Open the subscriptions, then time each pool movement until every subscriber has it."""
    tally, wake, reps, n = Counter(), asyncio.Event(), seeded["reps"], args.subscribers
    gate = asyncio.Semaphore(50)  # sockets being opened at once

    async def open_one(i: int) -> Subscriber:
        async with gate:
            return await Subscriber.open(ws_url, reps[i % len(reps)], tally, wake)

    rss_before, start = resident_kb(pid), time.perf_counter()
    subscribers = await asyncio.gather(*(open_one(i) for i in range(n)))
    connect_s = time.perf_counter() - start
    # graphql-transport-ws does not confirm a subscription: probe until one event
    # reached everybody; every later event must then reach everybody too.
    for probe in seeded["probe"]:
        await move(http, reps[0], probe, claim=True)
        if await reached((probe, "CLAIMED"), n, tally, wake, idle=2):
            break
    else:
        sys.exit(f"the subscriptions never all went live: {tally.most_common(3)}")
    live_s, rss_live = time.perf_counter() - start, resident_kb(pid)

    answered, requests, cpu, own = {}, [], cpu_seconds(pid), time.process_time()
    for i in range(args.events):
        gid, claim = seeded["move"][i // 2], i % 2 == 0
        key, sent = (gid, "CLAIMED" if claim else "RELEASED"), time.perf_counter()
        answered[key] = await move(http, reps[0], gid, claim)
        requests.append(answered[key] - sent)
        await reached(key, n, tally, wake, idle=args.timeout)
        await asyncio.sleep(args.gap)
    cpu, own = cpu_seconds(pid) - cpu, time.process_time() - own

    to_wall = time.time() - time.perf_counter()
    by_answer, by_at, first, last, counts = [], [], [], [], Counter()
    for key, t0 in answered.items():
        firsts = [s.got[key][0] for s in subscribers if key in s.got]
        counts["delivered"] += len(firsts)
        counts["duplicates"] += sum(len(s.got.get(key, ())) > 1 for s in subscribers)
        at = next((datetime.fromisoformat(s.at[key]) for s in subscribers if key in s.at), None)
        by_answer += [t - t0 for t in firsts]
        by_at += [t + to_wall - at.timestamp() for t in firsts] if at else []
        first += [min(firsts) - t0] if firsts else []
        last += [max(firsts) - t0] if firsts else []
    errors = [error for s in subscribers for error in s.errors]
    await asyncio.gather(*(s.ws.close() for s in subscribers), return_exceptions=True)
    return {
        "subscribers": n,
        "events": args.events,
        "expected": n * args.events,
        "delivered": counts["delivered"],
        "duplicates": counts["duplicates"],
        "connect_s": round(connect_s, 1),
        "all_live_s": round(live_s, 1),
        "server_rss_mb": [round(rss_before / 1024, 1), round(rss_live / 1024, 1)],
        "server_kb_per_subscriber": round((rss_live - rss_before) / n, 1),
        "latency_ms": {
            "claim/release request": spread(requests),
            "commit -> client, from HTTP answer (floor)": spread(by_answer),
            "commit -> client, from event `at` (ceiling)": spread(by_at),
            "per event: first subscriber, from answer": spread(first),
            "per event: last subscriber, from answer": spread(last),
        },
        "server_cpu_ms_per_event": round(cpu / args.events * 1000, 1),
        "bench_cpu_ms_per_event": round(own / args.events * 1000, 1),
        "subscriber_errors": errors[:10],
    }


# --- report ----------------------------------------------------------------------


def revision() -> str:
    """The commit measured, `-dirty` when the working tree differs from it."""
    git = ["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"]
    return subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"


def machine() -> str:
    cpu = re.search(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu and cpu[1]}), {platform.platform()}, Python {python}"


def print_summary(r: dict) -> None:
    race, live = r["claim_race"], r["events"]

    def table(latencies: dict[str, dict]) -> None:
        print(f"  {'latency, ms':<44}{'p50':>9}{'p99':>9}{'max':>9}")
        for label, s in latencies.items():
            print(f"  {label:<44}{s['p50']!s:>9}{s['p99']!s:>9}{s['max']!s:>9}   n={s['n']}")

    print(f"\nMeihua real-time benchmark, {r['date']}, revision {r['revision']}")
    print(f"  machine: {r['machine']}")
    print(
        f"  load average (1, 5, 15 min): {r['load_average_before']} before, "
        f"{r['load_average_after']} after"
    )
    print(f"  server:  meihua serve, 1 worker, {r['database']}, bus {r['broadcast']}")
    print(f"\nClaim race: {race['rounds']} rounds, {race['claimers']} reps claim one customer")
    table(race["latency_ms"])
    print(
        f"  {race['claims_per_s']} claims/s; server CPU {race['server_cpu_ms_per_claim']} ms "
        f"per claim; exactly one winner per round: {'NO' if race['problems'] else 'yes'}"
    )
    print(
        f"\nLive events: {live['events']} pool movements, {live['subscribers']} subscribers "
        f"(opened in {live['connect_s']} s, all live after {live['all_live_s']} s)"
    )
    table(live["latency_ms"])
    print(
        f"  server memory: {live['server_rss_mb'][0]} MB before the sockets, "
        f"{live['server_rss_mb'][1]} MB with all live ({live['server_kb_per_subscriber']} kB each)"
    )
    print(
        f"  delivered {live['delivered']} of {live['expected']} expected, "
        f"{live['duplicates']} duplicated"
    )
    print(
        f"  CPU per event: server {live['server_cpu_ms_per_event']} ms, "
        f"benchmark client {live['bench_cpu_ms_per_event']} ms (both on this machine)"
    )


async def run(args: argparse.Namespace) -> dict:
    setting = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "revision": revision(),
        "machine": machine(),
        "database": "PostgreSQL" if args.database_url else "SQLite",
        "broadcast": args.broadcast_url.split("://")[0],
        # Anything else running on the machine skews the figures.
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.subscribers)), hard))
    with tempfile.TemporaryDirectory(prefix="meihua-bench-") as tmp:
        async with scratch_database(args.database_url, Path(tmp)) as url:
            seeded = await seed(url, args)
            server, port = start_server(url, args, log := Path(tmp) / "server.log")
            pool = httpx.Limits(
                max_connections=args.claimers,
                max_keepalive_connections=None,
                keepalive_expiry=KEEPALIVE,
            )
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", limits=pool, timeout=60
                ) as http:
                    await wait_healthy(http, server, log)
                    # Connect every racer first: the race is for the customer, not for TCP.
                    await asyncio.gather(*(http.get("/healthz") for _ in range(args.claimers)))
                    race = await claim_race(http, seeded, server.pid)
                    ws_url = f"ws://127.0.0.1:{port}/graphql"
                    live = await event_latency(http, ws_url, seeded, args, server.pid)
            finally:
                server.send_signal(signal.SIGINT)  # what cProfile needs to write its stats
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
    after = [round(x, 2) for x in os.getloadavg()]
    return {**setting, "load_average_after": after, "claim_race": race, "events": live}


def main() -> None:
    args = parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_summary(results)
    live = results["events"]
    failures = results["claim_race"]["problems"] + live["subscriber_errors"]
    if live["delivered"] != live["expected"] or live["duplicates"]:
        failures.append(
            f"{live['delivered']} of {live['expected']} deliveries arrived (within --timeout), "
            f"{live['duplicates']} duplicated: not every subscriber got every event once"
        )
    if failures:
        print("\n!!! BENCHMARK FAILED !!!\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
