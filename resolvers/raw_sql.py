"""Raw SQL with one text for SQLite and PostgreSQL.

Statements are written with `?` placeholders and numbered ($1, $2, …) for
PostgreSQL. Dates and datetimes are passed as Python values: tortoise's
SQLite adapters write them exactly as it stores them, so comparisons against
stored columns hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise import connections


def is_postgres() -> bool:
    return connections.get("default").capabilities.dialect == "postgres"


def _numbered(sql: str) -> str:
    if not is_postgres():
        return sql
    head, *rest = sql.split("?")
    return head + "".join(f"${number}{part}" for number, part in enumerate(rest, 1))


async def fetch(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of a statement written with `?` placeholders."""
    return await connections.get("default").execute_query_dict(_numbered(sql), list(params))


async def execute(sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement written with `?` placeholders; the number of rows it changed."""
    changed, _ = await connections.get("default").execute_query(_numbered(sql), list(params))
    return changed


def json_object(*pairs: str) -> str:
    """SQL building a JSON object from alternating key literals and value expressions."""
    return f"{'jsonb_build_object' if is_postgres() else 'json_object'}({', '.join(pairs)})"


def json_array(*values: str) -> str:
    return f"{'jsonb_build_array' if is_postgres() else 'json_array'}({', '.join(values)})"
