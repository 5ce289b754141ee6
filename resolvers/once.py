"""`Once`: a value computed at its first await and shared by every later one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """Strawberry resolves sibling fields concurrently: two of them asking for
    the same thing before either has it would each run its SQL. Awaiting a
    `Once` starts one task and every caller waits for that task.

    A failure is not kept: whoever was waiting gets it, the next await tries
    again (the hub keeps viewers for as long as a subscription lasts).
    """

    def __init__(self, compute: Callable[[], Awaitable[T]]) -> None:
        self._compute = compute
        self._task: asyncio.Future[T] | None = None

    def __await__(self) -> Generator[None, None, T]:
        if self._task is None or self._failed():
            self._task = asyncio.ensure_future(self._compute())
        return self._task.__await__()

    def result(self) -> T | None:
        """The value if it is already computed, else None (without starting it)."""
        if self._task is None or not self._task.done() or self._failed():
            return None
        return self._task.result()

    def _failed(self) -> bool:
        task = self._task
        if task is None or not task.done():
            return False
        return task.cancelled() or task.exception() is not None
