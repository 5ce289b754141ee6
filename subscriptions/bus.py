"""The event bus the real-time layer publishes on (broadcaster underneath).

`memory://` keeps events inside one process; `redis://…` carries them across
workers and hosts.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from broadcaster import Broadcast
from broadcaster._base import Subscriber

from meihua.subscriptions.redis_backend import RedisPubSubBackend


class EventBus:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(("redis://", "rediss://")):
            self._broadcast = Broadcast(backend=RedisPubSubBackend(url))
        else:
            self._broadcast = Broadcast(url)

    @property
    def crosses_processes(self) -> bool:
        return not self.url.startswith("memory://")

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        await self._broadcast.disconnect()

    async def publish(self, channel: str, message: str) -> None:
        await self._broadcast.publish(channel=channel, message=message)

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[Subscriber]:
        """`async with bus.subscribe(channel) as events: await events.get()`."""
        return self._broadcast.subscribe(channel)
