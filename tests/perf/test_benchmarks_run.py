"""benchmarks/ still runs end to end (tiny sizes; nothing here is timed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .._subprocess import run_python

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "benchmarks"

# The bench extra: skipped where only the test extra is installed (as in .ci/run).
pytest.importorskip("httpx")
pytest.importorskip("pydantic")
pytest.importorskip("requests")


def run(script: str, *args: str) -> str:
    done = run_python(str(BENCHMARKS / script), *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


class TestBenchmarksRun:
    """Both scripts finish, every client reads every token, and the tables print."""

    def test_audit(self) -> None:
        out = run(
            "audit.py",
            "--pages", "3",
            "--page-size", "7",
            "--latency", "0.001",
            "--repeats", "1",
            "--memory-tokens", "60",
            "--no-decode",
        )  # fmt: skip

        for heading in ("## Latency-bound", "## CPU-bound", "## Memory", "## Targets"):
            assert heading in out
        for client in ("(a) ", "(b) ", "(c) ", "(b8) ", "(d) ", "(e) "):
            assert out.count(f"| {client}") == (4 if client == "(e) " else 2)

    def test_decode(self) -> None:
        out = run("decode.py", "--page-size", "5", "--rounds", "1")

        assert "| cellcast_async (json.loads + converter) |" in out
        assert "ours / fastest pydantic v2 path" in out
