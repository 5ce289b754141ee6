"""Tasks (任务): creating and assigning them, who sees and changes them, versions,
completing, and the `myTasks` views cut at midnight in the company's timezone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from meihua.models import (
    Customer,
    CustomerTeamMember,
    Event,
    FollowUp,
    FollowUpMethod,
    OperationLog,
    RecordType,
    Task,
    TaskStatus,
    TeamAccess,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import normalize_name
from meihua.resolvers.tasks import TaskView, my_tasks
from meihua.schema.activity import record_global_id
from meihua.schema.relay import from_global_id, to_global_id

FIELDS = """
id title description dueAt priority status completedAt relatedId relatedType version isOverdue
assignee { username } creator { username } customer { id } followUp { id }
"""
CREATE = f"mutation($input: CreateTaskInput!) {{ createTask(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"""
mutation($id: ID!, $input: UpdateTaskInput!, $v: Int) {{
  updateTask(id: $id, input: $input, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
COMPLETE = "mutation($id: ID!) { completeTask(id: $id) { status completedAt version } }"
REOPEN = "mutation($id: ID!) { reopenTask(id: $id) { status completedAt version } }"
DELETE = "mutation($id: ID!) { deleteTask(id: $id) { deletedId } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on Task { title } } }"
MY_TASKS = """
query($view: TaskView!, $first: Int, $after: String) {
  myTasks(view: $view, first: $first, after: $after) {
    totalCount edges { node { title } } pageInfo { hasNextPage endCursor }
  }
}
"""
TASKS = """
query($filter: TaskFilter, $orderBy: TaskOrder, $first: Int) {
  tasks(filter: $filter, orderBy: $orderBy, first: $first) {
    totalCount edges { node { title } }
  }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales
    root: User  # super admin


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    manager = await org.default_role("Sales Manager")
    return Team(
        alice=await org.user("alice", department=sales, roles=[rep]),
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        boss=await org.user("boss", department=sales, roles=[manager]),
        root=await org.admin(),
    )


async def make_customer(owner: User, name: str = "Acme Trading") -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
    )


def gid(customer: Customer) -> str:
    return record_global_id(RecordType.CUSTOMER, customer.id)


def uid(user: User) -> str:
    return to_global_id("User", user.id)


def at(moment: datetime) -> str:
    return moment.isoformat()


async def create(gql, user: User, title: str = "Prepare the quote", **fields) -> dict:
    data = await gql.ok(CREATE, {"input": {"title": title, **fields}}, as_user=user)
    return data["createTask"]


def pk(global_id: str) -> int:
    return from_global_id(global_id)[1]


async def counts() -> dict[str, int]:
    return {
        "tasks": await Task.all().count(),
        "log": await OperationLog.all().count(),
        "events": await Event.all().count(),
    }


def titles(connection: dict) -> list[str]:
    return [edge["node"]["title"] for edge in connection["edges"]]


# ---------------------------------------------------------------------------
# creating and assigning


async def test_a_task_is_the_creators_own_by_default(gql, team):
    made = await create(gql, team.alice, "  Prepare the quote  ", description="For Acme")
    assert made["title"] == "Prepare the quote"
    assert made["description"] == "For Acme"
    assert made["assignee"] == made["creator"] == {"username": "alice"}
    assert (made["priority"], made["status"], made["version"]) == ("NORMAL", "OPEN", 1)
    assert made["dueAt"] is None and made["relatedId"] is None and made["customer"] is None
    assert not await Event.all().exists()


async def test_assigning_to_a_colleague_notifies_them(gql, team):
    due = datetime.now(UTC) + timedelta(days=1)
    made = await create(gql, team.alice, assigneeId=uid(team.bob), dueAt=at(due), priority="URGENT")
    assert made["assignee"] == {"username": "bob"}
    assert made["creator"] == {"username": "alice"}
    event = await Event.get(kind="task.assigned")
    assert (event.recipient_id, event.actor_id, event.record_id) == (
        team.bob.id, team.alice.id, pk(made["id"]),
    )  # fmt: skip
    assert event.payload["title"] == "Prepare the quote"
    assert event.payload["priority"] == "URGENT"
    bob = await gql.ok(MY_TASKS, {"view": "NEXT"}, as_user=team.bob)
    assert titles(bob["myTasks"]) == ["Prepare the quote"]


async def test_a_task_about_a_record_is_logged_on_it(gql, team):
    customer = await make_customer(team.alice)
    made = await create(gql, team.alice, relatedId=gid(customer))
    assert made["relatedId"] == gid(customer)
    assert made["relatedType"] == "CUSTOMER"
    assert made["customer"] == {"id": gid(customer)}
    entry = await OperationLog.get(action="TASK_CREATE")
    assert (entry.record_type, entry.record_id, entry.customer_id) == (
        RecordType.CUSTOMER, customer.id, customer.id,
    )  # fmt: skip
    assert entry.changes["task.title"] == [None, "Prepare the quote"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "  "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"description": "x" * 10_001}, "description"),
        ({"assigneeId": "INACTIVE"}, "assigneeId"),
        ({"assigneeId": "MISSING"}, "assigneeId"),
        ({"assigneeId": "CUSTOMER"}, "assigneeId"),
        ({"relatedId": "USER"}, "relatedId"),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(gql, team, org, fields, field):
    idle = await org.user("idle")
    await User.filter(id=idle.id).update(is_active=False)
    customer = await make_customer(team.alice)
    values = {
        "INACTIVE": uid(idle), "MISSING": to_global_id("User", 999), "CUSTOMER": gid(customer),
        "USER": uid(team.bob),
    }  # fmt: skip
    data = {"title": "Call back"} | {k: values.get(v, v) for k, v in fields.items()}
    before = await counts()
    result = await gql(CREATE, {"input": data}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await counts() == before


async def test_a_task_about_a_record_one_cannot_see_or_change_is_refused(gql, team):
    customer = await make_customer(team.alice)
    before = await counts()
    result = await gql(CREATE, {"input": {"title": "Spy", "relatedId": gid(customer)}},
                       as_user=team.carol)  # fmt: skip
    assert result.codes == ["NOT_FOUND"]
    await CustomerTeamMember.create(customer=customer, user=team.carol, access=TeamAccess.READ)
    result = await gql(CREATE, {"input": {"title": "Spy", "relatedId": gid(customer)}},
                       as_user=team.carol)  # fmt: skip
    assert result.codes == ["FORBIDDEN"]
    assert await counts() == before


# ---------------------------------------------------------------------------
# who sees and changes a task


async def test_a_task_is_seen_by_assignee_creator_and_managers_only(gql, team):
    made = await create(gql, team.alice, "Alice's task", assigneeId=uid(team.bob))
    for viewer in (team.alice, team.bob, team.boss, team.root):
        assert (await gql.ok(NODE, {"id": made["id"]}, as_user=viewer))["node"]
    result = await gql(NODE, {"id": made["id"]}, as_user=team.carol)
    assert result.codes == ["NOT_FOUND"]
    listing = await gql.ok(TASKS, {}, as_user=team.carol)
    assert listing["tasks"]["totalCount"] == 0


async def test_outsiders_cannot_touch_a_task(gql, team):
    made = await create(gql, team.alice, "Private")
    before = await counts()
    for query, variables in [
        (UPDATE, {"id": made["id"], "input": {"title": "Mine now"}}),
        (COMPLETE, {"id": made["id"]}),
        (REOPEN, {"id": made["id"]}),
        (DELETE, {"id": made["id"]}),
    ]:
        result = await gql(query, variables, as_user=team.carol)
        assert result.codes == ["NOT_FOUND"], query
    assert await counts() == before
    row = await Task.get()
    assert (row.title, row.status, row.version) == ("Private", TaskStatus.OPEN, 1)


async def test_a_manager_may_change_the_tasks_of_their_reps(gql, team):
    made = await create(gql, team.alice, "Call Acme")
    updated = await gql.ok(UPDATE, {"id": made["id"], "input": {"priority": "HIGH"}},
                           as_user=team.boss)  # fmt: skip
    assert updated["updateTask"]["priority"] == "HIGH"


async def test_seeing_a_task_through_its_record_does_not_allow_changing_it(gql, team):
    customer = await make_customer(team.alice)
    made = await create(gql, team.alice, "Call Acme", relatedId=gid(customer))
    await CustomerTeamMember.create(customer=customer, user=team.carol, access=TeamAccess.READ)

    assert (await gql.ok(NODE, {"id": made["id"]}, as_user=team.carol))["node"]
    listing = await gql.ok(TASKS, {"filter": {"relatedId": gid(customer)}}, as_user=team.carol)
    assert titles(listing["tasks"]) == ["Call Acme"]
    before = await counts()
    for query, variables in [
        (UPDATE, {"id": made["id"], "input": {"title": "Mine now"}}),
        (COMPLETE, {"id": made["id"]}),
        (DELETE, {"id": made["id"]}),
    ]:
        result = await gql(query, variables, as_user=team.carol)
        assert result.codes == ["FORBIDDEN"], query
    assert await counts() == before


async def test_nested_customer_and_follow_up_are_hidden_when_out_of_sight(gql, team):
    # Alice follows up a customer with a next contact time: a task of hers.
    customer = await make_customer(team.alice)
    followup = await FollowUp.create(
        target_type=RecordType.CUSTOMER, target_id=customer.id, customer=customer,
        method=FollowUpMethod.PHONE, content="Call", occurred_at=datetime.now(UTC),
        author=team.alice,
    )  # fmt: skip
    task = await Task.create(
        title="Call again", assignee=team.alice, creator=team.alice, followup=followup,
        related_type=RecordType.CUSTOMER, related_id=customer.id, customer=customer,
    )  # fmt: skip
    query = "query($id: ID!) { node(id: $id) { ... on Task { customer { id } followUp { id } } } }"
    task_id = to_global_id("Task", task.id)
    mine = await gql.ok(query, {"id": task_id}, as_user=team.alice)
    assert mine["node"]["customer"] == {"id": gid(customer)}
    assert mine["node"]["followUp"] == {"id": to_global_id("FollowUp", followup.id)}

    # The customer goes to Carol; Alice keeps her task but no longer sees the customer.
    await Customer.filter(id=customer.id).update(owner_id=team.carol.id)
    theirs = await gql.ok(query, {"id": task_id}, as_user=team.alice)
    assert theirs["node"] == {"customer": None, "followUp": None}


# ---------------------------------------------------------------------------
# updating with versions


async def test_update_with_a_stale_version_conflicts_and_writes_nothing(gql, team):
    made = await create(gql, team.alice, "Original")
    await gql.ok(UPDATE, {"id": made["id"], "input": {"title": "First edit"}, "v": 1},
                 as_user=team.alice)  # fmt: skip
    before = await counts()
    result = await gql(UPDATE, {"id": made["id"], "input": {"title": "Stale edit"}, "v": 1},
                       as_user=team.boss)  # fmt: skip
    assert result.codes == ["CONFLICT"]
    assert await counts() == before
    row = await Task.get()
    assert (row.title, row.version) == ("First edit", 2)


async def test_update_clears_and_reassigns(gql, team):
    customer = await make_customer(team.alice)
    due = datetime.now(UTC) + timedelta(days=3)
    made = await create(gql, team.alice, dueAt=at(due), relatedId=gid(customer))
    updated = await gql.ok(
        UPDATE,
        {
            "id": made["id"],
            "input": {"dueAt": None, "relatedId": None, "assigneeId": uid(team.bob)},
        },
        as_user=team.alice,
    )
    task = updated["updateTask"]
    assert (task["dueAt"], task["relatedId"], task["customer"]) == (None, None, None)
    assert task["assignee"] == {"username": "bob"}
    assert task["version"] == 2
    assert await Event.filter(kind="task.assigned", recipient_id=team.bob.id).count() == 1
    # the change is kept on the record the task was about
    entry = await OperationLog.get(action="TASK_UPDATE")
    assert entry.record_id == customer.id
    assert entry.changes["task.assignee_id"] == [team.alice.id, team.bob.id]

    untouched = await gql.ok(UPDATE, {"id": made["id"], "input": {"title": "Renamed"}},
                             as_user=team.bob)  # fmt: skip
    assert untouched["updateTask"]["dueAt"] is None  # not sent, not changed


# ---------------------------------------------------------------------------
# completing, reopening, deleting


async def test_complete_and_reopen(gql, team):
    customer = await make_customer(team.alice)
    made = await create(gql, team.alice, assigneeId=uid(team.bob), relatedId=gid(customer))
    done = (await gql.ok(COMPLETE, {"id": made["id"]}, as_user=team.bob))["completeTask"]
    assert done["status"] == "DONE" and done["completedAt"] is not None
    assert done["version"] == 2
    # the one who handed it out hears it is done
    assert await Event.filter(kind="task.completed", recipient_id=team.alice.id).count() == 1
    again = (await gql.ok(COMPLETE, {"id": made["id"]}, as_user=team.bob))["completeTask"]
    assert again == done
    reopened = (await gql.ok(REOPEN, {"id": made["id"]}, as_user=team.bob))["reopenTask"]
    assert (reopened["status"], reopened["completedAt"], reopened["version"]) == ("OPEN", None, 3)
    actions = (
        await OperationLog.filter(action__startswith="TASK_")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["TASK_CREATE", "TASK_COMPLETE", "TASK_REOPEN"]


async def test_completing_at_once_completes_once(gql, team):
    customer = await make_customer(team.alice)
    made = await create(gql, team.alice, relatedId=gid(customer))
    results = await asyncio.gather(
        *(
            gql.ok(COMPLETE, {"id": made["id"]}, as_user=user)
            for user in (team.alice, team.boss) * 3
        )
    )
    assert {r["completeTask"]["status"] for r in results} == {"DONE"}
    assert (await Task.get()).version == 2
    assert await OperationLog.filter(action="TASK_COMPLETE").count() == 1


async def test_delete_task(gql, team):
    customer = await make_customer(team.alice)
    made = await create(gql, team.alice, relatedId=gid(customer))
    done = await gql.ok(DELETE, {"id": made["id"]}, as_user=team.alice)
    assert done["deleteTask"]["deletedId"] == made["id"]
    assert not await Task.all().exists()
    entry = await OperationLog.get(action="TASK_DELETE")
    assert entry.changes["task.title"] == ["Prepare the quote", None]


# ---------------------------------------------------------------------------
# myTasks


async def test_my_tasks_views(gql, team):
    now = datetime.now(UTC)
    await create(gql, team.alice, "Someday")
    await create(gql, team.alice, "Overdue", dueAt=at(now - timedelta(hours=3)))
    await create(gql, team.alice, "In three days", dueAt=at(now + timedelta(days=3)))
    await create(gql, team.alice, "Next month", dueAt=at(now + timedelta(days=30)))
    done = await create(gql, team.alice, "Done already", dueAt=at(now - timedelta(days=1)))
    await gql.ok(COMPLETE, {"id": done["id"]}, as_user=team.alice)
    await create(gql, team.bob, "Bob's own", dueAt=at(now - timedelta(hours=3)))
    await create(gql, team.alice, "Given to Bob", assigneeId=uid(team.bob))

    expected = {
        "INBOX": ["Someday"],
        "TODAY": ["Overdue"],
        "NEXT": ["In three days"],
        "FUTURE": ["Next month"],
        "DONE": ["Done already"],
    }
    for view, wanted in expected.items():
        data = await gql.ok(MY_TASKS, {"view": view}, as_user=team.alice)
        assert titles(data["myTasks"]) == wanted, view
    overdue = await gql.ok("{ myTasks(view: TODAY) { edges { node { isOverdue } } } }",
                           as_user=team.alice)  # fmt: skip
    assert overdue["myTasks"]["edges"] == [{"node": {"isOverdue": True}}]


async def test_my_tasks_orders_and_pages(gql, team):
    now = datetime.now(UTC)
    for hours in (5, 1, 3, 2, 4):
        await create(gql, team.alice, f"Overdue {hours}h", dueAt=at(now - timedelta(hours=hours)))
    first = (await gql.ok(MY_TASKS, {"view": "TODAY", "first": 3}, as_user=team.alice))["myTasks"]
    assert titles(first) == ["Overdue 5h", "Overdue 4h", "Overdue 3h"]
    assert first["pageInfo"]["hasNextPage"]
    rest = await gql.ok(MY_TASKS, {"view": "TODAY", "after": first["pageInfo"]["endCursor"]},
                        as_user=team.alice)  # fmt: skip
    assert titles(rest["myTasks"]) == ["Overdue 2h", "Overdue 1h"]
    assert first["totalCount"] == 5


SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Late evening: tonight's 23:59 is today, 00:01 is tomorrow.
        (
            shanghai(2024, 3, 10, 23, 30),
            {"TODAY": ["yesterday", "tonight"], "NEXT": ["after midnight", "in 7 days"],
             "FUTURE": ["in 8 days", "after 11 days"]},
        ),
        # Just after midnight: last night's 23:59 is overdue, 23:00 tonight is
        # today although it is tomorrow in UTC.
        (
            shanghai(2024, 3, 11, 0, 30),
            {"TODAY": ["yesterday", "tonight", "after midnight"],
             "NEXT": ["in 7 days", "in 8 days"], "FUTURE": ["after 11 days"]},
        ),
    ],
)  # fmt: skip
async def test_views_split_at_midnight_in_the_company_timezone(team, now, expected):
    due = {
        "yesterday": shanghai(2024, 3, 9, 18, 0),
        "tonight": shanghai(2024, 3, 10, 23, 59),
        "after midnight": shanghai(2024, 3, 11, 23, 0),
        "in 7 days": shanghai(2024, 3, 17, 23, 59),
        "in 8 days": shanghai(2024, 3, 18, 0, 0),
        "after 11 days": shanghai(2024, 3, 22, 9, 0),
    }
    for title, moment in due.items():
        await Task.create(title=title, assignee=team.alice, creator=team.alice, due_at=moment)
    viewer = await Viewer.load(team.alice)
    for view, wanted in expected.items():
        query, ordering = my_tasks(viewer, TaskView(view), now=now, timezone="Asia/Shanghai")
        rows = await query.order_by(ordering.field, "id")
        assert [row.title for row in rows] == wanted, view


# ---------------------------------------------------------------------------
# the tasks connection


async def test_tasks_filter(gql, team):
    customer = await make_customer(team.alice)
    now = datetime.now(UTC)
    await create(gql, team.alice, "About Acme", relatedId=gid(customer), dueAt=at(now))
    await create(gql, team.alice, "Bob's", assigneeId=uid(team.bob),
                 dueAt=at(now + timedelta(days=5)))  # fmt: skip
    closed = await create(gql, team.alice, "Closed")
    await gql.ok(COMPLETE, {"id": closed["id"]}, as_user=team.alice)

    async def find(**where) -> list[str]:
        data = await gql.ok(TASKS, {"filter": where}, as_user=team.boss)
        return sorted(titles(data["tasks"]))

    assert await find(assigneeId=uid(team.bob)) == ["Bob's"]
    assert await find(status="DONE") == ["Closed"]
    assert await find(relatedId=gid(customer)) == ["About Acme"]
    assert await find(dueAfter=at(now + timedelta(days=1))) == ["Bob's"]
    assert await find(dueBefore=at(now + timedelta(days=1))) == ["About Acme"]
    result = await gql(TASKS, {"filter": {"relatedId": uid(team.bob)}}, as_user=team.boss)
    assert result.codes == ["BAD_USER_INPUT"]

    by_due = await gql.ok(TASKS, {"orderBy": {"field": "DUE_AT"}}, as_user=team.boss)
    assert titles(by_due["tasks"]) == ["About Acme", "Bob's", "Closed"]  # undated last
    # Bob sees only what concerns him; Alice sees what she created and was given
    bob = await gql.ok(TASKS, {}, as_user=team.bob)
    assert titles(bob["tasks"]) == ["Bob's"]
    alice = await gql.ok(TASKS, {}, as_user=team.alice)
    assert alice["tasks"]["totalCount"] == 3
