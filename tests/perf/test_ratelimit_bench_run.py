"""benchmarks/ratelimit.py still runs end to end (tiny sizes; nothing here is timed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "ratelimit.py"


def test_tiny_run_prints_every_row() -> None:
    """10 pages: one fixed level, auto, the two-process rows; every row, every token read."""
    args = ["--pages=10", "--rate-limit=200", "--levels=2", "--governed=", "--latency=0.001"]
    args.append("--no-unlimited")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows if not row.startswith(("| run", "| ---"))]
    expected = ["fixed 2", "auto", "auto + rate_limit=200"]
    if shutil.which("redis-server"):
        expected += [
            "2 processes, auto + rate_limit=200 each, no store",
            "2 processes, auto + rate_limit=200 each, shared Redis store",
        ]
    assert names == expected
    assert "(100 tokens) per walk" in done.stdout
