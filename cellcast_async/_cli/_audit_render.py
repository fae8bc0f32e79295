"""The audit's report drawn: rich tables on a console, or one JSON object (``--json``).

The sections follow one another in :data:`SECTIONS`; the walk's verdict and what it cost
close the report (:func:`render_walk`: they come from the pager, not from the records).
Names, ids and sub-accounts come from the server: data, never markup (README "What the
command line prints").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Final, TextIO

import attrs
from rich.console import Console
from rich.text import Text

from .._walk import WalkStats
from ._audit_report import AuditReport, Flagged, oldest
from ._output import console_for, data, dump_json, make_table, plural

__all__ = [
    "SECTIONS",
    "SHOWN",
    "Section",
    "emit_report",
    "render_report",
    "render_walk",
    "walk_json",
]

SHOWN: Final = 20
"""Tokens needing action listed on screen per kind; the rest are counted ("and N more")."""


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _header(report: AuditReport, console: Console, verbose: bool) -> None:
    console.print(
        f"[bold]Audit of {report.total:,} token(s)[/bold] as of {_when(report.as_of)} "
        f"(stale: older than {report.stale_days:,} days)"
    )


OWN_COLUMNS: Final = 3
"""Statuses the SDK does not know that get a column of their own (the most used ones)."""

HEADER_CHARS: Final = 24
"""A status longer than this heads its column cut, with an ellipsis."""


def _status_columns(report: AuditReport) -> tuple[list[str], list[str]]:
    """The statuses with a column each, and the rest, counted in one OTHER column.

    Statuses come from the server: 2,000 distinct ones, or one of 200,000 characters,
    must not squeeze the table to nothing (README "Command line"). ``--json`` has each.
    """
    statuses = report.statuses()
    known, unknown = statuses[:2], statuses[2:]
    unknown.sort(key=lambda s: (-report.by_status[s], s))
    return known + sorted(unknown[:OWN_COLUMNS]), unknown[OWN_COLUMNS:]


def _status_header(status: str) -> str:
    text = status.upper()
    return text if len(text) <= HEADER_CHARS else text[: HEADER_CHARS - 1] + "\u2026"


def _by_sub_account(report: AuditReport, console: Console, verbose: bool) -> None:
    statuses, rest = _status_columns(report)
    other = [f"{len(rest):,} OTHER"] if rest else []
    table = make_table(
        "SUB-ACCOUNT",
        "NAME",
        *(_status_header(s) for s in statuses),
        *other,
        "TOTAL",
        whole=["SUB-ACCOUNT"],
    )

    def cells(counts: Mapping[str, int]) -> list[str]:
        own = [f"{counts.get(s, 0):,}" for s in statuses]
        return own + ([f"{sum(counts.get(s, 0) for s in rest):,}"] if rest else [])

    for sub, counts in sorted(report.by_sub_account.items()):
        table.add_row(
            sub,
            report.sub_account_names.get(sub, ""),
            *cells(counts),
            f"{sum(counts.values()):,}",
        )
    table.add_section()
    table.add_row("all", "", *cells(report.by_status), f"{report.total:,}")
    console.print()
    console.print(table)


def _flagged_table(
    console: Console, title: str, tokens: list[Flagged], *, with_status: bool
) -> None:
    console.print()
    if not tokens:
        console.print(f"{title}: [green]none[/green]")
        return
    shown = oldest(tokens, SHOWN)  # a heap: 100,000 stale tokens are not all sorted
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
        # Names, ids and sub-accounts come from the server: data, never markup.
        console.print(
            Text.assemble(
                ("warning:", "yellow"),
                f" {len(dup['ids'])} tokens named ",
                data(f"{dup['name']!r} in sub-account {where}: {', '.join(dup['ids'])}"),
            )
        )
    if verbose:
        shared = report.shared_names()
        console.print()
        console.print(f"Names used in more than one sub-account: {len(shared):,}")
        for name, subs in shared.items():
            console.print(data(f"  {name!r}: {', '.join(subs)}"))


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
    # ``waited`` is wall-clock time, within ``elapsed``; pages in flight at once may have
    # waited longer in sum (README "Walk stats").
    summed = (
        f" ({stats.waited_sum:.1f} s summed over pages in flight)"
        if f"{stats.waited_sum:.1f}" != f"{stats.waited:.1f}"
        else ""
    )
    console.print(
        f"  {_count(stats.items, 'token')} in {_count(stats.pages, 'page')};"
        f" {_count(stats.requests, 'request')}, {_count(stats.retries, 'retry', 'retries')},"
        f" {stats.rate_limited:,} answered 429;"
        f" waited {stats.waited:.1f} s of {stats.elapsed:.1f} s{summed}"
    )
    console.print(
        f"  {_count(stats.duplicates_dropped, 'duplicate')} dropped,"
        f" {_count(stats.refetched_pages, 'page')} read again; server total {totals}"
    )


def _count(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 retry``, ``2 retries``, ``1,000 pages``."""
    return f"{count:,} {plural(count, noun, nouns)}"


def render_report(report: AuditReport, console: Console, *, verbose: bool = False) -> None:
    for section in SECTIONS:
        section(report, console, verbose)


def emit_report(
    report: AuditReport, stats: WalkStats, target: TextIO, *, as_json: bool, verbose: bool
) -> None:
    """The whole report on ``target``: one JSON object, or the sections and the walk."""
    if as_json:
        dump_json({**report.as_json(), "walk": walk_json(stats)}, target, indent=2)
        return
    console = console_for(target)
    render_report(report, console, verbose=verbose)
    render_walk(stats, console)
