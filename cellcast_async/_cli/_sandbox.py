"""``cellcast-tokens sandbox``: the one command line of the sandbox server.

``python -m cellcast_async.sandbox`` runs this same command; there it announces itself
with one JSON line by default (what benchmarks and scripts read). Every option is one
decorator: a server option is passed to ``serve()`` under its own name, a fault option
(``fault_option``) becomes the ``Faults`` field it names.
"""

from __future__ import annotations

import dataclasses
import errno
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

import click

from ..sandbox._faults import FAULT_KINDS, Faults
from ..sandbox._state import HEADER_STYLES, LIMITER_KINDS, RETRY_AFTER_STYLES
from ._context import EXIT_API, EXIT_OK, Settings
from ._errors import execute, invoke, report_error
from ._options import (
    COUNT,
    FRACTION,
    SECONDS,
    Number,
    global_options,
    option_group,
    per_second_option,
)
from ._output import dump_json

# Only type checkers subscript click's ParamType: not every click can at runtime.
if TYPE_CHECKING:
    _ParamType = click.ParamType[tuple[str, ...]]
else:
    _ParamType = click.ParamType

__all__ = ["fault_option", "run_sandbox", "sandbox_command"]

_FAULT_PREFIX: Final = "fault__"
_FAULT_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Faults))
_NO_FAULTS: Final = Faults()


class _Kinds(_ParamType):
    """A comma-separated list of fault kinds."""

    name = "K,K"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        kinds = tuple(k.strip() for k in str(value).split(",") if k.strip())
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown or not kinds:
            self.fail(f"choose from {','.join(sorted(FAULT_KINDS))}, got {value!r}", param, ctx)
        return kinds


