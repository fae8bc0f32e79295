"""Options more than one command takes: the global ones (``--json``, ``--api-key``...),
accepted before or after the command's name, and the listing's filters and paging.

A command's copy of a global option only counts when it was given (README "Command line").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click
from click.core import ParameterSource

from .._converters import parse_datetime
from .._exceptions import ShapeError
from .._models import TokenStatus
from .._plan import MAX_DAYS
from ._context import Settings

# Only type checkers subscript click's ParamType: not every click can at runtime.
if TYPE_CHECKING:
    _ParamType = click.ParamType[float]
    _TimeType = click.ParamType[datetime]
else:
    _ParamType = _TimeType = click.ParamType

__all__ = [
    "COUNT",
    "DAYS",
    "FRACTION",
    "POSITIVE",
    "SECONDS",
    "STATUS",
    "Concurrency",
    "Number",
    "Timestamp",
    "global_options",
    "listing_options",
    "option_group",
    "paging_options",
    "per_second_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def option_group(*options: Callable[[Any], Any]) -> Callable[[F], F]:
    """Several click options (or other decorators) as one, shown in ``--help`` in the
    order given."""

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


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


class Number(click.FloatRange):
    """click's ``FloatRange`` that also refuses ``nan`` and ``inf``: a nan passes every
    range check, and neither is a rate or a number of seconds anything can wait on."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


#: The option types the commands share.
POSITIVE: Final = Number(min=0, min_open=True)
SECONDS: Final = Number(min=0)
FRACTION: Final = Number(0, 1)
COUNT: Final = click.IntRange(min=0)
#: Days, at most as many as a ``timedelta`` holds.
DAYS: Final = click.IntRange(min=0, max=MAX_DAYS)


def per_second_option(
    flag: str, default: float | None, help: str, **kwargs: Any
) -> Callable[[Any], Any]:
    """A rate option: ``flag PER_SECOND``, a finite number above 0."""
    return click.option(
        flag, type=POSITIVE, default=default, metavar="PER_SECOND", help=help, **kwargs
    )


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
            "type": COUNT,
            "default": 2,
            "metavar": "N",
            "help": "Retries of a failed request.",
        },
    ),
    "rate_limit": (
        ("--rate-limit",),
        {
            "type": POSITIVE,
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


STATUS: Final = click.Choice([s.value for s in TokenStatus])


class Concurrency(click.IntRange):
    """``--concurrency``: pages in flight, a whole number of at least 1, or ``auto``
    (adaptive: it grows while answers come back fast and clean, halves on 429s)."""

    name = "integer"

    def __init__(self) -> None:
        super().__init__(min=1)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            if value.strip().lower() == "auto":
                return "auto"
            if not value.strip().lstrip("+-").isdigit():
                self.fail(f"{value!r} is neither a whole number nor 'auto'.", param, ctx)
        return super().convert(value, param, ctx)


#: ``--page-size`` and ``--concurrency``: how a walk reads the listing (``list``,
#: ``audit`` and the ``plan`` commands).
paging_options: Final = option_group(
    click.option(
        "--page-size",
        type=click.IntRange(min=1),
        default=100,
        metavar="N",
        help="Tokens per request.",
    ),
    click.option(
        "--concurrency",
        type=Concurrency(),
        default="auto",
        metavar="N|auto",
        help="Pages read at once, or auto (adaptive); tokens keep the listing's order.",
    ),
)

#: The filters and paging options ``list`` and ``audit`` share.
listing_options: Final = option_group(
    click.option("--sub-account", metavar="ID", help="Only this sub-account's tokens."),
    click.option("--status", type=STATUS, help="Only tokens with this status."),
    paging_options,
)


class Timestamp(_TimeType):
    """An ISO-8601 time, read as the SDK reads the API's (``parse_datetime``): a ``Z`` or
    an offset, or none for UTC; held in UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return parse_datetime(text)
        except ShapeError:
            pass
        if _reads_as_iso(text):
            # A real time whose offset puts it outside years 1 to 9999 once in UTC
            # (0001-01-01T00:00+05:00): the report prints it in UTC (README "Command line").
            self.fail(f"{value!r} is out of range once in UTC (years 1 to 9999)", param, ctx)
        self.fail(f"expected an ISO-8601 time, got {value!r}", param, ctx)


def _reads_as_iso(text: str) -> bool:
    """Whether ``text`` is an ISO-8601 time at all (``Z`` read as UTC on every Python)."""
    try:
        datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return False
    return True
