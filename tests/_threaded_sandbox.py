"""A sandbox served from a background thread's own event loop.

For tests whose client side runs its own loop (``cli.main`` calls ``asyncio.run``) or
must not share one with the server (cancellation, timing).
"""

from __future__ import annotations

from typing import Any

from cellcast_async.sandbox import Sandbox

from ._servers import BackgroundLoop


class ThreadedSandbox(BackgroundLoop):
    """A :class:`Sandbox` (``.sb``) running on its own thread until :meth:`close`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()

        async def start() -> Sandbox:
            sandbox = Sandbox(**kwargs)
            await sandbox.start()
            return sandbox

        self.sb = self.run(start())

    async def _stop(self) -> None:
        await self.sb.stop()
