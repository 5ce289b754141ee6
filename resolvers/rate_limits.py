"""Rate limits: a per-caller operation budget, and login throttling with backoff.

The budget counts root fields, so `{a: customers {…} b: customers {…}}` costs
two, however many arrive in one HTTP request. Signed-in callers spend their
own budget; anonymous ones share one per client IP.

Login attempts are counted per username and per client IP *before* the
password is checked: past the allowance every further attempt waits, the wait
doubling each time up to a cap, and a refused attempt never reaches the
password check. A successful login clears the username's count and takes its
own attempt back off the IP's (an office behind one address is not punished
for its users signing in); it does not clear the IP's count, or one valid
account would let an attacker guess at all the others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from meihua.resolvers.auth import normalize_username
from meihua.resolvers.errors import LimitExceeded
from meihua.resolvers.rate_limit_store import MemoryStore, RedisStore, Store
from meihua.settings import Settings

PERIOD_MS = 60_000
# Usernames are at most this long (models.User); longer ones share one counter
# rather than let a caller fill the store with megabyte-sized keys.
USERNAME_KEY_LENGTH = 64
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def store_url(settings: Settings) -> str:
    """MEIHUA_RATE_LIMIT_URL, else BROADCAST_URL when it is Redis, else memory."""
    if settings.rate_limit_url:
        return settings.rate_limit_url
    if settings.broadcast_url.startswith(REDIS_SCHEMES):
        return settings.broadcast_url
    return "memory://"


def _username_key(username: str) -> str:
    return f"login:user:{normalize_username(username)[:USERNAME_KEY_LENGTH]}"


def _seconds(wait_ms: int) -> int:
    return max(1, math.ceil(wait_ms / 1000))


class RateLimits:
    """The limits of one app; `clock` (seconds, like time.time) is replaceable in tests."""

    def __init__(
        self, settings: Settings, store: Store, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    @classmethod
    def for_settings(cls, settings: Settings) -> RateLimits:
        url = store_url(settings)
        if url.startswith(REDIS_SCHEMES):
            return cls(settings, RedisStore(url, settings.rate_limit_prefix))
        return cls(settings, MemoryStore())

    async def close(self) -> None:
        await self.store.close()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def spend(self, caller: str, root_fields: int) -> None:
        """Charge an operation to the caller's budget; LIMIT_EXCEEDED when it is spent."""
        capacity = self.settings.operations_per_minute
        if capacity == 0 or root_fields == 0:
            return
        if root_fields > capacity:
            raise LimitExceeded(
                f"This operation has {root_fields} root fields; "
                f"at most {capacity} may run per minute."
            )
        wait = await self.store.spend(
            f"ops:{caller}", root_fields, capacity, PERIOD_MS, self._now_ms()
        )
        if wait:
            raise LimitExceeded("Too many operations; try again later.", retryAfter=_seconds(wait))

    def _login_keys(self, username: str, ip: str) -> tuple[list[str], list[int]]:
        keys, allowed = [], []
        per_username = self.settings.login_failures_per_username
        per_ip = self.settings.login_failures_per_ip
        if per_username:
            keys.append(_username_key(username))
            allowed.append(per_username)
        if per_ip:
            keys.append(f"login:ip:{ip}")
            allowed.append(per_ip)
        return keys, allowed

    async def login_attempt(self, username: str, ip: str) -> None:
        """Count a login attempt before its password is checked; LIMIT_EXCEEDED while waiting."""
        keys, allowed = self._login_keys(username, ip)
        if not keys:
            return
        wait = await self.store.attempt(
            keys,
            allowed,
            self.settings.login_backoff_seconds * 1000,
            self.settings.login_backoff_max_seconds * 1000,
            self._now_ms(),
        )
        if wait:
            raise LimitExceeded(
                "Too many failed sign-ins; wait before trying again.",
                retryAfter=_seconds(wait),
            )

    async def login_succeeded(self, username: str, ip: str) -> None:
        if self.settings.login_failures_per_username:
            await self.store.forget(_username_key(username))
        if self.settings.login_failures_per_ip:
            await self.store.undo(f"login:ip:{ip}")
