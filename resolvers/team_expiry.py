"""Clearing expired customer-team seats (团队成员到期).

An expired seat grants nothing from the moment it expires: the access layer
compares `expires_at` with now, so nothing has to run for access to end. The
periodic job then clears the seats away, so the team lists only who is on it,
and tells the live layer: each cleared seat gets an operation log entry and a
`customer.team_changed` event (change TEAM_EXPIRE), which reaches the former
member's subscriptions as "this record left your scope".

A pass is one DELETE of every seat expired at `now`, returning the ids it
removed. Several workers may run it at once: a seat is deleted, logged and
announced by whichever statement reaches it first, the others find it gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from meihua.models import Customer, CustomerTeamMember, OperationLog, RecordType, User
from meihua.resolvers.oplog import plain
from meihua.resolvers.raw_sql import fetch
from meihua.resolvers.teams import seat_entry
from meihua.subscriptions.events import record_event, transaction

logger = logging.getLogger("meihua.teams")

TEAM_EXPIRE = "TEAM_EXPIRE"


@dataclass(frozen=True)
class ExpiredSeat:
    customer_id: int
    user_id: int
    access: str
    expires_at: datetime


async def _delete_expired(now: datetime) -> set[int]:
    """Delete the seats expired at `now` in one statement; the ids this statement removed."""
    rows = await fetch("DELETE FROM customer_team_member WHERE expires_at <= ? RETURNING id", [now])
    return {row["id"] for row in rows}


async def clear_expired_seats(now: datetime | None = None) -> list[ExpiredSeat]:
    """Remove every team seat that has expired, logging and announcing each once."""
    now = now or datetime.now(UTC)
    async with transaction():
        candidates = await CustomerTeamMember.filter(expires_at__lte=now).order_by("id")
        if not candidates:
            return []
        removed = await _delete_expired(now)
        seats = [seat for seat in candidates if seat.id in removed]
        if not seats:
            return []
        owners = dict(
            await Customer.filter(id__in={s.customer_id for s in seats}).values_list(
                "id", "owner_id"
            )
        )
        names = dict(await User.filter(id__in={s.user_id for s in seats}).values_list("id", "name"))
        await OperationLog.bulk_create(
            [
                OperationLog(
                    actor_id=None,
                    action=TEAM_EXPIRE,
                    record_type=RecordType.CUSTOMER,
                    record_id=seat.customer_id,
                    customer_id=seat.customer_id,
                    changes={"team": [seat_entry(seat), None]},
                    summary=f"Team membership expired: {names.get(seat.user_id, '')}"[:500],
                    created_at=now,
                )
                for seat in seats
            ]
        )
        for seat in seats:
            await record_event(
                "customer.team_changed",
                record_type=RecordType.CUSTOMER.value,
                record_id=seat.customer_id,
                owner_id=owners.get(seat.customer_id),
                customer_id=seat.customer_id,
                recipient_id=seat.user_id,
                payload={"change": TEAM_EXPIRE, "member": seat_entry(seat)},
            )
    if seats:
        logger.info("cleared %d expired team seats", len(seats))
    return [
        ExpiredSeat(seat.customer_id, seat.user_id, plain(seat.access), seat.expires_at)
        for seat in seats
    ]
