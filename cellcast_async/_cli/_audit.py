"""``audit``: walk every token, write one record each, and report what needs action.

The report (:class:`AuditReport`) is pure: it is fed one record at a time, so memory
grows only with the tokens that need action, and it renders to a rich console or to
JSON. :func:`run_audit` makes the pager (:func:`start_walk`, or ``cc.tokens.resume`` from
``--checkpoint``), writes the records and the checkpoint, and closes the report with the
walk's verdict and stats (:func:`render_walk`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any, Final, Literal, TextIO

import attrs
import click
from rich.console import Console

from .._governor import GovernorState
from .._models import ApiToken, TokenStatus
from .._pager import Pager
from .._session import CellcastSession
from .._walk import WalkStats
from ._app import (
    EXIT_OK,
    CliUsageError,
    Connection,
    Settings,
    cli,
    global_options,
    run_async,
)
from ._checkpoint import AuditCheckpoint, read_records, truncate, write_atomically
from ._commands import listing_options
from ._output import console_for, csv_writer, dump_json, make_table
from ._progress import Reporter, make_reporter

# Only type checkers subscript click's ParamType: not every click can at runtime.
if TYPE_CHECKING:
    _ParamType = click.ParamType[datetime]
else:
    _ParamType = click.ParamType

__all__ = [
    "AUDIT_FIELDS",
    "SHOWN",
    "AuditOptions",
    "AuditReport",
    "Flagged",
    "render_report",
    "start_walk",
    "token_record",
]

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
SHOWN: Final = 20
"""Tokens needing action listed on screen per kind; the rest are counted ("and N more")."""
NO_SUB_ACCOUNT: Final = "(none)"


def token_record(token: ApiToken, now: datetime, stale_days: int) -> dict[str, Any]:
    """One audit record. ``token`` is the masked form: a secret is never written."""
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


@attrs.frozen(order=True)
class Flagged:
    """A token that needs action, with what an operator needs to find it; oldest sorts first."""

    created_at: datetime
    id: str
    name: str
    status: str
    sub_account_id: str
    sub_account_name: str
    age_days: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "sub_account_id": self.sub_account_id,
            "sub_account_name": self.sub_account_name,
            "created_at": self.created_at.isoformat(),
            "age_days": self.age_days,
        }


@attrs.define
class AuditReport:
    """What an audit found, built one record at a time."""

    as_of: datetime
    stale_days: int
    total: int = 0
    by_status: Counter[str] = attrs.field(factory=Counter)
    by_sub_account: defaultdict[str, Counter[str]] = attrs.field(
        factory=lambda: defaultdict(Counter)
    )
    sub_account_names: dict[str, str] = attrs.field(factory=dict)
    stale: list[Flagged] = attrs.field(factory=list)
    inactive: list[Flagged] = attrs.field(factory=list)
    oldest: datetime | None = None
    # (sub-account, name) -> the ids carrying it: a name twice in one sub-account is a warning.
    _ids_by_name: defaultdict[tuple[str, str], list[str]] = attrs.field(
        factory=lambda: defaultdict(list), alias="_ids_by_name"
    )

    def add(self, record: Mapping[str, Any], created_at: datetime) -> None:
        self.total += 1
        status = str(record["status"])
        sub_id = record["sub_account_id"] or NO_SUB_ACCOUNT
        self.by_status[status] += 1
        self.by_sub_account[sub_id][status] += 1
        if record["sub_account_name"]:
            self.sub_account_names[sub_id] = record["sub_account_name"]
        if self.oldest is None or created_at < self.oldest:
            self.oldest = created_at
        self._ids_by_name[(sub_id, record["name"])].append(record["id"])
        if record["stale"] or status == TokenStatus.INACTIVE:
            flagged = Flagged(
                created_at=created_at,
                id=record["id"],
                name=record["name"],
                status=status,
                sub_account_id=sub_id,
                sub_account_name=record["sub_account_name"],
                age_days=record["age_days"],
            )
            if record["stale"]:
                self.stale.append(flagged)
            if status == TokenStatus.INACTIVE:
                self.inactive.append(flagged)

    def duplicate_names(self) -> list[dict[str, Any]]:
        """Names carried by more than one token within one sub-account."""
        return [
            {
                "sub_account_id": sub,
                "sub_account_name": self.sub_account_names.get(sub, ""),
                "name": name,
                "ids": sorted(ids),
            }
            for (sub, name), ids in sorted(self._ids_by_name.items())
            if len(ids) > 1
        ]

    def shared_names(self) -> dict[str, list[str]]:
        """Names used in more than one sub-account: normal (each has its "Production API")."""
        subs: defaultdict[str, set[str]] = defaultdict(set)
        for sub, name in self._ids_by_name:
            subs[name].add(sub)
        return {name: sorted(s) for name, s in sorted(subs.items()) if len(s) > 1}

    def statuses(self) -> list[str]:
        """Active and inactive always, then any status the server sent that we do not know."""
        known = [s.value for s in TokenStatus]
        return known + sorted(set(self.by_status) - set(known))

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "stale_days": self.stale_days,
            "total": self.total,
            "by_status": dict(sorted(self.by_status.items())),
            "by_sub_account": [
                {
                    "id": sub,
                    "name": self.sub_account_names.get(sub),
                    "tokens": sum(counts.values()),
                    "by_status": dict(sorted(counts.items())),
                }
                for sub, counts in sorted(self.by_sub_account.items())
            ],
            "stale": {
                "count": len(self.stale),
                "tokens": [t.as_json() for t in sorted(self.stale)],
            },
            "inactive": {
                "count": len(self.inactive),
                "tokens": [t.as_json() for t in sorted(self.inactive)],
            },
            "oldest_created_at": self.oldest.isoformat() if self.oldest else None,
            "duplicate_names": self.duplicate_names(),
            "names_in_several_sub_accounts": self.shared_names(),
        }


# --- rendering -------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _header(report: AuditReport, console: Console, verbose: bool) -> None:
    console.print(
        f"[bold]Audit of {report.total:,} token(s)[/bold] as of {_when(report.as_of)} "
        f"(stale: older than {report.stale_days:,} days)"
    )


def _by_sub_account(report: AuditReport, console: Console, verbose: bool) -> None:
    statuses = report.statuses()
    table = make_table(
        "SUB-ACCOUNT", "NAME", *(s.upper() for s in statuses), "TOTAL", whole=["SUB-ACCOUNT"]
    )
    for sub, counts in sorted(report.by_sub_account.items()):
        table.add_row(
            sub,
            report.sub_account_names.get(sub, ""),
            *(f"{counts[s]:,}" for s in statuses),
            f"{sum(counts.values()):,}",
        )
    table.add_section()
    table.add_row("all", "", *(f"{report.by_status[s]:,}" for s in statuses), f"{report.total:,}")
    console.print()
    console.print(table)


def _flagged_table(
    console: Console, title: str, tokens: list[Flagged], *, with_status: bool
) -> None:
    console.print()
    if not tokens:
        console.print(f"{title}: [green]none[/green]")
        return
    shown = sorted(tokens)[:SHOWN]
    heading = f"[bold]{title}: {len(tokens):,}[/bold]"
    if len(tokens) > len(shown):
        heading += f" (the {len(shown)} oldest)"
    console.print(heading)
    headers = ["ID", "NAME", "SUB-ACCOUNT", *(["STATUS"] if with_status else []), "AGE"]
    table = make_table(*headers)
    for token in shown:
        table.add_row(
            token.id,
            token.name,
            token.sub_account_name or token.sub_account_id,
            *([token.status] if with_status else []),
            f"{token.age_days:,} d",
        )
    console.print(table)
    if len(tokens) > len(shown):
        console.print(
            f"and {len(tokens) - len(shown):,} more (all of them: --json, or the records)"
        )


def _stale(report: AuditReport, console: Console, verbose: bool) -> None:
    title = f"Stale, older than {report.stale_days:,} days"
    _flagged_table(console, title, report.stale, with_status=False)


def _inactive(report: AuditReport, console: Console, verbose: bool) -> None:
    _flagged_table(console, "Inactive", report.inactive, with_status=False)


def _names(report: AuditReport, console: Console, verbose: bool) -> None:
    duplicates = report.duplicate_names()
    if duplicates:
        console.print()
    for dup in duplicates:
        where = dup["sub_account_id"]
        if dup["sub_account_name"]:
            where += f" ({dup['sub_account_name']})"
        console.print(
            f"[yellow]warning:[/yellow] {len(dup['ids'])} tokens named {dup['name']!r} "
            f"in sub-account {where}: {', '.join(dup['ids'])}"
        )
    if verbose:
        shared = report.shared_names()
        console.print()
        console.print(f"Names used in more than one sub-account: {len(shared):,}")
        for name, subs in shared.items():
            console.print(f"  {name!r}: {', '.join(subs)}")


Section = Callable[[AuditReport, Console, bool], None]
# In order; the walk's verdict and stats follow (render_walk: they come from the pager).
SECTIONS: Final[tuple[Section, ...]] = (_header, _by_sub_account, _stale, _inactive, _names)


def walk_json(stats: WalkStats) -> dict[str, Any]:
    """The walk's verdict and what it cost, for ``--json``."""
    return attrs.asdict(stats)


