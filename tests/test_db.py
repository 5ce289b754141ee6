"""How the app opens its database."""

from __future__ import annotations

import pytest
from tortoise import connections


@pytest.mark.postgres_only
async def test_postgres_connections_run_without_jit(db):
    _, rows = await connections.get("default").execute_query("SHOW jit")
    assert rows[0]["jit"] == "off"
