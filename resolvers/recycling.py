"""Recycling (回收): customers nobody works on go back to their pool by themselves.

Each pool has three rules, each off while its days are null:

- NO_FOLLOW_UP_NOT_DEALT and NO_FOLLOW_UP_DEALT: no follow-up for N days,
  counted from the later of the last follow-up and the moment the owner took
  the customer, so a fresh claim of a long-forgotten customer is not sent
  straight back;
- NO_DEAL: still not dealt M days after it was taken.

A pass is set-based: one UPDATE per pool and rule moves every customer that
is due and marks the rows with a fresh batch id, by which they are read back
to keep their history, events and operation log. Only owned rows match, so a
pass is idempotent and several workers may run it at once: a row moves in
whichever UPDATE reaches it first and the others find it ownerless. Locked
customers never move. A missing `taken_at` (rows older than pools) counts as
long ago.

Owners are warned once per ownership when a customer will be recycled within
the pool's warning window; a new owner or a new follow-up clears the warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from tortoise.expressions import F, Q, Subquery
from tortoise.queryset import QuerySet

from meihua.models import (
    Customer,
    CustomerTeamMember,
    DealStatus,
    Pool,
    PoolMovementKind,
    RecordType,
    RecycleRule,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.pool_history import POOL_EVENT_KINDS
from meihua.resolvers.raw_sql import execute, is_postgres, json_array, json_object
from meihua.subscriptions.events import (
    EventQuery,
    record_event,
    record_events_by_query,
    transaction,
)

logger = logging.getLogger("meihua.recycling")

# The pool column holding each rule's days, in the order a pass applies them.
RULE_DAYS = {
    RecycleRule.NO_FOLLOW_UP_NOT_DEALT: "recycle_not_dealt_after_days",
    RecycleRule.NO_FOLLOW_UP_DEALT: "recycle_dealt_after_days",
    RecycleRule.NO_DEAL: "recycle_no_deal_after_days",
}
WARNING = "customer.recycle_warning"
# The dates a preview may look at: any rule's days back from them is still a date.
PREVIEW_FROM = datetime(1900, 1, 1, tzinfo=UTC)
PREVIEW_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)


def active_rules(pool: Pool) -> list[tuple[RecycleRule, int]]:
    """The pool's rules that are on, with their days."""
    rules = ((rule, getattr(pool, column)) for rule, column in RULE_DAYS.items())
    return [(rule, days) for rule, days in rules if days is not None]


def describe(rule: RecycleRule, days: int) -> str:
    """The rule in words, as a recycled customer's history keeps it."""
    if rule is RecycleRule.NO_DEAL:
        return f"No deal within {days} days of being taken"
    status = "dealt" if rule is RecycleRule.NO_FOLLOW_UP_DEALT else "not dealt"
    return f"No follow-up for {days} days ({status} customer)"


def due_condition(rule: RecycleRule, days: int, at: datetime) -> Q:
    """The owned customers this rule recycles at `at`."""
    cutoff = at - timedelta(days=days)
    taken_before = Q(taken_at=None) | Q(taken_at__lt=cutoff)
    if rule is RecycleRule.NO_DEAL:
        return Q(taken_before, deal_status=DealStatus.NOT_DEALT)
    quiet = Q(last_followup_at=None) | Q(last_followup_at__lt=cutoff)
    return Q(taken_before, quiet, deal_status=_status_of(rule))


def due_at(customer: Customer, rule: RecycleRule, days: int) -> datetime | None:
    """When the rule recycles the customer (`due_condition` in Python).

    None when the rule does not apply to it, `datetime.min` when it has been
    due since before anyone can tell (no clock at all).
    """
    if rule is RecycleRule.NO_DEAL:
        if customer.deal_status != DealStatus.NOT_DEALT:
            return None
        clocks = [customer.taken_at]
    else:
        if customer.deal_status != _status_of(rule):
            return None
        clocks = [customer.taken_at, customer.last_followup_at]
    started = [clock for clock in clocks if clock is not None]
    if not started:
        return datetime.min.replace(tzinfo=UTC)
    return max(started) + timedelta(days=days)


def _status_of(rule: RecycleRule) -> DealStatus:
    if rule is RecycleRule.NO_FOLLOW_UP_DEALT:
        return DealStatus.DEALT
    return DealStatus.NOT_DEALT


def _recyclable(pool: Pool) -> QuerySet[Customer]:
    """What recycling may move: owned and unlocked (the preview filters the same)."""
    return Customer.filter(pool_id=pool.id, owner_id__isnull=False, locked=False)


# --- the pass ------------------------------------------------------------------


@dataclass(frozen=True)
class RecycledCustomer:
    id: int
    name: str
    pool: str
    rule: RecycleRule
    reason: str
    previous_owner_id: int
    previous_owner: str


