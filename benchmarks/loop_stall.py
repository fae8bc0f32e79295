"""How long a walk holds the event loop, for pages of 1,000 and 10,000 tokens (issue 9).

A service shares its event loop with everything else it does. This walks pages served
by a server in its own process while a ticker task wakes every 0.5 ms and records the
longest gap between two wake-ups: the longest stall the walk caused. Side by side, in
one run:

- ``sliced``: the SDK as shipped; items are structured in slices of
  ``STRUCTURE_SLICE`` with a yield to the loop between slices;
- ``unsliced``: the same walk with slicing turned off (one slice per page);
- ``json.loads``: the parse of the same page body alone, the floor of any stall as long
  as the parse runs on the loop;
- ``json.loads in a thread``: the longest gap while ``asyncio.to_thread(json.loads)``
  parses that body: the GIL is held by the parser, so a thread does not free the loop.

    python benchmarks/loop_stall.py [--pages 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cellcast_async import CellcastSession
from cellcast_async import _tokens as tokens_module

API_KEY = "bench_loop_stall_key_0123456789abcdef"
TICK = 0.0005


def page_body(size: int, number: int, pages: int) -> bytes:
    items = [
        {
            "_id": f"{number:08x}{i:016x}",
            "name": f"Token {i}",
            "token": "ccst_****************************************abcd",
            "status": "active" if i % 3 else "inactive",
            "createdAt": "2024-01-15T10:30:00.000Z",
            "subAccount": {
                "_id": "6877a383d68781beb3b14110",
                "name": "Sub Client Name",
                "email": "sub@example.com",
                "companyName": "Sub Client Company",
            },
        }
        for i in range(size)
    ]
    data = {
        "items": items,
        "total": size * pages,
        "page": number,
        "limit": size,
        "totalPages": pages,
        "hasNextPage": number < pages,
        "hasPrevPage": number > 1,
    }
    envelope = {"status": True, "message": "OK", "data": data, "error": {}}
    return json.dumps(envelope).encode()


def serve(size: int, pages: int, port_queue: multiprocessing.Queue[int]) -> None:
    """A server in its own process: every page pre-rendered, answered from memory."""
    from aiohttp import web

    bodies = {n: page_body(size, n, pages) for n in range(1, pages + 1)}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=bodies[int(request.query["page"])], content_type="application/json"
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/api/v1/apiClient/token", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


class Ticker:
    """Wakes every ``TICK`` seconds; ``longest`` is the worst lateness seen."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - TICK)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        await asyncio.sleep(TICK * 4)
        self.longest = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def walk(url: str, size: int) -> tuple[float, float, int]:
    """(longest stall, seconds, tokens) of one whole walk."""
    async with CellcastSession(api_key=API_KEY, base_url=url) as cc:
        await cc.tokens.list(limit=size)  # warm: connection, hooks
        async with Ticker() as ticker:
            started = time.perf_counter()
            count = 0
            async for _ in cc.tokens.list(limit=size):
                count += 1
            elapsed = time.perf_counter() - started
    return ticker.longest, elapsed, count


async def parse_in_thread(body: bytes) -> float:
    async with Ticker() as ticker:
        await asyncio.to_thread(json.loads, body)
    return ticker.longest


def best_parse(body: bytes, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        json.loads(body)
        times.append(time.perf_counter() - started)
    return min(times)


def run(size: int, pages: int, repeats: int) -> dict[str, float]:
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(size, pages, queue), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{queue.get(timeout=60)}"
        results: dict[str, list[float]] = {}
        for mode in ("sliced", "unsliced"):
            slice_size = tokens_module.STRUCTURE_SLICE if mode == "sliced" else 10**9
            saved = tokens_module.STRUCTURE_SLICE
            tokens_module.STRUCTURE_SLICE = slice_size  # type: ignore[misc]
            try:
                for _ in range(repeats):
                    stall, elapsed, count = asyncio.run(walk(url, size))
                    assert count == size * pages, count
                    results.setdefault(f"{mode} stall", []).append(stall)
                    results.setdefault(f"{mode} tokens/s", []).append(count / elapsed)
            finally:
                tokens_module.STRUCTURE_SLICE = saved  # type: ignore[misc]
        body = page_body(size, 1, pages)
        results["json.loads"] = [best_parse(body, repeats * 2)]
        results["thread stall"] = [asyncio.run(parse_in_thread(body)) for _ in range(repeats)]
    finally:
        server.terminate()
        server.join()
    return {
        key: (statistics.median(values) if "tokens/s" in key else min(values))
        for key, values in results.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args(argv)
    print(
        f"longest event-loop stall while walking {args.pages} pages"
        f" (best of {args.repeats}; structuring slice = {tokens_module.STRUCTURE_SLICE})"
    )
    print()
    print(
        "| page size | sliced stall (ms) | unsliced stall (ms) | json.loads (ms) |"
        " json.loads in a thread, stall (ms) | sliced / json.loads | throughput sliced/unsliced |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        r = run(size, args.pages, args.repeats)
        print(
            f"| {size:,} | {r['sliced stall'] * 1e3:.1f} | {r['unsliced stall'] * 1e3:.1f}"
            f" | {r['json.loads'] * 1e3:.1f} | {r['thread stall'] * 1e3:.1f}"
            f" | {r['sliced stall'] / r['json.loads']:.2f}x"
            f" | {r['sliced tokens/s'] / r['unsliced tokens/s']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
