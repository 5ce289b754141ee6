"""Demo data (演示数据): a believable company to try Meihua on, built in bulk.

Rows are built in memory with ids handed out here, so children point at
parents without reading anything back, and written a chunk of customers at a
time: COPY on PostgreSQL (a million customers take minutes), bulk_create on
SQLite. Dates spread over the two years the customers span. The operation log
and live events are left out on purpose: nobody did these things, the demo
just starts with them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache, partial

from tortoise import connections
from tortoise.fields import DatetimeField, Field, JSONField
from tortoise.fields.data import CharEnumFieldInstance, IntEnumFieldInstance
from tortoise.models import Model
from tortoise.transactions import in_transaction

from meihua.models import (
    ApprovalDecision,
    ApprovalRecord,
    Contact,
    Contract,
    ContractStatus,
    Customer,
    DealStatus,
    DecisionRole,
    Department,
    FollowUp,
    FollowUpMethod,
    Lead,
    LeadStatus,
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    Payment,
    PaymentPlan,
    PoolMovement,
    PoolMovementKind,
    Product,
    RecordType,
    Role,
    Task,
    TaskPriority,
    TaskStatus,
    User,
)
from meihua.resolvers.auth import hash_password
from meihua.resolvers.customers import normalize_name, normalize_phone
from meihua.resolvers.errors import Conflict
from meihua.resolvers.org import top_department
from meihua.resolvers.pool_membership import home_pool_id
from meihua.resolvers.stages import list_stages

DEMO_PASSWORD = "meihua-demo"
USERNAME_PREFIX = "demo."
CHUNK = 1000
YEARS_DAYS = 720  # the oldest customer is this many days old

CITIES = [
    ("上海", "上海市"), ("杭州", "浙江省"), ("宁波", "浙江省"), ("苏州", "江苏省"),
    ("南京", "江苏省"), ("无锡", "江苏省"), ("合肥", "安徽省"), ("广州", "广东省"),
    ("深圳", "广东省"), ("东莞", "广东省"), ("佛山", "广东省"), ("厦门", "福建省"),
    ("福州", "福建省"), ("南宁", "广西壮族自治区"), ("北京", "北京市"), ("天津", "天津市"),
    ("成都", "四川省"), ("重庆", "重庆市"), ("武汉", "湖北省"), ("长沙", "湖南省"),
    ("西安", "陕西省"), ("青岛", "山东省"), ("济南", "山东省"), ("郑州", "河南省"),
]  # fmt: skip
BRANDS = [
    "恒信", "华盛", "瑞丰", "鼎新", "金桥", "远航", "宏达", "正泰", "博远", "天成",
    "嘉禾", "中联", "星辰", "蓝海", "明德", "海纳", "锦程", "九州", "万象", "新元",
    "永安", "长青", "汇通", "聚力", "凯越", "泰和", "盛世", "朗润", "启明", "安达",
    "华宇", "东方", "佳美", "弘毅", "同创", "润泽", "鑫源", "卓越", "德胜", "信达",
]  # fmt: skip
TRADES = [
    ("科技", "软件与信息服务"), ("智能制造", "制造业"), ("机械", "制造业"),
    ("电子", "电子元器件"), ("物流", "交通物流"), ("医疗器械", "医疗健康"),
    ("生物医药", "医疗健康"), ("食品", "快消零售"), ("服饰", "快消零售"),
    ("建设工程", "建筑地产"), ("教育科技", "教育培训"), ("新能源", "能源环保"),
    ("环保", "能源环保"), ("贸易", "批发贸易"), ("化工", "化工材料"),
]  # fmt: skip
FORMS = ["有限公司", "股份有限公司", "集团有限公司"]
SOURCES = ["官网咨询", "展会", "客户转介绍", "电话营销", "线上广告", "渠道伙伴"]
LEVELS = ["A", "B", "C"]
TAGS = ["重点客户", "老客户", "价格敏感", "决策慢", "有预算", "竞品在用", "年底采购"]
STREETS = ["人民路", "中山路", "解放路", "建设路", "科技园路", "滨江大道", "创业路"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁"
GIVEN = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
    "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "志强", "晓东", "海燕", "雪梅", "子轩",
]  # fmt: skip
TITLES = {
    DecisionRole.INITIATOR: ["总经理", "副总经理", "运营总监"],
    DecisionRole.TECHNICAL_GATEKEEPER: ["技术总监", "IT经理", "总工程师"],
    DecisionRole.KEY_USER: ["销售主管", "车间主任", "业务经理"],
    DecisionRole.INFLUENCER: ["采购经理", "财务经理", "董事长助理"],
    DecisionRole.INSIDE_SUPPORTER: ["行政专员", "项目助理", "采购专员"],
}
FOLLOWUP_NOTES = [
    "电话沟通需求，客户对报价有疑问，约下周上门演示。",
    "上门拜访，见到技术负责人，确认了对接方案。",
    "微信发送产品资料和案例，客户表示会内部讨论。",
    "客户反馈预算在走审批流程，预计月底有结果。",
    "邮件回复了技术问题清单，等待客户确认。",
    "参加客户的供应商评审会，我方排名靠前。",
]  # fmt: skip
TASKS = ["准备报价单", "安排产品演示", "回访客户使用情况", "催收本期回款", "提交合同审批材料"]
LOST_REASONS = ["价格高于竞品", "客户预算取消", "选择了现有供应商", "需求延期到明年"]
INVALID_REASONS = ["空号", "非目标客户", "重复线索"]
PRODUCTS = [
    ("梅花CRM 标准版", "DEMO-CRM-STD", "套", Decimal("19800.00"), "软件"),
    ("梅花CRM 企业版", "DEMO-CRM-ENT", "套", Decimal("68000.00"), "软件"),
    ("实施服务", "DEMO-SVC-IMPL", "人天", Decimal("2500.00"), "服务"),
    ("年度维保", "DEMO-SVC-CARE", "年", Decimal("12000.00"), "服务"),
    ("数据迁移", "DEMO-SVC-DATA", "次", Decimal("8000.00"), "服务"),
]

# (key, name, department, role, manager key). Managers come before their reports.
PEOPLE = [
    ("ceo", "周建国", "Office", "Administrator", None),
    ("finance", "林晓梅", "财务部", "Finance", "ceo"),
    ("east", "陈志强", "华东销售部", "Sales Manager", "ceo"),
    ("sh.lead", "王海燕", "上海组", "Sales Manager", "east"),
    ("sh.1", "张伟", "上海组", "Sales Rep", "sh.lead"),
    ("sh.2", "李娜", "上海组", "Sales Rep", "sh.lead"),
    ("sh.3", "刘洋", "上海组", "Sales Rep", "sh.lead"),
    ("hz.lead", "徐建华", "杭州组", "Sales Manager", "east"),
    ("hz.1", "孙磊", "杭州组", "Sales Rep", "hz.lead"),
    ("hz.2", "朱静", "杭州组", "Sales Rep", "hz.lead"),
    ("south", "黄志明", "华南销售部", "Sales Manager", "ceo"),
    ("gz.1", "梁晓东", "华南销售部", "Sales Rep", "south"),
    ("gz.2", "谢芳", "华南销售部", "Sales Rep", "south"),
    ("gz.3", "何勇", "华南销售部", "Sales Rep", "south"),
    ("service", "郑秀英", "客服部", "Sales Manager", "ceo"),
    ("service.1", "宋丽", "客服部", "Sales Rep", "service"),
]
DEPARTMENTS = [  # (name, parent name)
    ("华东销售部", "Office"),
    ("上海组", "华东销售部"),
    ("杭州组", "华东销售部"),
    ("华南销售部", "Office"),
    ("客服部", "Office"),
    ("财务部", "Office"),
]
SELLERS = ["sh.lead", "sh.1", "sh.2", "sh.3", "hz.lead", "hz.1", "hz.2", "gz.1", "gz.2", "gz.3"]


@dataclass
class DemoSummary:
    usernames: list[str]
    counts: dict[str, int] = field(default_factory=dict)


class _Ids:
    """Hands out primary keys above what the tables already hold."""

    def __init__(self) -> None:
        self.next: dict[type[Model], int] = {}

    async def reserve(self, model: type[Model]) -> None:
        last = await model.all().order_by("-id").first().values_list("id", flat=True)
        self.next[model] = (last or 0) + 1

    def __call__(self, model: type[Model]) -> int:
        pk = self.next[model]
        self.next[model] = pk + 1
        return pk


BULK_MODELS: list[type[Model]] = [
    Customer,
    Contact,
    Lead,
    Opportunity,
    OpportunityStageChange,
    Contract,
    ApprovalRecord,
    PaymentPlan,
    Payment,
    FollowUp,
    Task,
    PoolMovement,
]

RELEASE_REASONS = ["预算冻结 Budget frozen", "联系不上 Cannot reach them", "暂无需求 No need now"]


async def refuse_if_not_empty() -> None:
    if await Customer.exists():
        raise Conflict(
            "This database already has customers; demo data only goes into an empty CRM. "
            "Point DATABASE_URL at a new database to try the demo."
        )
    if await User.filter(username__startswith=USERNAME_PREFIX).exists():
        raise Conflict("This database already has the demo users (demo.*).")


async def seed_demo(
    customers: int,
    seed: int | None = None,
    progress: Callable[[int], object] | None = None,
    today: datetime | None = None,
) -> DemoSummary:
    """Fill an empty CRM with `customers` customers and everything around them.

    Dates count back from `today` (now by default): same seed and day, same data.
    """
    await refuse_if_not_empty()
    rng = random.Random(seed)
    users = await _organization()
    stages = await list_stages()
    await _products()
    ids = _Ids()
    for model in BULK_MODELS:
        await ids.reserve(model)
    # Each seller's customers belong to their home pool; worked out once, not per row.
    pools = {users[key].id: await home_pool_id(users[key]) for key in SELLERS}
    builder = _Builder(
        rng, ids, users, stages, pools, today=(today or datetime.now(UTC)).replace(microsecond=0)
    )
    counts = dict.fromkeys((model.__name__ for model in BULK_MODELS), 0)
    conn = connections.get("default")
    write = _copy if conn.capabilities.dialect == "postgres" else _bulk_create
    done = 0
    while done < customers:
        size = min(CHUNK, customers - done)
        rows = builder.chunk(size)
        await write(conn, rows)
        for model in BULK_MODELS:
            counts[model.__name__] += len(rows[model])
        done += size
        if progress is not None:
            progress(size)
    await _advance_sequences()
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script("ANALYZE")  # so a fresh demo gets good plans at once
    return DemoSummary([user.username for user in users.values()], counts)


class _Row:
    """A row to write: cheaper to make than a model instance, which a million customers feel."""

    def __init__(self, model: type[Model], values: dict[str, object]) -> None:
        self.model = model
        self.__dict__.update(_defaults(model))
        self.__dict__.update(values)

    def values(self) -> dict[str, object]:
        """The set columns, for a model instance (which fills in its own stamps)."""
        names = self.model._meta.fields_db_projection
        return {name: self.__dict__[name] for name in names if self.__dict__[name] is not None}


@cache
def _defaults(model: type[Model]) -> dict[str, object]:
    """Each column's default, worked out once (the demo never changes one in place)."""
    defaults: dict[str, object] = {}
    for name in model._meta.fields_db_projection:
        default = model._meta.fields_map[name].default
        defaults[name] = default() if callable(default) else default
    return defaults


