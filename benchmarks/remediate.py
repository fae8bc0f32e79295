"""``apply`` of many deactivations against the sandbox, beside the one-process-per-token loop.

    python benchmarks/remediate.py                    # 2,000 deactivations, about 5 minutes
    python benchmarks/remediate.py --tokens 200 --xargs-sample 20     # a quick look

The sandbox runs in its own process (``python -m cellcast_async.sandbox``, as in
``ratelimit.py``). A plan of exactly ``--tokens`` deactivations is made with the SDK
(``build_plan``, the oldest active tokens first), then, in one run, on fresh copies of the
same data:

- **apply (default rate)**: ``cellcast-tokens apply plan.json --journal J --yes`` at the
  default write rate (``DEFAULT_WRITE_RATE``): wall time against the write-rate bound,
  ``(tokens - burst) / rate`` seconds;
- **apply (unthrottled)**: the same with ``--write-rate 100000``: what the engine itself
  costs per token (a read, two fsynced journal lines and a write);
- **xargs loop**: ``xargs -n1 cellcast-tokens update --status inactive`` as issue 18
  measured it, one process per token, timed on ``--xargs-sample`` tokens and extrapolated
  to ``--tokens`` (it is linear: one process after the other).

Wall times are of the whole command (process start-up included). Not a test: nothing here
is asserted; the README's "Acting on an audit" holds the latest run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ratelimit import ROOT, running

from cellcast_async import (
    DEFAULT_WRITE_BURST,
    DEFAULT_WRITE_RATE,
    CellcastSession,
    Plan,
    build_plan,
)


async def make_plan(url: str, api_key: str, tokens: int, path: Path) -> list[str]:
    """A plan of exactly ``tokens`` deactivations (the oldest active tokens); their ids."""
    async with CellcastSession(api_key=api_key, base_url=url) as cc:
        found = await cc.tokens.list(status="active", limit=100, concurrency=8).collect()
        newest = max(t.created_at for t in found)
        plan = build_plan(found, action="deactivate", stale_days=0, as_of=newest, account=cc)
        if len(plan.items) < tokens:
            raise SystemExit(f"only {len(plan.items)} active tokens; raise --sandbox-tokens")
        cut = Plan(
            account=plan.account,
            base_url=plan.base_url,
            as_of=plan.as_of,
            action=plan.action,
            selection=plan.selection,
            items=plan.items[:tokens],
        )
        cut.save(path, cc)
        return [item.id for item in cut.items]


def cli(url: str, api_key: str, *argv: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cellcast_async",
        "--api-key",
        api_key,
        "--base-url",
        url,
        "--quiet",
        *argv,
    ]


def timed(argv: list[str], **kwargs: object) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=False, **kwargs)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])}... exited {done.returncode}")
    return elapsed


def measure_apply(sandbox_tokens: int, tokens: int, rate: float | None, folder: Path) -> float:
    with running(tokens=sandbox_tokens) as server:
        plan = folder / f"plan-{rate}.json"
        asyncio.run(make_plan(server.url, server.api_key, tokens, plan))
        extra = [] if rate is None else ["--write-rate", str(rate)]
        journal = folder / f"apply-{rate}.journal"
        return timed(
            cli(
                server.url,
                server.api_key,
                "apply",
                str(plan),
                "--journal",
                str(journal),
                "--yes",
                *extra,
            )
        )


def measure_xargs(sandbox_tokens: int, tokens: int, sample: int, folder: Path) -> float:
    with running(tokens=sandbox_tokens) as server:
        ids = asyncio.run(make_plan(server.url, server.api_key, tokens, folder / "x.json"))
        argv = ["xargs", "-n1", *cli(server.url, server.api_key, "update", "--status", "inactive")]
        ids_text = "\n".join(ids[:sample]) + "\n"
        return timed(argv, input=ids_text.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument(
        "--sandbox-tokens",
        type=int,
        default=0,
        help="tokens the sandbox serves (default: 1.5 x --tokens / 0.8)",
    )
    parser.add_argument("--xargs-sample", type=int, default=100)
    args = parser.parse_args()
    tokens = args.tokens
    sandbox_tokens = args.sandbox_tokens or int(tokens * 1.5 / 0.8) + 100
    sample = min(args.xargs_sample, tokens)
    bound = (tokens - DEFAULT_WRITE_BURST) / DEFAULT_WRITE_RATE
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paced = measure_apply(sandbox_tokens, tokens, None, folder)
        free = measure_apply(sandbox_tokens, tokens, 100000.0, folder)
        loop_sample = measure_xargs(sandbox_tokens, tokens, sample, folder)
    loop = loop_sample / sample * tokens
    rows = [
        (f"apply, default --write-rate {DEFAULT_WRITE_RATE:g}/s", paced, ""),
        ("apply, --write-rate 100000 (engine cost)", free, ""),
        (
            "xargs -n1 update (one process a token)",
            loop,
            f"timed on {sample}, x{tokens / sample:g}",
        ),
    ]
    print(
        f"{tokens:,} deactivations; write-rate bound {bound:.1f} s"
        f" (({tokens:,} - burst {DEFAULT_WRITE_BURST}) / {DEFAULT_WRITE_RATE:g}/s)\n"
    )
    heads = ("wall s", "s/token", "vs bound", "vs apply")
    print(f"| {'command':<44} | " + " | ".join(f"{h:>8}" for h in heads) + " | note")
    print(f"| {'-' * 44} | {'-' * 8}: | {'-' * 8}: | {'-' * 8}: | {'-' * 8}: | ---")
    for name, wall, note in rows:
        print(
            f"| {name:<44} | {wall:8.1f} | {wall / tokens:8.4f} | {wall / bound:8.2f} |"
            f" {wall / paced:8.2f} | {note}"
        )


if __name__ == "__main__":
    main()
