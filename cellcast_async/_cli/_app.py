"""The ``cellcast-tokens`` group: global options, the session, and one error policy.

Global options work before or after the command's name (``--json list`` and
``list --json``): the group and every command carry them, and a command's copy only
counts when it was given (README "Command line").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar

import attrs
import click
from click.core import ParameterSource

from .._exceptions import APIError, CellcastError
from .._session import CellcastSession
from .._version import __version__
from ._output import dump_json, shown, shown_lines, silence_stdout

# Only type checkers subscript click's ParamType: not every click can at runtime.
if TYPE_CHECKING:
    from ..sandbox import Sandbox

    _ParamType = click.ParamType[float]
else:
    _ParamType = click.ParamType

__all__ = [
    "EXIT_API",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliUsageError",
    "Connection",
    "Settings",
    "cli",
    "execute",
    "global_options",
    "open_connection",
    "run",
    "session_kwargs",
    "usage_error",
]

EXIT_OK: Final = 0
EXIT_API: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

F = TypeVar("F", bound=Callable[..., Any])


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


class _PositiveFloat(_ParamType):
    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            number = float(value)
        except ValueError:
            self.fail(f"expected a number, got {value!r}", param, ctx)
        if not number > 0:
            self.fail(f"must be more than 0, got {value}", param, ctx)
        return number


# name -> (option declarations, click.option's keyword arguments).
# Adding a session-wide option (--rate-limit, --rate-store) is one entry here, one field
# on Settings and one line in session_kwargs().
_GLOBAL_OPTIONS: Final[dict[str, tuple[tuple[str, ...], dict[str, Any]]]] = {
    "api_key": (
        ("--api-key",),
        {"metavar": "KEY", "help": "API key.", "show_default": "$CELLCAST_API_KEY"},
    ),
    "base_url": (
        ("--base-url",),
        {
            "metavar": "URL",
            "help": "API base URL.",
            "show_default": "$CELLCAST_BASE_URL or https://api.cellcast.com",
        },
    ),
    "sandbox": (
        ("--sandbox",),
        {
            "is_flag": True,
            "default": False,
            "help": "Run the command against an embedded sandbox with demo data (no account).",
        },
    ),
    "json": (
        ("--json",),
        {"is_flag": True, "default": False, "help": "Machine-readable output, errors included."},
    ),
    "quiet": (
        ("--quiet", "-q"),
        {"is_flag": True, "default": False, "help": "No progress and no sandbox banner."},
    ),
    "debug": (
        ("--debug",),
        {"is_flag": True, "default": False, "help": "Tracebacks and the SDK's DEBUG log."},
    ),
    "timeout": (
        ("--timeout",),
        {"type": _PositiveFloat(), "default": 30.0, "help": "Seconds per try."},
    ),
    "max_retries": (
        ("--max-retries",),
        {
            "type": click.IntRange(min=0),
            "default": 2,
            "metavar": "N",
            "help": "Retries of a failed request.",
        },
    ),
    "rate_limit": (
        ("--rate-limit",),
        {
            "type": click.FloatRange(min=0, min_open=True),
            "default": None,
            "metavar": "PER_SECOND",
            "help": "Requests per second for the whole run (all pages in flight together).",
            "show_default": "no cap",
        },
    ),
    "rate_store": (
        ("--rate-store",),
        {
            "metavar": "URL",
            "default": None,
            "help": "redis://host:port/db: share the rate budget with other processes.",
            "show_default": "this process only",
        },
    ),
}


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Put a global option on Settings; on a command, only when the user gave it."""
    assert param.name is not None
    source = ctx.get_parameter_source(param.name)
    if ctx.parent is not None and source in (ParameterSource.DEFAULT, None):
        return
    setattr(ctx.ensure_object(Settings), param.name, value)


def global_options(*names: str) -> Callable[[F], F]:
    """The named global options (all of them by default), as one decorator."""

    def decorate(function: F) -> F:
        for name in reversed(names or tuple(_GLOBAL_OPTIONS)):
            decls, kwargs = _GLOBAL_OPTIONS[name]
            option = click.option(
                *decls, name, expose_value=False, callback=_store, is_eager=False, **kwargs
            )
            function = option(function)
        return function

    return decorate


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


class _ShownFormatter(logging.Formatter):
    """Log records as a terminal may show them: a record may quote a server (README "What
    the command line prints")."""

    def format(self, record: logging.LogRecord) -> str:
        return shown_lines(super().format(record))


@contextlib.contextmanager
def _debug_log(stream: TextIO, *, enabled: bool) -> Iterator[None]:
    """The SDK's DEBUG log on ``stream`` for one run; the logger is then left as it was.

    ``main()`` may run many times in one process (tests, embedding): a handler left behind
    would keep writing to an old run's stream, and DEBUG would outlive ``--debug``.
    """
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_ShownFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("cellcast_async")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def report_error(
    settings: Settings, exc: BaseException, message: str, *, usage: bool = False
) -> None:
    """One line on stderr; with ``--json`` one JSON object: class, status, message."""
    if settings.json_errors:
        status = exc.status_code if isinstance(exc, APIError) else None
        name = "UsageError" if usage else type(exc).__name__
        dump_json({"class": name, "status": status, "message": message}, settings.err)
    else:
        # The message may quote a server or a file: escaped, it stays one inert line.
        settings.err.write(f"{'usage error' if usage else 'error'}: {shown(message)}\n")


