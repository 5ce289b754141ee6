"""Property-based fuzzing of the whole schema with hypothesis-graphql.

Queries and mutations are generated from the schema itself (so new operations
are fuzzed without touching this file), with hostile values mixed in: NUL
characters, huge and negative numbers, odd unicode, malformed dates and
decimals, IDs of real records of every kind and IDs that are not IDs. Each one
goes through the real app in-process, as a super admin and as a SELF-scoped
sales rep. Whatever the input, the answer must be a clear error or data: never
an HTTP 5xx, never `INTERNAL`, and every error carries a spec code.

The run is deterministic (derandomized): EXAMPLES operations per root field
and role, about 560 per role. MEIHUA_TEST_FUZZ_EXAMPLES=30 makes a longer hunt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import pytest
from graphql import (
    REMOVE,
    ArgumentNode,
    DocumentNode,
    FieldNode,
    ObjectFieldNode,
    StringValueNode,
    Visitor,
    print_ast,
    visit,
)
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from meihua.models import Contract, ContractStatus, Role
from meihua.resolvers.errors import CODES
from meihua.schema import build_schema
from meihua.schema.relay import from_global_id, to_global_id
from meihua.settings import Settings

EXAMPLES = int(os.environ.get("MEIHUA_TEST_FUZZ_EXAMPLES") or 5)
SETTINGS = hypothesis_settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
    report_multiple_bugs=False,  # one failure per field, reported as itself
)
CLIENT_ERROR_CODES = CODES - {"INTERNAL"}
SCHEMA = build_schema()._schema
ROOT_FIELDS = [*SCHEMA.query_type.fields, *SCHEMA.mutation_type.fields]

WEIRD_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\n\r",
    "\u202e\u200b\ufeff",
    "梅花 🌸 Ω",
    "'; DROP TABLE customer; --",
    "%_\\",
    "9" * 400,
    "x" * 5000,
    "2024-02-30",
    "1e309",
]
WEIRD_INTS = [0, -1, 1, 100, 101, 2**31 - 1, -(2**31), 2**31, 2**63, -(2**63) - 1, 10**30]
WEIRD_DECIMALS = ["0", "-0", "0.005", "-1", "1e6", "1E+400", "NaN", "Infinity", "-inf", "1" * 40]
WEIRD_DATES = ["2024-02-29", "0001-01-01", "9999-12-31", "2024-13-01", "now", "-1"]
WEIRD_TIMES = [
    "2024-02-29T12:00:00+08:00",
    "2024-02-29T12:00:00Z",
    "2024-02-29T12:00:00",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-12:00",
    "2024-02-29T25:00:00",
]


def _mostly(usual: st.SearchStrategy, hostile: list) -> st.SearchStrategy:
    """Usual values seven times in eight, so most operations get past validation.

    The usual branch comes first: it is the one hypothesis starts from.
    """
    return st.integers(0, 7).flatmap(lambda n: st.sampled_from(hostile) if n == 7 else usual)


class RecordIds:
    """IDs of real records by type, growing as responses name more records.

    hypothesis-graphql knows an argument only as `ID`; `retarget` then gives
    each generated ID that names a real record one of the type its argument
    asks for (`customerId`, `ownerId`, `id` of `updateLead`, …), so operations
    reach past "no such record" into the code behind. Hostile IDs stay as drawn.
    """

    # Argument stems that do not spell their record's type; None: any type.
    STEMS: ClassVar[dict[str, str | None]] = {
        "owner": "User",
        "assignee": "User",
        "manager": "User",
        "parent": "Department",
        "signingContact": "Contact",
        "plan": "PaymentPlan",
        "stage": "OpportunityStage",
        "target": None,
        "related": None,
        "record": None,
    }
    LIMIT = 600

    def __init__(self, ids: list[str], leave_out: str) -> None:
        self.leave_out = leave_out
        self.flat: list[str] = []
        self.by_type: dict[str, list[str]] = {}
        for global_id in ids:
            self.add(global_id)

    def add(self, global_id: str) -> None:
        if global_id == self.leave_out or global_id in self.flat or len(self.flat) >= self.LIMIT:
            return
        try:
            type_name, _ = from_global_id(global_id)
        except ValueError:
            return
        self.flat.append(global_id)
        self.by_type.setdefault(type_name, []).append(global_id)

    def strategy(self) -> st.SearchStrategy[str]:
        indexes = st.integers(min_value=0, max_value=10**6)
        return indexes.map(lambda i: self.flat[i % len(self.flat)])

    def type_for(self, field: str, argument: str) -> str | None:
        if argument in ("id", "ids"):
            stem = "" if field == "node" else re.sub(r"^[a-z]+", "", field)
        elif argument.endswith(("Id", "Ids")):
            stem = argument.removesuffix("s").removesuffix("Id")
            stem = self.STEMS.get(stem, stem[:1].upper() + stem[1:]) or ""
        else:
            return None
        matches = [name for name in self.by_type if stem.startswith(name)]
        return max(matches, key=len, default=None)

    def retarget(self, document: DocumentNode) -> DocumentNode:
        ids = self

        class Retarget(Visitor):
            def enter_string_value(self, node, _key, parent, _path, ancestors):
                if node.value not in ids.flat:
                    return None
                trail = [*ancestors, parent]
                named = [n for n in trail if isinstance(n, (ArgumentNode, ObjectFieldNode))]
                field = next(n for n in reversed(trail) if isinstance(n, FieldNode))
                type_name = ids.type_for(field.name.value, named[-1].name.value)
                if type_name is None:
                    return None
                same_type = ids.by_type[type_name]
                chosen = same_type[ids.flat.index(node.value) % len(same_type)]
                return StringValueNode(value=chosen)

        return visit(document, Retarget())


class OnePageDirection(Visitor):
    """Connections take `first` or `last`, not both, and only cursors they issued.

    `last`/`before` go when `first` is there, and a cursor stays only when it is
    hostile: most page requests are then answered, and the hostile ones still come.
    """

    def enter_argument(self, node, _key, parent, _path, ancestors):
        field = next(n for n in reversed([*ancestors, parent]) if isinstance(n, FieldNode))
        siblings = {argument.name.value for argument in field.arguments}
        name = node.name.value
        if name in ("last", "before") and "first" in siblings:
            return REMOVE
        cursor = node.value
        if name in ("after", "before") and isinstance(cursor, StringValueNode):
            return None if cursor.value in WEIRD_TEXT else REMOVE
        return None


def _scalars(ids: RecordIds) -> dict[str, st.SearchStrategy]:
    """Values per scalar: usual ones mostly, hostile ones now and then."""
    # Any character a JSON body can carry, control characters (NUL too) included.
    characters = st.characters(codec="utf-8", exclude_categories=["Cs"])
    words = st.text(characters, min_size=1, max_size=30)
    days = st.dates(date(2000, 1, 1), date(2100, 12, 31))
    moments = st.datetimes(datetime(2000, 1, 1), datetime(2100, 12, 31), timezones=st.just(UTC))
    amounts = st.decimals(min_value=0, max_value=10**9, places=2)
    return {
        "String": _mostly(words, WEIRD_TEXT).map(nodes.String),
        "ID": _mostly(ids.strategy(), WEIRD_TEXT + [str(n) for n in WEIRD_INTS]).map(nodes.String),
        "Int": _mostly(st.integers(0, 60), WEIRD_INTS).map(nodes.Int),
        "Float": st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        "Decimal": _mostly(amounts.map(str), WEIRD_DECIMALS + WEIRD_TEXT).map(nodes.String),
        "Date": _mostly(days.map(str), WEIRD_DATES + WEIRD_TEXT).map(nodes.String),
        "DateTime": _mostly(moments.map(datetime.isoformat), WEIRD_TIMES + WEIRD_TEXT).map(
            nodes.String
        ),
        "JSON": _mostly(words, WEIRD_TEXT).map(nodes.String),
    }


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The per-user operation budget is off: the fuzzer sends far more than a person would."""
    return dataclasses.replace(settings, operations_per_minute=0)


