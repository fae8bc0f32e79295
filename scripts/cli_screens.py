"""Regenerate docs/cli-screens.md: ``cellcast-tokens audit`` as a person sees it.

A sandbox with latency runs in its own process; the audit runs in a real terminal
(tmux, 100x30) against it. The screen is captured mid-walk and at the end, and both
captures are written as text, with the whole report from the terminal's scrollback.

    python scripts/cli_screens.py            # needs tmux and the cli extra

The sandbox's key goes to the terminal through the environment ($CELLCAST_API_KEY),
so no key appears on the screen or in the document.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from cellcast_async.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli-screens.md"
SESSION = f"cellcast-screens-{os.getpid()}"
WIDTH, HEIGHT = 100, 30
TOKENS, LATENCY, PAGE_SIZE, CONCURRENCY = 20_000, 0.05, 100, 2
MID_WALK_AFTER = 2.5  # seconds: the walk takes about 6


def tmux(*args: str) -> str:
    # A server of our own (-L): nothing of another tmux user's is touched or inherited.
    done = subprocess.run(
        ["tmux", "-L", SESSION, *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def screen(*, history: bool = False) -> str:
    args = ["capture-pane", "-p", "-t", SESSION]
    if history:
        args += ["-S", "-"]
    lines = [line.rstrip() for line in tmux(*args).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def main() -> int:
    if shutil.which("tmux") is None:
        print("cli_screens: tmux is not installed", file=sys.stderr)
        return 2
    as_of = Sandbox(seed=0).reference_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "cellcast_async.sandbox", "--port", "0"),
            *("--tokens", str(TOKENS), "--latency", str(LATENCY)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    try:
        info = json.loads(server.stdout.readline())
        bin_dir = str(Path(sys.executable).parent)
        env = {
            "CELLCAST_API_KEY": info["api_key"],
            "CELLCAST_BASE_URL": info["url"],
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "PS1": "$ ",
            "TERM": "xterm-256color",
        }
        assignments = [shlex.quote(f"{key}={value}") for key, value in env.items()]
        shell = " ".join(["env", *assignments, "bash", "--norc", "--noprofile"])
        tmux(
            "-f", "/dev/null",
            "new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT), shell,
        )  # fmt: skip
        try:
            command = (
                f"cellcast-tokens audit --as-of {as_of} "
                f"--page-size {PAGE_SIZE} --concurrency {CONCURRENCY}"
            )
            time.sleep(0.3)
            tmux("send-keys", "-t", SESSION, "clear", "Enter")
            time.sleep(0.3)
            tmux("send-keys", "-t", SESSION, command, "Enter")
            started = time.monotonic()
            time.sleep(MID_WALK_AFTER)
            mid = screen()
            while time.monotonic() - started < 120:
                time.sleep(0.5)
                if screen().splitlines()[-1:] == ["$"]:
                    break
            end, whole = screen(), screen(history=True)
        finally:
            tmux("kill-server")
    finally:
        server.terminate()
        server.wait(timeout=10)

    OUT.write_text(
        f"""# `cellcast-tokens audit` in a terminal

What an operator sees in a real terminal ({WIDTH}x{HEIGHT}, tmux) running

```bash
{command}
```

against a sandbox of {TOKENS:,} tokens that answers each request after
{LATENCY * 1000:.0f} ms (`python -m cellcast_async.sandbox --tokens {TOKENS} --latency
{LATENCY}`), its key and URL in `$CELLCAST_API_KEY` and `$CELLCAST_BASE_URL`. `--as-of` is
the demo data's own reference time, so the ages stay put from one run to the next.
Regenerate with `python scripts/cli_screens.py` (needs tmux; last run
{datetime.now().strftime("%Y-%m-%d")}).

## Mid-walk

The progress bar on stderr: tokens so far of the total, the rate, the time elapsed and
the time left.

```text
{mid}
```

## At the end

The last screen of the report: the bar's final state scrolled away above it.

```text
{end}
```

## The whole report (the terminal's scrollback)

```text
{whole}
```
""",
        encoding="utf-8",
    )
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
