"""Where rate-limit counts live: in this process, or in Redis shared by every worker.

Both stores keep the same two kinds of record and answer in milliseconds to
wait (0: go ahead):

- a budget (`spend`), kept as GCRA, the token bucket written as one timestamp
  per key: the time the bucket will be full again ("theoretical arrival time");
- a login counter (`attempt`): failures and the time of the last one, with a
  wait that doubles for every failure past the allowance.

The caller passes the time in, so tests can move a clock instead of sleeping;
Redis' own key expiry only throws away records nobody needs any more. In Redis
each operation is one Lua script, so concurrent workers can never both take
the last unit. When Redis cannot be reached the store lets everything through
(and says so in the log) rather than lock every user out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from redis import asyncio as redis
from redis.exceptions import RedisError

logger = logging.getLogger("meihua.rate_limits")

# Past this many doublings the wait is at its cap anyway; keeps 2**n small.
_MAX_DOUBLINGS = 32
# After Redis fails, skip it for this long instead of waiting on it per request.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 1.0


class Store(Protocol):
    async def spend(self, key: str, cost: int, capacity: int, period_ms: int, now_ms: int) -> int:
        """Take `cost` from a bucket of `capacity` refilled over `period_ms`."""

    async def attempt(
        self, keys: Sequence[str], allowed: Sequence[int], backoff_ms: int, cap_ms: int, now_ms: int
    ) -> int:
        """Count one attempt on every key, unless one of them is still backing off."""

    async def forget(self, key: str) -> None:
        """Drop a login counter (a successful login)."""

    async def undo(self, key: str) -> None:
        """Take one attempt back off a login counter."""

    async def close(self) -> None: ...


def login_wait(
    failures: int, last_ms: int, allowed: int, backoff_ms: int, cap_ms: int, now_ms: int
) -> tuple[int, int]:
    """(failures still remembered, milliseconds until the next attempt may go ahead).

    Past the allowance the wait doubles with each failure up to `cap_ms`. Failures
    are forgotten after a quiet spell of `cap_ms` once the wait is over, so someone
    who keeps trying stays at the longest wait.
    """
    delay = 0
    if failures >= allowed:
        delay = min(backoff_ms * 2 ** min(failures - allowed, _MAX_DOUBLINGS), cap_ms)
    if now_ms - last_ms >= delay + cap_ms:
        return 0, 0
    return failures, max(0, last_ms + delay - now_ms)


class MemoryStore:
    """Counts for one process (`--workers 1`, tests)."""

    def __init__(self) -> None:
        # key -> (value, time after which nobody needs it)
        self._budgets: dict[str, tuple[float, int]] = {}
        self._logins: dict[str, tuple[int, int]] = {}
        self._sweep_at = 1024

    async def spend(self, key: str, cost: int, capacity: int, period_ms: int, now_ms: int) -> int:
        full_at = self._budgets.get(key, (now_ms, 0))[0]
        full_at = max(full_at, now_ms) + cost * period_ms / capacity
        wait = full_at - period_ms - now_ms
        if wait > 0:
            return max(1, round(wait))
        self._budgets[key] = (full_at, int(full_at) + 1)
        self._sweep(now_ms)
        return 0

    async def attempt(
        self, keys: Sequence[str], allowed: Sequence[int], backoff_ms: int, cap_ms: int, now_ms: int
    ) -> int:
        states = [
            login_wait(*self._logins.get(key, (0, 0)), limit, backoff_ms, cap_ms, now_ms)
            for key, limit in zip(keys, allowed, strict=True)
        ]
        wait = max(wait for _, wait in states)
        if wait:
            return wait
        for key, (failures, _) in zip(keys, states, strict=True):
            self._logins[key] = (failures + 1, now_ms)
        self._sweep(now_ms, 2 * cap_ms)
        return 0

    async def forget(self, key: str) -> None:
        self._logins.pop(key, None)

    async def undo(self, key: str) -> None:
        if key in self._logins:
            failures, last = self._logins[key]
            self._logins[key] = (max(0, failures - 1), last)

    async def close(self) -> None:
        self._budgets.clear()
        self._logins.clear()

    def _sweep(self, now_ms: int, login_lifetime_ms: int | None = None) -> None:
        """Drop records nobody needs, so random usernames cannot grow memory for ever."""
        if len(self._budgets) + len(self._logins) < self._sweep_at:
            return
        self._budgets = {k: v for k, v in self._budgets.items() if v[1] > now_ms}
        if login_lifetime_ms is not None:
            self._logins = {
                k: v for k, v in self._logins.items() if now_ms - v[1] < login_lifetime_ms
            }
        self._sweep_at = max(1024, 2 * (len(self._budgets) + len(self._logins)))


# KEYS[1] budget; ARGV now_ms, cost, capacity, period_ms. Returns the wait in ms.
_SPEND = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local period = tonumber(ARGV[4])
local full_at = tonumber(redis.call('GET', KEYS[1])) or now
if full_at < now then full_at = now end
full_at = full_at + cost * period / capacity
local wait = full_at - period - now
if wait > 0 then return math.max(1, math.floor(wait + 0.5)) end
redis.call('SET', KEYS[1], string.format('%.3f', full_at), 'PX', math.ceil(full_at - now) + 1)
return 0
"""

