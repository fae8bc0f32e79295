"""A tiny fake Redis on 127.0.0.1 that speaks RESP2 and answers every script call with
the bytes under test (README "Rate limits": anything read from Redis is untrusted).

It understands just enough for redis-py's asyncio client: ``CLIENT``/``SELECT``/``AUTH``
answer ``+OK``, ``PING`` ``+PONG``, ``SCRIPT LOAD`` a SHA, and ``EVALSHA``/``EVAL`` get
``reply``. Every connection and the server itself are bounded in time, so a test that
forgets to stop it cannot hang the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

_LIFETIME = 30.0  # seconds a server lives at most
_SHA = b"0" * 40


def bulk(text: str) -> bytes:
    """A RESP bulk string."""
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def array(*items: bytes) -> bytes:
    """A RESP array of already-encoded items."""
    return b"*%d\r\n" % len(items) + b"".join(items)


class FakeRedis:
    """``async with FakeRedis(reply) as fake``: ``fake.url`` for ``rate_store=``."""

    def __init__(self, reply: bytes, *, lifetime: float = _LIFETIME) -> None:
        self.reply = reply
        self.lifetime = lifetime
        self.commands: list[list[bytes]] = []
        self._server: asyncio.Server | None = None
        self._stopper: asyncio.TimerHandle | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def script_calls(self) -> int:
        return sum(1 for c in self.commands if c and c[0].upper() in (b"EVALSHA", b"EVAL"))

    async def __aenter__(self) -> FakeRedis:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._stopper = asyncio.get_running_loop().call_later(self.lifetime, self._server.close)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stopper is not None:
            self._stopper.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._converse(reader, writer), self.lifetime)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            command = await self._read_command(reader)
            if command is None:
                return
            self.commands.append(command)
            writer.write(self._answer(command))
            await writer.drain()

    async def _read_command(self, reader: asyncio.StreamReader) -> list[bytes] | None:
        head = await reader.readline()
        if not head:
            return None
        if not head.startswith(b"*"):
            return [head.strip()]  # an inline command
        parts = []
        for _ in range(int(head[1:])):
            size = int((await reader.readline())[1:])
            parts.append((await reader.readexactly(size + 2))[:-2])
        return parts

    def _answer(self, command: list[bytes]) -> bytes:
        name = command[0].upper() if command else b""
        if name in (b"EVALSHA", b"EVAL"):
            return self.reply
        if name == b"SCRIPT":
            return bulk(_SHA.decode())
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"HELLO":
            return b"-ERR unknown command 'HELLO'\r\n"
        return b"+OK\r\n"