def fault_option(flag: str, field: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:
    """A command-line option that sets ``Faults.<field>`` (by default the flag's name:
    ``--latency-jitter`` sets ``latency_jitter``); its default is the field's."""
    field = field or flag.removeprefix("--").replace("-", "_")
    if field not in _FAULT_FIELDS:
        raise ValueError(f"Faults has no field {field!r}")  # pragma: no cover - a typo here
    kwargs.setdefault("default", getattr(_NO_FAULTS, field))
    return click.option(flag, _FAULT_PREFIX + field, **kwargs)


def _choice(flag: str, choices: Sequence[str], default: str, help: str) -> Callable[[Any], Any]:
    """An option that takes one of ``choices``, its default shown in --help."""
    return click.option(
        flag, type=click.Choice(choices), default=default, show_default=True, help=help
    )


_AFTER: Final = "(Retry-After: --retry-after)"

_OPTIONS: Final[Sequence[Callable[[Any], Any]]] = (
    click.option(
        "--host",
        default="127.0.0.1",
        help="Loopback address to listen on (127.0.0.1, localhost or ::1).",
    ),
    click.option(
        "--port", type=click.IntRange(0, 65535), default=8080, help="TCP port; 0 picks a free one."
    ),
    click.option("--seed", type=COUNT, default=0, help="Demo data seed."),
    click.option("--tokens", type=COUNT, default=300, help="Demo tokens."),
    click.option("--sub-accounts", type=COUNT, default=3, help="Demo sub-accounts."),
    click.option(
        "--api-key",
        metavar="KEY",
        help="The key the sandbox accepts.  [default: derived from --seed]",
    ),
    fault_option("--latency", type=SECONDS, help="Seconds added to every answer."),
    fault_option("--latency-jitter", type=SECONDS, help="Up to this many more seconds, at random."),
    fault_option(
        "--error-rate", type=FRACTION, help="Fraction of requests that fail at random (0.0-1.0)."
    ),
    fault_option(
        "--fail-first",
        "first_n",
        type=COUNT,
        metavar="N",
        help="The first N requests fail, guaranteed.",
    ),
    fault_option(
        "--fail-every",
        "every",
        type=COUNT,
        metavar="N",
        help="Every N-th request fails, guaranteed (0: none).",
    ),
    fault_option(
        "--error-kinds",
        "kinds",
        type=_Kinds(),
        default=",".join(_NO_FAULTS.kinds),
        help="How a request fails, one of these at random.",
    ),
    fault_option("--retry-after", type=SECONDS, help="Seconds in Retry-After on an injected 429."),
    fault_option(
        "--storm",
        type=SECONDS,
        metavar="SECONDS",
        help=f"Answer every request 429 {_AFTER} for this long from the first request, "
        "then recover.",
    ),
    fault_option(
        "--challenge",
        is_flag=True,
        help=f"Answer the first attempt of every request 429 {_AFTER}; the same request sent "
        "again passes.",
    ),
    fault_option("--fault-seed", "seed", type=int, help="Seeds the random faults."),
    fault_option(
        "--mutations-only",
        is_flag=True,
        help="Only POST, PUT and DELETE fail (GETs still get latency).",
    ),
    per_second_option(
        "--rate-limit",
        None,
        "Answer 429 with Retry-After beyond this many requests per second per key.",
        show_default="no limit",
    ),
    _choice(
        "--limiter",
        LIMITER_KINDS,
        "token-bucket",
        "How the rate limit counts: a token bucket, a fixed 1-second window, or a "
        "sliding 1-second log.",
    ),
    click.option(
        "--burst",
        type=Number(min=1),
        default=None,
        help="Size of the token bucket: requests it lets through at once (1 or more).",
        show_default="one second's worth, at least 1",
    ),
    _choice(
        "--rate-limit-retry-after",
        RETRY_AFTER_STYLES,
        "whole",
        "Retry-After on the rate limit's 429s: whole seconds rounded up, always 0, "
        "fractional seconds, or no header.",
    ),
    click.option(
        "--rate-limit-headers",
        type=click.Choice(HEADER_STYLES),
        is_flag=False,
        flag_value="window",
        default=None,
        help="Send X-RateLimit-Limit/-Remaining/-Reset on every answer: as a 1-second window "
        "(the default style), or the limiter's own allowance with Reset in whole or "
        "fractional seconds until it is full.",
    ),
    click.option(
        "--capacity",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Requests answered at once; beyond N, answers queue (slower, as on a real server).",
        show_default="no bound",
    ),
)


_sandbox_options: Final = option_group(*_OPTIONS)


def _announce(settings: Settings) -> Callable[[Any], None]:
    out: TextIO = settings.out

    def ready(sb: Any) -> None:
        if settings.quiet:
            return
        if settings.json or settings.announce_json:
            info = {
                "url": sb.url,
                "api_key": sb.api_key,
                "sub_account_ids": list(sb.sub_account_ids),
            }
            dump_json(info, out)
        else:
            out.write(f"Sandbox listening on {sb.url}\n")
            out.write(f"  api key (sandbox only): {sb.api_key}\n")
            out.write(f"  sub-accounts: {', '.join(sb.sub_account_ids)}\n")
            out.write(
                f"  demo data dated up to {sb.reference_time:%Y-%m-%d}: audit it with"
                f" --as-of {sb.reference_time:%Y-%m-%dT%H:%M:%SZ}, or every token looks stale\n"
            )
            out.write("Press Ctrl-C to stop.\n")
        out.flush()

    return ready


@click.command("sandbox")
@_sandbox_options
@global_options("json", "quiet", "debug")
@click.pass_obj
def sandbox_command(settings: Settings, /, **params: Any) -> int:
    """Serve a local Cellcast token API on loopback until Ctrl-C.

    Demo data, a fixed key, and faults on demand. Announces its URL, key and
    sub-accounts on stdout (one JSON line with --json; nothing with --quiet).
    """
    from ..sandbox import serve

    fault_args = {
        name.removeprefix(_FAULT_PREFIX): value
        for name, value in params.items()
        if name.startswith(_FAULT_PREFIX)
    }
    server_args = {k: v for k, v in params.items() if not k.startswith(_FAULT_PREFIX)}
    server_args["rate_limit_headers"] = server_args["rate_limit_headers"] or False

    def work() -> int:
        try:
            serve(faults=Faults(**fault_args), ready=_announce(settings), **server_args)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            port = server_args["port"]
            message = (
                f"port {port} is already in use: pick another --port, or --port 0 for a free one"
            )
            report_error(settings, exc, message)
            return EXIT_API
        return EXIT_OK

    return execute(settings, work)


def run_sandbox(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    """``python -m cellcast_async.sandbox``: the same command, one JSON line by default."""
    args = list(argv) if argv is not None else sys.argv[1:]
    settings = Settings(out=out, err=err, argv=tuple(args), announce_json=True)
    return invoke(sandbox_command, args, settings, prog_name="python -m cellcast_async.sandbox")
