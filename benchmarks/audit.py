"""Side-by-side: read every token with five clients against one sandbox (issue 5).

    python -m pip install -e ".[bench]" && python benchmarks/audit.py

The sandbox runs in its own process (``python -m cellcast_async.sandbox``), so the
server never shares the clients' event loop or core. For each scenario it serves
``pages * page_size`` tokens with a fixed per-request latency, and the clients walk
all of them one after another, in one run, on the same data:

    (a) seed 000's ``requests`` example as a ``page += 1`` loop while ``hasNextPage``
    (b) hand-written aiohttp + ``json``, yielding dicts: the floor
    (c) httpx + pydantic v2, a sequential pager in openai-python's style
    (d) cellcast_async, concurrency=1
    (e) cellcast_async, concurrency=8 and 16

plus (b8), (b) with 8 pages in flight: a reference for what any client can reach
against this server. Wall time is the best of ``--repeats`` runs (3 latency-bound,
5 CPU-bound; the clients take turns in each round, so drift hits them alike). Peak
memory is tracemalloc's peak growth of the Python heap during the walk, from one more
run per client with tracing on (never a timed run: tracing slows Python down). The
latency bound is ``(1 + ceil((P - 1) / N)) * latency``: one round trip for the first
page, then one per N pages (N = 1 for sequential clients). Then a 100,000-token walk's
peak memory growth, benchmarks/decode.py's table, and the issue's targets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clients import CLIENTS, Client, Meter, Result, Target, cellcast

MB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    name: str
    pages: int
    page_size: int
    latency: float
    repeats: int


@dataclass
class Row:
    client: Client
    seconds: float  # best wall time
    cpu_seconds: float  # the client's CPU in that run
    server_cpu: float | None  # the sandbox's CPU in that run
    peak_bytes: int | None
    tokens: int


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}"
    )


@dataclass
class Server:
    url: str
    api_key: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """The sandbox process's CPU time so far (Linux /proc), or None elsewhere."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def sandbox(tokens: int, latency: float) -> Iterator[Server]:
    """``python -m cellcast_async.sandbox`` in a subprocess, until the block ends."""
    command = [
        sys.executable,
        "-m",
        "cellcast_async.sandbox",
        "--port",
        "0",
        "--tokens",
        str(tokens),
        "--latency",
        repr(latency),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the sandbox did not start (exit code {proc.wait()})")
        info = json.loads(line)
        yield Server(info["url"], info["api_key"], proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_once(client: Client, target: Target, *, trace: bool = False) -> tuple[Result, Meter]:
    meter = Meter(trace=trace)
    gc.collect()
    if trace:
        tracemalloc.start()
    try:
        outcome = client.run(target, meter)
        result: Result = asyncio.run(outcome) if inspect.isawaitable(outcome) else outcome
    finally:
        if trace:
            tracemalloc.stop()
    return result, meter


def bound(scenario: Scenario, concurrency: int) -> float:
    return (1 + math.ceil((scenario.pages - 1) / concurrency)) * scenario.latency


def run_scenario(scenario: Scenario, clients: Sequence[Client], memory: bool) -> list[Row]:
    repeats = scenario.repeats
    tokens = scenario.pages * scenario.page_size
    print(
        f"\n## {scenario.name}: {scenario.pages} pages of {scenario.page_size} "
        f"({tokens:,} tokens), {scenario.latency * 1000:g} ms per request",
        flush=True,
    )
    rows: dict[str, Row] = {}
    with sandbox(tokens, scenario.latency) as server:
        target = Target(server.url, server.api_key, scenario.page_size)
        warm = Target(server.url, server.api_key, scenario.page_size, max_pages=3)
        for client in clients:  # imports, pydantic schemas, the sandbox's cached view
            run_once(client, warm)
        expected: Result | None = None
        for _ in range(repeats):
            for client in clients:  # take turns, so drift hits every client alike
                before = server.cpu_seconds()
                result, meter = run_once(client, target)
                after = server.cpu_seconds()
                if expected is None:
                    expected = result
                if (result.count, result.last_id) != (tokens, expected.last_id):
                    raise SystemExit(f"{client.label} read {result}, expected {tokens} tokens")
                best = rows.get(client.key)
                if best is None or meter.seconds < best.seconds:
                    server_cpu = None if before is None or after is None else after - before
                    rows[client.key] = Row(
                        client, meter.seconds, meter.cpu_seconds, server_cpu, None, tokens
                    )
        if memory:
            for client in clients:
                if scenario.latency > 0 and client.concurrency == 1:
                    continue  # a sequential walk's peak does not depend on latency: see CPU-bound
                rows[client.key].peak_bytes = run_once(client, target, trace=True)[1].peak_bytes
    ordered = [rows[c.key] for c in clients]
    print_table(scenario, ordered, repeats)
    return ordered


def print_table(scenario: Scenario, rows: Sequence[Row], repeats: int) -> None:
    floor = next((r.seconds for r in rows if r.client.key == "b"), None)
    print(
        f"\nwall: best of {repeats} runs; CPU: the client's and the sandbox's in that run; "
        "peak mem: tracemalloc peak growth during the walk (one more, traced, run"
        + (
            "; sequential clients only in the CPU-bound scenario, latency changes nothing there"
            if scenario.latency > 0
            else ""
        )
        + ")\n"
    )
    print(
        "| client | wall (s) | tokens/s | client CPU (s) | server CPU (s) | peak mem (MB) "
        "| vs (b) | vs latency bound |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        lb = bound(scenario, row.client.concurrency)
        peak = "-" if row.peak_bytes is None else f"{row.peak_bytes / MB:.2f}"
        server = "-" if row.server_cpu is None else f"{row.server_cpu:.2f}"
        vs_floor = "-" if floor is None else f"{row.seconds / floor:.2f}x"
        vs_bound = f"{row.seconds / lb:.2f}x of {lb:.2f} s" if lb > 0 else "n/a (no latency)"
        print(
            f"| {row.client.label} | {row.seconds:.3f} | {row.tokens / row.seconds:,.0f} "
            f"| {row.cpu_seconds:.2f} | {server} | {peak} | {vs_floor} | {vs_bound} |"
        )
    print(flush=True)


def memory_walk(tokens: int, page_size: int, concurrencies: Sequence[int]) -> dict[int, int]:
    """Peak heap growth while cellcast_async walks ``tokens`` tokens (nothing kept)."""
    print(f"\n## Memory: walking {tokens:,} tokens, pages of {page_size}\n", flush=True)
    peaks: dict[int, int] = {}
    with sandbox(tokens, 0.0) as server:
        target = Target(server.url, server.api_key, page_size)
        warm = Client("warm", "warm-up", cellcast(1))
        run_once(warm, Target(server.url, server.api_key, page_size, max_pages=2))
        print("| client | tokens | peak growth (MB, tracemalloc) | wall (s, traced) |")
        print("| --- | ---: | ---: | ---: |")
        for n in concurrencies:
            client = Client(f"e{n}", f"cellcast_async concurrency={n}", cellcast(n), n)
            result, meter = run_once(client, target, trace=True)
            if result.count != tokens:
                raise SystemExit(f"read {result.count} of {tokens} tokens")
            assert meter.peak_bytes is not None
            peaks[n] = meter.peak_bytes
            print(
                f"| {client.label} | {result.count:,} | {meter.peak_bytes / MB:.2f} "
                f"| {meter.seconds:.2f} |"
            )
    print(
        f"\nOf that, the walk's de-duplication set (the contract keys every item by id) "
        f"holds {dedup_set_bytes(tokens) / MB:.1f} MB for {tokens:,} ids: it grows with the "
        "walk; the pages do not.",
        flush=True,
    )
    return peaks


def dedup_set_bytes(n: int) -> int:
    """What a set of ``n`` 24-hex-character ids (the sandbox's, like seed 000's) costs."""
    gc.collect()
    tracemalloc.start()
    try:
        ids = {f"{i:024x}" for i in range(n)}
        size = tracemalloc.get_traced_memory()[0]
        del ids
    finally:
        tracemalloc.stop()
    return size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        choices=("latency", "cpu", "both", "none"),
        default="both",
        help="latency-bound, CPU-bound, both (default), or none (memory/decode only)",
    )
    parser.add_argument("--pages", type=int, help="pages to walk (default: 200 / 500)")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--latency", type=float, help="seconds per request (default: 0.02 / 0)")
    parser.add_argument(
        "--repeats",
        type=int,
        help="timed runs per client, best kept (default: 3 latency-bound, 5 CPU-bound)",
    )
    parser.add_argument(
        "--clients",
        default=",".join(c.key for c in CLIENTS),
        help="which of a,b,c,b8,d,e8,e16 to run (default: all)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the traced runs")
    parser.add_argument(
        "--memory-tokens", type=int, default=100_000, help="the big walk (0 to skip)"
    )
    parser.add_argument("--no-decode", action="store_true", help="skip benchmarks/decode.py")
    args = parser.parse_args(argv)

    keys = [k.strip() for k in args.clients.split(",") if k.strip()]
    by_key = {c.key: c for c in CLIENTS}
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        parser.error(f"unknown clients {unknown}; choose from {list(by_key)}")
    clients = [by_key[k] for k in keys]

    started = time.perf_counter()
    print(f"# cellcast_async audit benchmark\n\nMachine: {machine()}", flush=True)
    scenarios: dict[str, Scenario] = {}
    if args.scenario in ("latency", "both"):
        latency = 0.02 if args.latency is None else args.latency
        scenarios["latency"] = Scenario(
            "Latency-bound", args.pages or 200, args.page_size, latency, args.repeats or 3
        )
    if args.scenario in ("cpu", "both"):
        latency = 0.0 if args.latency is None else args.latency
        # Short runs, noisier: more of them for the same few seconds.
        scenarios["cpu"] = Scenario(
            "CPU-bound", args.pages or 500, args.page_size, latency, args.repeats or 5
        )
    results = {
        key: (s, run_scenario(s, clients, not args.no_memory)) for key, s in scenarios.items()
    }
    peaks = memory_walk(args.memory_tokens, 100, (1, 8)) if args.memory_tokens else {}
    decode_table = None
    if not args.no_decode:
        import decode

        decode_table = decode.main([])
    print_targets(results, peaks, decode_table)
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")
    return 0


def print_targets(
    results: dict[str, tuple[Scenario, list[Row]]],
    peaks: dict[int, int],
    decode_table: dict[str, float] | None,
) -> None:
    """Issue 5's targets, read off the tables above."""
    print("\n## Targets (issue 5)\n")

    def secs(rows: list[Row], key: str) -> float | None:
        return next((r.seconds for r in rows if r.client.key == key), None)

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    if "latency" in results:
        scenario, rows = results["latency"]
        e8, a = secs(rows, "e8"), secs(rows, "a")
        if e8 is not None and scenario.latency > 0:
            ratio = e8 / bound(scenario, 8)
            print(
                f"- latency-bound, concurrency 8 vs the latency bound: {ratio:.2f}x "
                f"(target <= 1.2x): {verdict(ratio <= 1.2)}"
            )
        if e8 is not None and a is not None:
            print(
                f"- latency-bound, concurrency 8 vs (a): {a / e8:.1f}x faster "
                f"(target >= 7x): {verdict(a / e8 >= 7)}"
            )
        b8 = next((r for r in rows if r.client.key == "b8"), None)
        e8_row = next((r for r in rows if r.client.key == "e8"), None)
        if b8 is not None and e8_row is not None and scenario.latency > 0:
            per_page = (
                ""
                if e8_row.server_cpu is None
                else f"; the sandbox spent {e8_row.server_cpu / scenario.pages * 1000:.2f} ms "
                "of CPU per page, one request at a time on one core, which the bound leaves out"
            )
            print(
                f"  (reference: hand-written aiohttp with 8 in flight, (b8), is "
                f"{b8.seconds / bound(scenario, 8):.2f}x of the bound; concurrency 8 is "
                f"{e8_row.seconds / b8.seconds:.2f}x of (b8){per_page})"
            )
    if "cpu" in results:
        _, rows = results["cpu"]
        d, b, c = secs(rows, "d"), secs(rows, "b"), secs(rows, "c")
        if d is not None and b is not None:
            print(
                f"- CPU-bound, concurrency 1 vs (b): {d / b:.2f}x (target <= 1.5x): "
                f"{verdict(d / b <= 1.5)}"
            )
        if d is not None and c is not None:
            print(
                f"- CPU-bound, concurrency 1 vs (c): {d / c:.2f}x (target < 1x): {verdict(d < c)}"
            )
    if decode_table:
        ratio = decode_table["ours"] / decode_table["pydantic_best"]
        print(
            f"- decode, ours vs the fastest pydantic v2 path: {ratio:.2f}x "
            f"(target <= 1.5x): {verdict(ratio <= 1.5)}"
        )
    for n, peak in sorted(peaks.items()):
        print(
            f"- 100k-token walk, concurrency {n}: peak growth {peak / MB:.1f} MB "
            f"(target < 30 MB): {verdict(peak < 30 * MB)}"
        )


if __name__ == "__main__":
    sys.exit(main())
