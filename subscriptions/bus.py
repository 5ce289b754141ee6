"""The event bus the real-time layer publishes on (broadcaster underneath).

`memory://` keeps events inside one process; `redis://…` carries them across
workers and hosts.
"""

from __future__ import annotations

from broadcaster import Broadcast


class EventBus:
    def __init__(self, url: str) -> None:
        self.url = url
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
