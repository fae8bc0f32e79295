"""``cellcast-tokens``: the command line for Cellcast's sub-client API tokens.

    cellcast-tokens --sandbox audit                 # no account needed
    cellcast-tokens list --status inactive          # $CELLCAST_API_KEY
    cellcast-tokens audit --concurrency 8 --format csv --output tokens.csv

Exit codes: 0 ok, 1 an API or network error, 2 a usage error. Errors are one line on
stderr (``--debug`` adds the traceback and the SDK's DEBUG log). A full token value is
printed once, by ``create``, and never anywhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Final, TextIO

import attrs

from ._converters import parse_datetime
from ._exceptions import CellcastError, ShapeError
from ._models import ApiToken, CreatedToken, TokenStatus
from ._session import CellcastSession
from ._version import __version__

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_API: Final = 1
EXIT_USAGE: Final = 2

AUDIT_FIELDS: Final = (
    "id",
    "name",
    "status",
    "sub_account_id",
    "sub_account_name",
    "created_at",
    "age_days",
    "stale",
    "token",
)


class UsageError(Exception):
    """A mistake in how the command was called: exit code 2."""


# --- small pure helpers ----------------------------------------------------------------


def token_record(token: ApiToken, now: datetime, stale_days: int) -> dict[str, Any]:
    """One audit row. ``token`` is the masked form: a secret is never written."""
    age = now - token.created_at
    sub = token.sub_account
    return {
        "id": token.id,
        "name": token.name,
        "status": str(token.status),
        "sub_account_id": token.sub_account_id or "",
        "sub_account_name": (sub.name if sub and sub.name else "") or "",
        "created_at": token.created_at.isoformat(),
        "age_days": max(0, age.days),
        "stale": age > timedelta(days=stale_days),
        "token": token.token.masked,
    }


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token as ``--json`` prints it, its value masked (``create`` adds the secret itself)."""
    sub = token.sub_account
    return {
        "id": token.id,
        "name": token.name,
        "status": str(token.status),
        "created_at": token.created_at.isoformat(),
        "sub_account_id": token.sub_account_id,
        "sub_account": attrs.asdict(sub) if sub is not None else None,
        "token": token.token.masked,
    }


@attrs.define
class AuditSummary:
    """What an audit found, built one token at a time so memory stays flat."""

    stale_days: int
    total: int = 0
    by_status: Counter[str] = attrs.field(factory=Counter)
    by_sub_account: Counter[str] = attrs.field(factory=Counter)
    sub_account_names: dict[str, str] = attrs.field(factory=dict)
    stale: int = 0
    inactive: int = 0
    oldest: datetime | None = None
    _subs_by_name: defaultdict[str, set[str]] = attrs.field(
        factory=lambda: defaultdict(set), alias="_subs_by_name"
    )

    def add(self, token: ApiToken, record: dict[str, Any]) -> None:
        self.total += 1
        self.by_status[record["status"]] += 1
        sub_id = record["sub_account_id"] or "(none)"
        self.by_sub_account[sub_id] += 1
        if record["sub_account_name"]:
            self.sub_account_names[sub_id] = record["sub_account_name"]
        if record["stale"]:
            self.stale += 1
        if token.status == TokenStatus.INACTIVE:
            self.inactive += 1
        if self.oldest is None or token.created_at < self.oldest:
            self.oldest = token.created_at
        self._subs_by_name[token.name].add(sub_id)

    def shared_names(self) -> dict[str, list[str]]:
        """Token names used in more than one sub-account."""
        return {
            name: sorted(subs) for name, subs in sorted(self._subs_by_name.items()) if len(subs) > 1
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_status": dict(sorted(self.by_status.items())),
            "by_sub_account": [
                {"id": sub, "name": self.sub_account_names.get(sub), "tokens": count}
                for sub, count in sorted(self.by_sub_account.items())
            ],
            "stale_days": self.stale_days,
            "stale": self.stale,
            "inactive": self.inactive,
            "oldest_created_at": self.oldest.isoformat() if self.oldest else None,
            "names_in_several_sub_accounts": self.shared_names(),
        }


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _token_rows(tokens: Sequence[ApiToken]) -> list[list[Any]]:
    return [
        [
            t.id,
            t.name,
            t.status,
            t.sub_account_id or "",
            t.created_at.strftime("%Y-%m-%d"),
            t.token.masked,
        ]
        for t in tokens
    ]


