"""The access layer's visibility rule, applied to live events.

A subscriber may be shown an event only if they may see its record at
delivery time. Asking the database once per event and subscriber would not
scale to a thousand open sockets, so a `Sight` keeps what the rule needs
about one user (their data scope as a set of owners, their pools, whether
they distribute leads) and the event hub loads, once per batch of events,
where each record sits now (`RecordState`) and who is on the customers' teams.
The rule itself is the one of `resolvers.access` and `resolvers.records`:

- super admins and the ALL scope see everything,
- a record whose owner is in the scope is visible,
- so is everything under a customer whose team the user is on,
- a customer sitting in a pool is visible to that pool's members,
- a lead in the lead pool is visible to those who distribute leads.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.expressions import Q

from meihua.models import Contract, Customer, CustomerTeamMember, Lead, Opportunity, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.records import LEAD_DISTRIBUTE


@dataclass(frozen=True)
class RecordState:
    """Where a record sits now: whose it is, under which customer, in which pool."""

    owner_id: int | None
    customer_id: int | None = None
    pool_id: int | None = None


class Sight:
    """What one user may see, cached between events; rebuilt when the organization changes."""

    def __init__(
        self,
        viewer: Viewer,
        owner_ids: set[int] | None,
        pool_ids: set[int],
        distributes_leads: bool,
    ) -> None:
        user = viewer.user
        # The events' nested fields are resolved as this viewer, so they
        # follow the same scope changes as delivery does.
        self.viewer = viewer
        self.user_id = user.id
        self.active = user.is_active
        self.token_version = user.token_version
        self.owner_ids = owner_ids  # None: every owner
        self.pool_ids = pool_ids
        self.distributes_leads = distributes_leads

    @classmethod
    async def load(cls, user_id: int) -> Sight:
        user = await User.get(id=user_id)
        viewer = await Viewer.load(user)
        return cls(
            viewer,
            await viewer.visible_owner_ids(),
            await viewer.pool_ids(),
            viewer.can(LEAD_DISTRIBUTE),
        )

    @property
    def sees_everything(self) -> bool:
        return self.owner_ids is None

    @property
    def reach(self) -> tuple:
        """What decides what the user sees; when it changes, watched records are checked again."""
        owners = None if self.owner_ids is None else frozenset(self.owner_ids)
        return self.active, owners, frozenset(self.pool_ids), self.distributes_leads

    def sees(self, record_type: str, state: RecordState, teams: Teams) -> bool:
        if not self.active:
            return False
        if self.sees_everything:
            return True
        if state.owner_id is not None and state.owner_id in self.owner_ids:
            return True
        if record_type == "LEAD":
            return state.owner_id is None and self.distributes_leads
        if state.customer_id is not None and self.user_id in teams.get(state.customer_id, ()):
            return True
        if record_type in ("CUSTOMER", "CONTACT"):
            return state.owner_id is None and state.pool_id in self.pool_ids
        return False


Teams = dict[int, set[int]]
"""Customer id → users on its team whose membership has not expired."""


async def load_teams(customer_ids: set[int]) -> Teams:
    teams: Teams = defaultdict(set)
    if not customer_ids:
        return teams
    rows = await CustomerTeamMember.filter(
        Q(expires_at=None) | Q(expires_at__gt=datetime.now(UTC)),
        customer_id__in=sorted(customer_ids),
    ).values_list("customer_id", "user_id")
    for customer_id, user_id in rows:
        teams[customer_id].add(user_id)
    return teams


async def load_states(records: set[tuple[str, int]]) -> dict[tuple[str, int], RecordState]:
    """Where each (record type, id) sits now; records that no longer exist are left out.

    Contacts and follow-ups take their visibility from their customer; the
    caller passes their customer as ("CUSTOMER", id).
    """
    wanted: dict[str, list[int]] = defaultdict(list)
    for record_type, pk in records:
        wanted[record_type].append(pk)
    states: dict[tuple[str, int], RecordState] = {}
    if ids := wanted.get("CUSTOMER"):
        for pk, owner, pool in await Customer.filter(id__in=ids).values_list(
            "id", "owner_id", "pool_id"
        ):
            states["CUSTOMER", pk] = RecordState(owner, pk, pool)
    for record_type, model in (("OPPORTUNITY", Opportunity), ("CONTRACT", Contract)):
        if ids := wanted.get(record_type):
            for pk, owner, customer in await model.filter(id__in=ids).values_list(
                "id", "owner_id", "customer_id"
            ):
                states[record_type, pk] = RecordState(owner, customer)
    if ids := wanted.get("LEAD"):
        for pk, owner in await Lead.filter(id__in=ids).values_list("id", "owner_id"):
            states["LEAD", pk] = RecordState(owner)
    return states
