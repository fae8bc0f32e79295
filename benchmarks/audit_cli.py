"""Side-by-side: ``cellcast-tokens audit`` to JSON Lines against a plain SDK script that
walks and writes the same records, and against the walk alone (issue 20).

    python benchmarks/audit_cli.py [--tokens 100000] [--latency 0.02] [--runs 5]

A sandbox process serves ``--tokens`` tokens, sleeping ``--latency`` on every request.
Each command then runs as a whole process (start-up and imports included), in turns
(A B C A B C ...) so a drifting machine hits them alike, ``--runs`` times after one
warm-up:

    audit   cellcast-tokens audit --format jsonl --output FILE (the report to /dev/null)
    script  a plain SDK script: cc.tokens.list(limit=100, concurrency="auto"), one JSON
            line per token with the audit record's fields
    walk    the same walk, writing nothing

It prints each command's median and best wall time and the ratios audit/script and
audit/walk, median of the per-round ratios. The target: audit/script within 1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2025-07-16T00:00:00Z"

# The plain script a user would write: the SDK, json, and a file. Same fields as the
# audit's records (benchmarks compare like with like).
SCRIPT = """
import asyncio, json, sys
from datetime import datetime, timedelta, timezone
from cellcast_async import CellcastSession

async def main(url, key, out, write):
    now = datetime(2025, 7, 16, tzinfo=timezone.utc)
    stale = timedelta(days=365)
    n = 0
    async with CellcastSession(api_key=key, base_url=url) as cc:
        with open(out, "w", encoding="utf-8") as f:
            async for t in cc.tokens.list(limit=100, concurrency="auto"):
                n += 1
                if not write:
                    continue
                age = now - t.created_at
                sub = t.sub_account
                f.write(json.dumps({
                    "id": t.id, "name": t.name, "status": str(t.status),
                    "sub_account_id": t.sub_account_id or "",
                    "sub_account_name": (sub.name if sub and sub.name else "") or "",
                    "created_at": t.created_at.isoformat(),
                    "age_days": max(0, age.days), "stale": age > stale,
                    "token": t.token.masked,
                }, ensure_ascii=False) + "\\n")
    print(n)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "write"))
"""


def start_sandbox(tokens: int, latency: float) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "cellcast_async.sandbox", "--port", "0"),
            *("--tokens", str(tokens), "--latency", str(latency)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    return process, info["url"], info["api_key"]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    process, url, key = start_sandbox(args.tokens, args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp, "plain.py")
            script.write_text(SCRIPT, encoding="utf-8")
            out = str(Path(tmp, "out.jsonl"))
            cli = [sys.executable, "-m", "cellcast_async"]
            commands = {
                "audit": [
                    *(*cli, "audit", "--api-key", key, "--base-url", url),
                    *("--format", "jsonl", "--output", out, "--as-of", AS_OF),
                ],
                "script": [sys.executable, str(script), url, key, out, "write"],
                "walk": [sys.executable, str(script), url, key, os.devnull, "walk"],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for round_ in range(args.runs + 1):
                for name, argv in commands.items():
                    took = timed(argv)
                    if round_:  # the first round warms the caches up
                        times[name].append(took)
            with open(out, encoding="utf-8") as records:
                assert sum(1 for _ in records) == args.tokens
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(
        f"audit of {args.tokens:,} tokens to JSON Lines, {args.latency * 1000:.0f} ms per"
        f" request, {args.runs} runs each (whole processes, start-up included)\n"
    )
    print(f"{'command':<8} {'median s':>9} {'best s':>8} {'audit / this':>13}")
    for name, took in times.items():
        ratios = [a / b for a, b in zip(times["audit"], took, strict=True)]
        print(
            f"{name:<8} {statistics.median(took):>9.2f} {min(took):>8.2f}"
            f" {statistics.median(ratios):>13.2f}"
        )
    ratio = statistics.median(a / b for a, b in zip(times["audit"], times["script"], strict=True))
    verdict = "met" if ratio <= 1.3 else "MISSED"
    print(f"\ntarget: audit within 1.3x of the plain script: {ratio:.2f}x, {verdict}")


if __name__ == "__main__":
    main()
