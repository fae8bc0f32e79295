"""Regenerate docs/guide/audit-html.png: ``audit --html``'s page of a 20,000-token sandbox.

A sandbox of 20,000 tokens in 6 sub-accounts serves the demo data; the audit writes its
page as of the demo's own reference time (so the picture stays put from one run to the
next), and headless Chromium photographs the top 1280x3000 pixels of it.

    python scripts/audit_html_screenshot.py      # needs chromium and the cli, report extras
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "guide" / "audit-html.png"
TOKENS, SUB_ACCOUNTS = 20_000, 6
AS_OF = "2025-07-16T00:00:00Z"  # the sandbox's reference time
WINDOW = "1280,3000"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
)


def main() -> int:
    browser = shutil.which("chromium")
    if browser is None:
        print("audit_html_screenshot: chromium is not installed", file=sys.stderr)
        return 2
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "cellcast_async.sandbox", "--port", "0"),
            *("--tokens", str(TOKENS), "--sub-accounts", str(SUB_ACCOUNTS)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        announced = json.loads(server.stdout.readline())
        env = {
            **os.environ,
            "CELLCAST_API_KEY": announced["api_key"],
            "CELLCAST_BASE_URL": announced["url"],
        }
        with tempfile.TemporaryDirectory() as work:
            page = Path(work) / "report.html"
            subprocess.run(
                [
                    *(sys.executable, "-m", "cellcast_async", "--quiet", "audit"),
                    *("--as-of", AS_OF, "--html", str(page)),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                env=env,
            )
            subprocess.run(
                [
                    *(browser, *CHROMIUM_FLAGS, f"--user-data-dir={work}/profile"),
                    *(f"--screenshot={OUT}", f"--window-size={WINDOW}", page.as_uri()),
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "HOME": work},
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