_TOKEN_HEADERS: Final = ("ID", "NAME", "STATUS", "SUB-ACCOUNT", "CREATED", "TOKEN")


def render_summary(summary: AuditSummary) -> str:
    lines = [f"Audited {summary.total} token(s)."]
    lines.append("")
    lines.append(
        format_table(
            [[status, count] for status, count in sorted(summary.by_status.items())],
            ("STATUS", "TOKENS"),
        )
    )
    lines.append("")
    lines.append(
        format_table(
            [
                [sub, summary.sub_account_names.get(sub, ""), count]
                for sub, count in sorted(summary.by_sub_account.items())
            ],
            ("SUB-ACCOUNT", "NAME", "TOKENS"),
        )
    )
    lines.append("")
    lines.append(f"Older than {summary.stale_days} days: {summary.stale}")
    lines.append(f"Inactive: {summary.inactive}")
    shared = summary.shared_names()
    lines.append(f"Names used in more than one sub-account: {len(shared)}")
    for name, subs in shared.items():
        lines.append(f"  {name!r}: {', '.join(subs)}")
    return "\n".join(lines)


# --- progress --------------------------------------------------------------------------


class Progress:
    """Progress on stderr: a redrawn bar on a terminal, a plain line per step otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self._stream = stream
        self._tty = enabled and stream.isatty()
        self._enabled = enabled
        self._last_plain = 0.0
        self._started = time.monotonic()

    def update(self, done: int, total: int | None) -> None:
        if not self._enabled:
            return
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self._tty:
            width = 30
            if total:
                filled = min(width, int(width * done / total))
                bar = "#" * filled + "-" * (width - filled)
                text = f"\raudit [{bar}] {done}/{total} tokens  {rate:,.0f}/s"
            else:
                text = f"\raudit {done} tokens  {rate:,.0f}/s"
            self._stream.write(text)
            self._stream.flush()
        elif done == total or time.monotonic() - self._last_plain >= 1.0:
            self._last_plain = time.monotonic()
            shown = f"{done}/{total}" if total else str(done)
            self._stream.write(f"audit: {shown} tokens\n")
            self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._tty:
            self._stream.write("\n")
            self._stream.flush()


# --- commands --------------------------------------------------------------------------


@contextlib.contextmanager
def _open_output(path: str | None, stdout: TextIO) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
    elif path == "-":
        yield stdout
    else:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle


async def _audit(cc: CellcastSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    now = args.as_of or datetime.now(timezone.utc)
    summary = AuditSummary(stale_days=args.stale_days)
    pager = cc.tokens.list(
        sub_account_id=args.sub_account,
        status=args.status,
        limit=args.page_size,
        concurrency=args.concurrency,
    )
    progress = Progress(err, enabled=not args.quiet)
    # --format alone means "records on stdout"; --output alone means CSV.
    output = args.output or ("-" if args.format else None)
    fmt = args.format or "csv"
    with _open_output(output, out) as handle:
        writer: Callable[[dict[str, Any]], object] | None = None
        if handle is not None and fmt == "csv":
            dict_writer = csv.DictWriter(handle, fieldnames=AUDIT_FIELDS)
            dict_writer.writeheader()
            writer = dict_writer.writerow
        elif handle is not None:
            jsonl = handle

            def writer(record: dict[str, Any]) -> None:
                jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")

        try:
            async for page in pager.pages():
                for token in page.items:
                    record = token_record(token, now, args.stale_days)
                    summary.add(token, record)
                    if writer is not None:
                        writer(record)
                progress.update(summary.total, page.total)
        finally:
            progress.close()
    # Records on stdout keep stdout machine-readable: the summary then goes to stderr.
    target = err if output == "-" else out
    if args.json:
        target.write(json.dumps(summary.as_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        target.write(render_summary(summary) + "\n")
    return EXIT_OK


async def _list(cc: CellcastSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    pager = cc.tokens.list(
        sub_account_id=args.sub_account,
        status=args.status,
        search=args.search,
        limit=args.page_size,
        concurrency=args.concurrency,
        max_items=args.max_items,
    )
    tokens = await pager.collect()
    if args.json:
        for token in tokens:
            out.write(json.dumps(token_view(token), ensure_ascii=False) + "\n")
    else:
        out.write(format_table(_token_rows(tokens), _TOKEN_HEADERS) + "\n")
        out.write(f"{len(tokens)} token(s)\n")
    return EXIT_OK


def _show(token: ApiToken, args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        out.write(json.dumps(token_view(token), ensure_ascii=False) + "\n")
    else:
        out.write(format_table(_token_rows([token]), _TOKEN_HEADERS) + "\n")


async def _get(cc: CellcastSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _show(await cc.tokens.get(args.token_id), args, out)
    return EXIT_OK


async def _create(cc: CellcastSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    created: CreatedToken = await cc.tokens.create(name=args.name, sub_account_id=args.sub_account)
    secret = created.token.reveal()
    # The one place a full token is ever printed (seed 001: it is returned only once).
    err.write("warning: this is the only time the full token is shown; store it securely now.\n")
    if args.json:
        view = token_view(created)
        view["token"] = secret
        out.write(json.dumps(view, ensure_ascii=False) + "\n")
    else:
        out.write(f"Created token {created.id} ({created.name!r}) for {created.sub_account_id}\n")
        out.write(f"token: {secret}\n")
    return EXIT_OK


async def _update(cc: CellcastSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    token = await cc.tokens.update(args.token_id, name=args.name, status=args.status)
    _show(token, args, out)
    return EXIT_OK


async def _delete(cc: CellcastSession, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    await cc.tokens.delete(args.token_id)
    if args.json:
        out.write(json.dumps({"id": args.token_id, "deleted": True}) + "\n")
    else:
        out.write(f"Deleted token {args.token_id}\n")
    return EXIT_OK


Command = Callable[[CellcastSession, argparse.Namespace, TextIO, TextIO], Awaitable[int]]

_COMMANDS: Final[dict[str, Command]] = {
    "audit": _audit,
    "list": _list,
    "get": _get,
    "create": _create,
    "update": _update,
    "delete": _delete,
}


# --- argument parsing -------------------------------------------------------------------


def _whole_number(minimum: int, rule: str) -> Callable[[str], int]:
    """An argparse type: an int of at least ``minimum``; ``rule`` says so when it is not."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{rule}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1, "must be at least 1")
