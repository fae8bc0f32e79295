"""``cellcast-tokens``: the command line for Cellcast's sub-client API tokens.

    cellcast-tokens --sandbox audit                 # no account needed
    cellcast-tokens list --status inactive          # $CELLCAST_API_KEY
    cellcast-tokens audit --concurrency 8 --format csv --output tokens.csv
    cellcast-tokens diff last-week.csv today.jsonl  # exit 1 when something changed

It is built on click and rich, which come with the ``cli`` extra
(``pip install "cellcast-async[cli]"``); the SDK itself needs neither. Without them the
command says so in one line and exits 2. See README "Command line".
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Final, TextIO

__all__ = ["main", "sandbox_main"]

INSTALL_HINT: Final = (
    "cellcast-tokens needs the cli extra (click and rich): "
    "python -m pip install 'cellcast-async[cli]'"
)
EXIT_USAGE: Final = 2


def _run(entry: str, argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """Run ``_cli.<entry>``, or say in one line which extra brings click and rich."""
    try:
        cli = importlib.import_module("._cli", __package__)
    except ImportError as exc:
        if exc.name not in ("click", "rich") and not str(exc.name or "").startswith(
            ("click.", "rich.")
        ):
            raise
        err.write(INSTALL_HINT + "\n")
        return EXIT_USAGE
    code: int = getattr(cli, entry)(argv, out, err)
    return code


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit code (console scripts pass it to sys.exit)."""
    return _run("run", argv, stdout or sys.stdout, stderr or sys.stderr)


def sandbox_main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``python -m cellcast_async.sandbox``: ``cellcast-tokens sandbox``, announcing in JSON."""
    return _run("run_sandbox", argv, stdout or sys.stdout, stderr or sys.stderr)
