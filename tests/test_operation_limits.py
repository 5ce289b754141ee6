"""Operation limits: every operation is bounded and refused before it runs.

Each limit is a setting; an operation over one gets QUERY_TOO_COMPLEX naming
the limit and the value, and nothing of it runs. Beside them: no batching, a
request body cap, capped list inputs, a PostgreSQL statement timeout and a
request timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from graphql import FragmentDefinitionNode, get_introspection_query, parse, validate
from tortoise.context import TortoiseContext

from meihua import app as meihua_app
from meihua import db as meihua_db
from meihua.app import create_app
from meihua.models import Customer
from meihua.resolvers import csv_io
from meihua.resolvers.auth import TokenSigner
from meihua.schema import MeihuaSchema, build_schema
from meihua.schema.limits import Limits, validation_rules
from meihua.schema.measure import Measurer
from meihua.settings import ConfigurationError, Settings
from tests.conftest import GraphQLClient, serving

ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def client_for(settings: Settings, **changes) -> AsyncIterator[GraphQLClient]:
    """A GraphQL client of an app whose settings differ from the test's by `changes`."""
    changed = replace(settings, **changes)
    async with serving(changed) as http:
        yield GraphQLClient(http, TokenSigner(changed.secret_key, timedelta(minutes=60)))


def _refused(result, *words: str) -> None:
    assert result.data is None, result.data
    assert result.codes == ["QUERY_TOO_COMPLEX"], result.errors
    for word in words:
        assert word in result.error["message"], result.error["message"]


def _fields(count: int) -> str:
    return " ".join(["id"] * count)


# Per limit: a setting, a document at the limit, one just over it, and the words
# the refusal must use (the limit and the measured value).
LIMITS = {
    "depth": (
        {"query_depth_max": 3},
        "{ me { department { parent { id } } } }",
        "{ me { department { parent { parent { id } } } } }",
        ("depth limit is 3", "4 levels"),
    ),
    "aliases": (
        {"query_aliases_max": 2},
        "{ a: me { id } b: me { id } }",
        "{ a: me { id } b: me { id } c: me { id } }",
        ("aliases limit is 2", "3 aliases"),
    ),
    "root fields": (
        {"query_root_fields_max": 2},
        "{ me { id } permissions }",
        "{ me { id } permissions opportunityStages { id } }",
        ("root fields limit is 2", "3 root fields"),
    ),
    # 1 (customers) + first × (edges 1 + node 1 + id 1 + name 1) = 41 for 10 rows
    "cost": (
        {"query_cost_max": 41},
        "{ customers(first: 10) { edges { node { id name } } } }",
        "{ customers(first: 11) { edges { node { id name } } } }",
        ("cost limit is 41", "costs 45"),
    ),
    # `{ me {` and `} }` are 5 tokens
    "tokens": (
        {"query_tokens_max": 100},
        "{ me { " + _fields(95) + " } }",
        "{ me { " + _fields(96) + " } }",
        ("100 tokens",),
    ),
}


@pytest.mark.parametrize("limit", LIMITS)
async def test_each_limit_refuses_just_over_it_and_allows_it(limit, settings, org):
    changes, at_limit, over_limit, words = LIMITS[limit]
    admin = await org.admin()
    async with client_for(settings, **changes) as limited:
        await limited.ok(at_limit, as_user=admin)
        _refused(await limited(over_limit, as_user=admin), *words)
        _refused(await limited(over_limit), *words)  # before authentication too
    # The same document passes the default limits: the setting made the difference.
    async with client_for(settings) as default:
        await default.ok(over_limit, as_user=admin)


CREATE = 'createCustomer(input: {{name: "{}"}}) {{ id }}'

# Per limit: a setting and a mutation document over it that would create customers.
MUTATIONS = {
    "depth": (
        {"query_depth_max": 3},
        "mutation { "
        + CREATE.format("Deep").replace("{ id }", "{ owner { department { parent { id } } } }")
        + " }",
    ),
    "aliases": (
        {"query_aliases_max": 1},
        f"mutation {{ a: {CREATE.format('A')} b: {CREATE.format('B')} }}",
    ),
    "root fields": (
        {"query_root_fields_max": 1},
        "mutation { "
        + CREATE.format("Root")
        + ' createDepartment(input: {name: "Root Dept"}) { id } }',
    ),
    "cost": (
        {"query_cost_max": 50},
        "mutation { "
        + CREATE.format("Costly").replace("{ id }", "{ contacts { id name title } }")
        + " }",
    ),
    "tokens": ({"query_tokens_max": 100}, "mutation { " + CREATE.format("Long") * 12 + " }"),
}


