"""What a call's and a page's tracing costs, with and without OpenTelemetry (issue 9).

    python benchmarks/tracing.py [--calls 200000] [--rounds 7] [--sandbox-calls 2000]

Times, in nanoseconds, what the request pipeline does around one call
(``with tracing.call(...) as span: span.attempt(...); span.set_result(...)``) and for one
page of a walk (``walk.page(...)``), against the same loop with no tracing code at all:

- **off**: ``Tracing(enabled=False)``, the very path taken when ``opentelemetry-api`` is
  not installed (the shared no-op span; nothing of OpenTelemetry is imported);
- **api, no SDK**: OpenTelemetry installed, no provider configured (the global proxy
  hands out non-recording spans): what a user pays who has the API only because another
  package pulled it in;
- **SDK, recording**: a real ``TracerProvider`` with a ``SimpleSpanProcessor`` into the
  in-memory exporter, every span sampled and kept.

Then one real ``cc.tokens.get`` against the embedded sandbox on 127.0.0.1 (best of three
rounds of ``--sandbox-calls``), so each overhead prints as a ratio of a whole call: the
cheapest call a user can make, on loopback with no latency. Each figure is the best of
``--rounds`` rounds; the variants take turns in each round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable

from cellcast_async import CellcastSession
from cellcast_async._tracing import Tracing, otel_available
from cellcast_async.sandbox import Sandbox

PATH = "/api/v1/apiClient/token/6877b1234567890abcdef123"


def call_loop(tracing: Tracing | None, calls: int) -> Callable[[], None]:
    def with_tracing() -> None:
        assert tracing is not None
        for _ in range(calls):
            with tracing.call("tokens.get", "GET", PATH) as span:
                span.attempt(status=200, retry=False)
                span.set_result(200)

    def bare() -> None:
        for _ in range(calls):
            pass

    return bare if tracing is None else with_tracing


def page_loop(tracing: Tracing | None, calls: int) -> Callable[[], None]:
    def with_tracing() -> None:
        assert tracing is not None
        walk = tracing.walk("tokens.list", PATH)
        for number in range(calls):
            walk.page(number=number, items=100, total=None)
        walk.end()

    def bare() -> None:
        for _ in range(calls):
            pass

    return bare if tracing is None else with_tracing


def best_ns(loops: dict[str, Callable[[], None]], calls: int, rounds: int) -> dict[str, float]:
    """Best nanoseconds per iteration of each loop over ``rounds`` interleaved rounds."""
    best = dict.fromkeys(loops, float("inf"))
    gc.collect()
    gc.disable()  # a collection landing in one variant's round is noise, not its cost
    try:
        for _ in range(rounds):
            for name, loop in loops.items():
                start = time.perf_counter_ns()
                loop()
                best[name] = min(best[name], (time.perf_counter_ns() - start) / calls)
    finally:
        gc.enable()
    return best


async def sandbox_get_ns(calls: int) -> float:
    """Best nanoseconds for one ``cc.tokens.get`` on loopback (three rounds)."""
    sandbox = Sandbox(tokens=10)
    async with sandbox, CellcastSession(api_key=sandbox.api_key, base_url=sandbox.url) as cc:
        token_id = (await cc.tokens.list(limit=1)).items[0].id
        for _ in range(min(calls, 50)):  # warm the pool and the code paths
            await cc.tokens.get(token_id)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter_ns()
            for _ in range(calls):
                await cc.tokens.get(token_id)
            best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def variants() -> dict[str, Tracing | None]:
    found: dict[str, Tracing | None] = {
        "none": None,
        "off": Tracing(enabled=False),
    }
    if otel_available():
        found["api, no SDK"] = Tracing()  # the global provider: none configured here
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
        except ImportError:
            pass
        else:
            provider = TracerProvider()
            exporter = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            found["SDK, recording"] = Tracing(provider)
    return found


LABELS = {
    "none": "no tracing code (the loop alone)",
    "off": "Tracing off / opentelemetry not installed",
    "api, no SDK": "opentelemetry-api, no SDK configured",
    "SDK, recording": "opentelemetry-sdk, every span recorded",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sandbox-calls", type=int, default=2000)
    args = parser.parse_args(argv)

    tracings = variants()
    # The recording SDK keeps every span in memory: fewer of them, same per-span figure.
    sdk_calls = max(1, args.calls // 10)
    call_ns: dict[str, float] = {}
    page_ns: dict[str, float] = {}
    for name, tracing in tracings.items():
        calls = sdk_calls if name == "SDK, recording" else args.calls
        loops = {
            "call": call_loop(tracing, calls),
            "page": page_loop(tracing, calls),
        }
        measured = best_ns(loops, calls, args.rounds)
        call_ns[name], page_ns[name] = measured["call"], measured["page"]
    get_ns = asyncio.run(sandbox_get_ns(args.sandbox_calls))

    print(
        f"Python {sys.version.split()[0]}; opentelemetry installed: {otel_available()}; "
        f"best of {args.rounds} rounds of {args.calls:,} iterations"
    )
    print(f"One cc.tokens.get on loopback (the whole call, for scale): {get_ns / 1000:,.1f} µs")
    print()
    print("## Per call and per page")
    print()
    print("| tracing | ns per call | added per call | added / one get | ns per page event |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in tracings:
        added = max(call_ns[name] - call_ns["none"], 0.0)
        page_added = max(page_ns[name] - page_ns["none"], 0.0)
        ratio = "-" if name == "none" else f"{added / get_ns:.4%}"
        print(
            f"| {LABELS[name]} | {call_ns[name]:,.0f} | {added:,.0f} | {ratio}"
            f" | {page_added:,.0f} |"
        )
    off = max(call_ns["off"] - call_ns["none"], 0.0)
    print()
    print(
        f"Tracing off adds {off:,.0f} ns to a call: {off / get_ns:.4%} of the cheapest call"
        f" ({get_ns / max(off, 1.0):,.0f}x less than the call itself)."
    )


if __name__ == "__main__":
    main()