def render_walk(stats: WalkStats, console: Console) -> None:
    """The closing block: whether the inventory is complete, and what the walk cost."""
    if stats.complete:
        verdict = "[green]complete[/]: every token that existed for the whole walk is listed"
    else:
        verdict = (
            "[yellow]not proven complete[/]: the list changed under the walk in a way it"
            " could not rule out; walk again to be sure"
        )
    console.print()
    console.print(f"Walk: {verdict}")
    totals = (
        f"{stats.first_total:,} -> {stats.last_total:,}"
        if stats.first_total is not None and stats.last_total is not None
        else "unknown"
    )
    console.print(
        f"  {stats.items:,} tokens in {stats.pages:,} pages; {stats.requests:,} requests,"
        f" {stats.retries:,} retries, {stats.rate_limited:,} answered 429;"
        f" waited {stats.waited:.1f} s of {stats.elapsed:.1f} s"
    )
    console.print(
        f"  {stats.duplicates_dropped:,} duplicates dropped,"
        f" {stats.refetched_pages:,} pages read again; server total {totals}"
    )


def render_report(report: AuditReport, console: Console, *, verbose: bool = False) -> None:
    for section in SECTIONS:
        section(report, console, verbose)


# --- the walk --------------------------------------------------------------------------


@attrs.frozen
class AuditOptions:
    """The command's options, as the walk and the report need them."""

    sub_account: str | None
    status: str | None
    page_size: int
    concurrency: int | Literal["auto"]
    record_format: str | None
    output: str | None
    stale_days: int
    as_of: datetime | None
    verbose: bool
    checkpoint: str | None = None


