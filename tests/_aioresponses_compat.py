"""Let aioresponses 0.7.x build responses on aiohttp >= 3.14.

aiohttp 3.14 added a required ``stream_writer`` argument to ``ClientResponse``;
aioresponses (0.7.9, the newest) does not pass it. For a response that was
already "sent" aiohttp only reads ``stream_writer.output_size``, so a stand-in
with ``output_size = 0`` is all it needs. Remove once aioresponses passes it.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse

_NEEDS_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class _CompatClientResponse(ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


def install() -> None:
    if _NEEDS_WRITER:
        aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[attr-defined]
