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
    """

    def __init__(self, compute: Callable[[], Awaitable[T]]) -> None:
        self._compute = compute
        self._task: asyncio.Future[T] | None = None

    def __await__(self) -> Generator[None, None, T]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._compute())
        return self._task.__await__()

    def result(self) -> T | None:
        """The value if it is already computed, else None (without starting it)."""
        if self._task is None or not self._task.done() or self._task.exception():
            return None
        return self._task.result()
