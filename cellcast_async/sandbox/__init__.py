"""A faithful local Cellcast token API (aiohttp.web on 127.0.0.1), for tests and benchmarks.

    async with Sandbox(seed=0, tokens=300) as sb:
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
            ...

Run one from a shell with ``python -m cellcast_async.sandbox --port 0``.
"""

from ._faults import Faults
from ._server import RecordedHeaders, RecordedRequest, Sandbox, serve

__all__ = ["Faults", "RecordedHeaders", "RecordedRequest", "Sandbox", "serve"]
