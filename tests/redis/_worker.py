"""One process of the two-process test: its own Governor on a shared Redis store.

    python tests/redis/_worker.py URL SCOPE RATE N BARRIER

Waits until every worker has joined BARRIER (a Redis counter), acquires N times, and prints
the wall-clock time of each grant as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from redis.asyncio import Redis

from cellcast_async._governor import make_governor


async def main(url: str, scope: str, rate: float, n: int, barrier: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.incr(barrier)
        for _ in range(4000):  # both processes start together (or after 20 s, regardless)
            if int(await client.get(barrier) or 0) >= 2:
                break
            await asyncio.sleep(0.005)
    finally:
        await client.aclose()
    governor = make_governor(rate, url, scope)
    granted: list[float] = []
    try:
        for _ in range(n):
            await governor.acquire()
            granted.append(time.time())
    finally:
        await governor.aclose()
    print(json.dumps({"granted": granted, "store": governor.state.store}))


if __name__ == "__main__":
    url, scope, rate, n, barrier = sys.argv[1:6]
    asyncio.run(main(url, scope, float(rate), int(n), barrier))
