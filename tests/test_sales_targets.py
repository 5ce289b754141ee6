"""销售目标 and 绩效指标: setting monthly targets, and progress on them on the dashboard.

The fixture company works in Asia/Shanghai (UTC+8): a customer created at
2026-10-31T16:30Z is a November customer, one at 15:59Z an October one. The
expected figures are worked out by hand from the rows below.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from meihua.models import (
    Contract,
    ContractStatus,
    Customer,
    Payment,
    SalesTarget,
    TargetMetric,
    User,
)
from meihua.schema.relay import to_global_id
from tests.conftest import SalesTeam

SET_TARGETS = """
mutation($input: SetSalesTargetsInput!) { setSalesTargets(input: $input) {
  metric year month value version user { username } department { name }
} }
"""
TARGETS = """
query($f: DashboardFilter, $year: Int, $metric: TargetMetric) {
  dashboard(filter: $f) { targets(year: $year, metric: $metric) {
    metric year user { username } department { name }
    months { month target achieved completionRate }
    quarters { quarter target achieved completionRate }
    total { target achieved completionRate }
  } }
}
"""
CONTRACT, PAYMENT, CUSTOMERS = "CONTRACT_AMOUNT", "PAYMENT_AMOUNT", "NEW_CUSTOMERS"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def build_company(org) -> SalesTeam:
    company = await org.sales_team()
    admin, an, bo, olga = company.admin, company.an, company.bo, company.olga

    customers = []
    for owner, at in [
        (an, utc(2026, 10, 31, 16, 30)),  # 11-01 00:30 local
        (an, utc(2026, 10, 31, 15, 59)),  # 10-31 23:59 local
        (bo, utc(2026, 3, 31, 16)),  # 04-01 00:00 local
        (olga, utc(2025, 12, 31, 16)),  # 2026-01-01 00:00 local
        (olga, utc(2026, 12, 31, 16)),  # 2027-01-01 local: next year
        (None, utc(2026, 11, 5)),  # in the pool: nobody's
    ]:
        customer = await Customer.create(
            name="C", name_key=f"c{len(customers)}", owner=owner, created_by=admin
        )
        await Customer.filter(id=customer.id).update(created_at=at)
        customers.append(customer)
    customer = customers[0]

    approved, draft = ContractStatus.APPROVED, ContractStatus.DRAFT
    contracts = {}
    for number, owner, total, status, signed_on in [
        ("K1", an, "10000.00", approved, date(2026, 11, 1)),
        ("K2", an, "3000.50", approved, date(2026, 10, 31)),
        ("K3", an, "999.00", draft, date(2026, 11, 5)),
        ("K4", bo, "2000.00", approved, date(2026, 1, 15)),
        ("K5", bo, "700.00", approved, None),
        ("K6", olga, "8000.00", approved, date(2026, 11, 10)),
        ("K7", an, "100.00", approved, date(2027, 1, 1)),
        ("K8", an, "50.00", approved, date(2025, 12, 31)),
    ]:
        contracts[number] = await Contract.create(
            number=number,
            title=number,
            customer=customer,
            owner=owner,
            created_by=admin,
            total=Decimal(total),
            status=status,
            signed_on=signed_on,
        )

    # Ten times 0.10 and ten times 0.20: 3.00 exactly.
    small = [("K1", "0.10", date(2026, 11, 2))] * 10 + [("K1", "0.20", date(2026, 11, 2))] * 10
    for number, amount, paid_on in small + [
        ("K1", "4000.00", date(2026, 11, 30)),
        ("K2", "1500.25", date(2026, 10, 31)),
        ("K6", "600.00", date(2026, 12, 1)),
    ]:
        await Payment.create(
            contract=contracts[number], amount=Decimal(amount), paid_on=paid_on, created_by=admin
        )

    for owner, metric, values in [
        ({"user": an}, TargetMetric.CONTRACT_AMOUNT, {10: "4000.00", 11: "8000.00", 12: "0"}),
        ({"user": an}, TargetMetric.PAYMENT_AMOUNT, {11: "5000.00"}),
        ({"user": an}, TargetMetric.NEW_CUSTOMERS, {11: "2"}),
        ({"user": olga}, TargetMetric.CONTRACT_AMOUNT, {11: "8000.00"}),
        ({"department": company.sales}, TargetMetric.CONTRACT_AMOUNT, {1: "1000", 11: "20000"}),
        ({"department": company.north}, TargetMetric.NEW_CUSTOMERS, {1: "3"}),
    ]:
        for month, value in values.items():
            await SalesTarget.create(
                **owner, metric=metric, year=2026, month=month, value=Decimal(value)
            )
    await SalesTarget.create(
        user=an, metric=TargetMetric.CONTRACT_AMOUNT, year=2027, month=1, value=Decimal(1)
    )
    return company


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


def months_of(*set_months: tuple[int, str, str, float | None], zero: str = "0.00") -> list[dict]:
    """Twelve months: the given ones, the rest with no target and nothing achieved."""
    given = {month: (target, achieved, rate) for month, target, achieved, rate in set_months}
    return [
        dict(zip(("month", "target", "achieved", "completionRate"), (m, *given[m]), strict=True))
        if m in given
        else {"month": m, "target": zero, "achieved": zero, "completionRate": None}
        for m in range(1, 13)
    ]


def quarters_of(*set_quarters: tuple[int, str, str, float | None], zero: str = "0.00") -> list:
    given = {q: (target, achieved, rate) for q, target, achieved, rate in set_quarters}
    return [
        dict(zip(("quarter", "target", "achieved", "completionRate"), (q, *given[q]), strict=True))
        if q in given
        else {"quarter": q, "target": zero, "achieved": zero, "completionRate": None}
        for q in range(1, 5)
    ]


def total(target: str, achieved: str, rate: float | None) -> dict:
    return {"target": target, "achieved": achieved, "completionRate": rate}


async def targets_of(gql, user: User, **variables) -> list[dict]:
    variables.setdefault("f", {"from": "2026-11-01", "to": "2026-11-30"})
    data = await gql.ok(TARGETS, variables, as_user=user)
    return data["dashboard"]["targets"]


def who(progress: dict) -> tuple:
    person = progress["user"] and progress["user"]["username"]
    return progress["metric"], person or progress["department"]["name"]


# --- progress on the dashboard --------------------------------------------------------


async def test_an_admin_sees_every_target_with_progress(gql, org):
    company = await build_company(org)
    progress = await targets_of(gql, company.admin)
    assert [who(p) for p in progress] == [
        (CONTRACT, "Sales"),
        (CONTRACT, "an"),
        (CONTRACT, "olga"),
        (PAYMENT, "an"),
        (CUSTOMERS, "North"),
        (CUSTOMERS, "an"),
    ]
    sales, an_contracts, olga_contracts, an_payments, north, an_customers = progress

    # October's 3000.50 is signed on 10-31; 2025's and 2027's contracts and the draft are out.
    assert an_contracts["year"] == 2026
    assert an_contracts["months"] == months_of(
        (10, "4000.00", "3000.50", 75.01), (11, "8000.00", "10000.00", 125.0)
    )
    assert an_contracts["quarters"] == quarters_of((4, "12000.00", "13000.50", 108.34))
    assert an_contracts["total"] == total("12000.00", "13000.50", 108.34)

    # The department counts everyone in Sales and East: bo's January contract, an's deals.
    assert sales["months"] == months_of(
        (1, "1000.00", "2000.00", 200.0),
        (10, "0.00", "3000.50", None),
        (11, "20000.00", "10000.00", 50.0),
    )
    assert sales["quarters"] == quarters_of(
        (1, "1000.00", "2000.00", 200.0), (4, "20000.00", "13000.50", 65.0)
    )
    assert sales["total"] == total("21000.00", "15000.50", 71.43)

    assert olga_contracts["total"] == total("8000.00", "8000.00", 100.0)
    assert an_payments["months"] == months_of(
        (10, "0.00", "1500.25", None), (11, "5000.00", "4003.00", 80.06)
    )
    assert an_customers["months"] == months_of((10, "0", "1", None), (11, "2", "1", 50.0), zero="0")
    assert an_customers["total"] == total("2", "2", 100.0)
    # olga's 2026-01-01 00:00 local customer counts; her 2027 one does not.
    assert north["quarters"] == quarters_of((1, "3", "1", 33.33), zero="0")


async def test_a_manager_sees_the_targets_of_their_tree(gql, org):
    company = await build_company(org)
    progress = await targets_of(gql, company.mei)
    assert [who(p) for p in progress] == [
        (CONTRACT, "Sales"),
        (CONTRACT, "an"),
        (PAYMENT, "an"),
        (CUSTOMERS, "an"),
    ]
    assert progress[0]["total"] == total("21000.00", "15000.50", 71.43)


async def test_a_rep_sees_only_their_own_targets(gql, org):
    company = await build_company(org)
    progress = await targets_of(gql, company.an, metric=CONTRACT)
    assert [who(p) for p in progress] == [(CONTRACT, "an")]
    assert progress[0]["total"] == total("12000.00", "13000.50", 108.34)
    assert await targets_of(gql, company.olga, metric=PAYMENT) == []


async def test_a_filter_on_people_leaves_out_departments_it_covers_only_in_part(gql, org):
    company = await build_company(org)
    where = {"from": "2026-11-01", "to": "2026-11-30", "userIds": [gid(company.an)]}
    progress = await targets_of(gql, company.admin, f=where)
    assert [who(p) for p in progress] == [(CONTRACT, "an"), (PAYMENT, "an"), (CUSTOMERS, "an")]


async def test_another_year(gql, org):
    company = await build_company(org)
    [progress] = await targets_of(gql, company.admin, year=2027)
    assert who(progress) == (CONTRACT, "an")
    assert progress["months"][0] == {
        "month": 1,
        "target": "1.00",
        "achieved": "100.00",
        "completionRate": 10000.0,
    }
    bad = await gql(TARGETS, {"year": 1850}, as_user=company.admin)
    assert bad.codes == ["BAD_USER_INPUT"] and bad.error["extensions"]["field"] == "year"


# --- setting targets ------------------------------------------------------------------


def target_input(owner, metric: str = CONTRACT, year: int = 2026, **months: str) -> dict:
    key = "userId" if isinstance(owner, User) else "departmentId"
    return {
        key: gid(owner),
        "year": year,
        "metric": metric,
        "months": [{"month": int(m[1:]), "value": v} for m, v in months.items()],
    }


async def test_setting_targets_replaces_the_months_given(gql, org):
    company = await org.sales_team()
    first = await gql.ok(
        SET_TARGETS,
        {"input": target_input(company.an, m1="1000", m2="2000.5")},
        as_user=company.admin,
    )
    assert [(t["month"], t["value"], t["version"]) for t in first["setSalesTargets"]] == [
        (1, "1000.00", 1),
        (2, "2000.50", 1),
    ]
    second = await gql.ok(
        SET_TARGETS,
        {"input": target_input(company.an, m2="2500.00", m3="0", m1="1000.00")},
        as_user=company.admin,
    )
    assert [
        (t["month"], t["value"], t["version"], t["user"]["username"], t["department"])
        for t in second["setSalesTargets"]
    ] == [(1, "1000.00", 1, "an", None), (2, "2500.00", 2, "an", None), (3, "0.00", 1, "an", None)]
    assert await SalesTarget.filter(user_id=company.an.id).count() == 3

    department = await gql.ok(
        SET_TARGETS,
        {"input": target_input(company.sales, CUSTOMERS, m12="40")},
        as_user=company.admin,
    )
    assert department["setSalesTargets"] == [
        {
            "metric": CUSTOMERS,
            "year": 2026,
            "month": 12,
            "value": "40.00",
            "version": 1,
            "user": None,
            "department": {"name": "Sales"},
        }
    ]


async def test_a_manager_sets_targets_within_their_scope_only(gql, org):
    company = await org.sales_team()
    mei, an = company.mei, company.an

    async def codes(user: User, owner) -> list[str]:
        result = await gql(SET_TARGETS, {"input": target_input(owner, m1="10")}, as_user=user)
        return result.codes

    assert await codes(mei, company.an) == []
    assert await codes(mei, company.sales) == []
    assert await codes(mei, company.east) == []
    assert await codes(mei, company.mei) == ["FORBIDDEN"]  # set from above
    assert await codes(mei, company.olga) == ["FORBIDDEN"]
    assert await codes(mei, company.north) == ["FORBIDDEN"]
    assert await codes(an, company.an) == ["FORBIDDEN"]
    assert await codes(an, company.bo) == ["FORBIDDEN"]
    assert await codes(an, company.east) == ["FORBIDDEN"]
    assert await codes(company.admin, company.mei) == []
    assert await SalesTarget.filter(user_id=mei.id).count() == 1
    assert await SalesTarget.filter(user_id=company.olga.id).count() == 0


async def test_bad_targets_are_refused_and_change_nothing(gql, org):
    company = await org.sales_team()
    an, admin = company.an, company.admin
    for data, field in [
        (target_input(an, m13="10"), "months"),
        (target_input(an, m0="10"), "months"),
        (target_input(an, m1="-1"), "value"),
        (target_input(an, m1="1.005"), "value"),
        (target_input(an, CUSTOMERS, m1="2.5"), "value"),
        (target_input(an, year=1999, m1="1"), "year"),
        (target_input(an, year=2101, m1="1"), "year"),
        ({**target_input(an, m1="1"), "departmentId": gid(company.sales)}, "userId"),
        ({**target_input(an), "months": []}, "months"),
        (
            {
                **target_input(an),
                "months": [{"month": 2, "value": "1"}, {"month": 2, "value": "3"}],
            },
            "months",
        ),
    ]:
        result = await gql(SET_TARGETS, {"input": data}, as_user=admin)
        assert result.codes == ["BAD_USER_INPUT"], data
        assert result.error["extensions"]["field"] == field, data
    missing = {**target_input(an, m1="1"), "userId": to_global_id("User", 999)}
    assert (await gql(SET_TARGETS, {"input": missing}, as_user=admin)).codes == ["NOT_FOUND"]
    assert await SalesTarget.all().count() == 0


async def test_progress_is_aggregated_per_metric_not_per_person(gql, org, statements):
    company = await build_company(org)
    query = "query { dashboard { targets(year: 2026) { total { achieved } } } }"
    statements.count = 0
    await gql.ok(query, as_user=company.admin)
    before = statements.count
    for user in (company.bo, company.mei):
        for metric in TargetMetric:
            await SalesTarget.create(user=user, metric=metric, year=2026, month=5, value=1)
    statements.count = 0
    data = await gql.ok(query, as_user=company.admin)
    assert len(data["dashboard"]["targets"]) == 12
    assert statements.count == before
