"""``python -m cellcast_async.sandbox``: serve a sandbox until SIGTERM/SIGINT.

The same command as ``cellcast-tokens sandbox`` (same options), except that once
listening it prints exactly one line of JSON to stdout and flushes it:
``{"url": ..., "api_key": ..., "sub_account_ids": [...]}``. Nothing else is printed.
"""

from __future__ import annotations

import sys

from ..cli import sandbox_main as main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