@cache
def _converters(model: type[Model]) -> list[Callable[[object], object]]:
    """Per column, Python value → what COPY takes; plain values go as they are."""
    converters: list[Callable[[object], object]] = []
    for name in model._meta.fields_db_projection:
        field_ = model._meta.fields_map[name]
        if isinstance(field_, CharEnumFieldInstance | IntEnumFieldInstance):
            converters.append(lambda value: None if value is None else value.value)
        elif isinstance(field_, DatetimeField) and (field_.auto_now or field_.auto_now_add):
            converters.append(partial(_stamp, field_.auto_now))
        elif isinstance(field_, JSONField):
            converters.append(partial(_to_db, field_))
        else:
            converters.append(_same)
    return converters


def _same(value: object) -> object:
    return value


def _stamp(always: bool, value: object) -> object:
    """auto_now columns get the time of writing, auto_now_add ones only when unset."""
    return datetime.now(UTC) if always or value is None else value


def _to_db(field_: Field, value: object) -> object:
    return field_.to_db_value(value, None)


async def _bulk_create(conn: object, rows: dict[type[Model], list[_Row]]) -> None:
    async with in_transaction():
        for model in BULK_MODELS:
            if rows[model]:
                objs = [model(**row.values()) for row in rows[model]]
                await model.bulk_create(objs, batch_size=CHUNK)


