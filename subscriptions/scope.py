"""Telling a subscription, once, that a record it showed has left the subscriber's sight.

A subscription remembers the records it has shown (or was opened on), keyed
by the record whose visibility decides theirs: a customer, opportunity,
contract or lead. When an event about one of them reaches the hub and the
subscriber may no longer see it (transferred away, recycled, released to a
pool they are not in, their team seat removed or expired), the subscription
gets one `record.left_scope` event carrying only the record's type, id and
the reason, and forgets the record: nothing more about it follows. When the
subscriber's own sight narrows (a role, department or manager change), every
remembered record is checked again. Should the record come back into sight,
its events flow again, and it can leave again.

What a subscription remembers is capped; past the cap it forgets the records
it heard of longest ago, which then leave silently.
"""

from __future__ import annotations

from collections import OrderedDict

from meihua.models import Event

LEFT_SCOPE = "record.left_scope"
SCOPE_CHANGED = "SCOPE_CHANGED"

# Event kind → why its record left the subscriber's sight.
REASONS = {
    "customer.transferred": "TRANSFERRED",
    "opportunity.transferred": "TRANSFERRED",
    "contract.transferred": "TRANSFERRED",
    "lead.transferred": "TRANSFERRED",
    "lead.assigned": "TRANSFERRED",
    "pool.claimed": "TRANSFERRED",
    "pool.assigned": "TRANSFERRED",
    "pool.released": "RELEASED",
    "lead.released": "RELEASED",
    "pool.recycled": "RECYCLED",
}
TEAM_REASONS = {"TEAM_EXPIRE": "TEAM_EXPIRED", "TEAM_REMOVE": "REMOVED_FROM_TEAM"}

Ref = tuple[str, int]
"""(record type, id), as the event log names records."""


def reason_of(event: Event) -> str | None:
    """Why the event's record left the sight of whoever no longer sees it, when the event tells."""
    if event.kind == "customer.team_changed":
        return TEAM_REASONS.get(event.payload.get("change"))
    return REASONS.get(event.kind)


class Watched:
    """The records one subscription has shown: visibility record → the record shown.

    An opportunity's events are shown as the opportunity, a contact's under
    its customer (whose visibility it shares).
    """

    def __init__(self, limit: int, seed: dict[Ref, Ref] | None = None) -> None:
        self.limit = limit
        self._shown: OrderedDict[Ref, Ref] = OrderedDict(seed or {})

    def __contains__(self, ref: Ref) -> bool:
        return ref in self._shown

    def refs(self) -> list[Ref]:
        return list(self._shown)

    def remember(self, ref: Ref, shown: Ref) -> None:
        self._shown[ref] = shown
        self._shown.move_to_end(ref)
        while len(self._shown) > self.limit:
            self._shown.popitem(last=False)

    def forget(self, ref: Ref) -> Ref | None:
        """The record shown under `ref`, if any, no longer remembered."""
        return self._shown.pop(ref, None)


def left_scope(trigger: Event, shown: Ref, reason: str | None) -> Event:
    """The notice for one subscription; it takes the cursor of the event that caused it.

    It is not written to the log: it belongs to one subscription's memory,
    and says nothing that subscription was not shown (the id) but why it went.
    """
    return Event(
        id=trigger.id,
        kind=LEFT_SCOPE,
        record_type=shown[0],
        record_id=shown[1],
        payload={"reason": reason} if reason else {},
        created_at=trigger.created_at,
    )