@pytest.mark.parametrize("limit", MUTATIONS)
async def test_a_mutation_over_a_limit_changes_nothing(limit, settings, org):
    changes, document = MUTATIONS[limit]
    admin = await org.admin()
    async with client_for(settings, **changes) as limited:
        _refused(await limited(document, as_user=admin))
    assert await Customer.all().count() == 0


def _graphql_blocks(text: str) -> list[str]:
    blocks = re.findall(r"```graphql\n(.*?)```", text, flags=re.S)
    return [re.sub(r'"<[^>]+>"', '"placeholder"', block) for block in blocks]


def _pool_board_documents() -> list[str]:
    script = (ROOT / "static" / "pool.js").read_text()
    constants = dict(re.findall(r"const (\w+) = [`\"](.*?)[`\"];", script, flags=re.S))
    names = ("LOGIN", "POOLS", "CUSTOMERS", "CLAIM", "POOL_EVENTS")
    row = constants["ROW_FIELDS"]
    return [constants[name].replace("${ROW_FIELDS}", row) for name in names]


def _introspection_query() -> str:
    return get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )


def test_the_readme_pool_board_and_graphiql_operations_fit_the_default_limits():
    schema = build_schema()._schema
    rules = validation_rules(Limits.of(Settings()))
    documents = [
        *_graphql_blocks((ROOT / "README.md").read_text()),
        *_pool_board_documents(),
        _introspection_query(),
    ]
    assert len(documents) > 10
    for document in documents:
        parsed = parse(document, max_tokens=Settings().query_tokens_max)
        assert [error.message for error in validate(schema, parsed, rules)] == [], document


async def test_graphiql_introspection_passes_the_default_limits(gql):
    data = await gql.ok(_introspection_query())
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_a_document_whose_fragments_fan_out_is_measured_once_per_fragment(gql):
    """Each fragment spreads the next twice: counted spread by spread it would be
    2^40 visits (strawberry's depth and alias limiters hung on far less)."""
    levels = 40
    fragments = "".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels)
    )
    document = f"query {{ ...F0 }}\n{fragments}fragment F{levels} on Query {{ me {{ id }} }}"
    schema = build_schema()._schema
    definitions = parse(document).definitions
    fragment_nodes = {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}
    measure = await asyncio.wait_for(
        asyncio.to_thread(Measurer(schema, fragment_nodes, 100).operation, definitions[0]), 60
    )
    assert measure.cost == 2 * 2**levels  # `me { id }` costs 2, run 2^40 times
    _refused(await gql(document), "cost limit")


async def test_a_repeated_document_is_measured_once(gql, org, monkeypatch):
    """The limit rules are made once per set of limits, so the validation
    cache (keyed on the rules) answers a repeated document."""
    from meihua.schema import limits

    admin = await org.admin()
    measured = []
    original = limits.Measurer.operation

    def counted(self, operation):
        measured.append(operation)
        return original(self, operation)

    monkeypatch.setattr(limits.Measurer, "operation", counted)
    document = "query RepeatedOnce { me { id name } }"
    for _ in range(3):
        await gql.ok(document, as_user=admin)
    assert len(measured) == 1


async def test_an_app_that_is_gone_takes_its_cached_validations_along(settings, org, monkeypatch):
    """Validations are cached per schema, not per process: an app closed (a
    reloaded worker's) leaves no schema behind."""
    admin = await org.admin()
    monkeypatch.setattr(meihua_app, "build_schema", build_schema)  # one each, unlike the tests'

    def schemas_alive() -> int:
        gc.collect()
        return sum(isinstance(o, MeihuaSchema) for o in gc.get_objects())

    before = schemas_alive()
    for _ in range(3):
        async with client_for(settings) as client:
            await client.ok("query Cached { me { id } }", as_user=admin)
    del client  # it holds the last app
    assert schemas_alive() == before


