"""Profile the busiest screens in-process with pyinstrument.

Runs each screen's operation against an already seeded database (`meihua seed
--demo`) through the whole app (ASGI, GraphQL, access layer, ORM), as one of
the demo's sales reps and as the demo CEO, and prints where the time goes:

    pip install pyinstrument
    DATABASE_URL=sqlite:///tmp/demo.sqlite3 python bench/hot_path.py --runs 30

Only the timed repetitions are profiled; one warm-up request fills the caches.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

import httpx
from pyinstrument import Profiler

from meihua.app import create_app
from meihua.models import User
from meihua.resolvers.auth import TokenSigner
from meihua.settings import Settings

SCREENS = {
    "pool list": (
        "query { customers(filter: {inPool: true}, first: 50) { totalCount edges { node {"
        " id name industry region level inPool poolEnteredAt pool { id name }"
        " previousOwner { username } } } pageInfo { hasNextPage endCursor } } }"
    ),
    "customer list": (
        "query { customers(first: 50) { totalCount edges { node {"
        " id name owner { username department { name } } contacts { name decisionRole }"
        " opportunities { name amount weightedAmount stage { name winRate } } } } } }"
    ),
    "customer detail": (
        "query($id: ID!) { node(id: $id) { ... on Customer {"
        " name owner { username } pool { name } contacts { name decisionRole }"
        " decisionCircle { coverage missingRoles }"
        " opportunities { name amount stage { name } products { amount product { name } } }"
        " contracts { number title status total } receivable"
        " timeline(first: 50) { edges { node { at kind summary } } } } } }"
    ),
}
VIEWERS = ("demo.sh.1", "demo.ceo")


async def main(runs: int, screens: list[str]) -> None:
    settings = Settings.from_env()
    app = create_app(settings)
    signer = TokenSigner(settings.secret_key, timedelta(minutes=10))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            for username in VIEWERS:
                user = await User.get(username=username)
                headers = {"Authorization": f"Bearer {signer.issue(user)}"}
                detail = await _first_customer(http, headers)
                for screen in screens:
                    body = {"query": SCREENS[screen], "variables": {"id": detail}}
                    await _post(http, body, headers)  # warm-up
                    profiler = Profiler(interval=0.0005, async_mode="enabled")
                    with profiler:
                        for _ in range(runs):
                            await _post(http, body, headers)
                    print(f"\n===== {screen} as {username}, {runs} runs")
                    print(profiler.output_text(unicode=True, show_all=False, color=False))


async def _first_customer(http: httpx.AsyncClient, headers: dict) -> str:
    query = "{ customers(first: 1) { edges { node { id } } } }"
    reply = await _post(http, {"query": query}, headers)
    return reply["data"]["customers"]["edges"][0]["node"]["id"]


async def _post(http: httpx.AsyncClient, body: dict, headers: dict) -> dict:
    reply = await http.post("/graphql", json=body, headers=headers)
    data = reply.json()
    assert reply.status_code == 200 and not data.get("errors"), data
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--screen", action="append", choices=sorted(SCREENS))
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.screen or list(SCREENS)))