@dataclass
class RecycleReport:
    """What one pass did."""

    at: datetime
    moved: list[RecycledCustomer] = field(default_factory=list)
    # (pool name, rule) → customers moved
    counts: dict[tuple[str, RecycleRule], int] = field(default_factory=dict)
    warned: int = 0


async def recycle(now: datetime | None = None) -> RecycleReport:
    """One pass over every pool: recycle what is due, then warn of what soon will be."""
    now = now or datetime.now(UTC)
    report = RecycleReport(at=now)
    for pool in await Pool.all().order_by("id"):
        rules = active_rules(pool)
        for rule, days in rules:
            moved = await _recycle_by(pool, rule, days, now)
            if moved:
                report.counts[pool.name, rule] = len(moved)
                report.moved.extend(moved)
        if pool.warning_days > 0:
            for rule, days in rules:
                report.warned += await _warn_by(pool, rule, days, now)
    if report.moved or report.warned:
        logger.info("recycled %d customers, warned of %d", len(report.moved), report.warned)
    return report


async def _recycle_by(
    pool: Pool, rule: RecycleRule, days: int, now: datetime
) -> list[RecycledCustomer]:
    batch = uuid4()
    reason = describe(rule, days)
    async with transaction():
        # SET expressions see the row as it was: previous_owner_id gets the old owner.
        moved = (
            await _recyclable(pool)
            .filter(due_condition(rule, days, now))
            .update(
                owner_id=None,
                previous_owner_id=F("owner_id"),
                pool_entered_at=now,
                taken_at=None,
                recycle_warned_at=None,
                recycle_batch=batch,
                version=F("version") + 1,
                updated_at=now,
            )
        )
        if not moved:
            return []
        in_batch = Customer.filter(recycle_batch=batch)
        rows = await in_batch.order_by("id").values_list("id", "name", "previous_owner_id")
        # Back in the pool, a customer has no team: the next owner builds theirs.
        await CustomerTeamMember.filter(customer_id__in=Subquery(in_batch.values("id"))).delete()
        await _record_batch(batch, pool, rule, reason, now)
    owners = dict(await User.filter(id__in={row[2] for row in rows}).values_list("id", "name"))
    return [
        RecycledCustomer(
            id=pk,
            name=name,
            pool=pool.name,
            rule=rule,
            reason=reason,
            previous_owner_id=previous,
            previous_owner=owners.get(previous, ""),
        )
        for pk, name, previous in rows
    ]


async def _record_batch(
    batch: UUID, pool: Pool, rule: RecycleRule, reason: str, now: datetime
) -> None:
    """History, operation log and pool events of a pass's batch, one INSERT … SELECT each.

    Set-based like the move itself: a pass over a million customers may move a
    hundred thousand, and a row-by-row write took a minute.
    """
    in_batch = "FROM customer c WHERE c.recycle_batch = ?"
    batch_id = batch if is_postgres() else str(batch)
    await execute(
        "INSERT INTO pool_movement (customer_id, pool_id, kind, actor_id, previous_owner_id,"
        " new_owner_id, reason, rule, created_at)"
        f" SELECT c.id, ?, ?, NULL, c.previous_owner_id, NULL, ?, ?, ? {in_batch} ORDER BY c.id",
        [pool.id, PoolMovementKind.RECYCLED.value, reason, rule.value, now, batch_id],
    )
    changes = json_object("'owner_id'", json_array("c.previous_owner_id", "NULL"))
    await execute(
        "INSERT INTO operation_log (actor_id, action, record_type, record_id, customer_id,"
        " changes, summary, created_at)"
        f" SELECT NULL, 'RECYCLE', ?, c.id, c.id, {changes}, ?, ? {in_batch} ORDER BY c.id",
        [RecordType.CUSTOMER.value, f"Recycled to {pool.name}: {reason}"[:500], now, batch_id],
    )
    payload = json_object(
        "'movement_id'", "m.id", "'pool_id'", "m.pool_id",
        "'previous_owner_id'", "m.previous_owner_id", "'new_owner_id'", "NULL",
        "'reason'", "m.reason", "'rule'", "m.rule", "'name'", "c.name",
    )  # fmt: skip
    record_events_by_query(
        EventQuery(
            POOL_EVENT_KINDS[PoolMovementKind.RECYCLED],
            "INSERT INTO event (kind, record_type, record_id, owner_id, customer_id,"
            " recipient_id, actor_id, payload, created_at)"
            f" SELECT ?, ?, m.customer_id, NULL, m.customer_id, NULL, NULL, {payload}, ?"
            " FROM pool_movement m JOIN customer c ON c.id = m.customer_id"
            " WHERE c.recycle_batch = ? AND m.kind = ? AND m.created_at = ? ORDER BY m.id",
            [
                POOL_EVENT_KINDS[PoolMovementKind.RECYCLED],
                RecordType.CUSTOMER.value,
                datetime.now(UTC),
                batch_id,
                PoolMovementKind.RECYCLED.value,
                now,
            ],
        )
    )


