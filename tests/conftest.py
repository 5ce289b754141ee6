"""Test fixtures.

Every test that takes `db` runs once per backend: SQLite always, PostgreSQL
when MEIHUA_TEST_POSTGRES_URL is set. Each backend gets its own fresh database
for the whole run (migrated once, dropped at the end); each test starts from
the state the migrations leave (the Office department and the default roles),
with ids starting at 1 again.

Tortoise keeps its state in a context variable; the run-wide database is
opened with the global fallback so every task (tests, app requests, the
in-process server of the WebSocket tests) sees it. Only one backend is open
at a time: pytest groups the tests by backend and closes one before opening
the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import strawberry
import uvicorn
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE
from websockets.asyncio.client import ClientConnection, connect

from meihua import app as meihua_app
from meihua import db as meihua_db
from meihua.app import create_app
from meihua.models import DataScope, Department, Role, User
from meihua.resolvers.auth import TokenSigner, hash_password
from meihua.schema import build_schema
from meihua.schema.limits import Limits
from meihua.settings import Settings

POSTGRES_URL = os.environ.get("MEIHUA_TEST_POSTGRES_URL")
PASSWORD = "correct-horse-battery"
# Hashing is slow on purpose; tests reuse one hash for every factory-made user.
PASSWORD_HASH = hash_password(PASSWORD)
SECRET = "test-secret-key-of-at-least-32-bytes"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _postgres_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pytest_collection_modifyitems(config, items) -> None:
    """Leave out `postgres_only` tests on SQLite and `sqlite_only` ones on PostgreSQL."""
    keep, drop = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("database")
        wrong_backend = (backend == "sqlite" and item.get_closest_marker("postgres_only")) or (
            backend == "postgres" and item.get_closest_marker("sqlite_only")
        )
        (drop if wrong_backend else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def one_schema_per_configuration() -> Iterator[None]:
    """Apps with the same limits share one schema.

    The tests make an app per test, and building the schema took about half
    of a typical test's time. Apps that change a limit, or introspection,
    still get a schema of their own.
    """
    built: dict[tuple[Limits, bool], strawberry.Schema] = {}

    def shared(settings: Settings) -> strawberry.Schema:
        key = (Limits.of(settings), settings.introspection)
        if key not in built:
            built[key] = build_schema(settings)
        return built[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(meihua_app, "build_schema", shared)
        yield


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def database(request, tmp_path_factory) -> AsyncIterator[str]:
    """A migrated database of one backend, open for the whole run."""
    if request.param == "postgres":
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL suite: set MEIHUA_TEST_POSTGRES_URL to run it")
        name = f"meihua_test_{os.getpid()}_{secrets.token_hex(3)}"
        await _postgres_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"')
        url = _with_database(POSTGRES_URL, name)
    else:
        url = f"sqlite://{tmp_path_factory.mktemp('db') / 'meihua.sqlite3'}"
    # tortoise caches generated SQL per connection *name*, not per dialect; both
    # backends are called "default", so SQLite's statements must not leak into
    # the PostgreSQL run.
    EXECUTOR_CACHE.clear()
    await meihua_db.migrate(url)
    await meihua_db.open_database(url)
    try:
        yield url
    finally:
        await meihua_db.close_database()
        if request.param == "postgres":
            await _postgres_admin(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a server subprocess: SIGTERM, and SIGKILL if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def all_tables() -> list[str]:
    names: set[str] = set()
    for model in Tortoise.apps.get_models_iterable():
        names.add(model._meta.db_table)
        for field in model._meta.m2m_fields:
            names.add(model._meta.fields_map[field].through)
    return sorted(names)


async def _reset(url: str) -> None:
    """Empty every table and put back what the migrations create."""
    data_migrations = [
        importlib.import_module("meihua.migrations.0002_default_organization"),
        importlib.import_module("meihua.migrations.0004_default_sales_setup"),
        importlib.import_module("meihua.migrations.0006_company_pool"),
        importlib.import_module("meihua.migrations.0011_pipelines"),
    ]
    conn = connections.get("default")
    tables = all_tables()
    if url.startswith("sqlite"):
        # SQLite checks RESTRICT row by row; self-references (department.parent,
        # users.manager) would block a plain DELETE, so empty with checks off.
        statements = [f'DELETE FROM "{table}";' for table in tables]
        await conn.execute_script(
            "PRAGMA foreign_keys = OFF;"
            + "".join(statements)
            + "DELETE FROM sqlite_sequence; PRAGMA foreign_keys = ON;"
        )
    else:
        quoted = ", ".join(f'"{t}"' for t in tables)
        await conn.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
    apps = SimpleNamespace(get_model=lambda app, name: Tortoise.apps[app][name])
    editor = SimpleNamespace(client=conn)
    await data_migrations[0].create_default_organization(apps, editor)
    await data_migrations[1].create_sales_setup(apps, editor)
    await data_migrations[2].create_company_pool(apps, editor)
    await data_migrations[3].create_default_pipeline(apps, editor)


@pytest.fixture
async def db(database: str) -> str:
    await _reset(database)
    return database


@pytest.fixture
def settings(db: str) -> Settings:
    return Settings(database_url=db, secret_key=SECRET)


@pytest.fixture
async def app(settings: Settings):
    application = create_app(settings, open_database=False)
    async with application.router.lifespan_context(application):
        yield application


@contextlib.asynccontextmanager
async def serving(settings: Settings, **transport: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of another app on the test's database, made from `settings`."""
    application = create_app(settings, open_database=False)
    async with application.router.lifespan_context(application):
        asgi = httpx.ASGITransport(app=application, **transport)
        async with httpx.AsyncClient(transport=asgi, base_url="http://testserver") as client:
            yield client


