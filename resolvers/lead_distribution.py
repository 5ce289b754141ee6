"""Automatic lead distribution (线索自动分配): rules that hand out the lead pool.

Active rules are tried in position order and the first that takes a lead wins.
A rule takes a lead when each of its non-empty lists (regions, industries,
sources) holds the lead's value, ignoring case and surrounding spaces; an
empty list takes any value. The lead goes to one of the rule's active users:

- ROUND_ROBIN: in turn, over the users in id order;
- LEAST_LOADED: to the user owning the fewest open leads (NEW or FOLLOWING),
  ties to the lowest id.

A rule whose users are all deactivated takes nothing. Only open leads are
handed out; the rest, and leads no rule takes, stay in the lead pool.

The rules run on a lead entered into the pool (createLead with `ownerId:
null`) in the transaction that enters it, and on demand over pooled leads
(`distributeLeads`). Each hand-out is logged and announced like a manual
assignment. Managing and running the rules needs `lead:distribute`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F
from tortoise.functions import Count

from meihua.models import (
    DistributionStrategy,
    Lead,
    LeadDistributionRule,
    LeadStatus,
    RecordType,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, NotFound
from meihua.resolvers.lead_handover import hand_over
from meihua.resolvers.org import clean_name
from meihua.resolvers.records import LEAD_DISTRIBUTE, visible
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

OPEN = (LeadStatus.NEW, LeadStatus.FOLLOWING)
CONDITIONS = ("regions", "industries", "sources")
MAX_VALUES = 50  # per condition list
MAX_VALUE_LENGTH = 100  # as long as the lead fields they are compared with
MAX_RUN = 1000  # leads handed out per distributeLeads call
PAGE = 1000  # pooled leads read at a time when looking for ones a rule takes


# --- rules -------------------------------------------------------------------


@dataclass
class RuleInput:
    """A rule's fields as sent; None leaves one as it is (on update)."""

    name: str | None = None
    regions: list[str] | None = None
    industries: list[str] | None = None
    sources: list[str] | None = None
    user_ids: list[int] | None = None
    strategy: DistributionStrategy | None = None
    active: bool | None = None


def _values(values: list[str], field: str) -> list[str]:
    """Trimmed, without blanks or repeats (ignoring case); the first spelling is kept."""
    kept: dict[str, str] = {}
    for value in values:
        value = value.strip()
        if len(value) > MAX_VALUE_LENGTH:
            raise BadUserInput(
                f"`{field}` values are at most {MAX_VALUE_LENGTH} characters.", field=field
            )
        if value:
            kept.setdefault(value.casefold(), value)
    if len(kept) > MAX_VALUES:
        raise BadUserInput(f"At most {MAX_VALUES} `{field}` values.", field=field)
    return list(kept.values())