# KEYS login counters (hashes f: failures, t: last ms); ARGV now_ms, backoff_ms,
# cap_ms, then one allowance per key. Returns the wait in ms, 0 when counted.
# The same rules as login_wait; a record outlives any wait plus its quiet spell.
_ATTEMPT = """
local now = tonumber(ARGV[1])
local backoff = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local counts = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'f', 't')
  local failures = tonumber(state[1]) or 0
  local last = tonumber(state[2]) or 0
  local allowed = tonumber(ARGV[3 + i])
  local delay = 0
  if failures >= allowed then
    delay = math.min(backoff * 2 ^ math.min(failures - allowed, 32), cap)
  end
  if now - last >= delay + cap then
    failures = 0
  else
    wait = math.max(wait, last + delay - now)
  end
  counts[i] = failures
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'f', counts[i] + 1, 't', now)
  redis.call('PEXPIRE', key, 2 * cap)
end
return 0
"""

_UNDO = """
if redis.call('HINCRBY', KEYS[1], 'f', -1) < 0 then redis.call('HSET', KEYS[1], 'f', 0) end
return 0
"""


class RedisStore:
    """Counts shared by every worker through Redis, under one key prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self._spend = self._redis.register_script(_SPEND)
        self._attempt = self._redis.register_script(_ATTEMPT)
        self._undo = self._redis.register_script(_UNDO)
        self._skip_until = 0.0

    async def spend(self, key: str, cost: int, capacity: int, period_ms: int, now_ms: int) -> int:
        return await self._run(self._spend, [key], [now_ms, cost, capacity, period_ms])

    async def attempt(
        self, keys: Sequence[str], allowed: Sequence[int], backoff_ms: int, cap_ms: int, now_ms: int
    ) -> int:
        return await self._run(self._attempt, keys, [now_ms, backoff_ms, cap_ms, *allowed])

    async def forget(self, key: str) -> None:
        await self._guarded(self._redis.delete(self.prefix + key))

    async def undo(self, key: str) -> None:
        await self._run(self._undo, [key], [])

    async def close(self) -> None:
        await self._redis.aclose()

    async def _run(self, script, keys: Sequence[str], args: list[int]) -> int:
        wait = await self._guarded(script(keys=[self.prefix + key for key in keys], args=args))
        return int(wait or 0)

    async def _guarded(self, command):
        """Run a Redis command; when Redis is unreachable, log it and let the request through."""
        if time.monotonic() < self._skip_until:
            command.close()
            return None
        try:
            return await command
        except (RedisError, OSError) as error:
            self._skip_until = time.monotonic() + REDIS_RETRY_SECONDS
            logger.warning(
                "rate limits: Redis unreachable (%s); requests go through unlimited, "
                "trying again in %.0f s",
                error,
                REDIS_RETRY_SECONDS,
            )
            return None