async def _seed(gql, org) -> tuple[Any, list[str]]:
    """A sales team with a record of every kind; returns the team and every record's ID."""
    team = await org.sales_team()
    admin = team.admin
    data = await gql.ok("{ opportunityStages { id } pools { id } }", as_user=admin)
    stage = data["opportunityStages"][0]["id"]
    mine = await gql.ok(
        'mutation { createCustomer(input: {name: "Rep Co", phone: "13800000000"}) { id } }',
        as_user=team.an,
    )
    customer = mine["createCustomer"]["id"]
    made = await gql.ok(
        """mutation($c: ID!, $s: ID!) {
          contact: createContact(input: {customerId: $c, name: "Li"}) { id }
          opportunity: createOpportunity(input: {customerId: $c, name: "Deal", amount: "100.00",
                                                 stageId: $s}) { id }
          followUp: createFollowUp(input: {targetId: $c, method: PHONE, content: "Called"}) { id }
          lead: createLead(input: {companyName: "Lead Co"}) { id }
          product: createProduct(input: {name: "Widget", code: "W-1", unitPrice: "9.90"}) { id }
          task: createTask(input: {title: "Call back", relatedId: $c}) { id }
          other: createCustomer(input: {name: "Admin Co"}) { id }
        }""",
        {"c": customer, "s": stage},
        as_user=admin,
    )
    contract = await gql.ok(
        """mutation($c: ID!, $p: ID!) {
          createContract(input: {customerId: $c, title: "Deal",
                                 items: [{productId: $p, quantity: "2"}]}) { id }
        }""",
        {"c": customer, "p": made["product"]["id"]},
        as_user=admin,
    )
    contract_id = contract["createContract"]["id"]
    # Approved straight in the table: payments are received on approved contracts only.
    await Contract.filter(id=from_global_id(contract_id)[1]).update(status=ContractStatus.APPROVED)
    money = await gql.ok(
        """mutation($k: ID!) {
          plan: createPaymentPlan(contractId: $k, input: {period: 1, plannedAmount: "19.80",
                                                          plannedOn: "2030-01-31"}) { id }
          payment: createPayment(input: {contractId: $k, amount: "5.00", paidOn: "2024-01-02"}) {
            id
          }
        }""",
        {"k": contract_id},
        as_user=admin,
    )
    ids = [customer, stage, contract_id, money["plan"]["id"], money["payment"]["id"]]
    ids += [row["id"] for row in made.values()] + [p["id"] for p in data["pools"]]
    ids += [to_global_id("Department", d.id) for d in (team.sales, team.east, team.north)]
    ids += [to_global_id("User", u.id) for u in (team.mei, team.an, team.bo, team.olga)]
    ids += [to_global_id("Role", role.id) for role in await Role.all()]
    return team, ids