def start_walk(cc: CellcastSession, options: AuditOptions) -> Pager[ApiToken]:
    """A new audit's pager (a resumed one comes from ``cc.tokens.resume`` in run_audit)."""
    return cc.tokens.list(
        sub_account_id=options.sub_account,
        status=options.status,
        limit=options.page_size,
        concurrency=options.concurrency,
    )


@attrs.define
class _Output:
    """Where the records go: ``write`` (None: nowhere), the open file, and if it is stdout."""

    write: Callable[[dict[str, Any]], None] | None
    handle: IO[str] | None
    to_stdout: bool
    record_format: str


@contextlib.contextmanager
def _records(options: AuditOptions, stdout: TextIO, *, append: bool = False) -> Iterator[_Output]:
    """The record writer; ``append`` goes on after the records already in --output."""
    # --format alone means "records on stdout"; --output alone means CSV.
    target = options.output or ("-" if options.record_format else None)
    fmt = options.record_format or "csv"
    if target is None:
        yield _Output(None, None, False, fmt)
        return
    with contextlib.ExitStack() as stack:
        handle: IO[str] = (
            stdout
            if target == "-"
            else stack.enter_context(
                open(target, "a" if append else "w", encoding="utf-8", newline="")
            )
        )
        if fmt == "csv":
            write = csv_writer(handle, AUDIT_FIELDS, header=not append)
        else:

            def write(record: dict[str, Any]) -> None:
                dump_json(record, handle)

        yield _Output(write, handle, target == "-", fmt)


def _checkpoint_options(options: AuditOptions) -> dict[str, Any]:
    """The options a resumed audit must share with the one that wrote the checkpoint."""
    return {
        "sub_account": options.sub_account,
        "status": options.status,
        "page_size": options.page_size,
        "record_format": options.record_format or "csv",
        "output": os.path.abspath(options.output or "-"),
        "stale_days": options.stale_days,
    }


def _resume_point(options: AuditOptions, report_as_of: datetime | None) -> AuditCheckpoint | None:
    """The checkpoint to resume from, or None to start; refuses what cannot work."""
    path = options.checkpoint
    if path is None:
        return None
    if options.output in (None, "-"):
        raise CliUsageError(
            "--checkpoint needs --output FILE: a resumed audit rebuilds its report from the"
            " records already written there"
        )
    if not os.path.exists(path):
        return None
    saved = AuditCheckpoint.load(path)
    if dict(saved.options) != _checkpoint_options(options):
        raise CliUsageError(
            f"{path} was written by an audit with other options"
            f" ({_options_text(saved.options)}): run it with those, or delete {path}"
            " to start over"
        )
    if report_as_of is not None and report_as_of.isoformat() != saved.as_of:
        raise CliUsageError(f"{path} judged ages as of {saved.as_of}: drop --as-of to resume")
    return saved


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if v is not None)


