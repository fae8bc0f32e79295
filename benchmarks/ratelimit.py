"""Rate-limited walks: every client against every common limiter, side by side in one run.

    python benchmarks/ratelimit.py                 # everything, several minutes
    python benchmarks/ratelimit.py --quick         # every section, tiny sizes (a smoke test)
    python benchmarks/ratelimit.py --only grid --rates 50 --limiters bucket1,sliding

Every server is ``python -m cellcast_async.sandbox`` (= ``cellcast-tokens sandbox``) in a
process of its own, so the client and the server never share an event loop; the client
runs here. Numbers come from the client side (a response hook counts every answer).

Sections (``--only``):

- ``grid``: for each limiter kind (token bucket burst 1, burst 10, burst = R, fixed
  1-second window, sliding 1-second log) at each rate R (50 and 100/s), 20 ms per request,
  capacity 16, 300 pages of 10, no client ``rate_limit``: fixed concurrency 1, 2, 4, 8,
  16, 32, ``concurrency="auto"``, and "pacer", a hand-written client that knows R and
  sends exactly R requests per second (the reference). Columns: wall / bound (bound =
  pages / R), the share of answers that were 429, requests. Best of ``--rounds`` (2)
  rounds, by wall time; one server per limiter and rate, idle long enough between runs
  for its limiter to be full again.
- ``variants``: ``auto`` and the pacer against the same kinds with other ``Retry-After``
  styles and with rate-limit headers (the cases that hurt most).
- ``storm``: 2,000 concurrent ``get()`` on one session through a 5-second storm of 429s
  (``Retry-After: 1``): seconds from the server's recovery until every call is done.
- ``challenge``: a walk of 40 pages at ``concurrency=8`` where the first attempt of every
  request is a 429 (``Retry-After: 1``).
- ``redis``: two processes walking one account at once, each ``rate_limit=R`` with
  ``concurrency="auto"``, without and with one shared Redis store (needs ``redis-server``).
- ``nolimit``: no rate limit at all, ``auto`` against fixed 8 on the latency-bound walk.

Each cell is marked against the targets of README "Performance" ("Rate-limited walks"):
``auto`` within 1.15x of the bound (1.25x on a burst-1 bucket) with at most 5% 429s, and
no slower than the best fixed concurrency of the same run that keeps its 429s at or under
5%. Misses are printed as misses. Not a test: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from cellcast_async import CellcastSession  # noqa: E402

PAGE_SIZE = 10
PATH = "/api/v1/apiClient/token"
MAX_RETRIES = 50  # every walk must finish; a 429's Retry-After can be 1 s, so retries are slow
AUTO_TARGET = 1.15
BURST_ONE_TARGET = 1.25
SHARE_TARGET = 0.05
STORM_TARGET = 10.0
CHALLENGE_TARGET = 10.0
NOLIMIT_TARGET = 1.10

# The limiter kinds of the grid: name -> (sandbox --limiter, burst as a function of R).
LIMITERS: dict[str, tuple[str, Callable[[float], float | None]]] = {
    "bucket1": ("token-bucket", lambda rate: 1),
    "bucket10": ("token-bucket", lambda rate: 10),
    "bucketR": ("token-bucket", lambda rate: rate),
    "fixed": ("fixed-window", lambda rate: None),
    "sliding": ("sliding-log", lambda rate: None),
}
LIMITER_TITLES = {
    "bucket1": "token bucket, burst 1",
    "bucket10": "token bucket, burst 10",
    "bucketR": "token bucket, burst = R",
    "fixed": "fixed 1-second window",
    "sliding": "sliding 1-second log",
}
DEFAULT_CLIENTS = ("1", "2", "4", "8", "16", "32", "auto", "pacer")
SECTIONS = ("grid", "variants", "storm", "challenge", "redis", "nolimit")


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Plan:
    pages: int = 300
    rates: tuple[float, ...] = (50.0, 100.0)
    limiters: tuple[str, ...] = tuple(LIMITERS)
    clients: tuple[str, ...] = DEFAULT_CLIENTS
    rounds: int = 2
    capacity: int = 16
    latency: float = 0.020
    storm_calls: int = 2000
    storm_seconds: float = 5.0
    storm_retry_after: float = 1.0
    challenge_pages: int = 40
    challenge_retry_after: float = 1.0
    give_up: float = 120.0  # a storm or challenge run still going this long is cut off
    rest: float | None = None  # idle seconds between runs; None: until the limiter is full
    redis_limiter: str = "bucket10"
    sections: tuple[str, ...] = SECTIONS
    variants: tuple[tuple[str, float, str, str | None], ...] = (
        # (limiter, rate, Retry-After style, rate-limit header style)
        ("bucket10", 50.0, "whole", "whole"),
        ("bucket10", 50.0, "zero", None),
        ("bucket1", 100.0, "fractional", "fractional"),
        ("fixed", 100.0, "zero", "whole"),
        ("sliding", 50.0, "absent", None),
    )


# A smoke run of every section (tests/perf/test_ratelimit_bench_run.py): limits generous
# enough that no client has to wait for one, so it stays short whatever the governor does.
QUICK = Plan(
    pages=20,
    rates=(200.0,),
    limiters=("bucketR", "sliding"),
    clients=("4", "auto", "pacer"),
    rounds=1,
    latency=0.002,
    storm_calls=100,
    storm_seconds=0.3,
    storm_retry_after=0.0,
    challenge_pages=5,
    challenge_retry_after=0.0,
    give_up=3.0,
    rest=0.1,
    redis_limiter="bucketR",
    variants=(("fixed", 200.0, "zero", "whole"),),
)


# ------------------------------------------------------------------------------ the server


class Server:
    """``python -m cellcast_async.sandbox`` in a child process, stopped with SIGTERM."""

    def __init__(self, *args: str, tokens: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "cellcast_async.sandbox", "--port", "0"]
        argv += ["--tokens", str(tokens), *args]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise SystemExit(f"the sandbox did not start: {' '.join(argv[3:])}")
        hello = json.loads(line)
        self.url: str = hello["url"]
        self.api_key: str = hello["api_key"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=30)


@contextlib.contextmanager
def running(*args: str, tokens: int) -> Iterator[Server]:
    server = Server(*args, tokens=tokens)
    try:
        yield server
    finally:
        server.stop()


def limiter_args(
    name: str, rate: float, retry_after: str = "whole", headers: str | None = None
) -> list[str]:
    kind, burst = LIMITERS[name]
    args = ["--rate-limit", f"{rate:g}", "--limiter", kind]
    size = burst(rate)
    if size is not None:
        args += ["--burst", f"{size:g}"]
    args += ["--rate-limit-retry-after", retry_after]
    if headers is not None:
        args += ["--rate-limit-headers", headers]
    return args


def server_args(plan: Plan) -> list[str]:
    return ["--latency", f"{plan.latency:g}", "--capacity", str(plan.capacity)]


def rest_seconds(name: str, rate: float) -> float:
    """Idle time after which the limiter is as fresh as new (bucket full, windows empty)."""
    _, burst = LIMITERS[name]
    size = burst(rate)
    return max(1.0, (size or 0) / rate) + 0.2


# ------------------------------------------------------------------------------ the clients


@dataclass
class Count:
    """Every answer the client saw: how many, how many 429s."""

    requests: int = 0
    rate_limited: int = 0
    sent: list[float] = field(default_factory=list)  # time.time() of every attempt

    async def hook(self, event: Any) -> None:
        self.requests += 1
        if event.status == 429:
            self.rate_limited += 1

    async def request_hook(self, event: Any) -> None:
        self.sent.append(time.time())


@dataclass(frozen=True)
class Result:
    wall: float
    requests: int
    rate_limited: int
    items: int
    began: float = 0.0  # time.time(), comparable across processes
    ended: float = 0.0
    sent: tuple[float, ...] = ()

    @property
    def share(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0


async def sdk_walk(
    url: str,
    api_key: str,
    concurrency: int | str,
    *,
    rate_limit: float | None = None,
    rate_store: str | None = None,
    max_items: int | None = None,
) -> Result:
    """Every token once with ``cc.tokens.list(limit=10, concurrency=...)``."""
    count = Count()
    began = time.time()
    started = time.perf_counter()
    async with CellcastSession(
        api_key=api_key,
        base_url=url,
        max_retries=MAX_RETRIES,
        rate_limit=rate_limit,
        rate_store=rate_store,
        event_hooks={"request": [count.request_hook], "response": [count.hook]},
    ) as cc:
        items = 0
        pager = cc.tokens.list(limit=PAGE_SIZE, concurrency=concurrency, max_items=max_items)  # type: ignore[arg-type]
        async for _ in pager:
            items += 1
    wall = time.perf_counter() - started
    return Result(
        wall, count.requests, count.rate_limited, items, began, time.time(), tuple(count.sent)
    )


async def pacer_walk(url: str, api_key: str, pages: int, rate: float) -> Result:
    """The reference: knows R and the page count, sends one request every 1/R seconds.

    A page answered 429 goes back to the front of the queue for the next slot; nothing
    else (no backoff, no Retry-After, no concurrency bound): the practical limit.
    """
    loop = asyncio.get_running_loop()
    queue = deque(range(1, pages + 1))
    wake = asyncio.Event()
    requests = rate_limited = items = done = 0
    headers = {"Authorization": f"Bearer {api_key}"}
    tasks: set[asyncio.Task[None]] = set()

    errors: list[str] = []

    async def fetch(http: aiohttp.ClientSession, page: int) -> None:
        nonlocal requests, rate_limited, items, done
        params = {"page": str(page), "limit": str(PAGE_SIZE)}
        try:
            async with http.get(url + PATH, params=params, headers=headers) as response:
                body = await response.read()
                requests += 1
                if response.status == 429:
                    rate_limited += 1
                    queue.appendleft(page)
                elif response.status == 200:
                    items += len(json.loads(body)["data"]["items"])
                    done += 1
                else:
                    errors.append(f"page {page} answered {response.status}")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            errors.append(f"page {page}: {exc!r}")
        finally:
            wake.set()

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        interval = 1.0 / rate
        slot = loop.time()
        while done < pages:
            if errors:
                raise SystemExit(f"pacer: {errors[0]}")
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            now = loop.time()
            if slot > now:
                await asyncio.sleep(slot - now)
            # The next slot is one interval after this one, or after now when running late:
            # a late loop never catches up with a burst.
            slot = max(slot, now) + interval
            task = asyncio.create_task(fetch(http, queue.popleft()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return Result(time.perf_counter() - started, requests, rate_limited, items)


def client_label(client: str) -> str:
    if client in ("auto", "pacer"):
        return client
    if client.endswith("+limit"):
        return f"{client.removesuffix('+limit')} + rate_limit=R"
    return f"c{client}"


async def run_client(server: Server, client: str, pages: int, rate: float) -> Result:
    if client == "pacer":
        return await pacer_walk(server.url, server.api_key, pages, rate)
    width_text, _, limited = client.partition("+")
    width: int | str = width_text if width_text == "auto" else int(width_text)
    return await sdk_walk(
        server.url, server.api_key, width, rate_limit=rate if limited == "limit" else None
    )


def measure(
    server: Server, client: str, pages: int, rate: float, rest: float, round_: int
) -> Result:
    time.sleep(rest)  # the limiter is full again: no run inherits another's debt
    result = asyncio.run(run_client(server, client, pages, rate))
    if result.items != pages * PAGE_SIZE:
        raise SystemExit(f"{client}: read {result.items} tokens, expected {pages * PAGE_SIZE}")
    print(
        f"  round {round_}: {client_label(client):>6} {result.wall:6.2f} s "
        f"{result.requests:5d} requests {result.rate_limited:4d} 429s",
        file=sys.stderr,
    )
    return result


def best(results: Sequence[Result]) -> Result:
    return min(results, key=lambda r: r.wall)


# ------------------------------------------------------------------------------ the grid


@dataclass
class GridRow:
    limiter: str
    rate: float
    cells: dict[str, Result] = field(default_factory=dict)


def run_grid(plan: Plan) -> list[GridRow]:
    rows = []
    for rate in plan.rates:
        for name in plan.limiters:
            print(f"grid: {LIMITER_TITLES[name]} at {rate:g}/s", file=sys.stderr)
            row = GridRow(name, rate)
            runs: dict[str, list[Result]] = {c: [] for c in plan.clients}
            args = [*server_args(plan), *limiter_args(name, rate)]
            with running(*args, tokens=plan.pages * PAGE_SIZE) as server:
                for round_ in range(1, plan.rounds + 1):
                    for client in plan.clients:
                        rest = plan.rest or rest_seconds(name, rate)
                        runs[client].append(measure(server, client, plan.pages, rate, rest, round_))
            row.cells = {client: best(results) for client, results in runs.items()}
            rows.append(row)
    return rows


def target_for(limiter: str) -> float:
    return BURST_ONE_TARGET if limiter == "bucket1" else AUTO_TARGET


def best_fixed(row: GridRow) -> tuple[str, Result] | None:
    """The fastest fixed concurrency of the row that kept its 429s at or under 5%."""
    fixed = [(c, r) for c, r in row.cells.items() if c.isdigit() and r.share <= SHARE_TARGET]
    return min(fixed, key=lambda cr: cr[1].wall) if fixed else None


def auto_verdict(row: GridRow, bound: float) -> str:
    auto = row.cells.get("auto")
    if auto is None:
        return ""
    misses = []
    target = target_for(row.limiter)
    if auto.wall / bound > target:
        misses.append(f"over {target:.2f}x")
    if auto.share > SHARE_TARGET:
        misses.append("over 5% 429s")
    fixed = best_fixed(row)
    if fixed is not None and auto.wall > fixed[1].wall:
        misses.append(f"slower than {client_label(fixed[0])}")
    return "met" if not misses else "MISS: " + ", ".join(misses)


def grid_tables(plan: Plan, rows: list[GridRow]) -> str:
    out = []
    for rate in plan.rates:
        bound = plan.pages / rate
        selected = [row for row in rows if row.rate == rate]
        if not selected:
            continue
        out.append(
            f"R = {rate:g}/s: {plan.pages} pages of {PAGE_SIZE}, {plan.latency * 1000:g} ms "
            f"per request, capacity {plan.capacity}, no client rate_limit, best of "
            f"{plan.rounds}; bound = pages / R = {bound:.2f} s. Each cell: wall / bound, "
            "429 share, requests."
        )
        out.append("")
        labels = [client_label(c) for c in plan.clients]
        out.append("| limiter | " + " | ".join(labels) + " | auto: target |")
        out.append("| --- | " + " | ".join("---:" for _ in labels) + " | --- |")
        for row in selected:
            cells = []
            for client in plan.clients:
                result = row.cells[client]
                cell = f"{result.wall / bound:.2f}x {result.share:.0%} {result.requests}"
                fixed = best_fixed(row)
                if fixed is not None and fixed[0] == client:
                    cell += " (best fixed)"
                cells.append(cell)
            out.append(
                f"| {LIMITER_TITLES[row.limiter]} | "
                + " | ".join(cells)
                + f" | {auto_verdict(row, bound)} |"
            )
        out.append("")
        if "auto" in plan.clients:
            out.append(f"R = {rate:g}/s, auto against the best fixed and the pacer:")
            out.append("")
            out.append("| limiter | auto | best fixed with ≤ 5% 429s | pacer | target | verdict |")
            out.append("| --- | ---: | ---: | ---: | ---: | --- |")
            for row in selected:
                auto = row.cells["auto"]
                fixed = best_fixed(row)
                fixed_text = (
                    f"{fixed[1].wall / bound:.2f}x ({client_label(fixed[0])})" if fixed else "none"
                )
                pacer = row.cells.get("pacer")
                pacer_text = (
                    f"{pacer.wall / bound:.2f}x, {pacer.share:.1%}" if pacer else "(not run)"
                )
                out.append(
                    f"| {LIMITER_TITLES[row.limiter]} | {auto.wall / bound:.2f}x, "
                    f"{auto.share:.1%} | {fixed_text} | {pacer_text} | "
                    f"≤ {target_for(row.limiter):.2f}x | {auto_verdict(row, bound)} |"
                )
            out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------ variants


def run_variants(plan: Plan) -> str:
    clients = [c for c in ("auto", "pacer") if c in plan.clients] or ["auto"]
    lines = [
        "Other Retry-After and header styles (auto and the pacer; wall / bound, 429 share, "
        "requests):",
        "",
        "| limiter | R | Retry-After | headers | " + " | ".join(clients) + " | auto: target |",
        "| --- | ---: | --- | --- | " + " | ".join("---:" for _ in clients) + " | --- |",
    ]
    for name, rate, retry_after, headers in plan.variants:
        print(
            f"variant: {LIMITER_TITLES[name]} at {rate:g}/s, Retry-After {retry_after}, "
            f"headers {headers}",
            file=sys.stderr,
        )
        bound = plan.pages / rate
        runs: dict[str, list[Result]] = {c: [] for c in clients}
        args = [*server_args(plan), *limiter_args(name, rate, retry_after, headers)]
        with running(*args, tokens=plan.pages * PAGE_SIZE) as server:
            for round_ in range(1, plan.rounds + 1):
                for client in clients:
                    rest = plan.rest or rest_seconds(name, rate)
                    runs[client].append(measure(server, client, plan.pages, rate, rest, round_))
        cells = {c: best(r) for c, r in runs.items()}
        auto = cells["auto"]
        target = target_for(name)
        misses = []
        if auto.wall / bound > target:
            misses.append(f"over {target:.2f}x")
        if auto.share > SHARE_TARGET:
            misses.append("over 5% 429s")
        verdict = "met" if not misses else "MISS: " + ", ".join(misses)
        lines.append(
            f"| {LIMITER_TITLES[name]} | {rate:g} | {retry_after} | {headers or 'none'} | "
            + " | ".join(
                f"{r.wall / bound:.2f}x {r.share:.0%} {r.requests}" for r in cells.values()
            )
            + f" | {verdict} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ storm


def demo_token_ids(tokens: int) -> list[str]:
    """The ids a sandbox with seed 0 serves: its demo data is deterministic, so the storm run
    knows them without asking (its first request must be one of the storm's)."""
    from cellcast_async.sandbox._state import Store

    store = Store(seed=0, tokens=tokens)
    primary = set(store.primary_sub_ids)
    return [t.id for t in store.tokens.values() if t.sub_account_id in primary]


async def storm_calls(
    server: Server, ids: list[str], calls: int, storm: float, give_up: float
) -> tuple[float, int, int, Count]:
    """(seconds from recovery to the last call's end, calls done, calls failed, answers)."""
    count = Count()
    failed = 0
    async with CellcastSession(
        api_key=server.api_key,
        base_url=server.url,
        max_retries=MAX_RETRIES,
        event_hooks={"response": [count.hook]},
    ) as cc:

        async def one(token_id: str) -> None:
            nonlocal failed
            try:
                await cc.tokens.get(token_id)
            except Exception:
                failed += 1

        started = time.perf_counter()
        # The storm starts at the server's first request, an instant after `started`:
        # recovery is at most this late, so the figure below errs on the long side.
        recovery = started + storm
        tasks = [asyncio.create_task(one(ids[i % len(ids)])) for i in range(calls)]
        done, pending = await asyncio.wait(tasks, timeout=storm + give_up)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        finished = time.perf_counter()
    return finished - recovery, len(done), failed, count


def run_storm(plan: Plan) -> str:
    print(
        f"storm: {plan.storm_calls} concurrent get() through {plan.storm_seconds:g} s of 429s",
        file=sys.stderr,
    )
    tokens = 300
    ids = demo_token_ids(tokens)
    args = [
        *server_args(plan),
        "--storm", f"{plan.storm_seconds:g}",
        "--retry-after", f"{plan.storm_retry_after:g}",
    ]  # fmt: skip
    with running(*args, tokens=tokens) as server:
        after, done, failed, count = asyncio.run(
            storm_calls(server, ids, plan.storm_calls, plan.storm_seconds, plan.give_up)
        )
    finished = done == plan.storm_calls
    verdict = "met" if finished and failed == 0 and after <= STORM_TARGET else "MISS"
    when = f"{after:.2f} s" if finished else f"cut off after {plan.give_up:g} s"
    return (
        f"Storm: {plan.storm_calls} concurrent get() on one session, every request 429 "
        f"(Retry-After: {plan.storm_retry_after:g}) for {plan.storm_seconds:g} s from the "
        f"first, {plan.latency * 1000:g} ms per request and capacity {plan.capacity} "
        "afterwards, no rate limit.\n\n"
        "| calls | done | failed | requests | 429s | recovery to last call | target | |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
        f"| {plan.storm_calls} | {done} | {failed} | {count.requests} | {count.rate_limited} "
        f"| {when} | ≤ {STORM_TARGET:g} s | {verdict} |\n"
    )


# ------------------------------------------------------------------------------ challenge


def run_challenge(plan: Plan) -> str:
    pages = plan.challenge_pages
    print(f"challenge: {pages} pages at concurrency 8", file=sys.stderr)
    args = [*server_args(plan), "--challenge", "--retry-after", f"{plan.challenge_retry_after:g}"]
    with running(*args, tokens=pages * PAGE_SIZE) as server:

        async def walk() -> Result | None:
            with contextlib.suppress(asyncio.TimeoutError):
                return await asyncio.wait_for(
                    sdk_walk(server.url, server.api_key, 8), timeout=plan.give_up
                )
            return None

        result = asyncio.run(walk())
    head = (
        f"Per-request challenge: a walk of {pages} pages at concurrency=8; the first attempt of "
        f"every request is a 429 (Retry-After: {plan.challenge_retry_after:g}), the retry "
        "passes.\n\n"
        "| wall | requests | 429s | target | |\n| ---: | ---: | ---: | ---: | --- |\n"
    )
    if result is None:
        return (
            head + f"| cut off after {plan.give_up:g} s | | | ≤ {CHALLENGE_TARGET:g} s | MISS |\n"
        )
    verdict = "met" if result.wall <= CHALLENGE_TARGET else "MISS"
    return head + (
        f"| {result.wall:.2f} s | {result.requests} | {result.rate_limited} "
        f"| ≤ {CHALLENGE_TARGET:g} s | {verdict} |\n"
    )


# ------------------------------------------------------------------------------ redis


@contextlib.contextmanager
def running_redis(executable: str) -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence), stopped afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
        process = subprocess.Popen(
            [executable, *args, "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(500):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def run_redis(plan: Plan) -> str:
    """Two processes walking one account at once, each ``rate_limit=R``, ``auto``."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("  (no redis-server: the two-process rows are skipped)", file=sys.stderr)
        return "Two processes: skipped (no redis-server).\n"
    rate = max(plan.rates)
    bound = 2 * plan.pages / rate
    lines = [
        f"Two processes walking the same account at once ({plan.pages} pages each), each "
        f"concurrency=auto with rate_limit={rate:g}, against a "
        f"{LIMITER_TITLES[plan.redis_limiter]} at {rate:g}/s; bound = 2 x pages / R = "
        f"{bound:.2f} s.",
        "",
        "| run | wall / bound | requests | 429s | 429 share | requests/s | peak in 1 s "
        "| target | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    with running_redis(redis_server) as redis_url:
        for store in (None, redis_url):
            name = "shared Redis store" if store else "no store"
            print(f"redis: two processes, {name}", file=sys.stderr)
            args = [*server_args(plan), *limiter_args(plan.redis_limiter, rate)]
            with running(*args, tokens=plan.pages * PAGE_SIZE) as server:
                walkers = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--walk",
                            server.url,
                            server.api_key,
                            "auto",
                            f"{rate:g}",
                            store or "",
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(2)
                ]
                outs = [json.loads(w.communicate(timeout=600)[0]) for w in walkers]
            # From the first walk's start to the last one's end (not the processes' start-up).
            wall = max(o["ended"] for o in outs) - min(o["began"] for o in outs)
            sent = [t for o in outs for t in o["sent"]]
            peak = peak_per_second(sent)
            items = sum(o["items"] for o in outs)
            if items != 2 * plan.pages * PAGE_SIZE:
                raise SystemExit(f"redis {name}: read {items} tokens")
            requests = sum(o["requests"] for o in outs)
            limited = sum(o["rate_limited"] for o in outs)
            share = limited / requests if requests else 0.0
            per_second = requests / wall
            if store:
                # Together within the shared rate: at most R per second of the walk, plus
                # one second's worth for the burst a budget may start with.
                within = requests <= rate * (wall + 1.0)
                verdict = "met" if share <= SHARE_TARGET and within else "MISS"
                target = f"≤ 5% 429s, ≤ {rate:g}/s"
            else:
                verdict, target = "(reference)", ""
            lines.append(
                f"| {name} | {wall / bound:.2f}x | {requests} | {limited} | {share:.1%} "
                f"| {per_second:.0f} | {peak} | {target} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ no limit


def run_nolimit(plan: Plan) -> str:
    bound = (1 + math.ceil((plan.pages - 1) / 8)) * plan.latency
    runs: dict[str, list[Result]] = {"8": [], "auto": []}
    print("nolimit: fixed 8 and auto, no rate limit", file=sys.stderr)
    with running(*server_args(plan), tokens=plan.pages * PAGE_SIZE) as server:
        for round_ in range(1, plan.rounds + 1):
            for client in runs:
                runs[client].append(
                    measure(server, client, plan.pages, 0.0, plan.rest or 0.2, round_)
                )
    fixed, auto = best(runs["8"]), best(runs["auto"])
    ratio = auto.wall / fixed.wall
    verdict = "met" if ratio <= NOLIMIT_TARGET else "MISS"
    return (
        f"No rate limit at all ({plan.pages} pages, {plan.latency * 1000:g} ms, capacity "
        f"{plan.capacity}; latency bound at 8 in flight {bound:.2f} s):\n\n"
        "| run | wall s | wall / latency bound | requests |\n| --- | ---: | ---: | ---: |\n"
        f"| fixed 8 | {fixed.wall:.2f} | {fixed.wall / bound:.2f}x | {fixed.requests} |\n"
        f"| auto | {auto.wall:.2f} | {auto.wall / bound:.2f}x | {auto.requests} |\n\n"
        f"auto / fixed 8 = {ratio:.2f} (target ≤ {NOLIMIT_TARGET:.2f}): {verdict}\n"
    )


# ------------------------------------------------------------------------------ main


def walker_main(args: list[str]) -> None:
    """One of the two Redis-run processes: a walk, then one JSON line of its counts."""
    url, api_key, concurrency, rate, store = args
    width: int | str = concurrency if concurrency == "auto" else int(concurrency)
    result = asyncio.run(
        sdk_walk(url, api_key, width, rate_limit=float(rate), rate_store=store or None)
    )
    counts = {"items": result.items, "requests": result.requests}
    times = {"began": result.began, "ended": result.ended, "sent": result.sent}
    print(json.dumps({**counts, "rate_limited": result.rate_limited, **times}))


def peak_per_second(times: Sequence[float]) -> int:
    """The most of `times` in any 1-second span."""
    ordered = sorted(times)
    peak = start = 0
    for end, now in enumerate(ordered):
        while ordered[start] <= now - 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    changes: dict[str, Any] = {}
    if args.only:
        unknown = set(parse_list(args.only)) - set(SECTIONS)
        if unknown:
            raise SystemExit(f"--only: unknown sections {sorted(unknown)}; choose from {SECTIONS}")
        changes["sections"] = tuple(s for s in SECTIONS if s in parse_list(args.only))
    if args.rates:
        changes["rates"] = tuple(float(x) for x in parse_list(args.rates))
    if args.limiters:
        unknown = set(parse_list(args.limiters)) - set(LIMITERS)
        if unknown:
            raise SystemExit(f"--limiters: unknown {sorted(unknown)}; choose from {list(LIMITERS)}")
        changes["limiters"] = parse_list(args.limiters)
    if args.clients:
        changes["clients"] = parse_list(args.clients)
    for name in ("pages", "rounds", "capacity", "latency", "storm_calls", "give_up"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    return replace(plan, **changes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[6:]),
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, every section once")
    parser.add_argument("--only", metavar="S,S", help=f"sections to run, of {','.join(SECTIONS)}")
    parser.add_argument("--rates", metavar="R,R", help="server rates (default 50,100)")
    parser.add_argument("--limiters", metavar="L,L", help=f"of {','.join(LIMITERS)}")
    parser.add_argument(
        "--clients",
        metavar="C,C",
        help="of 1,2,4,8,16,32,auto,pacer (default all); N+limit or auto+limit also set "
        "the session's rate_limit to R",
    )
    parser.add_argument("--pages", type=int, help="pages of 10 per walk (default 300)")
    parser.add_argument("--rounds", type=int, help="best of this many rounds (default 2)")
    parser.add_argument("--capacity", type=int, help="server capacity (default 16)")
    parser.add_argument("--latency", type=float, help="server seconds per request (0.020)")
    parser.add_argument("--storm-calls", type=int, help="concurrent get() in the storm (2000)")
    parser.add_argument(
        "--give-up", type=float, help="cut a storm or challenge run off after this long (120 s)"
    )
    parser.add_argument("--walk", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.walk:
        walker_main(args.walk)
        return
    plan = make_plan(args)
    started = time.perf_counter()
    printed = []
    if "grid" in plan.sections:
        printed.append(grid_tables(plan, run_grid(plan)))
        print(printed[-1], flush=True)
    runners: list[tuple[str, Callable[[Plan], str]]] = [
        ("variants", run_variants),
        ("storm", run_storm),
        ("challenge", run_challenge),
        ("redis", run_redis),
        ("nolimit", run_nolimit),
    ]
    for section, runner in runners:
        if section in plan.sections:
            printed.append(runner(plan))
            print(printed[-1], flush=True)
    print(f"(whole run: {time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