async def _warn_by(pool: Pool, rule: RecycleRule, days: int, now: datetime) -> int:
    """Warn the owners of customers this rule recycles within the warning window."""
    batch = uuid4()
    horizon = now + timedelta(days=pool.warning_days)
    async with transaction():
        warned = (
            await _recyclable(pool)
            .filter(due_condition(rule, days, horizon), recycle_warned_at=None)
            .update(recycle_warned_at=now, recycle_batch=batch)
        )
        if not warned:
            return 0
        for customer in await Customer.filter(recycle_batch=batch).order_by("id"):
            await record_event(
                WARNING,
                record_type=RecordType.CUSTOMER.value,
                record_id=customer.id,
                owner_id=customer.owner_id,
                customer_id=customer.id,
                recipient_id=customer.owner_id,
                payload={
                    "due_at": max(due_at(customer, rule, days), now).isoformat(),
                    "rule": rule.value,
                    "reason": describe(rule, days),
                    "pool_id": pool.id,
                    "name": customer.name,
                },
            )
    return warned


# --- what will be recycled: the preview (a dry run) ---------------------------


@dataclass(frozen=True)
class RecycleDue:
    customer: Customer
    rule: RecycleRule
    due_at: datetime
    reason: str


@dataclass(frozen=True)
class PreviewFilter:
    pool_id: int | None = None
    owner_id: int | None = None
    rule: RecycleRule | None = None


def moved_by(rules: list[tuple[RecycleRule, int]], index: int, at: datetime) -> Q:
    """The customers a pass at `at` moves by the index-th rule.

    A pass applies a pool's rules in order and a customer moves by the first
    that holds, so this rule takes what it catches and no earlier rule does.
    """
    rule, days = rules[index]
    earlier = [~due_condition(other, other_days, at) for other, other_days in rules[:index]]
    return Q(due_condition(rule, days, at), *earlier)


@dataclass
class RecyclePreview:
    """The customers a recycling pass at each pool's horizon would move, unpaginated."""

    query: QuerySet[Customer]
    rules: dict[int, list[tuple[RecycleRule, int]]]
    horizons: dict[int, datetime]
    now: datetime

    def explain(self, customer: Customer) -> RecycleDue:
        """By which rule the pass moves a customer of the query, and since when it is due.

        The first rule (in the pass's order) that holds at the horizon, as
        `moved_by`; its due time no earlier than now, as the next pass takes
        an overdue customer.
        """
        horizon = self.horizons[customer.pool_id]
        for rule, days in self.rules[customer.pool_id]:
            when = due_at(customer, rule, days)
            if when is not None and when < horizon:
                return RecycleDue(customer, rule, max(when, self.now), describe(rule, days))
        raise ValueError(f"customer {customer.id} is not due")  # the query only holds due ones


async def preview(
    viewer: Viewer,
    by: datetime | None = None,
    where: PreviewFilter | None = None,
    now: datetime | None = None,
) -> RecyclePreview:
    """What recycling would move by `by`, within the viewer's sight: a dry run.

    The same conditions as a pass at `by` (`recycle(by)`): owned, unlocked,
    due by one of its pool's rules, attributed to the rule the pass would
    apply. Without `by`, each pool's warning window from `now`.
    """
    now = now or datetime.now(UTC)
    if by is not None and not PREVIEW_FROM <= by < PREVIEW_UNTIL:
        raise BadUserInput(
            f"`by` must fall between {PREVIEW_FROM.year} and {PREVIEW_UNTIL.year}.", field="by"
        )
    where = where or PreviewFilter()
    preview = RecyclePreview(Customer.filter(id__in=[]), {}, {}, now)
    by_pool: list[Q] = []
    pools = Pool.all() if where.pool_id is None else Pool.filter(id=where.pool_id)
    for pool in await pools:
        if not (rules := active_rules(pool)):
            continue
        horizon = by or now + timedelta(days=pool.warning_days)
        preview.horizons[pool.id], preview.rules[pool.id] = horizon, rules
        caught = [
            moved_by(rules, index, horizon)
            for index, (rule, _) in enumerate(rules)
            if where.rule in (None, rule)
        ]
        if caught:
            by_pool.append(Q(Q(*caught, join_type="OR"), pool_id=pool.id))
    if by_pool:
        query = Customer.filter(await viewer.customer_filter(), Q(*by_pool, join_type="OR"))
        query = query.filter(owner_id__isnull=False, locked=False)
        if where.owner_id is not None:
            query = query.filter(owner_id=where.owner_id)
        preview.query = query
    return preview