def _save(options: AuditOptions, pager: Pager[ApiToken], now: datetime, handle: IO[str]) -> None:
    """After a page's records: flush them to the disk, then write the checkpoint over the
    old one (in that order: a checkpoint never counts a record the disk does not hold)."""
    assert options.checkpoint is not None
    handle.flush()
    os.fsync(handle.fileno())
    checkpoint = AuditCheckpoint(
        pager=pager.checkpoint(),
        options=_checkpoint_options(options),
        as_of=now.isoformat(),
        output=os.path.abspath(options.output or "-"),
        output_bytes=handle.tell(),
    )
    write_atomically(options.checkpoint, checkpoint.dumps())


def _finished(path: str) -> None:
    """The audit is over: remove its checkpoint, so the same command next time starts anew."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def governor_status(state: GovernorState) -> str | None:
    """The governor's state as the progress display shows it (None: nothing to say)."""
    if state.paused_until is not None:
        return f"paused after a 429 ({state.rate_limited:,} so far)"
    if state.reason == "probing":
        return "probing the server's rate after a 429"
    return None


async def _watch_governor(cc: CellcastSession, progress: Reporter) -> None:
    """Show a pause for a 429 while it lasts: no page completes to say so meanwhile."""
    shown: str | None = None
    while True:
        text = governor_status(cc.governor_state)
        if text != shown:
            progress.status(text)
            shown = text
        await asyncio.sleep(0.25)


async def run_audit(conn: Connection, options: AuditOptions, settings: Settings) -> int:
    saved = _resume_point(options, options.as_of)
    now = options.as_of or conn.default_as_of()
    if saved is not None:
        now = datetime.fromisoformat(saved.as_of)
    report = AuditReport(as_of=now, stale_days=options.stale_days)
    if saved is not None:
        assert options.output is not None
        assert options.checkpoint is not None
        try:  # before the output is touched: a pager checkpoint that does not read stops here
            pager = conn.cc.tokens.resume(saved.pager, concurrency=options.concurrency)
        except ValueError as exc:
            raise CliUsageError(f"{options.checkpoint}: {exc}") from None
        truncate(options.output, saved.output_bytes)
        for record, created_at in read_records(options.output, options.record_format or "csv"):
            report.add(record, created_at)
    else:
        pager = start_walk(conn.cc, options)
    with (
        _records(options, settings.out, append=saved is not None) as output,
        make_reporter(settings.err, quiet=settings.quiet) as progress,
    ):
        watcher = asyncio.ensure_future(_watch_governor(conn.cc, progress))
        try:
            async for page in pager.pages():
                for token in page.items:
                    record = token_record(token, now, options.stale_days)
                    report.add(record, token.created_at)
                    if output.write is not None:
                        output.write(record)
                if options.checkpoint is not None and output.handle is not None:
                    _save(options, pager, now, output.handle)
                progress.advance(report.total, page.total)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    if options.checkpoint is not None:
        _finished(options.checkpoint)
    # Records on stdout keep stdout machine-readable: the report then goes to stderr.
    target = settings.err if output.to_stdout else settings.out
    stats = pager.stats
    if settings.json:
        dump_json({**report.as_json(), "walk": walk_json(stats)}, target, indent=2)
    else:
        console = console_for(target)
        render_report(report, console, verbose=options.verbose)
        render_walk(stats, console)
    return EXIT_OK


class _Timestamp(_ParamType):
    """An ISO-8601 time; without an offset it is UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"expected an ISO-8601 time, got {value!r}", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@cli.command("audit")
@listing_options
@click.option(
    "--format",
    "record_format",
    type=click.Choice(["csv", "jsonl"]),
    help="Write one record per token in this format (to stdout unless --output).  [default: csv]",
)
@click.option(
    "--output",
    metavar="FILE",
    help="Write the records to FILE ('-' = stdout; the report then goes to stderr).",
)
@click.option(
    "--stale-days",
    type=click.IntRange(min=0),
    default=365,
    metavar="N",
    help="A token older than this is stale.",
)
@click.option(
    "--as-of",
    type=_Timestamp(),
    help="Judge ages as of this time.  [default: now; the demo's own time with --sandbox]",
)
@click.option("--verbose", "-v", is_flag=True, help="Also list names used in several sub-accounts.")
@click.option(
    "--checkpoint",
    metavar="FILE",
    help=(
        "Save progress to FILE after every page; when FILE exists, resume from it and append"
        " to --output (which it needs). Removed once the audit finishes."
    ),
)
@global_options()
@click.pass_obj
def audit_command(settings: Settings, /, **params: Any) -> int:
    """Walk every token and report what needs action.

    The report names the stale and the inactive tokens (the 20 oldest of each on screen,
    all of them with --json), splits statuses per sub-account and warns about a name used
    twice in one sub-account. Progress goes to stderr.
    """
    options = AuditOptions(**params)

    async def work(conn: Connection) -> int:
        return await run_audit(conn, options, settings)

    return run_async(settings, work)
