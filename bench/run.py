"""Performance at scale: one command measures Meihua on SQLite and PostgreSQL into RESULTS.md.

For each backend it seeds a demo company, starts `meihua serve` (one worker) and measures the main
screens under 1, 8 and 32 concurrent clients, the customer list against a hand-written Starlette
endpoint running the same SQL (raw_app.py), the first page against a deep one, the claim race and
live-event fan-out (realtime.py), and on PostgreSQL one recycle pass over a million customers.
bench/README.md ("Performance at scale") says what each figure is and how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import realtime
from dashboard import PERIODS, SECTIONS, meihua, serving
from realtime import KEEPALIVE, machine, revision, spread, wait_healthy

from meihua import db
from meihua.models import Customer, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.demo import DEMO_PASSWORD
from meihua.resolvers.pagination import _encode
from meihua.resolvers.recycling import recycle
from meihua.schema.relay import to_global_id

HERE = Path(__file__).resolve().parent
VIEWER = "demo.east"  # Sales Manager of 华东销售部 (DEPARTMENT_TREE): about 70 % of the records
PAGE = 50
DEEP_PAGE = 10_000
# The recycle rules the pass runs with: no follow-up for half a year (not dealt) or a year (dealt).
RULES = {"recycle_not_dealt_after_days": 180, "recycle_dealt_after_days": 365}
LOGIN = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }"

POOL_LIST = """query($first: Int!) {
  pools { id name customerCount }
  customers(filter: {inPool: true}, orderBy: {field: POOL_ENTERED_AT}, first: $first) {
    edges { node { id name industry region level inPool poolEnteredAt pool { id name }
      previousOwner { username } } }
    pageInfo { hasNextPage endCursor } totalCount } }"""
LIST_FIELDS = """edges { cursor node { id name owner { id name department { name } }
      contacts { id name decisionRole }
      opportunities { id name amount stage { id name winRate } } } }
    pageInfo { hasNextPage endCursor }"""
CUSTOMER_LIST = f"""query($first: Int!, $after: String) {{
  customers(first: $first, after: $after) {{ totalCount {LIST_FIELDS} }} }}"""
# The deep page leaves totalCount out: it costs the same on every page and would hide the paging.
LIST_PAGE = f"""query($first: Int!, $after: String) {{
  customers(first: $first, after: $after) {{ {LIST_FIELDS} }} }}"""
CUSTOMER_DETAIL = """query($id: ID!) {
  node(id: $id) { ... on Customer {
    name owner { username } pool { name }
    contacts { name decisionRole customer { name } }
    decisionCircle { coverage missingRoles }
    opportunities {
      name amount stage { name } owner { username } products { amount product { name } } }
    contracts { number title status total owner { username } }
    receivable
    timeline(first: 50) {
      totalCount edges { node { at kind summary recordType followUp { content } } } }
  } } }"""
_SECTIONS = " ".join(SECTIONS.values()).replace("INTERVAL", PERIODS["THIS_MONTH"][0])
DASHBOARD = f"query {{ dashboard(filter: {{period: THIS_MONTH}}) {{ from to {_SECTIONS} }} }}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--postgres",
        default=os.environ.get(
            "MEIHUA_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        help="PostgreSQL server to make the scratch databases on (any database the user may "
        "CREATE DATABASE from; default $MEIHUA_BENCH_POSTGRES or %(default)s)",
    )
    add("--customers", type=int, help="demo customers for the HTTP figures (100 000; quick 2 000)")
    add(
        "--large",
        type=int,
        help="customers of the PostgreSQL recycle/deep-page database (1 M; quick 20 000; "
        "0: use the demo database)",
    )
    add(
        "--clients",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 8, 32],
        help="concurrent clients per screen, comma-separated (default 1,8,32)",
    )
    add("--seconds", type=float, help="seconds of load per screen and concurrency (10; quick 2)")
    add("--subscribers", type=int, help="WebSocket subscribers to pool events (1 000; quick 100)")
    add("--claimers", type=int, default=100, help="reps claiming one customer at once")
    add("--rounds", type=int, help="claim-race rounds (20; quick 3)")
    add("--events", type=int, help="pool events timed for the fan-out (50; quick 10)")
    add("--quick", action="store_true", help="small sizes: a few minutes instead of an hour")
    add("--keep", action="store_true", help="keep the seeded databases and say how to reuse them")
    add("--reuse-sqlite", metavar="PATH", help="a seeded SQLite demo kept by --keep")
    add("--reuse", metavar="NAME", help="a seeded PostgreSQL demo database kept by --keep")
    add("--reuse-large", metavar="NAME", help="the large PostgreSQL database kept by --keep")
    add(
        "--output",
        help="where the Markdown report goes ('-': only printed; default bench/RESULTS.md, "
        "quick: printed only)",
    )
    add("--backend", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)  # a child's part
    add("--json-to", help=argparse.SUPPRESS)  # where the child writes its figures
    args = parser.parse_args(argv)
    full = {"customers": 100_000, "large": 1_000_000, "seconds": 10, "subscribers": 1000}
    quick = {"customers": 2000, "large": 20_000, "seconds": 2, "subscribers": 100}
    full |= {"rounds": 20, "events": 50, "output": str(HERE / "RESULTS.md")}
    quick |= {"rounds": 3, "events": 10, "output": "-"}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# --- databases -------------------------------------------------------------------


def pg(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def seed(url: str, customers: int) -> float:
    """`meihua seed --demo` (it migrates first); seconds it took."""
    started = time.perf_counter()
    meihua(url, "seed", "--demo", "--customers", str(customers), "--seed-value", "1")
    return time.perf_counter() - started


@asynccontextmanager
async def sqlite_demo(args: argparse.Namespace, notes: list[str]):
    if args.reuse_sqlite:
        yield f"sqlite://{Path(args.reuse_sqlite).resolve()}", None
        return
    folder = Path(tempfile.mkdtemp(prefix="meihua-bench-"))
    url = f"sqlite://{folder / 'demo.sqlite3'}"
    try:
        yield url, seed(url, args.customers)
    finally:
        if args.keep:
            notes.append(f"--reuse-sqlite {folder / 'demo.sqlite3'}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def postgres_demo(args: argparse.Namespace, reuse: str | None, size: int, suffix: str, notes):
    """A seeded demo database on the server; made here (and dropped) unless reused."""
    name = reuse or f"meihua_bench_{os.getpid()}_{suffix}"
    url = urlunsplit(urlsplit(args.postgres)._replace(path=f"/{name}"))
    server = await asyncpg.connect(pg(args.postgres))
    try:
        seconds = None
        if not reuse:
            await server.execute(f'CREATE DATABASE "{name}"')
            seconds = seed(url, size)
        yield url, seconds
    finally:
        if args.keep and not reuse:
            notes.append(f"--{'reuse' if suffix == 'demo' else 'reuse-large'} {name}")
        elif not reuse:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@asynccontextmanager
async def in_process(url: str):
    await db.open_database(url)
    try:
        yield
    finally:
        await db.close_database()


async def sizes() -> dict[str, int]:
    from meihua.models import Contact, Opportunity

    return {m.__name__.lower(): await m.all().count() for m in (Customer, Contact, Opportunity)}


@dataclass
class Sight:
    """What the viewer sees: for the requests and the deep page's cursor."""

    user_id: int
    visible: int  # customers
    customer_id: int  # the newest owned one they see, for its detail page
    deep_page: int  # page 10 000, or the deepest full page of a smaller list
    deep_cursor: str | None  # `after` for that page


