"""benchmarks/ratelimit.py --quick still runs every section end to end (nothing here is timed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .._subprocess import run_python

SCRIPT = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "ratelimit.py"


def first_cells(stdout: str) -> list[str]:
    """The first cell of every table row that is not a header or a rule."""
    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    headers = ("| limiter", "| ---", "| calls", "| wall", "| run")
    return [row.split("|")[1].strip() for row in rows if not row.startswith(headers)]


@pytest.mark.soak  # the benchmark's --quick run takes about 11 s
def test_quick_run_prints_every_section() -> None:
    """--quick: the grid (two limiters), a variant, the storm, the challenge, the Redis pair
    and the no-limit walk; every walk read every token (the script exits non-zero if not)."""
    done = run_python(str(SCRIPT), "--quick")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    cells = first_cells(out)
    grid = ["token bucket, burst = R", "sliding 1-second log"]
    # The grid's two tables, the variant, the storm (100 calls), the challenge's wall.
    assert cells[:6] == [*grid, *grid, "fixed 1-second window", "100"]
    assert re.fullmatch(r"\d+\.\d\d s|cut off after 3 s", cells[6]), cells[6]
    rest = ["no store", "shared Redis store"] if shutil.which("redis-server") else []
    assert cells[7:] == [*rest, "fixed 8", "auto"]
    assert "| limiter | c4 | auto | pacer | auto: target |" in out
    assert "R = 200/s: 20 pages of 10" in out
    assert "auto / fixed 8 = " in out
