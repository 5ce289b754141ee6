"""A Redis pub/sub backend for broadcaster that survives a lost connection.

broadcaster's own Redis backend starts listening before its first SUBSCRIBE
lands (with current redis-py the listener can stop for good) and never
reconnects once Redis goes away. This one listens only while it has
channels, and on a connection error reconnects with backoff and subscribes
again to every channel it had.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis import asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("meihua.events")

_LOST = (RedisConnectionError, RedisTimeoutError, OSError)
_MAX_BACKOFF = 5.0


class RedisPubSubBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._channels: set[str] = set()
        self._has_channels = asyncio.Event()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._listener: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self._redis = redis.Redis.from_url(self._url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._listener = asyncio.create_task(self._listen(), name="meihua-redis-listener")

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
        await self._pubsub.aclose()
        await self._redis.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        await self._pubsub.subscribe(channel)
        self._has_channels.set()

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if not self._channels:
            self._has_channels.clear()
        try:
            await self._pubsub.unsubscribe(channel)
        except _LOST:
            pass  # the reconnect will not subscribe it again

    async def publish(self, channel: str, message: Any) -> None:
        await self._redis.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._events.get()

    async def _listen(self) -> None:
        while True:
            await self._has_channels.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except Exception as error:  # whatever broke it, listen again on a new connection
                logger.warning("Redis event bus connection lost (%s); reconnecting", error)
                await self._reconnect()
                continue
            if message is not None and message["type"] == "message":
                await self._events.put(
                    Event(channel=message["channel"].decode(), message=message["data"].decode())
                )

    async def _reconnect(self) -> None:
        """A fresh connection subscribed to every channel, retried with backoff until Redis answers.

        Until then there is nothing to read: a pub/sub that never subscribed
        has no connection, and reading it fails for good.
        """
        backoff = 0.1
        while True:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            try:
                await self._pubsub.aclose()
            except _LOST:
                pass
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            if not self._channels:
                return  # the next subscribe() connects it
            try:
                await self._pubsub.subscribe(*self._channels)
            except _LOST:
                continue
            logger.info("Redis event bus reconnected (%d channels)", len(self._channels))
            return