@dataclass
class Response:
    data: dict[str, Any] | None
    errors: list[dict[str, Any]]

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]

    @property
    def error(self) -> dict[str, Any]:
        assert len(self.errors) == 1, self.errors
        return self.errors[0]


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, signer: TokenSigner) -> None:
        self.http = http
        self.signer = signer

    def token(self, user: User) -> str:
        return self.signer.issue(user)

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
    ) -> Response:
        headers = {}
        if as_user is not None:
            token = self.token(as_user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        reply = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        return Response(body.get("data"), body.get("errors") or [])

    async def ok(self, query: str, variables: dict[str, Any] | None = None, **kw) -> dict:
        """The data of a request that must succeed."""
        result = await self(query, variables, **kw)
        assert not result.errors, result.errors
        return result.data


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def gql(http, settings) -> GraphQLClient:
    from datetime import timedelta

    signer = TokenSigner(settings.secret_key, timedelta(minutes=settings.token_lifetime_minutes))
    return GraphQLClient(http, signer)


class Org:
    """Builds departments, roles and users straight through the models (fast)."""

    async def office(self) -> Department:
        return await Department.get(parent_id=None)

    async def department(self, name: str, parent: Department | None = None) -> Department:
        return await Department.create(name=name, parent=parent or await self.office())

    async def role(
        self,
        name: str,
        scope: DataScope,
        permissions: list[str] | None = None,
        departments: list[Department] = (),
    ) -> Role:
        role = await Role.create(name=name, data_scope=scope, permissions=permissions or [])
        if departments:
            await role.departments.add(*departments)
        return role

    async def default_role(self, name: str) -> Role:
        return await Role.get(name=name)

    async def user(
        self,
        username: str,
        *,
        department: Department | None = None,
        roles: list[Role] = (),
        manager: User | None = None,
        super_admin: bool = False,
        name: str | None = None,
    ) -> User:
        user = await User.create(
            username=username,
            name=name or username.title(),
            password_hash=PASSWORD_HASH,
            department=department or await self.office(),
            manager=manager,
            is_super_admin=super_admin,
        )
        if roles:
            await user.roles.add(*roles)
        return user

    async def admin(self, username: str = "root") -> User:
        return await self.user(username, super_admin=True)

    async def sales_team(self) -> SalesTeam:
        """Sales (manager Mei) over East (reps An and Bo), and North (rep Olga), plus an admin."""
        sales, north = await self.department("Sales"), await self.department("North")
        east = await self.department("East", parent=sales)
        manager = await self.default_role("Sales Manager")
        rep = await self.default_role("Sales Rep")
        mei = await self.user("mei", department=sales, roles=[manager])
        an = await self.user("an", department=east, roles=[rep], manager=mei)
        bo = await self.user("bo", department=east, roles=[rep], manager=mei)
        olga = await self.user("olga", department=north, roles=[rep])
        admin = await self.admin()
        return SalesTeam(admin, mei, an, bo, olga, sales, east, north)


@dataclass
class SalesTeam:
    admin: User
    mei: User  # Sales Manager of Sales, which has the sub-department East
    an: User  # Sales Rep in East
    bo: User  # Sales Rep in East
    olga: User  # Sales Rep in North, outside Mei's tree
    sales: Department
    east: Department
    north: Department


@pytest.fixture
def org(db) -> Org:
    return Org()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def statements(db, monkeypatch) -> StatementCounter:
    """Counts the SQL statements the database client runs (set `.count = 0` to restart).

    The app's background tasks (the event hub reading the log, the clock) are
    left out: they run on their own schedule, not because of the request.
    """
    counter = StatementCounter()
    client = connections.get("default")
    client_class = type(client)
    for name in ("execute_query", "execute_query_dict"):
        # A method set on the instance (and "restored" there) would bypass the
        # class and leave the counter reading zero.
        assert name not in vars(client), f"the database client's {name} is patched on the instance"
        original = getattr(client_class, name)

        def counted(self, *args, _original=original, **kwargs):
            task = asyncio.current_task()
            if task is None or not task.get_name().startswith("meihua-"):
                counter.count += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(client_class, name, counted)
    return counter


WS_TIMEOUT = 5


@pytest.fixture
async def ws_url(app) -> AsyncIterator[str]:
    """The app (lifespan already entered by the `app` fixture) on a real socket."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WS_TIMEOUT):
            while not server.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WS_TIMEOUT)


class LiveClient:
    """One signed-in graphql-transport-ws connection, for subscription tests."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = 0

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        op_id = str(self._ids)
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return op_id

    async def message(self, timeout: float = WS_TIMEOUT) -> dict[str, Any]:
        """The next protocol message that is not a ping."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message.get("type") == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def next(self, op_id: str) -> dict[str, Any]:
        """The data of the next event of a subscription (fails on an error)."""
        message = await self.message()
        assert message.get("id") == op_id and message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        return message["payload"]["data"]

    async def error(self, op_id: str) -> dict[str, Any]:
        """The extensions of the error that ends a subscription."""
        message = await self.message()
        assert message.get("id") == op_id, message
        if message["type"] == "error":
            return message["payload"][0]["extensions"]
        assert message["type"] == "next" and message["payload"].get("errors"), message
        return message["payload"]["errors"][0]["extensions"]

    async def silent(self, seconds: float = 0.5) -> bool:
        """True when nothing arrives for a while."""
        try:
            message = await self.message(timeout=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {message}")

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def live(ws_url, gql) -> AsyncIterator:
    """`await live(user)`: a signed-in subscription client; all are closed at the end."""
    clients: list[LiveClient] = []

    async def open_for(user: User) -> LiveClient:
        ws = await connect(ws_url, subprotocols=["graphql-transport-ws"])
        init = {"Authorization": f"Bearer {gql.token(user)}"}
        await ws.send(json.dumps({"type": "connection_init", "payload": init}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), WS_TIMEOUT))
        assert ack["type"] == "connection_ack", ack
        client = LiveClient(ws)
        clients.append(client)
        return client

    yield open_for
    for client in clients:
        await client.close()
