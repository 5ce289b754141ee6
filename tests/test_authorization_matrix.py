"""The authorization matrix, generated from the schema.

Every root Query field, every Mutation and every type `node(id:)` returns has
an entry in MATRIX or NODES; `test_every_operation_is_in_the_matrix` fails
when the schema has an operation without one, saying what to add.

Each entry runs against a small company (`World`) whose target records belong
to Owner, a rep in Sales/East:

- for each permission the operation needs, a user in Sales whose data scope
  covers Owner (DEPARTMENT_TREE, like Owner's manager) and who holds every
  permission but that one gets FORBIDDEN naming the permission;
- the outsider, a rep in North with every permission but the SELF scope, gets
  NOT_FOUND (the target behaves as if it did not exist), or for lists and
  reports an answer without the target in it;
- a mutation is also refused (FORBIDDEN or NOT_FOUND) to the reader, who holds
  every permission and a READ seat on the target's customer team;
- after every refusal not one row of any table has changed;
- last, a user who may do it (Owner's manager unless said otherwise) does it:
  the query shows the target, the mutation writes. So the request was valid
  and the refusals came from authorization alone.

Operations that need no permission, or whose permission covers the whole
company by design, say why in their entry.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from graphql import GraphQLObjectType
from tortoise import connections
from tortoise.models import Model

from meihua.models import (
    Contact,
    Contract,
    ContractItem,
    ContractStatus,
    Customer,
    CustomerTeamMember,
    DataScope,
    Department,
    FieldAccess,
    FieldPermission,
    FollowUp,
    FollowUpMethod,
    Lead,
    LeadDistributionRule,
    LeadStatus,
    OperationLog,
    Opportunity,
    OpportunityStage,
    Payment,
    PaymentPlan,
    Pipeline,
    Pool,
    Product,
    RecordType,
    Role,
    Task,
    TaskStatus,
    TeamAccess,
    User,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
)
from meihua.resolvers.customers import normalize_name
from meihua.resolvers.permissions import ALL_PERMISSIONS
from meihua.schema import build_schema
from meihua.schema.relay import to_global_id
from tests.conftest import all_tables

SCHEMA = build_schema()._schema

# Values only the target records carry: one of them in an answer gives the target away.
CUSTOMER = "Zephyrine Target Works"
CONTACT = "Quillon Target Contact"
LEAD = "Wolfram Target Lead"
FOLLOW_UP = "Marmoset target follow-up"
LOGGED = "Vermilion target change"
RULE = "Everything to Peer"
AMOUNT = "73519.00"  # the target opportunity's


def gid(row: Model) -> str:
    return to_global_id(type(row).__name__, row.id)


# --- the company ------------------------------------------------------------------------


@dataclass
class World:
    """Sales (manager Boss) over East (reps Owner and Peer); North (outsider, reader)."""

    admin: User
    boss: User  # every permission, DEPARTMENT_TREE, in Sales
    owner: User  # Sales Rep in East, reports to Boss: owns the targets
    peer: User  # Sales Rep in East: receives transfers and team seats
    outsider: User  # every permission but `outsider_lacks`, SELF, in North
    reader: User  # as the outsider, plus a READ seat on the target customer's team
    lacking: dict[str, User]  # permission -> a Boss without it
    sales: Department
    east: Department
    company_pool: Pool
    sales_pool: Pool  # for Sales and its sub-departments
    made: dict[str, Any] = field(default_factory=dict)

    async def once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        if key not in self.made:
            self.made[key] = await make()
        return self.made[key]

    def customer(self) -> Awaitable[Customer]:
        return self.once(
            "customer",
            lambda: Customer.create(
                name=CUSTOMER,
                name_key=normalize_name(CUSTOMER),
                owner=self.owner,
                created_by=self.owner,
                pool=self.company_pool,
                taken_at=datetime.now(UTC),
            ),
        )

    def pooled_customer(self) -> Awaitable[Customer]:
        """Nobody's, in the Sales pool: Sales members see and claim it."""
        return self.once(
            "pooled",
            lambda: Customer.create(
                name="Pooled Target Co",
                name_key=normalize_name("Pooled Target Co"),
                created_by=self.owner,
                pool=self.sales_pool,
                pool_entered_at=datetime.now(UTC),
            ),
        )

    async def contact(self) -> Contact:
        customer = await self.customer()
        return await self.once(
            "contact",
            lambda: Contact.create(
                customer=customer, name=CONTACT, is_primary=True, created_by=self.owner
            ),
        )

    def product(self) -> Awaitable[Product]:
        return self.once(
            "product",
            lambda: Product.create(name="Widget", code="W-1", unit_price=Decimal("100.00")),
        )

    async def opportunity(self) -> Opportunity:
        customer = await self.customer()
        stage = await OpportunityStage.get(order=1, pipeline__order=1)
        return await self.once(
            "opportunity",
            lambda: Opportunity.create(
                customer=customer,
                name="Target Deal",
                amount=Decimal(AMOUNT),
                stage=stage,
                owner=self.owner,
                created_by=self.owner,
            ),
        )

    async def contract(self, status: ContractStatus) -> Contract:
        customer, product = await self.customer(), await self.product()

        async def make() -> Contract:
            contract = await Contract.create(
                number="HT-AUTHZ-000001",
                title="Target Contract",
                customer=customer,
                owner=self.owner,
                created_by=self.owner,
                total=Decimal("1000.00"),
                status=status,
                current_step=1 if status == ContractStatus.PENDING_APPROVAL else None,
            )
            await ContractItem.create(
                contract=contract,
                product=product,
                quantity=Decimal("10"),
                unit_price=Decimal("100.00"),
                amount=Decimal("1000.00"),
            )
            return contract

        return await self.once("contract", make)

    async def plan(self) -> PaymentPlan:
        contract = await self.contract(ContractStatus.APPROVED)
        return await self.once(
            "plan",
            lambda: PaymentPlan.create(
                contract=contract,
                period=1,
                planned_amount=Decimal("400.00"),
                planned_on=date.today() + timedelta(days=30),
            ),
        )

    async def payment(self) -> Payment:
        contract = await self.contract(ContractStatus.APPROVED)
        return await self.once(
            "payment",
            lambda: Payment.create(
                contract=contract,
                amount=Decimal("250.00"),
                paid_on=date.today() - timedelta(days=1),
                created_by=self.owner,
            ),
        )

    def lead(self, **fields) -> Awaitable[Lead]:
        values = {
            "company_name": LEAD,
            "contact_name": "Lead Person",
            "owner": self.owner,
            "created_by": self.owner,
            **fields,
        }
        return self.once("lead", lambda: Lead.create(**values))

    async def followup(self) -> FollowUp:
        customer = await self.customer()
        return await self.once(
            "followup",
            lambda: FollowUp.create(
                target_type=RecordType.CUSTOMER,
                target_id=customer.id,
                customer=customer,
                method=FollowUpMethod.PHONE,
                content=FOLLOW_UP,
                occurred_at=datetime.now(UTC) - timedelta(hours=1),
                author=self.owner,
            ),
        )

    async def task(self, **fields) -> Task:
        customer = await self.customer()
        values = {
            "title": "Target task",
            "assignee": self.owner,
            "creator": self.owner,
            "related_type": RecordType.CUSTOMER,
            "related_id": customer.id,
            "customer": customer,
            **fields,
        }
        return await self.once("task", lambda: Task.create(**values))

    async def rule(self) -> LeadDistributionRule:
        async def make() -> LeadDistributionRule:
            rule = await LeadDistributionRule.create(name=RULE, position=1)
            await rule.users.add(self.peer)
            return rule

        return await self.once("rule", make)


