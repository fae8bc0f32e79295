"""A rate-limited race (issue 10): fixed concurrency against a sandbox with a rate limit.

    python benchmarks/ratelimit.py [--pages 400] [--rate-limit 100] [--capacity 16]

Each row starts a fresh sandbox in its own process (``serve()`` with ``rate_limit``,
``capacity`` and a fixed latency; a fresh bucket per row, so no row inherits another's
debt), walks every token once with ``cc.tokens.list(limit=10, concurrency=N)``, then stops
the sandbox and reads its counters: requests it received and 429s its rate limit sent.

Rows: fixed concurrency (every session has its governor, so a 429 pauses it); fixed with
``rate_limit`` set to the server's; ``concurrency="auto"`` without and with it; and two
processes walking the same account at once, each with ``rate_limit``, without and with a
shared Redis store (needs ``redis-server``).

Columns: wall seconds, tokens per second, requests, 429s (and their share), and wall as a
ratio to the rate bound ``pages / rate_limit`` (the sandbox's default burst, one second's
worth, lets a walk finish a little under it).

Not a test: nothing here is asserted; the figures go to README "Performance".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cellcast_async import CellcastSession  # noqa: E402

PAGE_SIZE = 10
MAX_RETRIES = 50  # every row must finish; a 429's Retry-After is 1 s, so retries are slow


@dataclass(frozen=True)
class Setup:
    pages: int
    rate_limit: float
    capacity: int
    latency: float

    @property
    def tokens(self) -> int:
        return self.pages * PAGE_SIZE

    @property
    def bound(self) -> float:
        """pages / rate_limit; with no rate limit (0), the latency bound of 8 in flight."""
        if self.rate_limit <= 0:
            return (1 + math.ceil((self.pages - 1) / 8)) * self.latency
        return self.pages / self.rate_limit

    @property
    def bound_name(self) -> str:
        return "latency bound at 8 in flight" if self.rate_limit <= 0 else "rate bound"


@dataclass(frozen=True)
class Row:
    name: str
    wall: float
    tokens: int
    requests: int
    rate_limited: int


class Server:
    """``serve()`` in a child process (this file with ``--serve``); counters on exit."""

    def __init__(self, setup: Setup) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                f"--pages={setup.pages}",
                f"--rate-limit={setup.rate_limit}",
                f"--capacity={setup.capacity}",
                f"--latency={setup.latency}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        hello = json.loads(self.process.stdout.readline())
        self.url: str = hello["url"]
        self.api_key: str = hello["api_key"]

    def stop(self) -> dict[str, int]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        counters: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return counters


async def walk(
    server: Server | argparse.Namespace,
    concurrency: int | str,
    rate_limit: float | None = None,
    rate_store: str | None = None,
) -> int:
    """Every token once: ``cc.tokens.list(limit=10, concurrency=...)`` on a session with
    ``rate_limit``/``rate_store`` (every session has its governor: a 429 pauses it)."""
    async with CellcastSession(
        api_key=server.api_key,
        base_url=server.url,
        max_retries=MAX_RETRIES,
        rate_limit=rate_limit,
        rate_store=rate_store,
    ) as cc:
        count = 0
        async for _ in cc.tokens.list(limit=PAGE_SIZE, concurrency=concurrency):  # type: ignore[arg-type]
            count += 1
        return count


def run_row(setup: Setup, name: str, walk: Callable[[Server], Awaitable[int]]) -> Row:
    server = Server(setup)
    try:
        started = time.perf_counter()
        tokens = asyncio.run(walk(server))
        wall = time.perf_counter() - started
    finally:
        counters = server.stop()
    if tokens != setup.tokens:
        raise SystemExit(f"{name}: read {tokens} tokens, expected {setup.tokens}")
    return Row(name, wall, tokens, counters["requests"], counters["rate_limited"])


def fixed_rows(setup: Setup, levels: tuple[int, ...]) -> list[Row]:
    rows = []
    for n in levels:

        async def fixed(server: Server, n: int = n) -> int:
            return await walk(server, n)

        rows.append(run_row(setup, f"fixed {n}", fixed))
        print(f"  done: fixed {n}", file=sys.stderr)
    return rows


def governed_rows(setup: Setup, levels: tuple[int, ...]) -> list[Row]:
    rows = []
    for n in levels:
        for cap in (None, setup.rate_limit):

            async def capped(server: Server, n: int = n, cap: float | None = cap) -> int:
                return await walk(server, n, cap)

            name = f"fixed {n} + governor ({'no cap' if cap is None else f'rate_limit={cap:g}'})"
            rows.append(run_row(setup, name, capped))
            print(f"  done: {name}", file=sys.stderr)
    return rows


def auto_rows(setup: Setup, *, capped: bool = True) -> list[Row]:
    """``concurrency="auto"``: without a cap (the user does not know the server's limit),
    and with ``rate_limit`` set to the server's."""
    rows = []
    caps: tuple[float | None, ...] = (None, setup.rate_limit) if capped else (None,)
    for cap in caps:

        async def auto(server: Server, cap: float | None = cap) -> int:
            return await walk(server, "auto", cap)

        name = "auto" + ("" if cap is None else f" + rate_limit={cap:g}")
        rows.append(run_row(setup, name, auto))
        print(f"  done: {name}", file=sys.stderr)
    return rows


def redis_rows(setup: Setup, concurrency: str = "auto") -> list[Row]:
    """Two processes walking one account at once, each a ``CellcastSession(rate_limit=...)``
    at ``concurrency="auto"``, with and without a shared Redis store."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("  (no redis-server: the two-process rows are skipped)", file=sys.stderr)
        return []
    rows = []
    with running_redis(redis_server) as redis_url:
        for store in (None, redis_url):
            name = f"2 processes, {concurrency} + rate_limit={setup.rate_limit:g} each, " + (
                "shared Redis store" if store else "no store"
            )
            server = Server(setup)
            try:
                started = time.perf_counter()
                walkers = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--walk",
                            server.url,
                            server.api_key,
                            str(concurrency),
                            str(setup.rate_limit),
                            store or "",
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(2)
                ]
                tokens = sum(int(w.communicate(timeout=300)[0].strip()) for w in walkers)
                wall = time.perf_counter() - started
            finally:
                counters = server.stop()
            if tokens != 2 * setup.tokens:
                raise SystemExit(f"{name}: read {tokens} tokens, expected {2 * setup.tokens}")
            rows.append(Row(name, wall, tokens, counters["requests"], counters["rate_limited"]))
            print(f"  done: {name}", file=sys.stderr)
    return rows


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


def table(setup: Setup, rows: list[Row], *, walkers: int = 1) -> str:
    bound = walkers * setup.bound
    lines = [
        f"rate_limit={f'{setup.rate_limit:g}/s' if setup.rate_limit > 0 else 'none'}, "
        f"capacity={setup.capacity}, latency={setup.latency * 1000:g} ms, {setup.pages} pages "
        f"of {PAGE_SIZE} ({setup.tokens} tokens) per walk, {walkers} walk(s) at once; "
        f"{setup.bound_name} {bound:.2f} s",
        "",
        "| run | wall s | tokens/s | requests | 429s | 429 share | wall / bound |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        share = row.rate_limited / row.requests if row.requests else 0.0
        lines.append(
            f"| {row.name} | {row.wall:.2f} | {row.tokens / row.wall:,.0f} | {row.requests} "
            f"| {row.rate_limited} | {share:.1%} | {row.wall / bound:.2f}x |"
        )
    return "\n".join(lines)


def serve_main(args: argparse.Namespace) -> None:
    from cellcast_async.sandbox import Faults, Sandbox, serve

    held: list[Sandbox] = []

    def ready(sb: Sandbox) -> None:
        held.append(sb)
        print(json.dumps({"url": sb.url, "api_key": sb.api_key}), flush=True)

    serve(
        port=0,
        tokens=args.pages * PAGE_SIZE,
        faults=Faults(latency=args.latency),
        ready=ready,
        rate_limit=args.rate_limit if args.rate_limit > 0 else None,
        capacity=args.capacity,
    )
    sb = held[0]
    counters = {"requests": len(sb.requests), "rate_limited": sb.rate_limited}
    print(json.dumps(counters), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--rate-limit", type=float, default=100.0)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.020)
    parser.add_argument("--levels", default="1,4,8,16,32", help="fixed concurrency levels")
    parser.add_argument(
        "--governed", default="16,32", help="fixed levels also run with rate_limit set"
    )
    parser.add_argument(
        "--no-unlimited",
        dest="unlimited",
        action="store_false",
        help="skip the walk with no rate limit (fixed 8 against auto)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--walk", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(args)
        return
    if args.walk:
        url, api_key, concurrency, rate, store = args.walk
        server = argparse.Namespace(url=url, api_key=api_key)
        width: int | str = concurrency if concurrency == "auto" else int(concurrency)
        print(asyncio.run(walk(server, width, float(rate), store or None)))
        return
    setup = Setup(args.pages, args.rate_limit, args.capacity, args.latency)
    levels = tuple(int(x) for x in args.levels.split(","))
    governed = tuple(int(x) for x in args.governed.split(",") if x)
    rows = fixed_rows(setup, levels) + governed_rows(setup, governed) + auto_rows(setup)
    print(table(setup, rows))
    shared = redis_rows(setup)
    if shared:
        print()
        print(table(setup, shared, walkers=2))
    if args.unlimited:
        # The same walk with no rate limit at all: is auto as fast as a well-chosen fixed 8?
        free = Setup(args.pages, 0.0, args.capacity, args.latency)
        print()
        print(table(free, fixed_rows(free, (8,)) + auto_rows(free, capped=False)))


if __name__ == "__main__":
    main()
