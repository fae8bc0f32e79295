"""The command line's one error policy, and the runners every command's work goes through.

``execute`` runs a command's work and turns what it raises into one line (or one JSON
object) on stderr and an exit code: 0 ok, 1 an API, network or output error, 2 a usage
error, 130 Ctrl-C (README "Command line"). ``run_async`` does the same for an async body
on a fresh connection; ``invoke`` runs a click command without letting it exit the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Final, TextIO

import click

from .._exceptions import APIError, AuthenticationError, CellcastError
from ._context import (
    EXIT_API,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliUsageError,
    Connection,
    Settings,
    open_connection,
)
from ._output import dump_json, shown, shown_lines, silence_stdout

__all__ = ["execute", "invoke", "report_error", "run_async", "usage_error"]


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
    except AuthenticationError as exc:  # a 401: the key is the usual suspect
        return failed(exc, f"{exc} (check the API key: --api-key or $CELLCAST_API_KEY)", EXIT_API)
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
