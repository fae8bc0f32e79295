"""Run ``cellcast-tokens`` with its stdout and stderr on pseudo-terminals, as a person sees it.

A ``StringIO`` is not a terminal: rich then writes no styles and no hyperlinks, so markup
read from a token's name would go unseen. On a pty rich writes what it would write to a
real terminal, and the test reads every byte. Bounded in time: the child is killed after
``timeout`` seconds.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PtyRun:
    """One run: its exit code and the bytes each terminal received (``\\r\\n`` -> ``\\n``)."""

    code: int
    out: str
    err: str


def run_on_pty(*argv: str, timeout: float = 60.0, columns: int = 250) -> PtyRun:
    """``python -m cellcast_async *argv`` with stdout and stderr each on its own pty."""
    out_master, out_slave = os.openpty()
    err_master, err_slave = os.openpty()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TERM": "xterm-256color",
        "COLUMNS": str(columns),
        "LINES": "50",
        "PYTHONIOENCODING": "utf-8",
    }
    for name in ("NO_COLOR", "CELLCAST_API_KEY", "CELLCAST_BASE_URL", "TERM_PROGRAM"):
        env.pop(name, None)
    env["FORCE_COLOR"] = "1"
    child = subprocess.Popen(
        [sys.executable, "-m", "cellcast_async", *argv],
        stdin=subprocess.DEVNULL,
        stdout=out_slave,
        stderr=err_slave,
        env=env,
        cwd=ROOT,
        close_fds=True,
    )
    os.close(out_slave)
    os.close(err_slave)
    chunks: dict[int, list[bytes]] = {out_master: [], err_master: []}
    open_fds = {out_master, err_master}
    deadline = time.monotonic() + timeout
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                child.kill()
                raise TimeoutError(f"cellcast-tokens {' '.join(argv)} ran past {timeout} s")
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 1.0))
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed its end
                    data = b""
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.discard(fd)
        code = child.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(out_master)
        os.close(err_master)

    def text(fd: int) -> str:
        return b"".join(chunks[fd]).decode("utf-8", "replace").replace("\r\n", "\n")

    return PtyRun(code, text(out_master), text(err_master))