async def sight() -> Sight:
    user = await User.get(username=VIEWER)
    visible = Customer.filter(await (await Viewer.load(user)).customer_filter())
    count = await visible.count()
    newest = visible.filter(owner_id__isnull=False).order_by("-created_at", "-id")
    page, cursor = max(1, min(DEEP_PAGE, count // PAGE)), None
    if page > 1:  # the cursor of the row just before the page, as the page before ends
        row = await visible.order_by("-created_at", "-id").offset((page - 1) * PAGE - 1).first()
        cursor = _encode([row.created_at, row.id])
    return Sight(user.id, count, (await newest.first()).id, page, cursor)


# --- load --------------------------------------------------------------------------


def graphql(http: httpx.AsyncClient, token: str, query: str, variables: dict):
    """One request of the screen, for `load`: an error text or None."""
    payload, headers = {"query": query, "variables": variables}, {"Authorization": token}

    async def ask() -> str | None:
        try:
            reply = await http.post("/graphql", json=payload, headers=headers)
        except httpx.TransportError as error:
            return repr(error)
        if reply.status_code != 200 or reply.json().get("errors"):
            return reply.text[:300]
        return None

    return ask


async def load(ask, clients: int, seconds: float) -> dict:
    """`clients` clients send `ask` back to back for `seconds`: requests/s and latency."""
    await ask()  # warm-up
    took, errors, stop = [], [], time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            problem = await ask()
            took.append(time.perf_counter() - start)
            if problem:
                errors.append(problem)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    rate = round(len(took) / elapsed, 1)
    return {"rps": rate, **spread(took), "errors": len(errors), "error": errors[:1]}


async def log_in(http: httpx.AsyncClient) -> str:
    login = {"query": LOGIN, "variables": {"u": VIEWER, "p": DEMO_PASSWORD}}
    reply = (await http.post("/graphql", json=login)).json()
    return f"Bearer {reply['data']['login']['token']}"


@asynccontextmanager
async def raw_server(url: str):
    """bench/raw_app.py under uvicorn, one worker, on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "raw_app:app", "--app-dir", str(HERE)]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    with tempfile.NamedTemporaryFile("w+", prefix="meihua-raw-", suffix=".log") as log:
        env = dict(os.environ, DATABASE_URL=url)
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            # The same limits as dashboard.serving's client for Meihua.
            limits = httpx.Limits(max_connections=100, keepalive_expiry=KEEPALIVE)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
                await wait_healthy(http, server, Path(log.name))
                yield http
        finally:
            server.terminate()
            server.wait(10)


def difference(a, b, where: str = "") -> str | None:
    """Where two JSON values first differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in dict.fromkeys([*a, *b]):
            if found := difference(a.get(key), b.get(key), f"{where}.{key}"):
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next(
            (
                f
                for i, (x, y) in enumerate(zip(a, b, strict=True))
                if (f := difference(x, y, f"{where}[{i}]"))
            ),
            None,
        )
    return None if a == b else f"{where}: {str(a)[:80]} != {str(b)[:80]}"


async def ask_once(http: httpx.AsyncClient, token: str, query: str, variables: dict) -> dict:
    reply = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": token},
    )
    return reply.json()["data"]["customers"]


async def deep_page(http: httpx.AsyncClient, token: str, seen: Sight, seconds: float) -> dict:
    """Item 6: page 1 against the deep page, one client each."""
    result = {"page": seen.deep_page, "visible": seen.visible}
    for label, after in (("page 1", None), (f"page {seen.deep_page}", seen.deep_cursor)):
        ask = graphql(http, token, LIST_PAGE, {"first": PAGE, "after": after})
        result[label] = await load(ask, 1, seconds)
    far = await ask_once(http, token, LIST_PAGE, {"first": PAGE, "after": seen.deep_cursor})
    result["rows"] = len(far["edges"])
    return result


async def screens(url: str, args: argparse.Namespace) -> dict:
    """Items 1, 2 and 6 on one demo database."""
    async with in_process(url):
        seen, counts = await sight(), await sizes()
    result = {"sizes": counts, "visible": seen.visible, "screens": {}, "raw": {}}
    async with serving(url, argparse.Namespace(timeout=120)) as http:
        token = await log_in(http)
        cases = {
            "pool list page (50 rows)": (POOL_LIST, {"first": PAGE}),
            "customer list page (50 rows, nested)": (CUSTOMER_LIST, {"first": PAGE}),
            "customer detail": (
                CUSTOMER_DETAIL,
                {"id": to_global_id("Customer", seen.customer_id)},
            ),
            "dashboard, this month": (DASHBOARD, {}),
        }
        for label, (query, variables) in cases.items():
            ask = graphql(http, token, query, variables)
            levels = {str(c): await load(ask, c, args.seconds) for c in args.clients}
            result["screens"][label] = levels
            print(f"  {label}: " + ", ".join(f"{c} → {r['rps']}/s" for c, r in levels.items()))
        first = await ask_once(http, token, CUSTOMER_LIST, {"first": PAGE})
        after = first["pageInfo"]["endCursor"]
        pages = {
            None: first,
            after: await ask_once(http, token, CUSTOMER_LIST, {"first": PAGE, "after": after}),
        }
        result["deep"] = await deep_page(http, token, seen, args.seconds)
    async with raw_server(url) as raw:
        same = []
        for after, page in pages.items():
            params = {"user": seen.user_id, "first": PAGE} | ({"after": after} if after else {})
            answer = (await raw.get("/customers", params=params)).json()["data"]["customers"]
            same.append(difference(page, answer))
        result["raw_same_json"] = [d for d in same if d]

        async def ask_raw() -> str | None:
            try:
                reply = await raw.get("/customers", params={"user": seen.user_id, "first": PAGE})
            except httpx.TransportError as error:
                return repr(error)
            return None if reply.status_code == 200 else reply.text[:300]

        result["raw"] = {str(c): await load(ask_raw, c, args.seconds) for c in args.clients}
        print(
            "  raw customer list: "
            + ", ".join(f"{c} → {r['rps']}/s" for c, r in result["raw"].items())
        )
    return result


# --- recycling ---------------------------------------------------------------------

SNAPSHOT = [
    "CREATE TABLE bench_recycle_customer AS SELECT id, owner_id, previous_owner_id,"
    " pool_entered_at, taken_at, recycle_warned_at, recycle_batch, version, updated_at"
    " FROM customer WHERE owner_id IS NOT NULL",
    "CREATE TABLE bench_recycle_team AS SELECT * FROM customer_team_member",
    "CREATE TABLE bench_recycle_pool AS SELECT * FROM pool",
    "CREATE TABLE bench_recycle_mark AS SELECT"
    " (SELECT COALESCE(MAX(id), 0) FROM event) AS event,"
    " (SELECT COALESCE(MAX(id), 0) FROM pool_movement) AS movement,"
    " (SELECT COALESCE(MAX(id), 0) FROM operation_log) AS log",
]
RESTORE = [
    "UPDATE customer c SET owner_id = s.owner_id, previous_owner_id = s.previous_owner_id,"
    " pool_entered_at = s.pool_entered_at, taken_at = s.taken_at,"
    " recycle_warned_at = s.recycle_warned_at, recycle_batch = s.recycle_batch,"
    " version = s.version, updated_at = s.updated_at"
    " FROM bench_recycle_customer s WHERE c.id = s.id AND c.version <> s.version"
    " OR c.id = s.id AND c.recycle_batch IS DISTINCT FROM s.recycle_batch",
    "INSERT INTO customer_team_member SELECT * FROM bench_recycle_team ON CONFLICT DO NOTHING",
    "UPDATE pool p SET recycle_not_dealt_after_days = s.recycle_not_dealt_after_days,"
    " recycle_dealt_after_days = s.recycle_dealt_after_days,"
    " recycle_no_deal_after_days = s.recycle_no_deal_after_days FROM bench_recycle_pool s"
    " WHERE p.id = s.id",
    "DELETE FROM event WHERE id > (SELECT event FROM bench_recycle_mark)",
    "DELETE FROM pool_movement WHERE id > (SELECT movement FROM bench_recycle_mark)",
    "DELETE FROM operation_log WHERE id > (SELECT log FROM bench_recycle_mark)",
    "DROP TABLE bench_recycle_customer, bench_recycle_team, bench_recycle_pool, bench_recycle_mark",
]


# What a pass changes, summed up: equal before the pass and after putting it back.
STATE = (
    "SELECT (SELECT COUNT(owner_id) FROM customer),"
    " (SELECT COUNT(recycle_warned_at) FROM customer), (SELECT SUM(version) FROM customer),"
    " (SELECT COUNT(*) FROM customer_team_member),"
    " (SELECT COUNT(*) FROM event), (SELECT COUNT(*) FROM pool_movement),"
    " (SELECT COUNT(*) FROM operation_log)"
)


async def put_back(connection: asyncpg.Connection) -> None:
    """Undo a pass (this run's, or one a crashed run left) so the next run finds the same data."""
    if await connection.fetchval("SELECT to_regclass('bench_recycle_mark')") is None:
        return
    async with connection.transaction():
        for statement in RESTORE:
            await connection.execute(statement)


async def recycle_pass(url: str) -> dict:
    """Item 5: one recycle pass over every pool, timed in this process, then undone."""
    connection = await asyncpg.connect(pg(url))
    try:
        await put_back(connection)
        async with connection.transaction():
            for statement in SNAPSHOT:
                await connection.execute(statement)
            settings = ", ".join(f"{column} = {days}" for column, days in RULES.items())
            await connection.execute(f"UPDATE pool SET {settings}")
        await connection.execute("VACUUM ANALYZE customer")
        owned = await connection.fetchval("SELECT COUNT(*) FROM bench_recycle_customer")
        total = await connection.fetchval("SELECT COUNT(*) FROM customer")
        before = await connection.fetchrow(STATE)
        async with in_process(url):
            start, failure = time.perf_counter(), None
            try:
                report = await recycle()
            except Exception as error:  # a failed pass is a figure too: its transaction rolled back
                report, failure = None, f"{type(error).__name__}: {error}"[:300]
            seconds = time.perf_counter() - start
        await put_back(connection)
        after = await connection.fetchrow(STATE)
        await connection.execute("VACUUM ANALYZE customer")
    finally:
        await connection.close()
    return {
        "customers": total,
        "owned": owned,
        "recycled": len(report.moved) if report else 0,
        "warned": report.warned if report else 0,
        "failure": failure,
        "seconds": round(seconds, 2),
        "put_back": before == after,
    }


async def large_deep_page(url: str, args: argparse.Namespace) -> dict:
    """Item 6 on the large database: page 1 against page 10 000."""
    async with in_process(url):
        seen = await sight()
    async with serving(url, argparse.Namespace(timeout=120)) as http:
        return await deep_page(http, await log_in(http), seen, args.seconds)


# --- real time -----------------------------------------------------------------------


async def live(args: argparse.Namespace, database_url: str | None) -> dict:
    """Items 3 and 4: realtime.py's claim race and fan-out, on its own scratch database."""
    options = argparse.Namespace(
        subscribers=args.subscribers,
        events=args.events,
        claimers=args.claimers,
        rounds=args.rounds,
        gap=0.1,
        timeout=30,
        database_url=database_url,
        broadcast_url="memory://",
        profile=None,
        json=True,
    )
    return await realtime.run(options)


# --- the run ---------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict:
    """One backend's figures. Each backend runs in a process of its own: tortoise keeps one
    SQL dialect per process, and realtime.py opens its own databases."""
    # Load from one user would trip the per-user operation budget; the servers run without it.
    os.environ["MEIHUA_OPERATIONS_PER_MINUTE"] = "0"
    notes: list[str] = []
    async with AsyncExitStack() as stack:
        if args.backend == "sqlite":
            url, seeded = await stack.enter_async_context(sqlite_demo(args, notes))
            figures = {"seeded_s": seeded, **await screens(url, args)}
            figures["live"] = await live(args, None)
            return figures | {"keep": notes}
        url, seeded = await stack.enter_async_context(
            postgres_demo(args, args.reuse, args.customers, "demo", notes)
        )
        figures = {"seeded_s": seeded, **await screens(url, args)}
        figures["live"] = await live(args, args.postgres)
        print("PostgreSQL, large")
        if args.large:  # else the demo database serves (tests/test_bench.py)
            url, seeded = await stack.enter_async_context(
                postgres_demo(args, args.reuse_large, args.large, "large", notes)
            )
        async with in_process(url):
            large_sizes = await sizes()
        figures["large"] = {"seeded_s": seeded, "sizes": large_sizes}
        figures["large"]["recycle"] = await recycle_pass(url)
        figures["large"]["deep"] = await large_deep_page(url, args)
    return figures | {"keep": notes}


async def run(args: argparse.Namespace, argv: list[str]) -> dict:
    started = time.perf_counter()
    results = {
        "date": datetime.now().astimezone().isoformat(timespec="minutes"),
        "revision": revision(),
        "machine": machine(),
        "memory": memory(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "args": vars(args),
    }
    server = await asyncpg.connect(pg(args.postgres))
    results["postgres_version"] = await server.fetchval("SHOW server_version")
    await server.close()
    with tempfile.TemporaryDirectory(prefix="meihua-bench-") as folder:
        for backend, title in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
            print(title)
            figures = Path(folder) / f"{backend}.json"
            child = [
                sys.executable,
                __file__,
                *argv,
                "--backend",
                backend,
                "--json-to",
                str(figures),
            ]
            if subprocess.run(child).returncode:
                sys.exit(f"the {title} part of the benchmark failed")
            results[backend] = json.loads(figures.read_text())
    results["keep"] = results["sqlite"]["keep"] + results["postgres"]["keep"]
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["minutes"] = round((time.perf_counter() - started) / 60, 1)
    return results


def memory() -> str:
    found = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    return f"{int(found[1]) / 2**20:.1f} GiB RAM" if found else "RAM unknown"


def main(argv: list[str] | None = None) -> None:
    sys.stdout.reconfigure(line_buffering=True)
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.backend:
        Path(args.json_to).write_text(json.dumps(asyncio.run(measure(args))))
        return
    from report import markdown

    results = asyncio.run(run(args, argv))
    figures = Path(tempfile.gettempdir()) / "meihua-bench-results.json"
    figures.write_text(json.dumps(results))  # to render again should the report fail
    text = markdown(results, platform.python_version())
    print(text)
    if args.output != "-":
        Path(args.output).write_text(text)
        print(f"written to {args.output}")
    for note in results["keep"]:
        print(f"kept: {note}")


if __name__ == "__main__":
    main()
