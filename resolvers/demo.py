"""Demo data (演示数据): a believable company to try Meihua on, built in bulk.

Rows are built in memory with ids handed out here and written with
bulk_create a chunk of customers at a time, so 100 000 customers take minutes,
not hours. The operation log and live events are left out on purpose: nobody
did these things, the demo just starts with them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tortoise import connections
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

DEMO_PASSWORD = "meihua-demo"
USERNAME_PREFIX = "demo."
CHUNK = 1000

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
) -> DemoSummary:
    """Fill an empty CRM with `customers` customers and everything around them."""
    await refuse_if_not_empty()
    rng = random.Random(seed)
    users = await _organization()
    stages = await OpportunityStage.all().order_by("order")
    await _products()
    ids = _Ids()
    for model in BULK_MODELS:
        await ids.reserve(model)
    # Each seller's customers belong to their home pool; worked out once, not per row.
    pools = {users[key].id: await home_pool_id(users[key]) for key in SELLERS}
    builder = _Builder(
        rng, ids, users, stages, pools, today=datetime.now(UTC).replace(microsecond=0)
    )
    counts = dict.fromkeys((model.__name__ for model in BULK_MODELS), 0)
    done = 0
    while done < customers:
        size = min(CHUNK, customers - done)
        rows = builder.chunk(size)
        async with in_transaction():
            for model in BULK_MODELS:
                objs = rows.get(model, [])
                if objs:
                    await model.bulk_create(objs, batch_size=CHUNK)
                counts[model.__name__] += len(objs)
        done += size
        if progress is not None:
            progress(size)
    await _advance_sequences()
    return DemoSummary([user.username for user in users.values()], counts)


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
        self.phone_keys: set[str] = set()
        self.contract_count = 0

    def chunk(self, size: int) -> dict[type[Model], list[Model]]:
        self.rows: dict[type[Model], list[Model]] = {model: [] for model in BULK_MODELS}
        for _ in range(size):
            self._customer()
        return self.rows

    def add(self, obj: Model) -> Model:
        self.rows[type(obj)].append(obj)
        return obj

    def ago(self, max_days: int, min_days: int = 0) -> datetime:
        seconds = self.rng.randrange(min_days * 86400, max_days * 86400 + 1)
        return self.today - timedelta(seconds=seconds)

    def company_name(self) -> tuple[str, str, str]:
        """A company name not used yet (first in owns), with its region and industry."""
        rng = self.rng
        city, province = rng.choice(CITIES)
        trade, industry = rng.choice(TRADES)
        base = f"{city}{rng.choice(BRANDS)}{trade}{rng.choice(FORMS)}"
        name, branch = base, 1
        while normalize_name(name) in self.name_keys:
            branch += 1
            name = f"{base}第{branch}分公司"
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
        created_at = self.ago(720, 30)
        customer = self.add(
            Customer(
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
        )
        contacts = self._contacts(customer, owner)
        self._lead(customer, contacts[0], owner, created_at)
        opportunities = [self._opportunity(customer, owner) for _ in range(rng.randrange(0, 4))]
        for opportunity in opportunities:
            if opportunity.status == OpportunityStatus.WON:
                self._contract(customer, opportunity, contacts[0], owner)
        if any(o.status == OpportunityStatus.WON for o in opportunities):
            customer.deal_status = DealStatus.DEALT
        self._followups(customer, [customer, *contacts, *opportunities], owner)
        if rng.random() < 0.5:
            self._task(customer, owner)
        if rng.random() < 0.1:
            self._open_lead(owner)
        if not opportunities and rng.random() < 0.1:
            self._release(customer, owner)

    def _release(self, customer: Customer, owner: User) -> None:
        """Some customers went back to the public pool (公海), as they do."""
        released_at = self.ago(10)
        customer.owner_id = None
        customer.previous_owner_id = owner.id
        customer.taken_at = None
        customer.pool_entered_at = released_at
        self.add(
            PoolMovement(
                id=self.ids(PoolMovement),
                customer_id=customer.id,
                pool_id=customer.pool_id,
                kind=PoolMovementKind.RELEASED,
                actor_id=owner.id,
                previous_owner_id=owner.id,
                reason=self.rng.choice(RELEASE_REASONS),
                created_at=released_at,
            )
        )

    def _contacts(self, customer: Customer, owner: User) -> list[Contact]:
        roles = self.rng.sample(list(DecisionRole), self.rng.randrange(1, 4))
        return [
            self.add(
                Contact(
                    id=self.ids(Contact),
                    customer_id=customer.id,
                    name=self.person(),
                    title=self.rng.choice(TITLES[role]),
                    mobile=self.mobile(),
                    is_primary=index == 0,
                    decision_role=role,
                    created_by_id=owner.id,
                )
            )
            for index, role in enumerate(roles)
        ]

    def _lead(self, customer: Customer, contact: Contact, owner: User, at: datetime) -> None:
        """About a third of customers came in as a converted lead."""
        if self.rng.random() >= 0.3:
            return
        self.add(
            Lead(
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
        )

    def _open_lead(self, owner: User) -> None:
        """A lead not converted yet: in the pool, being followed, or marked invalid."""
        rng = self.rng
        name, region, industry = self.company_name()
        phone = self.mobile(unique=True)
        status = rng.choice([LeadStatus.NEW, LeadStatus.FOLLOWING, LeadStatus.INVALID])
        invalid = status == LeadStatus.INVALID
        self.add(
            Lead(
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
        )

    def _opportunity(self, customer: Customer, owner: User) -> Opportunity:
        rng = self.rng
        roll = rng.random()
        status = (
            OpportunityStatus.WON
            if roll < 0.25
            else OpportunityStatus.LOST
            if roll < 0.4
            else OpportunityStatus.OPEN
        )
        stage = self.stages[-1] if status == OpportunityStatus.WON else rng.choice(self.stages)
        created_at = self.ago(360, 20)
        closed_at = None if status == OpportunityStatus.OPEN else self.ago(19)
        opportunity = self.add(
            Opportunity(
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
        )
        self.add(
            OpportunityStageChange(
                id=self.ids(OpportunityStageChange),
                opportunity_id=opportunity.id,
                to_stage_id=stage.id,
                to_status=OpportunityStatus.OPEN,
                actor_id=owner.id,
                at=created_at,
            )
        )
        if closed_at is not None:
            self.add(
                OpportunityStageChange(
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
            )
        return opportunity

    def _contract(
        self, customer: Customer, opportunity: Opportunity, contact: Contact, owner: User
    ) -> None:
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
            Contract(
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
            )
        )
        if status == ContractStatus.DRAFT:
            return
        self._approval(contract, 1, ApprovalDecision.SUBMITTED, owner)
        if status == ContractStatus.APPROVED:
            self._approval(contract, 1, ApprovalDecision.APPROVED, self.finance)
            self._payments(contract, signed_on)

    def _approval(
        self, contract: Contract, step: int, decision: ApprovalDecision, actor: User
    ) -> None:
        self.add(
            ApprovalRecord(
                id=self.ids(ApprovalRecord),
                contract_id=contract.id,
                step=step,
                decision=decision,
                actor_id=actor.id,
                comment="同意" if decision == ApprovalDecision.APPROVED else None,
            )
        )

    def _payments(self, contract: Contract, signed_on: date) -> None:
        """Instalments that add up to the total; the ones already due are (partly) paid."""
        rng = self.rng
        periods = rng.randrange(1, 4)
        share = (contract.total / periods).quantize(Decimal("0.01"))
        for period in range(1, periods + 1):
            amount = share if period < periods else contract.total - share * (periods - 1)
            planned_on = signed_on + timedelta(days=30 * (period - 1))
            plan = self.add(
                PaymentPlan(
                    id=self.ids(PaymentPlan),
                    contract_id=contract.id,
                    period=period,
                    planned_amount=amount,
                    planned_on=planned_on,
                    method="银行转账",
                )
            )
            if planned_on > self.today.date() or rng.random() < 0.15:
                continue
            paid_on = min(planned_on + timedelta(days=rng.randrange(0, 10)), self.today.date())
            paid = amount if rng.random() < 0.8 else (amount / 2).quantize(Decimal("0.01"))
            self.add(
                Payment(
                    id=self.ids(Payment),
                    contract_id=contract.id,
                    plan_id=plan.id,
                    amount=paid,
                    paid_on=paid_on,
                    method="银行转账",
                    created_by_id=self.finance.id,
                )
            )

    def _followups(self, customer: Customer, targets: list[Model], owner: User) -> None:
        """A few follow-ups on the customer or things under it; each moves last_followup_at."""
        rng = self.rng
        kinds = {
            Customer: RecordType.CUSTOMER,
            Contact: RecordType.CONTACT,
            Opportunity: RecordType.OPPORTUNITY,
        }
        for _ in range(rng.randrange(1, 5)):
            target = rng.choice(targets)
            occurred_at = self.ago(120)
            self.add(
                FollowUp(
                    id=self.ids(FollowUp),
                    target_type=kinds[type(target)],
                    target_id=target.id,
                    customer_id=customer.id,
                    method=rng.choice(list(FollowUpMethod)),
                    content=rng.choice(FOLLOWUP_NOTES),
                    occurred_at=occurred_at,
                    author_id=owner.id,
                    created_at=occurred_at,
                )
            )
            for record in {id(target): target, id(customer): customer}.values():
                if record.last_followup_at is None or record.last_followup_at < occurred_at:
                    record.last_followup_at = occurred_at
        if rng.random() < 0.4:
            customer.next_contact_at = self.today + timedelta(days=rng.randrange(1, 21))

    def _task(self, customer: Customer, owner: User) -> None:
        rng = self.rng
        done = rng.random() < 0.25
        self.add(
            Task(
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
        )