async def _copy(conn: object, rows: dict[type[Model], list[_Row]]) -> None:
    """One COPY per table, the chunk in one transaction."""
    async with conn.acquire_connection() as raw, raw.transaction():  # type: ignore[attr-defined]
        for model in BULK_MODELS:
            if not rows[model]:
                continue
            meta = model._meta
            names = list(meta.fields_db_projection)
            pairs = list(zip(names, _converters(model), strict=True))
            records = [
                tuple(convert(row.__dict__[name]) for name, convert in pairs) for row in rows[model]
            ]
            columns = [meta.fields_db_projection[name] for name in names]
            await raw.copy_records_to_table(meta.db_table, records=records, columns=columns)


async def _organization() -> dict[str, User]:
    """The department tree and a manager chain of demo users, each with one default role."""
    top = await top_department()
    departments = {"Office": top}
    for name, parent in DEPARTMENTS:
        departments[name] = await Department.create(name=name, parent=departments[parent])
    roles = {role.name: role for role in await Role.all()}
    password_hash = hash_password(DEMO_PASSWORD)  # argon2 is slow on purpose: hash once
    users: dict[str, User] = {}
    for key, name, department, role, manager in PEOPLE:
        user = await User.create(
            username=USERNAME_PREFIX + key,
            name=name,
            password_hash=password_hash,
            department=departments[department],
            manager=users.get(manager) if manager else None,
        )
        if role in roles:
            await user.roles.add(roles[role])
        users[key] = user
    return users