async def test_a_page_size_from_a_variable_costs_as_the_largest_page(settings, org):
    admin = await org.admin()
    query = "query($n: Int) { customers(first: $n) { edges { node { id name } } } }"
    # 1 + 100 × 4 with page_size_max 100; the value sent does not matter to validation
    async with client_for(settings, query_cost_max=400) as limited:
        _refused(await limited(query, {"n": 1}, as_user=admin), "costs 401")
    async with client_for(settings, query_cost_max=401) as limited:
        await limited.ok(query, {"n": 1}, as_user=admin)


# ------------------------------------------------------------------------- list inputs


async def _customers(gql, admin, count: int) -> list[str]:
    ids = []
    for number in range(count):
        data = await gql.ok(f"mutation {{ {CREATE.format(f'Customer {number}')} }}", as_user=admin)
        ids.append(data["createCustomer"]["id"])
    return ids


RELEASE_LITERAL = "mutation {{ releaseCustomers(ids: {}) {{ id inPool }} }}"
RELEASE_VARIABLE = "mutation($ids: [ID!]!) { releaseCustomers(ids: $ids) { id inPool } }"


async def test_a_list_argument_longer_than_the_cap_is_refused_literal_or_variable(
    gql, settings, org
):
    admin = await org.admin()
    ids = await _customers(gql, admin, 4)
    async with client_for(settings, list_input_max=3) as limited:
        literal = await limited(RELEASE_LITERAL.format(json.dumps(ids)), as_user=admin)
        _refused(literal, "`ids` has 4 items", "at most 3")
        assert literal.error["extensions"]["field"] == "ids"
        variable = await limited(RELEASE_VARIABLE, {"ids": ids}, as_user=admin)
        _refused(variable, "`ids` has 4 items", "at most 3")
        assert variable.error["extensions"]["field"] == "ids"
        assert not await Customer.filter(owner_id=None).exists()  # none released
        # At the cap the mutation runs.
        data = await limited.ok(RELEASE_VARIABLE, {"ids": ids[:3]}, as_user=admin)
        assert [row["inPool"] for row in data["releaseCustomers"]] == [True] * 3


async def test_a_list_inside_an_input_object_is_capped_too(settings, org):
    admin = await org.admin()
    tags = ["a", "b", "c", "d"]
    literal = 'mutation {{ createCustomer(input: {{name: "Tagged", tags: {}}}) {{ id }} }}'
    variable = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
    async with client_for(settings, list_input_max=3) as limited:
        result = await limited(literal.format(json.dumps(tags)), as_user=admin)
        _refused(result, "`input.tags` has 4 items")
        assert result.error["extensions"]["field"] == "input.tags"
        result = await limited(variable, {"input": {"name": "Tagged", "tags": tags}}, as_user=admin)
        _refused(result, "`input.tags` has 4 items")
        assert result.error["extensions"]["field"] == "input.tags"
    assert not await Customer.exists()


async def test_the_default_list_cap_is_500(gql, org):
    admin = await org.admin()
    ids = [f"id{number}" for number in range(501)]
    result = await gql(RELEASE_VARIABLE, {"ids": ids}, as_user=admin)
    _refused(result, "`ids` has 501 items", "at most 500")
    # 500 get past the cap to the resolver, which finds no such customers.
    result = await gql(RELEASE_VARIABLE, {"ids": ids[:500]}, as_user=admin)
    assert "QUERY_TOO_COMPLEX" not in result.codes, result.errors


# ------------------------------------------------------------------ batching and bodies


async def test_a_batch_of_operations_is_refused_with_a_json_error(http, gql, org):
    admin = await org.admin()
    batch = [{"query": f"mutation {{ {CREATE.format(name)} }}"} for name in ("Batch A", "Batch B")]
    reply = await http.post(
        "/graphql", json=batch, headers={"Authorization": f"Bearer {gql.token(admin)}"}
    )
    assert reply.status_code == 400
    [error] = reply.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "batching" in error["message"].lower()
    assert not await Customer.exists()