def _ids_in(value: Any) -> list[str]:
    """Every `id` in a response's data, to feed later operations real records."""
    if isinstance(value, dict):
        found = [value["id"]] if isinstance(value.get("id"), str) else []
        return found + [i for item in value.values() for i in _ids_in(item)]
    if isinstance(value, list):
        return [i for item in value for i in _ids_in(item)]
    return []


async def _fuzz(gql, user, seeded: list[str]) -> None:
    """EXAMPLES operations per root field as `user`; fails on a 5xx, INTERNAL or code-less error."""
    loop = asyncio.get_running_loop()
    headers = {"Authorization": f"Bearer {gql.token(user)}"}
    # The acting user stays out of the ID pool, so a generated deactivateUser
    # or updateUser cannot lock the rest of the run out.
    ids = RecordIds(seeded, leave_out=to_global_id("User", user.id))
    scalars = _scalars(ids)

    def answered_cleanly(document: str) -> None:
        request = gql.http.post("/graphql", json={"query": document}, headers=headers)
        reply = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=120)
        assert reply.status_code < 500, f"HTTP {reply.status_code} for\n{document}\n{reply.text}"
        body = reply.json()
        for error in body.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            assert code in CLIENT_ERROR_CODES, f"{code} for\n{document}\n{json.dumps(error)}"
        for global_id in _ids_in(body.get("data")):
            ids.add(global_id)

    def fuzz_field(name: str) -> None:
        # One root field per operation, each field in turn: a bad value spoils
        # only its own field, and no operation is left out by chance.
        operations = from_schema(
            SCHEMA,
            fields=[name],
            custom_scalars=scalars,
            print_ast=lambda document: print_ast(visit(ids.retarget(document), OnePageDirection())),
        )

        @SETTINGS
        @given(operations)
        def field_is_answered_cleanly(document: str) -> None:
            answered_cleanly(document)

        field_is_answered_cleanly()

    def fuzz_all() -> list[str]:
        failures = []
        for name in ROOT_FIELDS:
            try:
                fuzz_field(name)
            except Exception as failure:  # one failing field must not hide the others
                failures.append(f"{name}: {type(failure).__name__}: {failure}")
        return failures

    # hypothesis drives the examples from a thread; each request runs on the
    # test's event loop, where the app and its database connections live.
    failures = await asyncio.to_thread(fuzz_all)
    assert not failures, "\n\n".join(failures)


async def test_fuzzed_operations_as_a_super_admin(gql, org):
    team, ids = await _seed(gql, org)
    await _fuzz(gql, team.admin, ids)


async def test_fuzzed_operations_as_a_self_scoped_rep(gql, org):
    team, ids = await _seed(gql, org)
    await _fuzz(gql, team.an, ids)
