"""The event bus the app opens at start-up, in memory and over Redis."""

import asyncio
import os

import pytest

from meihua.subscriptions.bus import EventBus

REDIS_URL = os.environ.get("MEIHUA_TEST_REDIS_URL")


@pytest.fixture(params=["memory", "redis"])
def bus_url(request) -> str:
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("Redis suite: set MEIHUA_TEST_REDIS_URL to run it")
        return REDIS_URL
    return "memory://"


async def test_published_events_reach_subscribers(bus_url):
    publisher, listener = EventBus(bus_url), EventBus(bus_url)
    if bus_url == "memory://":
        listener = publisher  # memory:// only reaches its own process's bus
    await publisher.connect()
    if listener is not publisher:
        await listener.connect()
    try:
        channel = f"test-{os.getpid()}"
        async with listener.subscribe(channel) as events:
            await asyncio.sleep(0.1)  # let the Redis SUBSCRIBE land
            await publisher.publish(channel, "hello")
            event = await asyncio.wait_for(events.get(), timeout=5)
        assert event.message == "hello"
    finally:
        await publisher.disconnect()
        if listener is not publisher:
            await listener.disconnect()


def test_only_redis_crosses_processes():
    assert not EventBus("memory://").crosses_processes
    assert EventBus("redis://127.0.0.1:6379/0").crosses_processes


async def test_redis_bus_recovers_from_a_lost_connection():
    if not REDIS_URL:
        pytest.skip("Redis suite: set MEIHUA_TEST_REDIS_URL to run it")
    from redis import asyncio as redis

    bus = EventBus(REDIS_URL)
    await bus.connect()
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        channel = f"test-reconnect-{os.getpid()}"
        async with bus.subscribe(channel) as events:
            await asyncio.sleep(0.1)
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            # Publish until the re-subscribed listener hears one.
            for _ in range(50):
                await admin.publish(channel, "after-reconnect")
                try:
                    event = await asyncio.wait_for(events.get(), timeout=0.2)
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("the bus never heard from Redis again")
        assert event.message == "after-reconnect"
    finally:
        await admin.aclose()
        await bus.disconnect()