def _changes(data: RuleInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.name is not None:
        changes["name"] = clean_name(data.name, "name")
    for name in CONDITIONS:
        values = getattr(data, name)
        if values is not None:
            changes[name] = _values(values, name)
    if data.strategy is not None:
        changes["strategy"] = data.strategy
    if data.active is not None:
        changes["active"] = data.active
    return changes


async def _rule_users(ids: list[int]) -> list[User]:
    """The users a rule hands leads to: at least one, every one active."""
    wanted = set(ids)
    if not wanted:
        raise BadUserInput("Name at least one user to hand the leads to.", field="userIds")
    users = await User.filter(id__in=wanted, is_active=True)
    if len(users) != len(wanted):
        raise BadUserInput("Leads can only go to active users.", field="userIds")
    return users


async def _fetch(pk: int) -> LeadDistributionRule:
    return await LeadDistributionRule.get(id=pk).prefetch_related("users")


async def _ordered() -> list[LeadDistributionRule]:
    return await LeadDistributionRule.all().order_by("position", "id").prefetch_related("users")


async def _lock_rules() -> list[LeadDistributionRule]:
    """Every rule, locked, in position order: creating, reordering and deleting
    renumber them all, so they take turns (PostgreSQL; SQLite serialises writers).

    Read again once the lock is held: a locking read that had to wait does not
    see rules added meanwhile.
    """
    await LeadDistributionRule.all().order_by("id").select_for_update()
    return await LeadDistributionRule.all().order_by("position", "id")


async def _move(rule: LeadDistributionRule, position: int) -> None:
    """A rule whose place changes gets a new version."""
    if rule.position != position:
        await LeadDistributionRule.filter(id=rule.id).update(
            position=position, version=F("version") + 1, updated_at=datetime.now(UTC)
        )


async def list_rules(viewer: Viewer) -> list[LeadDistributionRule]:
    viewer.require(LEAD_DISTRIBUTE)
    return await _ordered()


async def create_rule(
    viewer: Viewer, data: RuleInput, position: int | None = None
) -> LeadDistributionRule:
    """A new rule, last unless `position` (from 1) puts it earlier."""
    viewer.require(LEAD_DISTRIBUTE)
    changes = _changes(data)
    if "name" not in changes:
        raise BadUserInput("`name` is required.", field="name")
    if position is not None and position < 1:
        raise BadUserInput("`position` counts from 1.", field="position")
    async with transaction():
        users = await _rule_users(data.user_ids or [])
        rules = await _lock_rules()
        place = len(rules) + 1 if position is None else min(position, len(rules) + 1)
        for index, rule in enumerate(rules, start=1):
            await _move(rule, index if index < place else index + 1)
        rule = await LeadDistributionRule.create(**changes, position=place)
        await rule.users.add(*users)
        return await _fetch(rule.id)


async def update_rule(
    viewer: Viewer, pk: int, data: RuleInput, expected_version: int | None
) -> LeadDistributionRule:
    viewer.require(LEAD_DISTRIBUTE)
    changes = _changes(data)
    async with transaction():
        rule = await LeadDistributionRule.filter(id=pk).select_for_update().first()
        if rule is None:
            raise NotFound("No such distribution rule.")
        users = None if data.user_ids is None else await _rule_users(data.user_ids)
        rule = await update_versioned(rule, expected_version, **changes)
        if users is not None:
            await rule.users.clear()
            await rule.users.add(*users)
        return await _fetch(pk)


async def reorder_rules(viewer: Viewer, ids: list[int]) -> list[LeadDistributionRule]:
    """Put the rules in the given order; the list names every rule exactly once."""
    viewer.require(LEAD_DISTRIBUTE)
    async with transaction():
        rules = {rule.id: rule for rule in await _lock_rules()}
        if len(ids) != len(set(ids)) or set(ids) != set(rules):
            raise BadUserInput("List every rule exactly once, in the new order.", field="ids")
        for position, pk in enumerate(ids, start=1):
            await _move(rules[pk], position)
        return await _ordered()


async def delete_rule(viewer: Viewer, pk: int) -> int:
    """Delete a rule; the ones after it move up. Leads it handed out keep their owners."""
    viewer.require(LEAD_DISTRIBUTE)
    async with transaction():
        rules = await _lock_rules()
        rule = next((r for r in rules if r.id == pk), None)
        if rule is None:
            raise NotFound("No such distribution rule.")
        await rule.delete()
        for position, other in enumerate((r for r in rules if r.id != pk), start=1):
            await _move(other, position)
    return pk


# --- distributing ------------------------------------------------------------


def _key(value: str | None) -> str:
    return (value or "").strip().casefold()


def matches(rule: LeadDistributionRule, lead: Lead) -> bool:
    """Whether every non-empty condition of the rule holds the lead's value."""
    values = {"regions": lead.region, "industries": lead.industry, "sources": lead.source}
    for name, value in values.items():
        wanted = getattr(rule, name)
        if wanted and _key(value) not in {_key(v) for v in wanted}:
            return False
    return True


@dataclass
class _Rule:
    """An active rule with its active users, in id order."""

    row: LeadDistributionRule
    users: list[User]


async def _active_rules() -> list[_Rule]:
    rules = (
        await LeadDistributionRule.filter(active=True)
        .order_by("position", "id")
        .prefetch_related("users")
    )
    found = []
    for rule in rules:
        users = sorted((u for u in rule.users if u.is_active), key=lambda u: u.id)
        if users:
            found.append(_Rule(rule, users))
    return found


def _taker(rules: list[_Rule], lead: Lead) -> _Rule | None:
    if lead.status not in OPEN:
        return None
    return next((rule for rule in rules if matches(rule.row, lead)), None)


async def _recipients(rule: _Rule, count: int) -> list[User] | None:
    """Who gets each of `count` leads; None when the rule was deleted meanwhile.

    One UPDATE moves the counter on by `count`, reserving those turns for this
    transaction alone, so two distributions never share a turn. It also locks
    the rule until commit: a concurrent least-loaded pick waits, then counts the
    leads handed out here.
    """
    query = LeadDistributionRule.filter(id=rule.row.id)
    if not await query.update(turns=F("turns") + count):
        return None
    end = (await query.values_list("turns", flat=True))[0]
    users = rule.users
    if rule.row.strategy == DistributionStrategy.ROUND_ROBIN:
        return [users[turn % len(users)] for turn in range(end - count, end)]
    owned = (
        await Lead.filter(owner_id__in=[u.id for u in users], status__in=OPEN)
        .annotate(count=Count("id"))
        .group_by("owner_id")
        .values_list("owner_id", "count")
    )
    load = Counter(dict(owned))
    picked = []
    for _ in range(count):
        user = min(users, key=lambda u: (load[u.id], u.id))
        load[user.id] += 1
        picked.append(user)
    return picked


async def _distribute(
    viewer: Viewer, rules: list[_Rule], leads: list[Lead]
) -> tuple[list[Lead], list[Lead]]:
    """Hand out locked pooled leads by the rules: (handed out, left in the pool)."""
    taken: dict[int, list[Lead]] = defaultdict(list)
    by_id = {rule.row.id: rule for rule in rules}
    left = []
    for lead in leads:
        rule = _taker(rules, lead)
        if rule is None:
            left.append(lead)
        else:
            taken[rule.row.id].append(lead)
    handed = []
    # Rule by rule in id order: the counter updates lock the rules in one order,
    # so concurrent distributions cannot deadlock.
    for pk in sorted(taken):
        rule, batch = by_id[pk], taken[pk]
        recipients = await _recipients(rule, len(batch))
        if recipients is None:
            left.extend(batch)
            continue
        for lead, user in zip(batch, recipients, strict=True):
            summary = f"Assigned to {user.name} by distribution rule {rule.row.name}"
            handed.append(
                await hand_over(viewer, lead, user.id, "ASSIGN", "lead.assigned", summary)
            )
    return handed, left


async def distribute_new_lead(viewer: Viewer, lead: Lead) -> Lead:
    """A lead just entered into the pool, handed out if a rule takes it.

    Runs in the transaction that enters the lead.
    """
    handed, _ = await _distribute(viewer, await _active_rules(), [lead])
    return handed[0] if handed else lead


@dataclass
class DistributionReport:
    handed_out: list[Lead] = field(default_factory=list)
    left_in_pool: int = 0
    more_waiting: bool = False  # the run stopped at MAX_RUN; another would hand out more

    def per_user(self) -> list[tuple[int, int]]:
        """(user id, leads handed to them), by user id."""
        return sorted(Counter(lead.owner_id for lead in self.handed_out).items())


async def _given_pooled(viewer: Viewer, ids: list[int]) -> list[Lead]:
    """The named leads, locked, in id order: all visible and all in the pool."""
    wanted = set(ids)
    if len(wanted) > MAX_RUN:
        raise BadUserInput(f"At most {MAX_RUN} leads at a time.", field="ids")
    query = (await visible(viewer, RecordType.LEAD)).filter(id__in=wanted)
    leads = await query.order_by("id").select_for_update()
    if len(leads) != len(wanted):
        raise NotFound("No such lead.")
    if any(lead.owner_id is not None for lead in leads):
        raise Conflict("Only leads in the lead pool are distributed; transfer owned ones.")
    return leads


async def _takeable_pooled(viewer: Viewer, rules: list[_Rule]) -> tuple[list[Lead], bool]:
    """The oldest open pooled leads some rule takes, locked, at most MAX_RUN, and
    whether more are waiting.

    Leads no rule takes are read past, not locked, so a pool full of them does
    not keep the run from reaching the ones behind.
    """
    pool = (await visible(viewer, RecordType.LEAD)).filter(owner_id=None, status__in=OPEN)
    wanted: list[int] = []
    last = 0
    while len(wanted) <= MAX_RUN:
        page = await pool.filter(id__gt=last).order_by("id").limit(PAGE)
        if not page:
            break
        wanted += [lead.id for lead in page if _taker(rules, lead) is not None]
        last = page[-1].id
    # Still open and pooled once locked: a concurrent run may have taken some.
    leads = await pool.filter(id__in=wanted[:MAX_RUN]).order_by("id").select_for_update()
    return leads, len(wanted) > MAX_RUN


async def distribute_leads(viewer: Viewer, ids: list[int] | None) -> DistributionReport:
    """Run the rules over the given pooled leads, or over the whole lead pool.

    Named leads must all be visible (else NOT_FOUND) and in the pool (else
    CONFLICT). Over the whole pool, `left_in_pool` counts the open leads still
    there afterwards.
    """
    viewer.require(LEAD_DISTRIBUTE)
    async with transaction():
        rules = await _active_rules()
        if ids is not None:
            leads = await _given_pooled(viewer, ids)
            handed, left = await _distribute(viewer, rules, leads)
            return DistributionReport(handed, len(left))
        leads, more = await _takeable_pooled(viewer, rules)
        handed, _ = await _distribute(viewer, rules, leads)
        pool = (await visible(viewer, RecordType.LEAD)).filter(owner_id=None, status__in=OPEN)
        return DistributionReport(handed, await pool.count(), more)
