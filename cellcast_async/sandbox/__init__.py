"""A faithful local Cellcast token API (aiohttp.web on 127.0.0.1), for tests and benchmarks.

    async with Sandbox(seed=0, tokens=300) as sb:
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
            ...

Run one from a shell with ``python -m cellcast_async.sandbox --port 0``.
"""

from typing import TYPE_CHECKING, Any

from ._faults import Faults

if TYPE_CHECKING:
    from ._server import RecordedHeaders, RecordedRequest, Sandbox, serve

__all__ = ["Faults", "RecordedHeaders", "RecordedRequest", "Sandbox", "serve"]


def __getattr__(name: str) -> Any:
    """The server's names, imported on first use: aiohttp.web is not free, and the
    command line reads only the fault and limiter names here to build its options."""
    if name in ("RecordedHeaders", "RecordedRequest", "Sandbox", "serve"):
        from . import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