def execute(settings: Settings, work: Callable[[], int]) -> int:
    """Run a command's work under the CLI's error policy and exit with its code.

    0 ok, 1 an API, network or output error, 2 a usage error, 130 Ctrl-C. A closed
    stdout (``| head``) ends the run quietly with 0, as other Unix tools do. The code
    leaves through ``ctx.exit``: click drops a command's return value when it runs
    standalone (its own ``main``, ``CliRunner``).
    """
    click.get_current_context().exit(_policy(settings, work))


# The parts of a formatted traceback that are Python's own, not an exception's message.
_TRACEBACK_FRAMES: Final = (
    "  File ",
    "Traceback (most recent call last)",
    "\nDuring handling of the above exception",
    "\nThe above exception was the direct cause",
)


def _traceback_text(exc: BaseException) -> str:
    """``--debug``'s traceback, escaped: an exception's message may quote the server, so
    its lines are :func:`shown` whole (a newline in it cannot forge a line); the frames
    keep their lines (README "What the command line prints")."""

    def escaped(part: str) -> str:
        if part.startswith(_TRACEBACK_FRAMES):
            return shown_lines(part)
        body, end = (part[:-1], "\n") if part.endswith("\n") else (part, "")
        return shown(body) + end

    return "".join(map(escaped, traceback.TracebackException.from_exception(exc).format()))


def _policy(settings: Settings, work: Callable[[], int]) -> int:

    def failed(exc: BaseException, message: str, code: int) -> int:
        if settings.debug:
            settings.err.write(_traceback_text(exc))
        report_error(settings, exc, message, usage=code == EXIT_USAGE)
        return code

    try:
        with _debug_log(settings.err, enabled=settings.debug):
            return work()
    except CellcastError as exc:
        return failed(exc, str(exc), EXIT_API)
    except CliUsageError as exc:
        return failed(exc, str(exc), EXIT_USAGE)
    except BrokenPipeError:
        silence_stdout(settings.out)
        return EXIT_OK
    except UnicodeEncodeError as exc:  # a token name the output stream cannot encode
        # rich appends a hint about PYTHONIOENCODING on a line of its own: one line is ours.
        reason = exc.reason.splitlines()[0] if exc.reason else "unencodable text"
        return failed(exc, f"cannot write the output: {reason}", EXIT_API)
    except ValueError as exc:  # misuse the SDK caught before anything was sent
        return failed(exc, str(exc), EXIT_USAGE)
    except OSError as exc:  # e.g. --output to a folder that does not exist
        return failed(exc, str(exc), EXIT_API)
    except KeyboardInterrupt as exc:
        if settings.json_errors:
            report_error(settings, exc, "interrupted")
        else:
            settings.err.write("interrupted\n")
        return EXIT_INTERRUPTED


def usage_error(settings: Settings, message: str) -> int:
    """Exit 2 with ``message``, under the same policy (``--json``, ``--debug``) as any error."""

    def fail() -> int:
        raise CliUsageError(message)

    return execute(settings, fail)


def run_async(settings: Settings, work: Callable[[Connection], Any]) -> int:
    """``execute`` an async command body on a fresh connection."""

    async def body() -> int:
        async with open_connection(settings) as conn:
            code: int = await work(conn)
            return code

    return execute(settings, lambda: asyncio.run(body()))


CONTEXT_SETTINGS: Final = {
    "help_option_names": ["-h", "--help"],
    "show_default": True,
    "max_content_width": 100,
}


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="Exit codes: 0 ok, 1 API or network error, 2 usage error "
    "(diff: 0 no change, 1 changes).",
)
@click.version_option(
    __version__, "--version", prog_name="cellcast-tokens", message="%(prog)s %(version)s"
)
@global_options()
def cli() -> None:
    """Manage and audit Cellcast sub-client API tokens.

    Try it without an account: cellcast-tokens --sandbox audit
    """


def run(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """Parse ``argv`` and run the command; returns the exit code."""
    from . import _audit, _commands, _diff, _sandbox  # noqa: F401  (they register themselves)

    args = list(argv) if argv is not None else sys.argv[1:]
    settings = Settings(out=out, err=err, argv=tuple(args))
    return invoke(cli, args, settings, prog_name="cellcast-tokens")


def invoke(
    command: click.Command,
    args: list[str] | None,
    settings: Settings,
    *,
    prog_name: str,
) -> int:
    """Run a click command without letting it exit the process or print multi-line usage."""
    try:
        # click writes --help and --version with click.echo, to sys.stdout: the run's stdout.
        with contextlib.redirect_stdout(settings.out):
            result = command.main(
                args=args,
                prog_name=prog_name,
                standalone_mode=False,
                obj=settings,
            )
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `cellcast-tokens`
        settings.err.write(exc.ctx.get_help() + "\n" if exc.ctx is not None else "")
        return EXIT_USAGE
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else prog_name
        message = f"{where}: {exc.format_message()}"
        report_error(settings, exc, message, usage=True)
        return EXIT_USAGE
    except click.ClickException as exc:  # e.g. an unreadable file argument
        report_error(settings, exc, exc.format_message(), usage=True)
        return EXIT_USAGE
    except click.Abort:
        settings.err.write("interrupted\n")
        return EXIT_INTERRUPTED
    if isinstance(result, int):
        return result
    return EXIT_OK
