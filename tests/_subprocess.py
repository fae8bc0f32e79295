"""A fresh Python for what only another process can show (an installed-looking import,
a script's whole run, a user's own pytest), bounded in time.

Always this interpreter (``sys.executable``), its output as text, never raising on a
non-zero exit: each test asserts the exit code it expects.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_python"]


def run_python(
    *args: str,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python *args`` (``"-c", code``, ``"-m", module``, a script's path, ...)."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
