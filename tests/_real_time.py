"""A session on the real clock, for the few tests that measure what a server saw.

The suite's autouse ``fake_sleep`` (tests/conftest.py) moves a fake clock instead of
waiting; a rate limit or a pause that the sandbox must observe needs the real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cellcast_async import CellcastSession
from cellcast_async.sandbox import Sandbox


def real_time_session(sb: Sandbox, **kwargs: Any) -> CellcastSession:
    """A session on ``sb`` that really waits: ``time.monotonic`` and ``asyncio.sleep``."""
    return CellcastSession(
        api_key=sb.api_key, base_url=sb.url, clock=time.monotonic, sleep=asyncio.sleep, **kwargs
    )
