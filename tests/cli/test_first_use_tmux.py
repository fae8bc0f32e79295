"""Issue 20's rough edges on a real terminal: tmux runs the command in a pane of a
given size, types into it (``send-keys``) and reads the screen back (``capture-pane``).

Each test has its own tmux server (``-L``, a socket of its own) and kills only it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import ROOT, cli_env

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

# The demo data's newest token (seed 0): --sandbox serves the same ids every run.
FIRST_ID = "68759e30f72f3b78aeb36004"


class Pane:
    """One tmux server with one pane running ``command`` at ``width`` columns."""

    def __init__(self, command: str, width: int, height: int = 40) -> None:
        self.socket = f"cc-first-use-{uuid.uuid4().hex[:12]}"
        env = cli_env()
        env.pop("COLUMNS", None)
        env.pop("LINES", None)
        exports = " ".join(
            f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("PATH", "PYTHONPATH", "HOME")
        )
        script = f"cd {shlex.quote(str(ROOT))} && env {exports} {command}; echo exit=$?; sleep 60"
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), script)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
            env={**os.environ, "TMUX": ""},
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed; the screen:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def panes() -> Iterator[list[Pane]]:
    made: list[Pane] = []
    yield made
    for pane in made:
        pane.close()


def cli(*argv: str) -> str:
    return shlex.join([sys.executable, "-m", "cellcast_async", *argv])


def test_narrow_terminal_keeps_what_identifies_a_token(panes: list[Pane]) -> None:
    pane = Pane(cli("--sandbox", "-q", "list", "--max-items", "10"), width=60, height=60)
    panes.append(pane)
    screen = pane.wait_for("exit=0")
    lines = [line for line in screen.splitlines() if line.strip()]
    header = next(line for line in lines if line.startswith("ID"))
    assert header.split() == ["ID", "NAME", "SUB-ACCOUNT"]
    assert any(line.startswith(FIRST_ID) for line in lines)
    assert "****" not in screen  # the masked token is what gave way
    assert "10 token(s)" in screen


@pytest.mark.parametrize(
    ("answer", "after"),
    [("y", "Deleted token"), pytest.param("n", "Not deleted.", marks=pytest.mark.soak)],
)  # "n" in process: test_first_use.py
def test_delete_asks_on_a_terminal(panes: list[Pane], answer: str, after: str) -> None:
    pane = Pane(cli("--sandbox", "-q", "delete", FIRST_ID), width=100)
    panes.append(pane)
    pane.wait_for(f"Delete token {FIRST_ID} for good? [y/N]")
    pane.tmux("send-keys", answer, "Enter")
    screen = pane.wait_for("exit=")
    assert after in screen
    assert ("exit=0" if answer == "y" else "exit=1") in screen


@pytest.mark.soak  # the same recipe in process: test_first_use.py
def test_readme_recipe_is_quiet_on_a_terminal(panes: list[Pane], tmp_path: Path) -> None:
    """The nightly recipe, by hand on a terminal: nothing on the screen but our marker."""
    today = tmp_path / "today.jsonl"
    command = (
        f"{cli('--sandbox', 'audit', '--output', str(today), '--quiet')} && "
        f"{cli('diff', '--missing-ok', str(tmp_path / 'yesterday.jsonl'), str(today))}"
    )
    pane = Pane(command, width=120)
    panes.append(pane)
    screen = pane.wait_for("exit=")
    lines = [line for line in screen.splitlines() if line.strip()]
    assert lines == [
        f"{tmp_path / 'yesterday.jsonl'} does not exist: first run, nothing compared",
        "exit=0",
    ]