async def test_a_body_over_the_cap_gets_413_before_anything_reads_it(settings, org):
    admin = await org.admin()
    cap = 64 * 1024
    document = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
    body = json.dumps(
        {"query": document, "variables": {"input": {"name": "Big", "remarks": "x" * cap}}}
    ).encode()
    async with client_for(settings, body_bytes_max=cap) as limited:
        headers = {
            "Authorization": f"Bearer {limited.token(admin)}",
            "Content-Type": "application/json",
        }
        declared = await limited.http.post("/graphql", content=body, headers=headers)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = await limited.http.post("/graphql", content=chunks(), headers=headers)
        for reply in (declared, streamed):
            assert reply.status_code == 413, reply.text
            [error] = reply.json()["errors"]
            assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
            assert "64 KiB" in error["message"]
        # Under the cap, the same request runs.
        small = await limited.ok(
            document, {"input": {"name": "Small", "remarks": "x" * 100}}, as_user=admin
        )
        assert small["createCustomer"]["id"]
    assert await Customer.filter(name="Big").count() == 0


IMPORT = (
    "mutation($content: String, $contentBase64: String) { importCustomers("
    "content: $content, contentBase64: $contentBase64, dryRun: true) { total } }"
)


async def test_csv_imports_up_to_their_own_limit_fit_under_the_default_body_cap(http, gql, org):
    """A file one byte over 5 MB reaches the import, which answers LIMIT_EXCEEDED:
    sent as base64 (a third bigger) or as text JSON-escaped to ASCII (CJK: twice)."""
    admin = await org.admin()
    headers = {"Authorization": f"Bearer {gql.token(admin)}", "Content-Type": "application/json"}
    raw = b"name\n" + b"x" * csv_io.MAX_BYTES
    cjk = "name\n" + "梅" * (csv_io.MAX_BYTES // 3)
    for variables in (
        {"contentBase64": base64.b64encode(raw).decode()},
        {"content": cjk},
    ):
        body = json.dumps({"query": IMPORT, "variables": variables})  # ensure_ascii: \u6885
        assert len(body) > csv_io.MAX_BYTES
        reply = await http.post("/graphql", content=body.encode(), headers=headers)
        assert reply.status_code == 200, reply.text[:200]
        codes = [error["extensions"]["code"] for error in reply.json()["errors"]]
        assert codes == ["LIMIT_EXCEEDED"]


# ---------------------------------------------------------------------------- timeouts


async def test_an_operation_past_the_request_timeout_is_cancelled_and_rolled_back(
    settings, org, monkeypatch
):
    from meihua.resolvers import customers

    admin = await org.admin()
    recorded = customers.record_customer_change

    async def slow(*args, **kwargs):
        await recorded(*args, **kwargs)  # the customer row is written by now
        await asyncio.sleep(60)

    monkeypatch.setattr(customers, "record_customer_change", slow)
    async with client_for(settings, request_timeout=0.5) as limited:
        result = await limited(f"mutation {{ {CREATE.format('Slow Ltd')} }}", as_user=admin)
        _refused(result, "0.5 s request timeout", "cancelled")
        monkeypatch.setattr(customers, "record_customer_change", recorded)
        # The database is fine afterwards, and the slow customer was never committed.
        data = await limited.ok(f"mutation {{ {CREATE.format('Quick Ltd')} }}", as_user=admin)
        assert data["createCustomer"]["id"]
    assert await Customer.filter(name="Slow Ltd").count() == 0
    assert await Customer.filter(name="Quick Ltd").count() == 1


def test_statement_timeout_is_set_on_postgres_connections_only():
    config = meihua_db.connection_config("postgresql://u:p@h:5432/d", statement_timeout=2.5)
    assert config["credentials"]["server_settings"]["statement_timeout"] == "2500"
    assert config["credentials"]["server_settings"]["jit"] == "off"
    untimed = meihua_db.connection_config("postgresql://u:p@h:5432/d")
    assert "statement_timeout" not in untimed["credentials"]["server_settings"]
    sqlite = meihua_db.connection_config("sqlite://:memory:", statement_timeout=2.5)
    assert "server_settings" not in sqlite["credentials"]


async def test_the_server_opens_its_database_with_the_statement_timeout(db, monkeypatch):
    # `db`: the hub reads the event log of an open database; opening is recorded.
    opened = []

    async def record(url: str, statement_timeout: float = 0) -> None:
        opened.append((url, statement_timeout))

    async def nothing() -> None:
        return None

    monkeypatch.setattr(meihua_db, "open_database", record)
    monkeypatch.setattr(meihua_db, "close_database", nothing)
    settings = Settings(database_url="postgres://u@h/d", statement_timeout=7, recycle_interval=0)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        pass
    assert opened == [("postgres://u@h/d", 7)]


@contextlib.asynccontextmanager
async def _timed_database(url: str, seconds: float) -> AsyncIterator[None]:
    """Within: the app's queries go through connections with this statement timeout."""
    async with TortoiseContext() as context:
        await context.init(config=meihua_db.tortoise_config(url, seconds))
        yield


@contextlib.asynccontextmanager
async def _holding(url: str, sql: str) -> AsyncIterator[None]:
    """Another session holds the locks `sql` takes until the block ends."""
    other = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        async with other.transaction():
            await other.execute(sql)
            yield
    finally:
        await other.close()


@pytest.mark.postgres_only
async def test_postgres_cancels_a_statement_past_the_statement_timeout(db):
    from tortoise import connections

    async with _timed_database(db, 0.2):
        with pytest.raises(Exception) as raised:
            await connections.get("default").execute_query("SELECT pg_sleep(5)")
    assert getattr(raised.value, "sqlstate", None) == "57014"  # query_canceled


@pytest.mark.postgres_only
async def test_a_query_killed_by_the_statement_timeout_gets_a_clean_error(db, gql, org):
    admin = await org.admin()
    [customer_id] = await _customers(gql, admin, 1)
    update = 'mutation($id: ID!) { updateCustomer(id: $id, input: {name: "Renamed"}) { name } }'
    async with _timed_database(db, 0.3):
        async with _holding(db, "LOCK TABLE customer IN ACCESS EXCLUSIVE MODE"):
            listing = await gql("{ customers { edges { node { id } } } }", as_user=admin)
            renamed = await gql(update, {"id": customer_id}, as_user=admin)
        for result in (listing, renamed):
            assert result.codes == ["QUERY_TOO_COMPLEX"], result.errors
            message = result.error["message"]
            assert "statement timeout" in message
            assert "customer" not in message.lower() and "SELECT" not in message
        # Once the lock is gone the same connections serve again.
        await gql.ok("{ customers { edges { node { id } } } }", as_user=admin)
    assert await Customer.filter(name="Renamed").count() == 0


# ---------------------------------------------------------------------------- settings


def test_limits_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "MEIHUA_QUERY_DEPTH_MAX": "8",
            "MEIHUA_QUERY_ALIASES_MAX": "5",
            "MEIHUA_QUERY_ROOT_FIELDS_MAX": "4",
            "MEIHUA_QUERY_COST_MAX": "999",
            "MEIHUA_QUERY_TOKENS_MAX": "800",
            "MEIHUA_LIST_INPUT_MAX": "50",
            "MEIHUA_BODY_BYTES_MAX": "2097152",
            "MEIHUA_REQUEST_TIMEOUT": "12.5",
            "MEIHUA_STATEMENT_TIMEOUT": "0",
        }
    )
    assert Limits.of(settings) == Limits(
        depth=8,
        aliases=5,
        root_fields=4,
        cost=999,
        tokens=800,
        list_items=50,
        page_size=100,
        timeout=12.5,
    )
    assert settings.body_bytes_max == 2 * 1024 * 1024
    assert settings.statement_timeout == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEIHUA_QUERY_DEPTH_MAX", "0"),
        ("MEIHUA_QUERY_COST_MAX", "lots"),
        ("MEIHUA_QUERY_TOKENS_MAX", "10"),
        ("MEIHUA_LIST_INPUT_MAX", "0"),
        ("MEIHUA_BODY_BYTES_MAX", "1000"),
        ("MEIHUA_REQUEST_TIMEOUT", "-1"),
        ("MEIHUA_STATEMENT_TIMEOUT", "soon"),
    ],
)
def test_a_bad_limit_setting_is_refused_clearly(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


async def test_a_subscription_over_a_limit_is_refused(org, live):
    admin = await org.admin()
    client = await live(admin)
    levels = "parent { " * 12 + "id" + " }" * 12
    op_id = await client.subscribe(
        f"subscription {{ poolEvents {{ customer {{ owner {{ department {{ {levels} }} }} }} }} }}"
    )
    extensions = await client.error(op_id)
    assert extensions["code"] == "QUERY_TOO_COMPLEX"
