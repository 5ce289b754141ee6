"""The raw baseline: the customer list page by hand (Starlette, asyncpg/aiosqlite, no GraphQL/ORM).

`GET /customers?user=<id>&first=50[&after=<cursor>]` runs the same SQL statements, in the same
order, that Meihua runs for `bench/run.py`'s customer list (owner + department, contacts,
opportunities → stage, totalCount) as that user, and answers the same JSON. It skips only what
is not SQL: the token's signature (the user comes in the query string), GraphQL parsing,
validation and execution, the ORM's model objects and the DataLoaders.

    DATABASE_URL=postgres://… uvicorn raw_app:app --app-dir bench --port 8001
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# What tortoise's SQLite client writes for these (its executor registers the same adapters).
sqlite3.register_adapter(datetime, lambda value: value.isoformat(" "))
sqlite3.register_adapter(Decimal, str)

USER = (
    'SELECT "username","is_active","token_version","last_login_at","version","updated_at",'
    '"department_id","manager_id","name","password_hash","created_at","is_super_admin","id" '
    'FROM "users" WHERE "id"=? AND "is_active"=? AND "token_version"=? LIMIT ?'
)
ROLES = (
    'SELECT "role"."created_at","role"."version","role"."updated_at","role"."data_scope",'
    '"role"."name","role"."permissions","role"."id" FROM "role" '
    'LEFT OUTER JOIN "user_role" ON "role"."id"="user_role"."role_id" '
    'LEFT OUTER JOIN "users" "role__users" ON "user_role"."users_id"="role__users"."id" '
    'WHERE "role__users"."id"=? ORDER BY "role"."id" ASC'
)
DEPARTMENTS = 'SELECT "id" "0","parent_id" "1" FROM "department"'
DEPARTMENT_USERS = 'SELECT "id" "0" FROM "users" WHERE "department_id" IN ({})'
POOLS = (
    'SELECT DISTINCT "pool"."id" "0" FROM "pool" '
    'LEFT OUTER JOIN "pool_department" ON "pool"."id"="pool_department"."pool_id" '
    'LEFT OUTER JOIN "department" "pool__departments" '
    'ON "pool_department"."department_id"="pool__departments"."id" '
    'WHERE "pool"."company_wide"=? OR "pool__departments"."id" IN ({})'
)
TEAM = (
    'SELECT "customer_id" "customer_id" FROM "customer_team_member" '
    'WHERE "user_id"=? AND ("expires_at" IS NULL OR "expires_at">?)'
)
VISIBLE = (
    f'"owner_id" IN ({{}}) OR "id" IN ({TEAM}) OR ("owner_id" IS NULL AND "pool_id" IN ({{}}))'
)
CUSTOMER_COLUMNS = (
    '"next_contact_at","recycle_warned_at","recycle_batch","updated_at","phone","region","locked",'
    '"version","phone_key","last_followup_at","taken_at","deal_status","pool_id","remarks",'
    '"industry","previous_owner_id","name","pool_entered_at","id","owner_id","source","name_key",'
    '"level","created_at","created_by_id","tags","address"'
)
PAGE = (
    f'SELECT {CUSTOMER_COLUMNS} FROM "customer" WHERE {{}} '
    'ORDER BY "created_at" DESC,"id" DESC LIMIT ?'
)
AFTER = '("created_at"<? OR ("created_at"=? AND "id"<?))'
COUNT = 'SELECT COUNT(*) FROM "customer" WHERE {}'
OWNERS = (
    'SELECT "username","is_active","token_version","last_login_at","version","updated_at",'
    '"department_id","manager_id","name","password_hash","created_at","is_super_admin","id" '
    'FROM "users" WHERE "id" IN ({})'
)
CONTACTS = (
    'SELECT "decision_role","phone","title","email","next_contact_at","version","is_primary",'
    '"updated_at","customer_id","last_followup_at","name","remarks","mobile","created_by_id",'
    '"created_at","id" FROM "contact" WHERE "customer_id" IN ({}) '
    'ORDER BY "is_primary" DESC,"id" ASC'
)
OPPORTUNITIES = (
    'SELECT "owner_id","customer_id","stage_id","next_contact_at","version","status","updated_at",'
    '"expected_close_date","closed_at","name","lost_reason","remarks","last_followup_at",'
    '"created_by_id","amount","created_at","id" FROM "opportunity" '
    f'WHERE ("owner_id" IN ({{}}) OR "customer_id" IN ({TEAM})) AND "customer_id" IN ({{}}) '
    'ORDER BY "created_at" DESC,"id" DESC'
)
DEPARTMENT_NAMES = (
    'SELECT "parent_id","version","updated_at","name","created_at","id" FROM "department" '
    'WHERE "id" IN ({})'
)
STAGES = (
    'SELECT "version","updated_at","win_rate","name","created_at","id","order" '
    'FROM "opportunity_stage" WHERE "id" IN ({})'
)


def marks(values) -> str:
    return ",".join("?" * len(values))


class Database:
    """The statements above on SQLite (`?`) or PostgreSQL (`$1`…), rows as dicts."""

    def __init__(self, url: str) -> None:
        self.url, self.postgres = url, url.startswith(("postgres://", "postgresql://"))

    async def open(self) -> None:
        if self.postgres:
            import asyncpg

            url = self.url.replace("postgres://", "postgresql://", 1)
            self.pool = await asyncpg.create_pool(url, min_size=1, max_size=5)
        else:
            import aiosqlite

            self.connection = await aiosqlite.connect(self.url.split("://", 1)[1])
            self.connection.row_factory = sqlite3.Row

    async def close(self) -> None:
        await (self.pool.close() if self.postgres else self.connection.close())

    async def rows(self, sql: str, *args) -> list[dict]:
        if self.postgres:
            parts = sql.split("?")
            sql = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
            return [dict(row) for row in await self.pool.fetch(sql, *args)]
        async with self.connection.execute(sql, args) as cursor:
            return [dict(row) for row in await cursor.fetchall()]


def global_id(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode().rstrip("=")


def as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def cursor_of(row: dict) -> str:
    plain = [as_datetime(row["created_at"]).isoformat(), row["id"]]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode()


def subtree(links: list[dict], root: int) -> set[int]:
    below, found = {}, {root}
    for link in links:
        below.setdefault(link["1"], []).append(link["0"])
    todo = [root]
    while todo:
        for child in below.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def ancestry(links: list[dict], start: int) -> list[int]:
    parent, chain = {link["0"]: link["1"] for link in links}, [start]
    while (up := parent.get(chain[-1])) is not None:
        chain.append(up)
    return chain


async def customers(request: Request) -> JSONResponse:
    """The customer list page of a Sales Manager (DEPARTMENT_TREE scope), as Meihua answers it."""
    db: Database = request.app.state.db
    user_id, first = int(request.query_params["user"]), int(request.query_params.get("first", 50))
    (user,) = await db.rows(USER, user_id, True, 1, 2)
    await db.rows(ROLES, user_id)  # the scope is fixed here: DEPARTMENT_TREE
    departments = subtree(await db.rows(DEPARTMENTS), user["department_id"])
    owners = {user_id} | {
        r["0"]
        for r in await db.rows(DEPARTMENT_USERS.format(marks(departments)), *sorted(departments))
    }
    chain = ancestry(await db.rows(DEPARTMENTS), user["department_id"])
    pools = sorted({r["0"] for r in await db.rows(POOLS.format(marks(chain)), True, *chain)})
    owners, now = sorted(owners), datetime.now(UTC)
    visible, scope = VISIBLE.format(marks(owners), marks(pools)), [*owners, user_id, now, *pools]
    where, args = visible, list(scope)
    if after := request.query_params.get("after"):
        at, pk = json.loads(base64.urlsafe_b64decode(after.encode()))
        at = datetime.fromisoformat(at)
        where, args = f"({visible}) AND {AFTER}", [*scope, at, at, pk]
    page = await db.rows(PAGE.format(where), *args, first + 1)
    more, page = len(page) > first, page[:first]
    (total,) = (await db.rows(COUNT.format(visible), *scope))[0].values()
    ids = [row["id"] for row in page]
    owner_ids = list(dict.fromkeys(row["owner_id"] for row in page if row["owner_id"]))
    people = (
        {r["id"]: r for r in await db.rows(OWNERS.format(marks(owner_ids)), *owner_ids)}
        if owner_ids
        else {}
    )
    contacts, deals = {}, {}
    if ids:
        for row in await db.rows(CONTACTS.format(marks(ids)), *ids):
            contacts.setdefault(row["customer_id"], []).append(row)
        sql = OPPORTUNITIES.format(marks(owners), marks(ids))
        for row in await db.rows(sql, *owners, user_id, datetime.now(UTC), *ids):
            deals.setdefault(row["customer_id"], []).append(row)
    department_ids = list(
        dict.fromkeys(p["department_id"] for p in people.values() if p["department_id"])
    )
    names = (
        {
            r["id"]: r["name"]
            for r in await db.rows(DEPARTMENT_NAMES.format(marks(department_ids)), *department_ids)
        }
        if department_ids
        else {}
    )
    stage_ids = list(dict.fromkeys(d["stage_id"] for rows in deals.values() for d in rows))
    stages = (
        {r["id"]: r for r in await db.rows(STAGES.format(marks(stage_ids)), *stage_ids)}
        if stage_ids
        else {}
    )

    def owner(pk):
        if pk is None:
            return None
        person = people[pk]
        department = {"name": names[person["department_id"]]} if person["department_id"] else None
        return {"id": global_id("User", pk), "name": person["name"], "department": department}

    def deal(row):
        stage = stages[row["stage_id"]]
        return {
            "id": global_id("Opportunity", row["id"]),
            "name": row["name"],
            "amount": f"{Decimal(str(row['amount'])):.2f}",
            "stage": {
                "id": global_id("OpportunityStage", stage["id"]),
                "name": stage["name"],
                "winRate": stage["win_rate"],
            },
        }

    edges = [
        {
            "cursor": cursor_of(row),
            "node": {
                "id": global_id("Customer", row["id"]),
                "name": row["name"],
                "owner": owner(row["owner_id"]),
                "contacts": [
                    {
                        "id": global_id("Contact", c["id"]),
                        "name": c["name"],
                        "decisionRole": c["decision_role"],
                    }
                    for c in contacts.get(row["id"], [])
                ],
                "opportunities": [deal(d) for d in deals.get(row["id"], [])],
            },
        }
        for row in page
    ]
    info = {"hasNextPage": more, "endCursor": edges[-1]["cursor"] if edges else None}
    return JSONResponse(
        {"data": {"customers": {"totalCount": total, "edges": edges, "pageInfo": info}}}
    )


@asynccontextmanager
async def lifespan(app: Starlette):
    app.state.db = Database(os.environ["DATABASE_URL"])
    await app.state.db.open()
    yield
    await app.state.db.close()


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/customers", customers), Route("/healthz", healthz)], lifespan=lifespan
)