async def _products() -> None:
    for name, code, unit, price, category in PRODUCTS:
        defaults = {"name": name, "unit": unit, "unit_price": price, "category": category}
        await Product.get_or_create(code=code, defaults=defaults)


async def _advance_sequences() -> None:
    """PostgreSQL serials do not see explicit ids; move them past the demo rows."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres":
        return
    for model in BULK_MODELS:
        table = model._meta.db_table
        await conn.execute_script(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f'(SELECT COALESCE(MAX(id), 1) FROM "{table}"))'
        )


class _Builder:
    """Makes the rows of one chunk of customers; names and phones stay unique across chunks."""

    def __init__(
        self,
        rng: random.Random,
        ids: _Ids,
        users: dict[str, User],
        stages: list[OpportunityStage],
        pools: dict[int, int | None],
        today: datetime,
    ) -> None:
        self.rng = rng
        self.ids = ids
        self.users = users
        self.pools = pools  # seller id → their home pool
        self.sellers = [users[key] for key in SELLERS]
        self.finance = users["finance"]
        self.stages = stages
        self.today = today
        self.name_keys: set[str] = set()
        self.branches: dict[str, int] = {}  # base name → last branch number tried
        self.phone_keys: set[str] = set()
        self.contract_count = 0

    def chunk(self, size: int) -> dict[type[Model], list[_Row]]:
        self.rows: dict[type[Model], list[_Row]] = {model: [] for model in BULK_MODELS}
        for _ in range(size):
            self._customer()
        return self.rows

    def add(self, model: type[Model], **values: object) -> _Row:
        row = _Row(model, values)
        self.rows[model].append(row)
        return row

    def ago(self, max_days: int, min_days: int = 0) -> datetime:
        seconds = self.rng.randrange(min_days * 86400, max_days * 86400 + 1)
        return self.today - timedelta(seconds=seconds)

    def between(self, start: datetime, end: datetime) -> datetime:
        """A moment in [start, end]; end wins when the span is empty."""
        span = int((end - start).total_seconds())
        return end if span <= 0 else start + timedelta(seconds=self.rng.randrange(span + 1))

    def company_name(self) -> tuple[str, str, str]:
        """A company name not used yet (first in owns), with its region and industry."""
        rng = self.rng
        city, province = rng.choice(CITIES)
        trade, industry = rng.choice(TRADES)
        base = f"{city}{rng.choice(BRANDS)}{trade}{rng.choice(FORMS)}"
        branch = self.branches.get(base, 1)
        name = base if branch == 1 else f"{base}第{branch}分公司"
        while normalize_name(name) in self.name_keys:
            branch += 1
            name = f"{base}第{branch}分公司"
        self.branches[base] = branch
        self.name_keys.add(normalize_name(name))
        return name, f"{province} {city}", industry

    def mobile(self, unique: bool = False) -> str:
        while True:
            number = f"1{self.rng.choice('3578')}{self.rng.randrange(10**9):09d}"
            if not unique or normalize_phone(number) not in self.phone_keys:
                break
        if unique:
            self.phone_keys.add(normalize_phone(number))
        return number

    def person(self) -> str:
        return self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)

    def _customer(self) -> None:
        rng = self.rng
        owner = rng.choice(self.sellers)
        name, region, industry = self.company_name()
        phone = self.mobile(unique=True)
        created_at = self.ago(YEARS_DAYS, 30)
        customer = self.add(
            Customer,
            id=self.ids(Customer),
            name=name,
            name_key=normalize_name(name),
            phone=phone,
            phone_key=normalize_phone(phone),
            industry=industry,
            region=region,
            source=rng.choice(SOURCES),
            level=rng.choice(LEVELS),
            address=f"{region.split()[-1]}{rng.choice(STREETS)}{rng.randrange(1, 999)}号",
            tags=rng.sample(TAGS, rng.randrange(0, 3)),
            owner_id=owner.id,
            created_by_id=owner.id,
            created_at=created_at,
            pool_id=self.pools[owner.id],
            taken_at=created_at,
        )
        contacts = self._contacts(customer, owner, created_at)
        self._lead(customer, contacts[0], owner, created_at)
        opportunities = [
            self._opportunity(customer, owner, created_at) for _ in range(rng.randrange(0, 4))
        ]
        for opportunity in opportunities:
            if opportunity.status == OpportunityStatus.WON:
                self._contract(customer, opportunity, contacts[0], owner)
        if any(o.status == OpportunityStatus.WON for o in opportunities):
            customer.deal_status = DealStatus.DEALT
        self._followups(customer, [customer, *contacts, *opportunities], owner, created_at)
        if rng.random() < 0.5:
            self._task(customer, owner)
        if rng.random() < 0.1:
            self._open_lead(owner)
        if not opportunities and rng.random() < 0.1:
            self._release(customer, owner)

    def _release(self, customer: _Row, owner: User) -> None:
        """Some customers went back to the public pool (公海), as they do."""
        released_at = self.ago(10)
        customer.owner_id = None
        customer.previous_owner_id = owner.id
        customer.taken_at = None
        customer.pool_entered_at = released_at
        self.add(
            PoolMovement,
            id=self.ids(PoolMovement),
            customer_id=customer.id,
            pool_id=customer.pool_id,
            kind=PoolMovementKind.RELEASED,
            actor_id=owner.id,
            previous_owner_id=owner.id,
            reason=self.rng.choice(RELEASE_REASONS),
            created_at=released_at,
        )

    def _contacts(self, customer: _Row, owner: User, since: datetime) -> list[_Row]:
        roles = self.rng.sample(list(DecisionRole), self.rng.randrange(1, 4))
        return [
            self.add(
                Contact,
                id=self.ids(Contact),
                customer_id=customer.id,
                name=self.person(),
                title=self.rng.choice(TITLES[role]),
                mobile=self.mobile(),
                is_primary=index == 0,
                decision_role=role,
                created_by_id=owner.id,
                # The primary contact came with the customer; others were met later.
                created_at=since if index == 0 else self.between(since, self.today),
            )
            for index, role in enumerate(roles)
        ]

    def _lead(self, customer: _Row, contact: _Row, owner: User, at: datetime) -> None:
        """About a third of customers came in as a converted lead."""
        if self.rng.random() >= 0.3:
            return
        self.add(
            Lead,
            id=self.ids(Lead),
            company_name=customer.name,
            contact_name=contact.name,
            phone=customer.phone,
            phone_key=customer.phone_key,
            source=customer.source,
            industry=customer.industry,
            region=customer.region,
            owner_id=owner.id,
            status=LeadStatus.CONVERTED,
            converted_customer_id=customer.id,
            converted_contact_id=contact.id,
            converted_at=at,
            created_by_id=owner.id,
            created_at=at - timedelta(days=self.rng.randrange(1, 30)),
        )

    def _open_lead(self, owner: User) -> None:
        """A lead not converted yet: in the pool, being followed, or marked invalid."""
        rng = self.rng
        name, region, industry = self.company_name()
        phone = self.mobile(unique=True)
        status = rng.choice([LeadStatus.NEW, LeadStatus.FOLLOWING, LeadStatus.INVALID])
        invalid = status == LeadStatus.INVALID
        self.add(
            Lead,
            id=self.ids(Lead),
            company_name=name,
            contact_name=self.person(),
            phone=phone,
            phone_key=normalize_phone(phone),
            source=rng.choice(SOURCES),
            industry=industry,
            region=region,
            owner_id=None if status == LeadStatus.NEW and rng.random() < 0.5 else owner.id,
            status=status,
            invalid_reason=rng.choice(INVALID_REASONS) if invalid else None,
            created_by_id=owner.id,
            created_at=self.ago(60),
        )

    def _opportunity(self, customer: _Row, owner: User, since: datetime) -> _Row:
        rng = self.rng
        roll = rng.random()
        status = (
            OpportunityStatus.WON
            if roll < 0.25
            else OpportunityStatus.LOST
            if roll < 0.4
            else OpportunityStatus.OPEN
        )
        reached = len(self.stages) - 1 if status == OpportunityStatus.WON else None
        if reached is None:
            reached = rng.randrange(len(self.stages))
        stage = self.stages[reached]
        if status == OpportunityStatus.OPEN:
            created_at, closed_at = self.between(since, self.today - timedelta(days=20)), None
        else:
            # Closed any time in the customer's life, a week to half a year after opening.
            closed_at = self.between(since + timedelta(days=7), self.today)
            start = max(since, closed_at - timedelta(days=180))
            created_at = self.between(start, closed_at - timedelta(days=7))
        opportunity = self.add(
            Opportunity,
            id=self.ids(Opportunity),
            customer_id=customer.id,
            name=f"{customer.name[:12]}{rng.choice(PRODUCTS)[0]}采购",
            amount=Decimal(rng.randrange(50, 20000) * 100),
            expected_close_date=(self.today + timedelta(days=rng.randrange(-30, 180))).date(),
            stage_id=stage.id,
            status=status,
            lost_reason=rng.choice(LOST_REASONS) if status == OpportunityStatus.LOST else None,
            closed_at=closed_at,
            owner_id=owner.id,
            created_by_id=owner.id,
            created_at=created_at,
        )
        self._stage_history(opportunity, reached, owner, created_at, closed_at or self.today)
        if closed_at is not None:
            self.add(
                OpportunityStageChange,
                id=self.ids(OpportunityStageChange),
                opportunity_id=opportunity.id,
                from_stage_id=stage.id,
                to_stage_id=stage.id,
                from_status=OpportunityStatus.OPEN,
                to_status=status,
                actor_id=owner.id,
                reason=opportunity.lost_reason,
                at=closed_at,
            )
        return opportunity

    def _stage_history(
        self, opportunity: _Row, reached: int, owner: User, start: datetime, end: datetime
    ) -> None:
        """Opened at the first stage, then moved one stage at a time up to where it stands."""
        moves = sorted(self.between(start, end) for _ in range(reached))
        previous = None
        for index, at in enumerate([start, *moves]):
            to_stage = self.stages[index]
            self.add(
                OpportunityStageChange,
                id=self.ids(OpportunityStageChange),
                opportunity_id=opportunity.id,
                from_stage_id=previous,
                to_stage_id=to_stage.id,
                from_status=None if previous is None else OpportunityStatus.OPEN,
                to_status=OpportunityStatus.OPEN,
                actor_id=owner.id,
                at=at,
            )
            previous = to_stage.id

    def _contract(self, customer: _Row, opportunity: _Row, contact: _Row, owner: User) -> None:
        rng = self.rng
        roll = rng.random()
        status = (
            ContractStatus.APPROVED
            if roll < 0.8
            else ContractStatus.PENDING_APPROVAL
            if roll < 0.9
            else ContractStatus.DRAFT
        )
        signed_on: date = opportunity.closed_at.date()
        self.contract_count += 1
        contract = self.add(
            Contract,
            id=self.ids(Contract),
            number=f"HT-DEMO-{self.contract_count:07d}",
            title=f"{opportunity.name}合同",
            customer_id=customer.id,
            opportunity_id=opportunity.id,
            signing_contact_id=contact.id,
            owner_id=owner.id,
            signed_on=signed_on,
            starts_on=signed_on,
            ends_on=signed_on + timedelta(days=365),
            status=status,
            total=opportunity.amount,
            current_step=1 if status == ContractStatus.PENDING_APPROVAL else None,
            created_by_id=owner.id,
            created_at=opportunity.closed_at,
        )
        if status == ContractStatus.DRAFT:
            return
        self._approval(contract, 1, ApprovalDecision.SUBMITTED, owner)
        if status == ContractStatus.APPROVED:
            self._approval(contract, 1, ApprovalDecision.APPROVED, self.finance)
            self._payments(contract, signed_on)

    def _approval(self, contract: _Row, step: int, decision: ApprovalDecision, actor: User) -> None:
        self.add(
            ApprovalRecord,
            id=self.ids(ApprovalRecord),
            contract_id=contract.id,
            step=step,
            decision=decision,
            actor_id=actor.id,
            comment="同意" if decision == ApprovalDecision.APPROVED else None,
            at=contract.created_at,
        )

    def _payments(self, contract: _Row, signed_on: date) -> None:
        """Instalments that add up to the total; the ones already due are (partly) paid."""
        rng = self.rng
        periods = rng.randrange(1, 4)
        share = (contract.total / periods).quantize(Decimal("0.01"))
        for period in range(1, periods + 1):
            amount = share if period < periods else contract.total - share * (periods - 1)
            planned_on = signed_on + timedelta(days=30 * (period - 1))
            plan = self.add(
                PaymentPlan,
                id=self.ids(PaymentPlan),
                contract_id=contract.id,
                period=period,
                planned_amount=amount,
                planned_on=planned_on,
                method="银行转账",
                created_at=contract.created_at,
            )
            if planned_on > self.today.date() or rng.random() < 0.15:
                continue
            paid_on = min(planned_on + timedelta(days=rng.randrange(0, 10)), self.today.date())
            paid = amount if rng.random() < 0.8 else (amount / 2).quantize(Decimal("0.01"))
            self.add(
                Payment,
                id=self.ids(Payment),
                contract_id=contract.id,
                plan_id=plan.id,
                amount=paid,
                paid_on=paid_on,
                method="银行转账",
                created_by_id=self.finance.id,
                created_at=min(datetime.combine(paid_on, time(10), UTC), self.today),
            )

    def _followups(self, customer: _Row, targets: list[_Row], owner: User, since: datetime) -> None:
        """A few follow-ups on the customer or things under it; each moves last_followup_at."""
        rng = self.rng
        kinds = {
            Customer: RecordType.CUSTOMER,
            Contact: RecordType.CONTACT,
            Opportunity: RecordType.OPPORTUNITY,
        }
        for _ in range(rng.randrange(1, 5)):
            target = rng.choice(targets)
            occurred_at = self.between(max(since, target.created_at), self.today)
            self.add(
                FollowUp,
                id=self.ids(FollowUp),
                target_type=kinds[target.model],
                target_id=target.id,
                customer_id=customer.id,
                method=rng.choice(list(FollowUpMethod)),
                content=rng.choice(FOLLOWUP_NOTES),
                occurred_at=occurred_at,
                author_id=owner.id,
                created_at=occurred_at,
            )
            for record in {id(target): target, id(customer): customer}.values():
                if record.last_followup_at is None or record.last_followup_at < occurred_at:
                    record.last_followup_at = occurred_at
        if rng.random() < 0.4:
            customer.next_contact_at = self.today + timedelta(days=rng.randrange(1, 21))

    def _task(self, customer: _Row, owner: User) -> None:
        rng = self.rng
        done = rng.random() < 0.25
        self.add(
            Task,
            id=self.ids(Task),
            title=f"{rng.choice(TASKS)}：{customer.name}",
            assignee_id=owner.id,
            creator_id=owner.manager_id or owner.id,
            due_at=self.today + timedelta(days=rng.randrange(-5, 15)),
            priority=rng.choice(list(TaskPriority)),
            status=TaskStatus.DONE if done else TaskStatus.OPEN,
            completed_at=self.ago(5) if done else None,
            related_type=RecordType.CUSTOMER,
            related_id=customer.id,
            customer_id=customer.id,
        )
