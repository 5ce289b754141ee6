"""Models and migration files agree; migrating is safe to repeat; a fresh database is usable."""

from __future__ import annotations

import copy
import os
import secrets
from collections.abc import AsyncIterator
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
from tortoise import connections, fields
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as run_migrations
from tortoise.migrations.autodetector import MigrationAutodetector

from meihua import db as meihua_db
from meihua.models import (
    ApprovalStep,
    CompanySettings,
    Department,
    OpportunityStage,
    Role,
    User,
)
from meihua.resolvers.permissions import ALL_PERMISSIONS

POSTGRES_URL = os.environ.get("MEIHUA_TEST_POSTGRES_URL")

DEFAULT_ROLES = {
    "Sales Rep": "SELF",
    "Sales Manager": "DEPARTMENT_TREE",
    "Finance": "ALL",
    "Administrator": "ALL",
}


@pytest.fixture(autouse=True)
def _own_sql_cache():
    """tortoise caches generated SQL per connection *name* ("default"), not per dialect.

    These tests open other databases beside the run's own, possibly of the other
    backend: start from an empty cache and give the run's entries back afterwards.
    """
    saved = dict(EXECUTOR_CACHE)
    EXECUTOR_CACHE.clear()
    try:
        yield
    finally:
        EXECUTOR_CACHE.clear()
        EXECUTOR_CACHE.update(saved)


# ----------------------------------------------------------- models vs. migration files


async def _pending_operations(replace_model=None) -> list:
    """What `tortoise makemigrations` would write now (see tortoise/cli/cli.py)."""
    config = copy.deepcopy(meihua_db.TORTOISE_ORM)
    apps_config = config["apps"]
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        apps = {label: dict(models) for label, models in ctx.apps.items()}
        if replace_model is not None:
            replace_model(apps)
        writers = await MigrationAutodetector(apps, apps_config).changes()
        return [op for writer in writers for op in writer.operations]


async def test_models_match_the_migrations():
    pending = await _pending_operations()
    assert pending == [], (
        "The models changed without a migration: run `tortoise makemigrations` "
        f"(pyproject.toml points it at meihua.db.TORTOISE_ORM). Pending: {pending!r}"
    )


async def test_the_check_notices_a_field_without_a_migration():
    """The check above can fail: a model with one extra field is reported."""

    def add_field(apps) -> None:
        real = apps["models"]["Customer"]
        meta = copy.copy(real._meta)
        extra = fields.CharField(max_length=40, null=True)
        extra.model_field_name = "nickname"
        meta.fields_map = {**real._meta.fields_map, "nickname": extra}
        apps["models"]["Customer"] = SimpleNamespace(
            __name__="Customer", _meta=meta, __bases__=real.__bases__
        )

    pending = await _pending_operations(add_field)
    assert len(pending) == 1, pending
    [operation] = pending
    assert type(operation).__name__ == "AddField"
    assert "nickname" in repr(vars(operation))


# ------------------------------------------------------------------ fresh databases


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _postgres_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_url(request, tmp_path) -> AsyncIterator[str]:
    """The URL of a database that exists but has no tables yet."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'fresh.sqlite3'}"
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL: set MEIHUA_TEST_POSTGRES_URL to run it")
    name = f"meihua_fresh_{os.getpid()}_{secrets.token_hex(3)}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _snapshot(url: str) -> dict:
    """Default organization, users and applied migrations of the database at `url`."""
    async with TortoiseContext() as ctx:
        await ctx.init(config=meihua_db.tortoise_config(url))
        conn = connections.get("default")
        _, applied = await conn.execute_query(
            "SELECT app, name FROM tortoise_migrations ORDER BY id"
        )
        return {
            "departments": [(d.name, d.parent_id) for d in await Department.all().order_by("id")],
            "roles": {
                r.name: (str(getattr(r.data_scope, "value", r.data_scope)), sorted(r.permissions))
                for r in await Role.all()
            },
            "users": await User.all().count(),
            "migrations": [(row["app"], row["name"]) for row in applied],
        }


async def test_fresh_database_has_the_default_organization(empty_url, repo_root):
    applied: list[str] = []
    await meihua_db.migrate(empty_url, progress=applied.append)
    on_disk = sorted(path.stem for path in (repo_root / "migrations").glob("[0-9]*.py"))
    assert applied == [f"applied models.{name}" for name in on_disk]

    state = await _snapshot(empty_url)
    assert state["departments"] == [("Office", None)]
    assert {name: scope for name, (scope, _) in state["roles"].items()} == DEFAULT_ROLES
    assert state["users"] == 0
    for name, (_, permissions) in state["roles"].items():
        assert permissions, f"default role {name} has no permissions"
        unknown = set(permissions) - set(ALL_PERMISSIONS)
        assert not unknown, f"default role {name} grants unknown permissions {unknown}"
    finance = set(state["roles"]["Finance"][1])
    assert {"contract:approve", "payment:create"} <= finance
    assert "org:manage" not in finance
    admin = set(state["roles"]["Administrator"][1])
    assert {"org:manage", "settings:manage"} <= admin
    rep = set(state["roles"]["Sales Rep"][1])
    assert {"customer:create", "pool:claim"} <= rep
    assert not {"org:manage", "pool:assign", "customer:delete"} & rep


async def test_migrating_twice_is_a_no_op(empty_url):
    await meihua_db.migrate(empty_url)
    before = await _snapshot(empty_url)

    applied: list[str] = []
    await meihua_db.migrate(empty_url, progress=applied.append)

    assert applied == []
    assert await _snapshot(empty_url) == before  # no second Office, no duplicate roles


async def test_an_outdated_database_is_brought_up_to_date(empty_url):
    async with TortoiseContext():
        await run_migrations(
            config=meihua_db.tortoise_config(empty_url), target="models.0001_initial"
        )
    assert (await _snapshot(empty_url))["departments"] == []

    applied: list[str] = []
    await meihua_db.migrate(empty_url, progress=applied.append)

    assert applied[0] == "applied models.0002_default_organization"
    assert "applied models.0001_initial" not in applied
    assert (await _snapshot(empty_url))["departments"] == [("Office", None)]


async def test_migrating_the_run_database_again_keeps_its_data(db, org):
    """The database the app is serving (open, with data) can be migrated again safely."""
    await org.user("alice")
    applied: list[str] = []
    await meihua_db.migrate(db, progress=applied.append)
    assert applied == []
    assert await Department.filter(name="Office").count() == 1
    assert await Role.all().count() == len(DEFAULT_ROLES)
    assert await User.filter(username="alice").exists()


async def test_postgresql_scheme_alias_is_accepted():
    config = meihua_db.tortoise_config("postgresql://u:p@h:5432/d")
    connection = config["connections"]["default"]
    assert connection["engine"] == "tortoise.backends.asyncpg"
    credentials = connection["credentials"]
    assert (credentials["host"], credentials["port"], credentials["database"]) == ("h", 5432, "d")
    assert (credentials["user"], credentials["password"]) == ("u", "p")


async def test_fresh_database_has_the_sales_defaults(empty_url):
    await meihua_db.migrate(empty_url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=meihua_db.tortoise_config(empty_url))
        stages = await OpportunityStage.all().order_by("order").values_list("win_rate", flat=True)
        currency = (await CompanySettings.get()).currency
        step = await ApprovalStep.get(order=1).prefetch_related("role")
    assert stages == [10, 30, 60, 80]
    assert currency == "CNY"
    assert step.role.name == "Finance"
