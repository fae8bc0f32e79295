"""benchmarks/diff_memory.py still runs end to end (tiny sizes; nothing here is timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .._subprocess import run_python

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "benchmarks"


@pytest.mark.soak  # two diffs of a generated pair of audits, about 6 s
def test_diff_memory_runs_and_both_find_the_same_changes() -> None:
    done = run_python(str(BENCHMARKS / "diff_memory.py"), "--records", "500")
    assert done.returncode == 0, done.stderr
    rows = {line.split("  ")[0]: line.split() for line in done.stdout.splitlines()}
    assert rows["JSONL with itself"][-1] == "0"
    assert rows["CSV with itself"][-1] == "0"
    assert rows["CSV -> JSONL, 4% changed"][-1] == "20"  # 5 + 5 + 5 + 5 of 500