_non_negative_int = _whole_number(0, "must be 0 or more")


def _timestamp(text: str) -> datetime:
    try:
        return parse_datetime(text)
    except ShapeError:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 time, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting, so main() returns 2."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def _add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after the command's name.

    On the subcommands their defaults are SUPPRESS, so ``audit --json`` sets ``json``
    while a bare ``audit`` leaves the value parsed before the command untouched.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--api-key", default=default(None), help="API key (default: $CELLCAST_API_KEY)"
    )
    parser.add_argument(
        "--base-url",
        default=default(None),
        help="API base URL (default: $CELLCAST_BASE_URL or https://api.cellcast.com)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        default=default(False),
        help="start an embedded sandbox with demo data and run the command against it",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="machine-readable output"
    )
    parser.add_argument(
        "--debug", action="store_true", default=default(False), help="tracebacks and DEBUG logging"
    )
    parser.add_argument(
        "--timeout", type=_positive_float, default=default(30.0), help="seconds per try"
    )
    parser.add_argument("--max-retries", type=_non_negative_int, default=default(2), metavar="N")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cellcast-tokens",
        description="Manage and audit Cellcast sub-client API tokens.",
        epilog="Exit codes: 0 ok, 1 API or network error, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help)
        _add_global_options(p, suppress=True)
        return p

    def listing(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sub-account", metavar="ID", help="only this sub-account's tokens")
        p.add_argument("--status", choices=[s.value for s in TokenStatus])
        p.add_argument("--page-size", type=_positive_int, default=100, metavar="N")
        p.add_argument(
            "--concurrency", type=_positive_int, default=4, metavar="N", help="pages in flight"
        )

    p = command("list", help="list tokens")
    listing(p)
    p.add_argument("--search", help="only tokens whose name contains this")
    p.add_argument("--max-items", type=_non_negative_int, metavar="N")

    p = command("get", help="show one token")
    p.add_argument("token_id", metavar="TOKEN_ID")

    p = command("create", help="create a token (prints the full secret once)")
    p.add_argument("--name", required=True)
    p.add_argument(
        "--sub-account",
        required=True,
        metavar="ID",
        help="the sub-account to create it in (with --sandbox, 'demo' means the first one)",
    )

    p = command("update", help="rename a token or set its status")
    p.add_argument("token_id", metavar="TOKEN_ID")
    p.add_argument("--name")
    p.add_argument("--status", choices=[s.value for s in TokenStatus])

    p = command("delete", help="delete a token for good")
    p.add_argument("token_id", metavar="TOKEN_ID")

    p = command("audit", help="walk every token and summarise")
    listing(p)
    p.add_argument("--format", choices=["csv", "jsonl"], help="record format (default csv)")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write one record per token here (- = stdout, the default when --format is given)",
    )
    p.add_argument("--stale-days", type=_non_negative_int, default=365, metavar="N")
    p.add_argument("--as-of", type=_timestamp, metavar="TIME", help="judge ages as of this time")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = command("sandbox", help="serve a local sandbox API until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_non_negative_int, default=8080)
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--tokens", type=_non_negative_int, default=300)
    return parser


# --- running ---------------------------------------------------------------------------


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    async with contextlib.AsyncExitStack() as stack:
        api_key, base_url = args.api_key, args.base_url
        if args.sandbox:
            from .sandbox import Sandbox

            sb = await stack.enter_async_context(Sandbox(seed=0))
            err.write(
                f"sandbox: demo data at {sb.url}; sub-accounts {', '.join(sb.sub_account_ids)}\n"
            )
            api_key, base_url = sb.api_key, sb.url
            if args.command == "audit" and args.as_of is None:
                args.as_of = sb.reference_time  # demo ages are fixed, so is the report
            if args.command == "create" and args.sub_account == "demo":
                args.sub_account = sb.sub_account_ids[0]
        cc = await stack.enter_async_context(
            CellcastSession(
                api_key=api_key,
                base_url=base_url,
                timeout=args.timeout,
                max_retries=args.max_retries,
            )
        )
        return await _COMMANDS[args.command](cc, args, out, err)
    raise AssertionError("unreachable")  # pragma: no cover - for mypy: the with returns


def _serve_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    from .sandbox import Sandbox, serve

    def ready(sb: Sandbox) -> None:
        out.write(f"Sandbox listening on {sb.url}\n")
        out.write(f"  api key (sandbox only): {sb.api_key}\n")
        out.write(f"  sub-accounts: {', '.join(sb.sub_account_ids)}\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()

    serve(host=args.host, port=args.port, seed=args.seed, tokens=args.tokens, ready=ready)
    return EXIT_OK


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
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("cellcast_async")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit code (console scripts pass it to sys.exit)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        # argparse prints --help and --version to sys.stdout; send them to our stdout.
        with contextlib.redirect_stdout(out):
            args = build_parser().parse_args(argv)
    except UsageError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    try:
        with _debug_log(err, enabled=args.debug):
            if args.command == "sandbox":
                return _serve_sandbox(args, out)
            return asyncio.run(_run(args, out, err))
    except CellcastError as exc:
        if args.debug:
            traceback.print_exc(file=err)
        err.write(f"error: {exc}\n")
        return EXIT_API
    except UnicodeEncodeError as exc:  # a token name the output stream cannot encode
        if args.debug:
            traceback.print_exc(file=err)
        err.write(f"error: cannot write the output: {exc.reason}\n")
        return EXIT_API
    except ValueError as exc:  # misuse caught before anything was sent
        if args.debug:
            traceback.print_exc(file=err)
        err.write(f"usage error: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:  # e.g. --output to a folder that does not exist
        if args.debug:
            traceback.print_exc(file=err)
        err.write(f"error: {exc}\n")
        return EXIT_API
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
