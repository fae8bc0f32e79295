"""A sandbox served from a background thread's own event loop.

For tests whose client side runs its own loop (``cli.main`` calls ``asyncio.run``) or
must not share one with the server (cancellation, timing).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from cellcast_async.sandbox import Sandbox

T = TypeVar("T")
S = TypeVar("S", bound="ThreadedSandbox")


class ThreadedSandbox:
    """A :class:`Sandbox` (``.sb``) running on its own thread until :meth:`close`."""

    def __init__(self, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> Sandbox:
            sandbox = Sandbox(**kwargs)
            await sandbox.start()
            return sandbox

        self.sb = self.run(start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the sandbox's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the sandbox's thread, so it never races a request handler."""

        async def call() -> T:
            return fn()

        return self.run(call())

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.run(self.sb.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
