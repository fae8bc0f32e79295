"""The bottom of the command line: exit codes, the usage error, the run's settings and
its connection. Every other module of ``_cli`` may import this one; it imports none of
them (README "Design").
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, TextIO

import attrs

from .._session import CellcastSession

if TYPE_CHECKING:
    from ..sandbox import Sandbox

__all__ = [
    "EXIT_API",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliUsageError",
    "Connection",
    "Settings",
    "open_connection",
    "session_kwargs",
]

EXIT_OK: Final = 0
EXIT_API: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130


class CliUsageError(Exception):
    """A mistake in how the command was called, found after parsing: exit code 2."""


@attrs.define
class Settings:
    """The run's streams and its global options, shared by the group and its commands."""

    # The streams of the moment by default: CliRunner swaps sys.stdout before the group runs.
    out: TextIO = attrs.field(factory=lambda: sys.stdout)
    err: TextIO = attrs.field(factory=lambda: sys.stderr)
    # repr=False: the raw arguments and the key never show in a repr (README, secrets).
    argv: tuple[str, ...] = attrs.field(default=(), repr=False)
    api_key: str | None = attrs.field(default=None, repr=False)
    base_url: str | None = None
    sandbox: bool = False
    json: bool = False
    debug: bool = False
    quiet: bool = False
    timeout: float = 30.0
    max_retries: int = 2
    rate_limit: float | None = None
    rate_store: str | None = attrs.field(default=None, repr=False)  # may hold a password
    announce_json: bool = False
    """The sandbox's announcement as one JSON line even without --json (python -m)."""

    @property
    def json_errors(self) -> bool:
        # A usage error can stop parsing before --json is processed; the raw words still say.
        return self.json or "--json" in self.argv


def session_kwargs(settings: Settings) -> dict[str, Any]:
    """CellcastSession's keyword arguments from the global options: the one place."""
    return {
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
        "rate_limit": settings.rate_limit,
        "rate_store": settings.rate_store,
    }


@attrs.define
class Connection:
    """An open session, and the embedded sandbox behind it with ``--sandbox``."""

    cc: CellcastSession
    sandbox: Sandbox | None = None  # imported only with --sandbox: aiohttp.web is not free

    def default_as_of(self) -> datetime:
        """Now, or the demo data's own reference time, so a demo report never drifts."""
        if self.sandbox is not None:
            return self.sandbox.reference_time
        return datetime.now(timezone.utc)


@contextlib.asynccontextmanager
async def open_connection(settings: Settings) -> AsyncIterator[Connection]:
    """The session every API command runs on, against the real API or ``--sandbox``."""
    async with contextlib.AsyncExitStack() as stack:
        api_key, base_url, sandbox = settings.api_key, settings.base_url, None
        if settings.sandbox:
            if settings.base_url is not None or settings.api_key is not None:
                raise CliUsageError(
                    "--sandbox serves its own API and key: drop --base-url and --api-key"
                )
            from ..sandbox import Sandbox

            sandbox = await stack.enter_async_context(Sandbox(seed=0))
            if not settings.quiet:
                ids = ", ".join(sandbox.sub_account_ids)
                settings.err.write(f"sandbox: demo data at {sandbox.url}; sub-accounts {ids}\n")
            api_key, base_url = sandbox.api_key, sandbox.url
        elif api_key is None and os.environ.get("CELLCAST_API_KEY") is None:
            raise CliUsageError("no API key: pass --api-key or set $CELLCAST_API_KEY")
        cc = await stack.enter_async_context(
            CellcastSession(api_key=api_key, base_url=base_url, **session_kwargs(settings))
        )
        yield Connection(cc=cc, sandbox=sandbox)