async def make_world(org, entry: Entry) -> World:
    sales, north = await org.department("Sales"), await org.department("North")
    east = await org.department("East", parent=sales)
    everything = await org.role("Everything", DataScope.DEPARTMENT_TREE, list(ALL_PERMISSIONS))
    rep = await org.default_role("Sales Rep")
    boss = await org.user("boss", department=sales, roles=[everything])
    lacking = {}
    for permission in entry.needs:
        others = [p for p in ALL_PERMISSIONS if p != permission]
        role = await org.role(f"All but {permission}", DataScope.DEPARTMENT_TREE, others)
        username = "lacks_" + permission.replace(":", "_")
        lacking[permission] = await org.user(username, department=sales, roles=[role])
    granted = [p for p in ALL_PERMISSIONS if p not in entry.outsider_lacks]
    self_only = await org.role("Everything, own records", DataScope.SELF, granted)
    sales_pool = await Pool.create(name="Sales pool")
    await sales_pool.departments.add(sales)
    return World(
        admin=await org.admin(),
        boss=boss,
        owner=await org.user("owner", department=east, roles=[rep], manager=boss),
        peer=await org.user("peer", department=east, roles=[rep], manager=boss),
        outsider=await org.user("outsider", department=north, roles=[self_only]),
        reader=await org.user("reader", department=north, roles=[self_only]),
        lacking=lacking,
        sales=sales,
        east=east,
        company_pool=await Pool.get(company_wide=True),
        sales_pool=sales_pool,
    )


# --- requests -----------------------------------------------------------------------------

# A value in a request: plain, or a function of the world (a record stands for its global id).
Value = Any


