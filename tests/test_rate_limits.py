"""Rate limits (issue 7): login backoff per username and per client IP, and a per-caller
budget of root fields, counted per operation, kept in memory or shared through Redis."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from graphql import parse

from meihua.app import create_app
from meihua.models import Department
from meihua.resolvers import auth
from meihua.resolvers.auth import TokenSigner
from meihua.resolvers.rate_limit_store import MemoryStore, RedisStore
from meihua.resolvers.rate_limits import RateLimits
from meihua.schema.rate_limits import root_fields
from meihua.settings import ConfigurationError, Settings
from tests.conftest import PASSWORD, SECRET, GraphQLClient

REDIS_URL = os.environ.get("MEIHUA_TEST_REDIS_URL")
LOGIN = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }"
WRONG = "wrong-password-123"
BUDGET = 20  # root fields per minute in these tests: one every 3 s
BACKOFF = 30
BACKOFF_MAX = 600


def aliases(count: int, field: str = "me { id }") -> str:
    """One operation with `count` root fields: the same field under different aliases."""
    return "{ " + " ".join(f"f{n}: {field}" for n in range(count)) + " }"


class Clock:
    """Stands in for time.time; tests move it instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the test Redis, emptied afterwards."""
    if not REDIS_URL:
        pytest.skip("Redis suite: set MEIHUA_TEST_REDIS_URL to run it")
    prefix = f"meihua-test:{secrets.token_hex(6)}:"
    yield prefix
    from redis import asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def limited(db: str, **store) -> Settings:
    return Settings(
        database_url=db,
        secret_key=SECRET,
        operations_per_minute=BUDGET,
        login_failures_per_username=3,
        login_failures_per_ip=5,
        login_backoff_seconds=BACKOFF,
        login_backoff_max_seconds=BACKOFF_MAX,
        **store,
    )


@pytest.fixture(params=["memory", "redis"])
def settings(request, db) -> Settings:
    """Each test runs with the counts in memory and in Redis."""
    if request.param == "memory":
        return limited(db, rate_limit_url="memory://")
    prefix = request.getfixturevalue("redis_prefix")
    return limited(db, rate_limit_url=REDIS_URL, rate_limit_prefix=prefix)


@pytest.fixture
def clock(app) -> Clock:
    app.state.rate_limits.clock = fake = Clock()
    return fake


@asynccontextmanager
async def serving(settings: Settings, clock: Clock) -> AsyncIterator:
    """Another app (another worker) on the same settings; `client(ip)` talks to it."""
    app = create_app(settings, open_database=False)
    app.state.rate_limits.clock = clock
    signer = TokenSigner(settings.secret_key, timedelta(minutes=5))
    async with app.router.lifespan_context(app):
        opened: list[httpx.AsyncClient] = []

        def client(ip: str = "127.0.0.1") -> GraphQLClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 50000))
            http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            opened.append(http)
            return GraphQLClient(http, signer)

        try:
            yield client
        finally:
            for http in opened:
                await http.aclose()


async def login(gql: GraphQLClient, username: str, password: str = PASSWORD):
    return await gql(LOGIN, {"u": username, "p": password})


def refused(result) -> int:
    """The retryAfter of a LIMIT_EXCEEDED answer."""
    assert result.codes == ["LIMIT_EXCEEDED"], result.errors
    assert result.data is None
    return result.error["extensions"]["retryAfter"]


# --- login ---------------------------------------------------------------------


async def test_a_username_is_locked_after_repeated_failures_until_the_wait_passes(gql, org, clock):
    await org.user("alice")
    for _ in range(3):
        assert (await login(gql, "alice", WRONG)).codes == ["UNAUTHENTICATED"]

    # Even the right password is refused while the username waits.
    assert refused(await login(gql, "alice")) == BACKOFF
    clock.advance(BACKOFF - 1)
    assert refused(await login(gql, "Alice ")) == 1  # the same account, however spelled
    clock.advance(1)
    assert not (await login(gql, "alice")).errors


async def test_no_password_is_checked_while_locked(gql, org, clock, monkeypatch):
    await org.user("alice")
    for _ in range(3):
        await login(gql, "alice", WRONG)
    checked = []
    original = auth.verify_password
    monkeypatch.setattr(
        auth, "verify_password", lambda *args: checked.append(args) or original(*args)
    )

    for _ in range(5):
        refused(await login(gql, "alice", "guess-number-n"))
    assert checked == []


async def test_guessing_the_current_password_with_a_stolen_token_is_throttled_too(gql, org, clock):
    alice = await org.user("alice")
    change = """mutation($c: String!, $n: String!) {
      changePassword(currentPassword: $c, newPassword: $n) { token } }"""
    new_password = "a-brand-new-password-42"
    for _ in range(3):
        result = await gql(change, {"c": WRONG, "n": new_password}, as_user=alice)
        assert result.codes == ["BAD_USER_INPUT"]

    # Neither the right password here nor at login gets through while the account waits.
    assert refused(await gql(change, {"c": PASSWORD, "n": new_password}, as_user=alice)) > 0
    assert refused(await login(gql, "alice")) > 0
    clock.advance(BACKOFF)
    assert not (await gql(change, {"c": PASSWORD, "n": new_password}, as_user=alice)).errors


async def test_the_wait_doubles_with_each_further_failure_up_to_the_cap(gql, org, clock):
    await org.user("alice")
    for _ in range(3):
        await login(gql, "alice", WRONG)
    waits = []
    for _ in range(7):
        wait = refused(await login(gql, "alice", WRONG))
        waits.append(wait)
        clock.advance(wait)
        assert (await login(gql, "alice", WRONG)).codes == ["UNAUTHENTICATED"]
    assert waits == [30, 60, 120, 240, 480, 600, 600]


async def test_failures_are_forgotten_after_a_quiet_spell(gql, org, clock):
    await org.user("alice")
    for _ in range(3):
        await login(gql, "alice", WRONG)
    clock.advance(BACKOFF + BACKOFF_MAX)  # the wait, then a quiet spell as long as the cap
    for _ in range(3):  # a fresh allowance, not one doubled wait after another
        assert (await login(gql, "alice", WRONG)).codes == ["UNAUTHENTICATED"]
    assert refused(await login(gql, "alice")) == BACKOFF


async def test_a_successful_login_clears_the_usernames_failures(gql, org, clock):
    await org.user("alice")
    for _ in range(2):
        await login(gql, "alice", WRONG)
    assert not (await login(gql, "alice")).errors
    for _ in range(2):
        assert (await login(gql, "alice", WRONG)).codes == ["UNAUTHENTICATED"]
    assert not (await login(gql, "alice")).errors


async def test_one_address_guessing_many_usernames_is_locked_out(settings, org):
    clock = Clock()
    await org.user("alice")
    async with serving(settings, clock) as client:
        attacker, office = client("203.0.113.7"), client("198.51.100.1")
        for n in range(5):  # five usernames, each below its own allowance
            assert (await login(attacker, f"guess{n}", WRONG)).codes == ["UNAUTHENTICATED"]

        # A real account with its right password: refused from that address only.
        assert refused(await login(attacker, "alice")) == BACKOFF
        assert not (await login(office, "alice")).errors
        clock.advance(BACKOFF)
        assert not (await login(attacker, "alice")).errors


async def test_successful_logins_from_one_address_do_not_add_up(settings, org):
    async with serving(settings, Clock()) as client:
        office = client("198.51.100.1")
        users = [await org.user(f"user{n}") for n in range(7)]
        for user in users:  # more than the address's allowance of 5
            assert not (await login(office, user.username)).errors


async def test_login_limits_can_be_turned_off(settings, org):
    await org.user("alice")
    unlimited = replace(settings, login_failures_per_username=0, login_failures_per_ip=0)
    async with serving(unlimited, Clock()) as client:
        gql = client()
        for _ in range(6):  # past both allowances
            assert (await login(gql, "alice", WRONG)).codes == ["UNAUTHENTICATED"]
        assert not (await login(gql, "alice")).errors


# --- operation budget ------------------------------------------------------------


async def test_every_aliased_root_field_counts_against_the_budget(gql, org, clock):
    alice, bob = await org.user("alice"), await org.user("bob")
    await gql.ok(aliases(8), as_user=alice)
    await gql.ok(aliases(8), as_user=alice)

    # 16 of 20 spent: 8 more would be 4 too many, and one comes back every 3 s.
    assert refused(await gql(aliases(8), as_user=alice)) == 12
    await gql.ok(aliases(4), as_user=alice)
    assert refused(await gql("{ me { id } }", as_user=alice)) == 3
    await gql.ok(aliases(BUDGET), as_user=bob)  # each user has a budget of their own

    clock.advance(60)
    await gql.ok(aliases(BUDGET), as_user=alice)


async def test_a_refused_operation_does_not_run(gql, org, clock):
    admin = await org.admin()
    await gql.ok(aliases(18), as_user=admin)
    mutation = (
        "mutation { "
        + " ".join(f'd{n}: createDepartment(input: {{name: "D{n}"}}) {{ id }}' for n in range(3))
        + " }"
    )
    refused(await gql(mutation, as_user=admin))
    assert not await Department.filter(name__startswith="D").exists()


async def test_an_operation_larger_than_the_whole_budget_is_refused(settings, org):
    alice = await org.user("alice")
    async with serving(replace(settings, operations_per_minute=10), Clock()) as client:
        gql = client()
        result = await gql(aliases(11), as_user=alice)
        assert result.codes == ["LIMIT_EXCEEDED"]
        assert "retryAfter" not in result.error["extensions"]  # waiting would not help
        await gql.ok(aliases(10), as_user=alice)


async def test_anonymous_callers_share_a_budget_per_address(settings, org):
    alice = await org.user("alice")
    async with serving(settings, Clock()) as client:
        anonymous = client("203.0.113.7")
        await anonymous.ok(aliases(BUDGET, "__typename"))
        refused(await anonymous("{ __typename }"))
        await client("198.51.100.1").ok("{ __typename }")
        await anonymous.ok("{ me { id } }", as_user=alice)  # signed in: alice's budget


async def test_a_subscription_is_charged_once_when_it_subscribes(gql, org, clock, live):
    alice = await org.user("alice")
    await gql.ok(aliases(BUDGET - 1), as_user=alice)
    socket = await live(alice)
    first = await socket.subscribe("subscription { myNotifications { cursor } }")
    second = await socket.subscribe("subscription { myNotifications { cursor } }")
    # Both subscribe at once: whichever is charged second finds the budget spent.
    message = await socket.message()
    assert message["id"] in (first, second) and message["type"] == "next", message
    (error,) = message["payload"]["errors"]
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "retryAfter": 3}


async def test_the_budget_can_be_turned_off(settings, org):
    alice = await org.user("alice")
    async with serving(replace(settings, operations_per_minute=0), Clock()) as client:
        gql = client()
        for _ in range(3):
            await gql.ok(aliases(BUDGET), as_user=alice)


# --- shared by workers, and without Redis ------------------------------------------


async def test_two_workers_on_one_redis_share_the_budget_and_the_lockout(db, redis_prefix, org):
    settings = limited(db, rate_limit_url=REDIS_URL, rate_limit_prefix=redis_prefix)
    alice = await org.user("alice")
    clock = Clock()
    async with serving(settings, clock) as one, serving(settings, clock) as two:
        first, second = one(), two()
        await first.ok(aliases(15), as_user=alice)
        assert refused(await second(aliases(15), as_user=alice)) == 30
        await second.ok(aliases(5), as_user=alice)

        for _ in range(3):
            await login(first, "alice", WRONG)
        assert refused(await login(second, "alice")) == BACKOFF


async def test_without_redis_each_worker_counts_in_memory(db, org):
    settings = limited(db)  # BROADCAST_URL memory://, no MEIHUA_RATE_LIMIT_URL
    alice = await org.user("alice")
    async with serving(settings, Clock()) as one, serving(settings, Clock()) as two:
        await one().ok(aliases(BUDGET), as_user=alice)
        refused(await one()("{ me { id } }", as_user=alice))
        await two().ok(aliases(BUDGET), as_user=alice)  # the other worker's count


async def test_an_unreachable_redis_lets_requests_through_and_says_so(db, org, caplog):
    alice = await org.user("alice")
    settings = Settings(
        database_url=db,
        secret_key=SECRET,
        rate_limit_url="redis://127.0.0.1:1/0",  # nothing listens there
        operations_per_minute=1,
        login_failures_per_username=1,
    )
    with caplog.at_level(logging.WARNING, logger="meihua.rate_limits"):
        async with serving(settings, Clock()) as client:
            gql = client()
            for _ in range(3):
                assert (await login(gql, "alice", WRONG)).codes == ["UNAUTHENTICATED"]
                await gql.ok("{ me { id } }", as_user=alice)
            assert not (await login(gql, "alice")).errors
    assert "Redis unreachable" in caplog.text


# --- pieces --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("{ me { id } }", 1),
        ("{ a: customers { totalCount } b: customers { totalCount } }", 2),
        ("{ me { id } me { name } }", 1),  # one response key: executed once
        ("{ ...F ... on Query { permissions } } fragment F on Query { me { id } x: me { id } }", 3),
        ("query A { me { id } } query B { a: me { id } b: me { id } }", 2),
    ],
)
def test_root_fields_are_counted_per_response_key(query, count):
    name = "B" if "query B" in query else None
    assert root_fields(parse(query), name) == count


def test_the_store_follows_the_settings():
    def store(**env) -> type:
        return type(RateLimits.for_settings(Settings.from_env(env)).store)

    assert store() is MemoryStore
    assert store(BROADCAST_URL="redis://127.0.0.1:6379/0") is RedisStore
    assert store(MEIHUA_RATE_LIMIT_URL="redis://127.0.0.1:6379/1") is RedisStore
    assert store(BROADCAST_URL="redis://h:6379/0", MEIHUA_RATE_LIMIT_URL="memory://") is MemoryStore


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MEIHUA_RATE_LIMIT_URL": "http://x"}, "MEIHUA_RATE_LIMIT_URL"),
        ({"MEIHUA_OPERATIONS_PER_MINUTE": "-1"}, "MEIHUA_OPERATIONS_PER_MINUTE"),
        ({"MEIHUA_OPERATIONS_PER_MINUTE": "lots"}, "MEIHUA_OPERATIONS_PER_MINUTE"),
        ({"MEIHUA_LOGIN_FAILURES_PER_IP": "-5"}, "MEIHUA_LOGIN_FAILURES_PER_IP"),
        ({"MEIHUA_LOGIN_BACKOFF_SECONDS": "0"}, "MEIHUA_LOGIN_BACKOFF_SECONDS"),
        ({"MEIHUA_LOGIN_BACKOFF_MAX_SECONDS": "10"}, "MEIHUA_LOGIN_BACKOFF_MAX_SECONDS"),
    ],
)
def test_bad_rate_limit_settings_are_refused(env, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


async def test_the_memory_store_forgets_what_nobody_needs():
    """A flood of made-up usernames and callers does not grow memory without end."""
    store = MemoryStore()
    for n in range(5000):
        now_ms = n * 100
        await store.attempt([f"login:user:guess{n}"], [3], 1000, 10_000, now_ms)
        await store.spend(f"ops:ip:10.0.{n // 256}.{n % 256}", 1, 10, 60_000, now_ms)
    assert len(store._logins) + len(store._budgets) < 2100