async def resolve(value: Value, w: World) -> Any:
    if callable(value):
        value = value(w)
        if inspect.isawaitable(value):
            value = await value
        return gid(value) if isinstance(value, Model) else value
    if isinstance(value, dict):
        return {k: await resolve(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [await resolve(v, w) for v in value]
    return value


@dataclass
class Case:
    """One request, and what in an answer gives the target away (as JSON text)."""

    document: str
    variables: dict[str, Any]
    markers: tuple[str, ...] = ()


Builder = Callable[[World], Awaitable[list[Case]]]


def op(field_: str, selection: str = "{ id }", **args: tuple[str, Value]) -> Builder:
    """A mutation: `field_(name: $name …) selection`, each arg given as (type, value)."""
    params = ", ".join(f"${name}: {type_}" for name, (type_, _) in args.items())
    passed = ", ".join(f"{name}: ${name}" for name in args)
    document = f"mutation({params}) {{ {field_}({passed}) {selection} }}"

    async def build(w: World) -> list[Case]:
        variables = {name: await resolve(value, w) for name, (_, value) in args.items()}
        return [Case(document, variables)]

    return build


def query(document: str, markers: list[Value], making: Value = None, **variables: Value) -> Builder:
    """A query; each marker is a literal text or a record (its quoted global id:
    `Customer:1`'s id is a prefix of `Customer:10`'s). `making` makes a record first.
    """

    async def build(w: World) -> list[Case]:
        await resolve(making, w)
        given = {name: await resolve(value, w) for name, value in variables.items()}
        texts = [json.dumps(await resolve(m, w)) if callable(m) else m for m in markers]
        return [Case(document, given, tuple(texts))]

    return build


def cases(*builders: Builder) -> Builder:
    """Several requests to one query field, checked one after another."""

    async def build(w: World) -> list[Case]:
        return [case for builder in builders for case in await builder(w)]

    return build


def connection(field_: str, filter_type: str, target: Value, **where: Value) -> Builder:
    """A connection listed as is and filtered down to the target (never wider than the scope)."""
    select = "first: 100) { edges { node { id } } } }"
    return cases(
        query(f"{{ {field_}({select}", [target]),
        query(
            f"query($f: {filter_type}) {{ {field_}(filter: $f, {select}",
            [target],
            f=where,
        ),
    )


def export(field_: str, filter_type: str, marker: str, target: Value, **where: Value) -> Builder:
    """A CSV export, as is and filtered down to the target."""
    return cases(
        query(f"{{ {field_} {{ content }} }}", [marker], making=target),
        query(
            f"query($f: {filter_type}) {{ {field_}(filter: $f) {{ content }} }}",
            [marker],
            f=where,
        ),
    )


def csv_import(field_: str, content: Value) -> Builder:
    return op(
        field_,
        "{ imported errors { line message } }",
        content=("String", content),
        dryRun=("Boolean!", False),
    )


# Records of the world, as values.


def customer(w: World):
    return w.customer()


def contact(w: World):
    return w.contact()


def opportunity(w: World):
    return w.opportunity()


def draft(w: World):
    return w.contract(ContractStatus.DRAFT)


def pending(w: World):
    return w.contract(ContractStatus.PENDING_APPROVAL)


def approved(w: World):
    return w.contract(ContractStatus.APPROVED)


def plan(w: World):
    return w.plan()


def payment(w: World):
    return w.payment()


def lead(w: World):
    return w.lead()


def followup(w: World):
    return w.followup()


def task(w: World):
    return w.task()


def product(w: World):
    return w.product()


def owner(w: World):
    return w.owner


def peer(w: World):
    return w.peer


async def pooled_lead(w: World) -> Lead:
    await w.rule()
    return await w.lead(owner=None)


async def rule(w: World) -> str:
    return to_global_id("LeadDistributionRule", (await w.rule()).id)


async def rules(w: World) -> list[str]:
    second = await LeadDistributionRule.create(name="Second", position=2)
    return [to_global_id("LeadDistributionRule", second.id), await rule(w)]


async def locked_customer(w: World) -> Customer:
    row = await w.customer()
    await Customer.filter(id=row.id).update(locked=True)
    return row


def twin(w: World) -> Awaitable[Customer]:
    """Owner's second entry of the target company: a likely duplicate of it."""
    name = f"{CUSTOMER} Co., Ltd."
    return w.once(
        "twin",
        lambda: Customer.create(
            name=name,
            name_key=normalize_name(name),
            owner=w.owner,
            created_by=w.owner,
            pool=w.company_pool,
        ),
    )


async def teamed_customer(w: World) -> Customer:
    """The target customer with Peer on its team (READ)."""
    row = await w.customer()
    await CustomerTeamMember.create(customer=row, user=w.peer, access=TeamAccess.READ)
    return row


async def spare_role(w: World) -> Role:
    return await Role.create(name="Spare", data_scope=DataScope.SELF, permissions=[])


async def inactive_user(w: World) -> User:
    return await User.create(
        username="gone", name="Gone", password_hash="x", department=w.sales, is_active=False
    )


async def inactive_product(w: World) -> Product:
    row = await w.product()
    await Product.filter(id=row.id).update(is_active=False)
    return row


async def webhook(w: World) -> Webhook:
    """A hook the admin registered, aimed where nothing listens."""
    return await w.once(
        "webhook",
        lambda: Webhook.create(
            url="http://127.0.0.1:9/hook",
            event_kinds=["customer.changed"],
            secret="whsec_matrix",
            owner=w.admin,
        ),
    )


async def webhook_delivery(w: World) -> WebhookDelivery:
    """A delivery that succeeded (nothing left to send until it is redelivered)."""
    hook = await webhook(w)
    return await w.once(
        "delivery",
        lambda: WebhookDelivery.create(
            webhook=hook,
            event_id=1,
            event_kind="customer.changed",
            body="{}",
            status=WebhookDeliveryStatus.SUCCEEDED,
            attempts=1,
        ),
    )


async def last_stage(w: World) -> OpportunityStage:
    return await OpportunityStage.all().order_by("-order").first()


async def rep_role(w: World) -> Role:
    return await Role.get(name="Sales Rep")


async def read_only_mobile(w: World) -> FieldPermission:
    """The Sales Rep role may read contacts' mobile numbers but not change them."""
    role = await rep_role(w)
    return await w.once(
        "read_only_mobile",
        lambda: FieldPermission.create(
            role=role, record_type=RecordType.CONTACT, field="mobile", access=FieldAccess.READ
        ),
    )


async def stages_reversed(w: World) -> list[str]:
    return [gid(s) for s in await OpportunityStage.all().order_by("-order")]


async def second_pipeline(w: World) -> Pipeline:
    """A second pipeline with one stage, holding nothing."""

    async def make() -> Pipeline:
        pipeline = await Pipeline.create(name="Projects", order=2)
        await OpportunityStage.create(pipeline=pipeline, name="Scoping", win_rate=20, order=1)
        return pipeline

    return await w.once("pipeline", make)


async def pipelines_reversed(w: World) -> list[str]:
    await second_pipeline(w)
    return [gid(p) for p in await Pipeline.all().order_by("-order")]


async def logged(w: World) -> Customer:
    """The target customer, with an entry about it in the operation log."""
    row = await w.customer()
    await w.once(
        "logged",
        lambda: OperationLog.create(
            actor=w.owner,
            action="UPDATE",
            record_type=RecordType.CUSTOMER,
            record_id=row.id,
            customer=row,
            changes={"remarks": [None, LOGGED]},
            summary=LOGGED,
        ),
    )
    return row


async def due_customer(w: World) -> Customer:
    """The target, taken 29 days ago from a pool recycling after 30 days without a follow-up."""
    row = await w.customer()
    await Pool.filter(id=w.company_pool.id).update(recycle_not_dealt_after_days=30)
    await Customer.filter(id=row.id).update(taken_at=datetime.now(UTC) - timedelta(days=29))
    return row


async def contacts_csv(w: World) -> str:
    await w.customer()
    return f"customer,name\n{CUSTOMER},Imported Person\n"


TIMELINE = "query($id: ID!) { timeline(recordId: $id, first: 100) { edges { node { summary } } } }"


def timeline(target: Value) -> Builder:
    """A record's timeline; the customer's shows the target follow-up."""
    markers = [FOLLOW_UP] if target is customer else []
    return query(TIMELINE, markers, making=followup, id=target)


def today() -> str:
    return str(date.today())


def yesterday() -> str:
    return str(date.today() - timedelta(days=1))


# --- the matrix ---------------------------------------------------------------------

NOT_FOUND = "NOT_FOUND"  # what the outsider gets: the target does not exist for them
FORBIDDEN = "FORBIDDEN"  # … they see it, or it is not a record, but may not act
HIDDEN = "HIDDEN"  # … an answer without the target (or NOT_FOUND / FORBIDDEN)
EXEMPT = "EXEMPT"  # … not checked: `why` says why


@dataclass(frozen=True)
class Entry:
    build: Builder | None  # None: public, nothing to check
    needs: tuple[str, ...] = ()  # each checked with a user lacking only it
    outsider: str = NOT_FOUND
    why: str = ""  # required when `needs` is empty or the outsider is exempt
    outsider_lacks: tuple[str, ...] = ()  # company-wide permissions the outsider lacks
    control: str = "boss"  # the World user who may do it


def public(why: str) -> Entry:
    return Entry(build=None, outsider=EXEMPT, why=why)


def read(build: Builder, *needs: str, **more) -> Entry:
    return Entry(build, needs, **{"outsider": HIDDEN, **more})


def write(build: Builder, *needs: str, **more) -> Entry:
    return Entry(build, needs, **more)


def company(permission: str, build: Builder) -> Entry:
    """Its permission covers the whole company: the outsider holding it may do it."""
    why = f"company-wide configuration: {permission} covers the whole company by design"
    return Entry(build, (permission,), outsider=EXEMPT, why=why)


def node(target: Value, **more) -> Entry:
    document = "query($id: ID!) { node(id: $id) { id } }"
    return Entry(query(document, [target], id=target), outsider=NOT_FOUND, why=READING, **more)


READING = "reading needs no permission: the data scope alone decides what is seen"
DIRECTORY = "the organization directory: every signed-in user reads it"
SETUP = "sales configuration every user works with"
OWN = "the caller creates records they own: nobody else's data is involved"
SCOPE_ONLY = "needs no permission: write access to the record (scope or WRITE seat) decides"
TASKS = "tasks need no permission: their assignee, creator and the assignee's managers edit"
FOLLOW_UPS = "only the author changes a follow-up (for 24 h): no permission involved"


def by_id(field_: str, target: Value, selection: str = "{ id }", **args) -> Builder:
    return op(field_, selection, id=("ID!", target), **args)


def on_ids(field_: str, target: Value, **args) -> Builder:
    return op(field_, ids=("[ID!]!", [target]), **args)


DELETED = "{ deletedId }"
TO_PEER = {"ownerId": ("ID!", peer)}
REASON = {"reason": ("String!", "authorization matrix")}

MATRIX: dict[str, Entry] = {
    # --- queries
    "me": public("the caller's own account"),
    "permissions": public("the static catalogue of permission names"),
    "departments": public(DIRECTORY),
    "roles": public(DIRECTORY),
    "users": public(DIRECTORY),
    "opportunityStages": public(SETUP),
    "pipelines": public(SETUP),
    "products": public("the product catalogue every user sells from"),
    "approvalSteps": public("the approval flow every contract goes through"),
    "customers": read(
        connection("customers", "CustomerFilter", customer, ownerId=owner), why=READING
    ),
    "pools": read(
        query("{ pools { id } }", [lambda w: w.sales_pool]),
        why="pools are seen by their members; pool:manage sees them all, so the outsider lacks it",
        outsider_lacks=("pool:manage",),
    ),
    "leads": read(connection("leads", "LeadFilter", lead, ownerId=owner), why=READING),
    "leadDistributionRules": company(
        "lead:distribute", query("{ leadDistributionRules { name } }", [RULE], making=rule)
    ),
    "contacts": read(
        connection("contacts", "ContactFilter", contact, customerId=customer), why=READING
    ),
    "opportunities": read(
        connection("opportunities", "OpportunityFilter", opportunity, ownerId=owner),
        why=READING,
    ),
    "contracts": read(
        connection("contracts", "ContractFilter", draft, customerId=customer), why=READING
    ),
    "receivables": read(
        connection("receivables", "ReceivableFilter", approved, ownerId=owner), why=READING
    ),
    "followUps": read(
        connection("followUps", "FollowUpFilter", followup, customerId=customer), why=READING
    ),
    "tasks": read(connection("tasks", "TaskFilter", task, assigneeId=owner), why=READING),
    "myTasks": read(
        query("{ myTasks(view: INBOX, first: 100) { edges { node { id } } } }", [task]),
        why="the caller's own tasks",
        control="owner",
    ),
    "timeline": read(
        cases(*(timeline(t) for t in (customer, contact, opportunity, draft, lead))),
        outsider=NOT_FOUND,
        why=READING,
    ),
    "operationLog": read(
        cases(
            query(
                "{ operationLog(first: 100) { edges { node { summary } } } }",
                [LOGGED],
                making=logged,
            ),
            query(
                "query($f: OperationLogFilter) { operationLog(filter: $f, first: 100) "
                "{ edges { node { summary } } } }",
                [LOGGED],
                f={"recordId": logged},
            ),
        ),
        why=READING,
    ),
    "exportCustomers": read(
        export("exportCustomers", "CustomerFilter", CUSTOMER, customer, ownerId=owner),
        "customer:export",
    ),
    "exportLeads": read(
        export("exportLeads", "LeadFilter", LEAD, lead, ownerId=owner), "lead:export"
    ),
    "exportContacts": read(
        export("exportContacts", "ContactFilter", CONTACT, contact, customerId=customer),
        "customer:export",
    ),
    "dashboard": read(
        cases(
            *(
                query(
                    "query($f: DashboardFilter) { dashboard(filter: $f) "
                    "{ briefing { opportunityAmount { value } } } }",
                    [AMOUNT],
                    making=opportunity,
                    f=where,
                )
                for where in ({}, {"userIds": [owner]}, {"departmentId": lambda w: w.east})
            )
        ),
        "dashboard:view",
    ),
    "likelyDuplicates": read(
        cases(
            query("{ likelyDuplicates { customers { id } } }", [customer], making=twin),
            query(
                "query($id: ID!) { likelyDuplicates(customerId: $id) { customers { id } } }",
                [customer],
                id=twin,
            ),
        ),
        why=READING,
    ),
    "recyclePreview": read(
        cases(
            query(
                "{ recyclePreview(first: 100) { edges { node { customer { id } } } } }",
                [due_customer],
            ),
            query(
                "query($f: RecyclePreviewFilter) { recyclePreview(filter: $f, first: 100) "
                "{ edges { node { customer { id } } } } }",
                [due_customer],
                f={"ownerId": owner, "rule": "NO_FOLLOW_UP_NOT_DEALT"},
            ),
        ),
        why=READING,
    ),
    # --- organization
    "login": public("signing in comes before any identity"),
    "changePassword": public("changes the caller's own password only"),
    "createDepartment": company(
        "org:manage",
        op(
            "createDepartment",
            input=("CreateDepartmentInput!", {"name": "West", "parentId": lambda w: w.sales}),
        ),
    ),
    "updateDepartment": company(
        "org:manage",
        by_id(
            "updateDepartment",
            lambda w: w.east,
            input=("UpdateDepartmentInput!", {"name": "East Coast"}),
        ),
    ),
    "deleteDepartment": company(
        "org:manage",
        by_id(
            "deleteDepartment", lambda w: Department.create(name="Empty", parent=w.sales), DELETED
        ),
    ),
    "createRole": company(
        "org:manage",
        op(
            "createRole",
            input=(
                "CreateRoleInput!",
                {"name": "Auditors", "permissions": ["dashboard:view"], "dataScope": "SELF"},
            ),
        ),
    ),
    "updateRole": company(
        "org:manage", by_id("updateRole", spare_role, input=("UpdateRoleInput!", {"name": "R"}))
    ),
    "deleteRole": company("org:manage", by_id("deleteRole", spare_role, DELETED)),
    "createUser": company(
        "org:manage",
        op(
            "createUser",
            input=(
                "CreateUserInput!",
                {
                    "username": "newcomer",
                    "password": "a-long-enough-password-42",
                    "name": "Newcomer",
                    "departmentId": lambda w: w.sales,
                    "roleIds": [],
                },
            ),
        ),
    ),
    "updateUser": company(
        "org:manage", by_id("updateUser", owner, input=("UpdateUserInput!", {"name": "Renamed"}))
    ),
    "deactivateUser": company("org:manage", by_id("deactivateUser", owner)),
    "reactivateUser": company("org:manage", by_id("reactivateUser", inactive_user)),
    # --- customers and pools
    "createCustomer": write(
        op("createCustomer", input=("CreateCustomerInput!", {"name": "Brand New Co"})),
        "customer:create",
        outsider=EXEMPT,
        why=OWN,
    ),
    "updateCustomer": write(
        by_id("updateCustomer", customer, input=("UpdateCustomerInput!", {"level": "A"})),
        "customer:update",
    ),
    "deleteCustomer": write(by_id("deleteCustomer", customer, DELETED), "customer:delete"),
    "mergeCustomers": write(
        op("mergeCustomers", keepId=("ID!", customer), mergeIds=("[ID!]!", [twin])),
        "customer:update",
        "customer:delete",
    ),
    "lockCustomers": write(on_ids("lockCustomers", customer), "customer:lock"),
    "unlockCustomers": write(on_ids("unlockCustomers", locked_customer), "customer:lock"),
    "transferCustomers": write(
        on_ids("transferCustomers", customer, **TO_PEER), "customer:transfer"
    ),
    "addCustomerTeamMember": write(
        op(
            "addCustomerTeamMember",
            customerId=("ID!", customer),
            userId=("ID!", peer),
            access=("TeamAccess!", "READ"),
        ),
        "customer:update",
    ),
    "updateCustomerTeamMember": write(
        op(
            "updateCustomerTeamMember",
            customerId=("ID!", teamed_customer),
            userId=("ID!", peer),
            access=("TeamAccess", "WRITE"),
        ),
        "customer:update",
    ),
    "removeCustomerTeamMember": write(
        op("removeCustomerTeamMember", customerId=("ID!", teamed_customer), userId=("ID!", peer)),
        "customer:update",
    ),
    "releaseCustomers": write(
        on_ids("releaseCustomers", customer, reason=("String", "matrix")), "pool:release"
    ),
    "claimCustomer": write(by_id("claimCustomer", lambda w: w.pooled_customer()), "pool:claim"),
    "assignCustomers": write(
        on_ids("assignCustomers", lambda w: w.pooled_customer(), **TO_PEER), "pool:assign"
    ),
    "createPool": company(
        "pool:manage",
        op(
            "createPool",
            input=("CreatePoolInput!", {"name": "East pool", "departmentIds": [lambda w: w.east]}),
        ),
    ),
    "updatePool": company(
        "pool:manage",
        by_id("updatePool", lambda w: w.sales_pool, input=("UpdatePoolInput!", {"maxOwned": 5})),
    ),
    "deletePool": company(
        "pool:manage", by_id("deletePool", lambda w: Pool.create(name="Empty pool"), DELETED)
    ),
    # --- leads
    "createLead": write(
        op("createLead", input=("CreateLeadInput!", {"companyName": "Brand New Lead"})),
        "lead:create",
        outsider=EXEMPT,
        why=OWN,
    ),
    "updateLead": write(
        by_id("updateLead", lead, input=("UpdateLeadInput!", {"remarks": "called"})),
        "lead:update",
    ),
    "deleteLead": write(by_id("deleteLead", lead, DELETED), "lead:delete"),
    "markLeadInvalid": write(by_id("markLeadInvalid", lead, **REASON), "lead:update"),
    "reopenLead": write(
        by_id("reopenLead", lambda w: w.lead(status=LeadStatus.INVALID)), "lead:update"
    ),
    "transferLeads": write(on_ids("transferLeads", lead, **TO_PEER), "lead:transfer"),
    "assignLeads": write(on_ids("assignLeads", lead, **TO_PEER), "lead:distribute"),
    "releaseLeads": write(on_ids("releaseLeads", lead), "lead:update"),
    "convertLead": write(
        by_id("convertLead", lead), "lead:convert", "customer:create", "contact:create"
    ),
    "createLeadDistributionRule": company(
        "lead:distribute",
        op(
            "createLeadDistributionRule",
            input=("CreateLeadDistributionRuleInput!", {"name": "All", "userIds": [peer]}),
        ),
    ),
    "updateLeadDistributionRule": company(
        "lead:distribute",
        by_id(
            "updateLeadDistributionRule",
            rule,
            input=("UpdateLeadDistributionRuleInput!", {"active": False}),
        ),
    ),
    "reorderLeadDistributionRules": company(
        "lead:distribute", op("reorderLeadDistributionRules", ids=("[ID!]!", rules))
    ),
    "deleteLeadDistributionRule": company(
        "lead:distribute", by_id("deleteLeadDistributionRule", rule, DELETED)
    ),
    "distributeLeads": company(
        "lead:distribute", op("distributeLeads", "{ assigned }", ids=("[ID!]", [pooled_lead]))
    ),
    # --- contacts and opportunities
    "createContact": write(
        op("createContact", input=("CreateContactInput!", {"customerId": customer, "name": "N"})),
        "contact:create",
    ),
    "updateContact": write(
        by_id("updateContact", contact, input=("UpdateContactInput!", {"title": "CTO"})),
        "contact:update",
    ),
    "deleteContact": write(by_id("deleteContact", contact, DELETED), "contact:delete"),
    "createOpportunity": write(
        op(
            "createOpportunity",
            input=(
                "CreateOpportunityInput!",
                {"customerId": customer, "name": "Upsell", "amount": "10.00"},
            ),
        ),
        "opportunity:create",
    ),
    "updateOpportunity": write(
        by_id(
            "updateOpportunity", opportunity, input=("UpdateOpportunityInput!", {"remarks": "hot"})
        ),
        "opportunity:update",
    ),
    "deleteOpportunity": write(
        by_id("deleteOpportunity", opportunity, DELETED), "opportunity:delete"
    ),
    "moveOpportunityStage": write(
        by_id(
            "moveOpportunityStage",
            opportunity,
            stageId=("ID!", lambda w: OpportunityStage.get(order=2)),
        ),
        "opportunity:update",
    ),
    "changeOpportunityPipeline": write(
        by_id("changeOpportunityPipeline", opportunity, pipelineId=("ID!", second_pipeline)),
        "opportunity:update",
    ),
    "winOpportunity": write(by_id("winOpportunity", opportunity), "opportunity:update"),
    "loseOpportunity": write(by_id("loseOpportunity", opportunity, **REASON), "opportunity:update"),
    "setOpportunityProducts": write(
        by_id(
            "setOpportunityProducts",
            opportunity,
            items=("[OpportunityProductInput!]!", [{"productId": product, "quantity": "2"}]),
        ),
        "opportunity:update",
    ),
    "transferOpportunities": write(
        on_ids("transferOpportunities", opportunity, **TO_PEER), "opportunity:transfer"
    ),
    "createOpportunityStage": company(
        "settings:manage",
        op(
            "createOpportunityStage",
            input=("CreateOpportunityStageInput!", {"name": "Pilot", "winRate": 50}),
        ),
    ),
    "updateOpportunityStage": company(
        "settings:manage",
        by_id(
            "updateOpportunityStage",
            last_stage,
            input=("UpdateOpportunityStageInput!", {"winRate": 85}),
        ),
    ),
    "reorderOpportunityStages": company(
        "settings:manage", op("reorderOpportunityStages", ids=("[ID!]!", stages_reversed))
    ),
    "deleteOpportunityStage": company(
        "settings:manage", by_id("deleteOpportunityStage", last_stage, DELETED)
    ),
    # --- webhooks
    "webhooks": company(
        "settings:manage", query("{ webhooks(first: 10) { edges { node { id } } } }", [webhook])
    ),
    "webhook": company(
        "settings:manage",
        query(
            "query($id: ID!) { webhook(id: $id) { id deliveries { edges { node { id } } } } }",
            [webhook, webhook_delivery],
            id=webhook,
        ),
    ),
    "webhookEventKinds": company(
        "settings:manage", query("{ webhookEventKinds }", ["customer.changed"])
    ),
    "createWebhook": company(
        "settings:manage",
        op(
            "createWebhook",
            "{ secret }",
            input=(
                "CreateWebhookInput!",
                {"url": "https://example.com/hook", "eventKinds": ["customer.changed"]},
            ),
        ),
    ),
    "updateWebhook": company(
        "settings:manage",
        by_id("updateWebhook", webhook, input=("UpdateWebhookInput!", {"description": "CRM sync"})),
    ),
    "rotateWebhookSecret": company(
        "settings:manage", by_id("rotateWebhookSecret", webhook, "{ secret }")
    ),
    "deleteWebhook": company("settings:manage", by_id("deleteWebhook", webhook, DELETED)),
    "redeliverWebhookDelivery": company(
        "settings:manage", by_id("redeliverWebhookDelivery", webhook_delivery)
    ),
    # --- pipelines
    "createPipeline": company(
        "settings:manage",
        op(
            "createPipeline",
            input=(
                "CreatePipelineInput!",
                {"name": "Service", "stages": [{"name": "Quote", "winRate": 40}]},
            ),
        ),
    ),
    "updatePipeline": company(
        "settings:manage",
        by_id("updatePipeline", second_pipeline, input=("UpdatePipelineInput!", {"active": False})),
    ),
    "reorderPipelines": company(
        "settings:manage", op("reorderPipelines", ids=("[ID!]!", pipelines_reversed))
    ),
    "deletePipeline": company("settings:manage", by_id("deletePipeline", second_pipeline, DELETED)),
    # --- products
    "createProduct": company(
        "product:manage",
        op(
            "createProduct",
            input=("CreateProductInput!", {"name": "Gadget", "code": "G-1", "unitPrice": "5"}),
        ),
    ),
    "updateProduct": company(
        "product:manage",
        by_id("updateProduct", product, input=("UpdateProductInput!", {"name": "Widget Pro"})),
    ),
    "activateProduct": company("product:manage", by_id("activateProduct", inactive_product)),
    "deactivateProduct": company("product:manage", by_id("deactivateProduct", product)),
    # --- contracts and payments
    "createContract": write(
        op(
            "createContract",
            input=("CreateContractInput!", {"customerId": customer, "title": "Another"}),
        ),
        "contract:create",
    ),
    "updateContract": write(
        by_id("updateContract", draft, input=("UpdateContractInput!", {"remarks": "rush"})),
        "contract:update",
    ),
    "deleteContract": write(by_id("deleteContract", draft, DELETED), "contract:delete"),
    "transferContracts": write(on_ids("transferContracts", draft, **TO_PEER), "contract:transfer"),
    "submitContract": write(by_id("submitContract", draft), "contract:update"),
    # Approvers are the holders of the Finance role, or super admins while it has none.
    "approveContract": write(
        by_id("approveContract", pending, comment=("String", "fine")),
        "contract:approve",
        control="admin",
    ),
    "rejectContract": write(
        by_id("rejectContract", pending, comment=("String!", "no")),
        "contract:approve",
        control="admin",
    ),
    "voidContract": write(by_id("voidContract", approved, **REASON), "contract:void"),
    "setApprovalSteps": company(
        "settings:manage",
        op(
            "setApprovalSteps",
            "{ order }",
            steps=("[ApprovalStepInput!]!", [{"kind": "OWNER_MANAGER"}]),
        ),
    ),
    "createPaymentPlan": write(
        op(
            "createPaymentPlan",
            contractId=("ID!", approved),
            input=(
                "CreatePaymentPlanInput!",
                {"period": 2, "plannedAmount": "100.00", "plannedOn": lambda w: today()},
            ),
        ),
        "payment:create",
    ),
    "updatePaymentPlan": write(
        by_id("updatePaymentPlan", plan, input=("UpdatePaymentPlanInput!", {"remarks": "wire"})),
        "payment:update",
    ),
    "deletePaymentPlan": write(by_id("deletePaymentPlan", plan, DELETED), "payment:delete"),
    "createPayment": write(
        op(
            "createPayment",
            input=(
                "CreatePaymentInput!",
                {"contractId": approved, "amount": "100.00", "paidOn": lambda w: yesterday()},
            ),
        ),
        "payment:create",
    ),
    "deletePayment": write(by_id("deletePayment", payment, DELETED), "payment:delete"),
    # --- follow-ups and tasks
    "createFollowUp": write(
        op(
            "createFollowUp",
            input=(
                "CreateFollowUpInput!",
                {"targetId": customer, "method": "PHONE", "content": "Called them"},
            ),
        ),
        why=SCOPE_ONLY,
    ),
    "updateFollowUp": write(
        by_id("updateFollowUp", followup, input=("UpdateFollowUpInput!", {"content": "Again"})),
        why=FOLLOW_UPS,
        control="owner",
    ),
    "deleteFollowUp": write(
        by_id("deleteFollowUp", followup, DELETED), why=FOLLOW_UPS, control="owner"
    ),
    "createTask": write(
        op("createTask", input=("CreateTaskInput!", {"title": "Quote", "relatedId": customer})),
        why=SCOPE_ONLY,
    ),
    "updateTask": write(
        by_id("updateTask", task, input=("UpdateTaskInput!", {"title": "Quote today"})), why=TASKS
    ),
    "completeTask": write(by_id("completeTask", task), why=TASKS),
    "reopenTask": write(
        by_id(
            "reopenTask", lambda w: w.task(status=TaskStatus.DONE, completed_at=datetime.now(UTC))
        ),
        why=TASKS,
    ),
    "deleteTask": write(by_id("deleteTask", task, DELETED), why=TASKS),
    # --- imports and targets
    "importCustomers": write(
        csv_import("importCustomers", "name\nFreshly Imported Co\n"),
        "customer:import",
        outsider=EXEMPT,
        why=OWN,
    ),
    "importLeads": write(
        csv_import("importLeads", "companyName\nFreshly Imported Lead\n"),
        "lead:import",
        outsider=EXEMPT,
        why=OWN,
    ),
    # Rows naming a customer the importer may not change are reported, not imported.
    "importContacts": write(
        csv_import("importContacts", contacts_csv), "customer:import", outsider=HIDDEN
    ),
    "setSalesTargets": write(
        op(
            "setSalesTargets",
            "{ month }",
            input=(
                "SetSalesTargetsInput!",
                {
                    "year": date.today().year,
                    "metric": "CONTRACT_AMOUNT",
                    "months": [{"month": 1, "value": "5000"}],
                    "userId": owner,
                },
            ),
        ),
        outsider=FORBIDDEN,
        why="managers set the targets of the people in their scope without a permission; "
        "settings:manage sets anyone's, so the outsider lacks it",
        outsider_lacks=("settings:manage",),
    ),
    # --- field-level permissions
    "fieldCatalogue": company(
        "settings:manage", query("{ fieldCatalogue { fields { name } } }", ["decisionRole"])
    ),
    "fieldPermissions": company(
        "settings:manage",
        query(
            "query($r: ID!) { fieldPermissions(roleId: $r) { field access } }",
            ["mobile"],
            making=read_only_mobile,
            r=rep_role,
        ),
    ),
    "setFieldPermissions": company(
        "settings:manage",
        op(
            "setFieldPermissions",
            "{ field }",
            roleId=("ID!", rep_role),
            entries=(
                "[FieldPermissionInput!]!",
                [{"recordType": "CONTACT", "field": "mobile", "access": "READ"}],
            ),
        ),
    ),
}

NODES: dict[str, Entry] = {
    "Customer": node(customer),
    "Lead": node(lead),
    "Contact": node(contact),
    "Opportunity": node(opportunity),
    "Contract": node(draft),
    "PaymentPlan": node(plan),
    "Payment": node(payment),
    "FollowUp": node(followup),
    "Task": node(task),
    "Pool": node(lambda w: w.sales_pool, outsider_lacks=("pool:manage",)),
    "User": public(DIRECTORY),
    "Department": public(DIRECTORY),
    "Role": public(DIRECTORY),
    "OpportunityStage": public(SETUP),
    "Pipeline": public(SETUP),
    "Product": public("the product catalogue every user sells from"),
}


# --- coverage -------------------------------------------------------------------------


def schema_operations() -> dict[str, set[str]]:
    nodes = {
        name
        for name, type_ in SCHEMA.type_map.items()
        if isinstance(type_, GraphQLObjectType) and any(i.name == "Node" for i in type_.interfaces)
    }
    return {
        "Query": set(SCHEMA.query_type.fields) - {"node"},  # checked per type, in NODES
        "Mutation": set(SCHEMA.mutation_type.fields),
        "Node": nodes,
    }


HOW_TO_ADD = {
    "Query": "add read(builder, *permissions) to MATRIX, the builder asking for a record of "
    "World.owner (see connection() and query()), or public(why) if everyone may read it.",
    "Mutation": "add write(op(...), *permissions) to MATRIX, aimed at a record of World.owner, "
    "or company(permission, op(...)) if its permission covers the whole company by design.",
    "Node": "add node(record) to NODES with a record of World.owner, or public(why).",
}


def test_every_operation_is_in_the_matrix():
    schema = schema_operations()
    missing = [
        f"{kind} `{name}` has no entry in tests/test_authorization_matrix.py: {HOW_TO_ADD[kind]}"
        for kind, names in schema.items()
        for name in sorted(names - set(NODES if kind == "Node" else MATRIX))
    ]
    stale = set(MATRIX) - schema["Query"] - schema["Mutation"]
    stale |= {f"node {name}" for name in set(NODES) - schema["Node"]}
    gone = [f"`{name}` is in the matrix but not in the schema: remove it" for name in stale]
    assert not missing + gone, "\n".join(missing + sorted(gone))


def test_every_exemption_says_why():
    for name, entry in {**MATRIX, **NODES}.items():
        unchecked = not entry.needs or entry.outsider == EXEMPT
        assert entry.why or not unchecked, f"{name}: say in `why` what keeps it safe"
        for permission in (*entry.needs, *entry.outsider_lacks):
            assert permission in ALL_PERMISSIONS, f"{name}: no permission {permission}"


# --- running an entry -----------------------------------------------------------------


async def snapshot() -> dict[str, list[str]]:
    """Every row of every table, comparable."""
    conn = connections.get("default")
    state = {}
    for table in all_tables():
        rows = await conn.execute_query_dict(f'SELECT * FROM "{table}"')
        state[table] = sorted(repr(sorted(row.items())) for row in rows)
    return state


def changed(before: dict, after: dict) -> list[str]:
    return [table for table in before if before[table] != after[table]]


def revealed(answer: dict, markers: tuple[str, ...]) -> list[str]:
    text = json.dumps(answer, ensure_ascii=False)
    return [marker for marker in markers if marker in text]


CHECKED = {
    **{name: entry for name, entry in MATRIX.items() if entry.build is not None},
    **{f"node:{name}": entry for name, entry in NODES.items() if entry.build is not None},
}


@pytest.mark.parametrize("operation", sorted(CHECKED))
async def test_refused_without_permission_or_scope(operation, gql, org):
    entry = CHECKED[operation]
    is_mutation = operation in SCHEMA.mutation_type.fields
    world = await make_world(org, entry)
    requests = await entry.build(world)
    assert len(requests) == 1 or not is_mutation, "a mutation is checked with one request"
    if "customer" in world.made:
        await CustomerTeamMember.create(
            customer=world.made["customer"], user=world.reader, access=TeamAccess.READ
        )
    before = await snapshot()

    async def ask(case: Case, user: User) -> tuple[dict, list[str]]:
        result = await gql(case.document, case.variables, as_user=user)
        answer = {"data": result.data, "errors": result.errors}
        written = changed(before, await snapshot())
        assert not written, f"{operation} by {user.username} wrote to {written}: {answer}"
        assert "INTERNAL" not in result.codes, answer
        return answer, result.codes

    for case in requests:
        for permission in entry.needs:
            answer, codes = await ask(case, world.lacking[permission])
            assert codes == ["FORBIDDEN"], f"without {permission}: {answer}"
            assert permission in answer["errors"][0]["message"], answer

        if entry.outsider != EXEMPT:
            answer, codes = await ask(case, world.outsider)
            assert not revealed(answer, case.markers), f"the outsider sees the target: {answer}"
            if entry.outsider == HIDDEN:
                assert set(codes) <= {NOT_FOUND, FORBIDDEN}, answer
            else:
                assert codes == [entry.outsider], f"the outsider: {answer}"
            if is_mutation:
                answer, codes = await ask(case, world.reader)
                assert set(codes) <= {NOT_FOUND, FORBIDDEN}, f"a READ member: {answer}"
                assert codes or entry.outsider == HIDDEN, f"a READ member: {answer}"

        result = await gql(case.document, case.variables, as_user=getattr(world, entry.control))
        assert not result.errors, f"{entry.control} may do {operation}: {result.errors}"
        if is_mutation:
            assert changed(before, await snapshot()), (
                f"{operation} by {entry.control} wrote nothing"
            )
        else:
            shown = revealed({"data": result.data}, case.markers)
            assert shown == list(case.markers), f"{entry.control} should see it: {result.data}"
