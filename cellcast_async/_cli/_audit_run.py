"""The audit's walk: the pager, the records it writes, and ``--checkpoint``'s resumes.

:func:`run_audit` makes the pager (:func:`start_walk`, or ``cc.tokens.resume`` from the
checkpoint), writes one record per token (``_records``), saves the checkpoint after each
page (``_checkpoint``: the file itself), feeds the report (``_audit_report``) and draws
it (``_audit_render``) with the walk's verdict and stats (README "Command line", "Long
audits").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any, Final, Literal, TextIO

import attrs

from .._governor import GovernorState
from .._models import ApiToken
from .._pager import Pager
from .._seal import CheckpointKey
from .._session import CellcastSession, checkpoint_key
from .._walk import Listing, decode_checkpoint
from ._audit_charts import AuditFigures, require_charts
from ._audit_render import emit_report
from ._audit_report import AuditReport
from ._checkpoint import (
    AuditCheckpoint,
    check_length,
    check_writable,
    locked,
    read_records,
    truncate,
    write_atomically,
)
from ._context import EXIT_OK, CliUsageError, Connection, Settings
from ._ocsf import FindingContext, FindingWriter, scope_of
from ._output import plural
from ._progress import Reporter, make_reporter
from ._records import RecordFormat, record_writer, token_record

__all__ = [
    "AuditFormat",
    "AuditOptions",
    "check_html",
    "infer_format",
    "governor_status",
    "run_audit",
    "start_walk",
]

AuditFormat = Literal["csv", "jsonl", "ocsf"]
"""What ``--format`` writes: records (``_records``) or OCSF findings (``_ocsf``)."""


# The ends of an --output name that choose the format when --format is not given; the
# longest that matches wins (``x.ocsf.jsonl`` is OCSF, ``x.jsonl`` records).
_EXTENSIONS: Final = (
    (".ocsf.jsonl", "ocsf"),
    (".ocsf.json", "ocsf"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".csv", "csv"),
)


def infer_format(output: str | None, given: AuditFormat | None) -> AuditFormat | None:
    """``--format``, or when not given the one ``--output``'s extension names.

    An explicit ``--format`` always wins. ``.json`` is refused: the records are JSON
    Lines, which a tool opening ``x.json`` would not read. Any other name (or none, or
    ``-``) leaves the format unset: CSV, as before.
    """
    if given is not None or output is None or output == "-":
        return given
    name = output.lower()
    for end, fmt in _EXTENSIONS:
        if name.endswith(end):
            return fmt  # type: ignore[return-value]
    if name.endswith(".json"):
        raise CliUsageError(
            f"--output {output}: the records are JSON Lines, not one JSON document; name"
            " it .jsonl (or pass --format jsonl, or --format csv)"
        )
    return None


@attrs.frozen
class AuditOptions:
    """The command's options, as the walk and the report need them."""

    sub_account: str | None
    status: str | None
    page_size: int
    concurrency: int | Literal["auto"]
    record_format: AuditFormat | None
    output: str | None
    stale_days: int
    as_of: datetime | None
    verbose: bool
    checkpoint: str | None = None
    html: str | None = None


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

    write: Callable[[Mapping[str, Any]], None] | None
    handle: IO[str] | None
    to_stdout: bool
    record_format: AuditFormat
    finish: Callable[[AuditReport], None] | None = None
    """What is written once the walk is over (the OCSF duplicate-name findings)."""


@contextlib.contextmanager
def _open_records(
    options: AuditOptions,
    stdout: TextIO,
    *,
    append: bool = False,
    findings: FindingContext | None = None,
) -> Iterator[_Output]:
    """The record writer; ``append`` goes on after the records already in --output.
    ``findings``: what OCSF findings share, for ``--format ocsf``."""
    # --format alone means "records on stdout"; --output alone means CSV.
    target = options.output or ("-" if options.record_format else None)
    fmt: AuditFormat = options.record_format or "csv"
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
        if fmt == "ocsf":
            assert findings is not None
            writer = FindingWriter(handle, findings)
            yield _Output(writer.write, handle, target == "-", fmt, writer.finish)
            return
        write = record_writer(handle, fmt, header=not append)
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


def _check_checkpoint_paths(options: AuditOptions) -> None:
    """Before anything is opened: what --checkpoint cannot work with."""
    path = options.checkpoint
    if path is None:
        return
    if not path or path.endswith(os.sep):
        raise CliUsageError(f"--checkpoint needs a file name, got {path!r}")
    if options.record_format == "ocsf":
        raise CliUsageError(
            "--checkpoint cannot resume --format ocsf (findings are not one record per"
            " token): checkpoint a --format jsonl audit instead"
        )
    if options.output in (None, "-"):
        raise CliUsageError(
            "--checkpoint needs --output FILE: a resumed audit rebuilds its report from the"
            " records already written there"
        )
    assert options.output is not None
    # One file under two names (a typo, another spelling, a symlink, a hard link): the
    # checkpoint would be written over the records.
    same = os.path.realpath(path) == os.path.realpath(options.output)
    if not same:
        with contextlib.suppress(OSError):
            same = os.path.samefile(path, options.output)
    if same:
        raise CliUsageError(
            f"--checkpoint and --output name the same file ({path}): the checkpoint would"
            " overwrite the records"
        )


def check_html(options: AuditOptions) -> None:
    """Before anything is sent: ``--html`` has its chart library and a file it can write."""
    path = options.html
    if path is None:
        return
    require_charts()
    # Not '-': stdout carries the report (or the records), and a page there helps no one.
    if not path or path == "-" or path.endswith(os.sep) or os.path.isdir(path):
        raise CliUsageError(f"--html needs a file name, got {path!r}")
    for option, other in (("--output", options.output), ("--checkpoint", options.checkpoint)):
        if other not in (None, "-") and os.path.realpath(other) == os.path.realpath(path):
            raise CliUsageError(f"--html and {option} name the same file ({path})")
    check_writable(path)


def _resume_point(
    options: AuditOptions, report_as_of: datetime | None, key: CheckpointKey
) -> AuditCheckpoint | None:
    """The checkpoint to resume from, or None to start; refuses what cannot work."""
    path = options.checkpoint
    if path is None or not os.path.exists(path):
        return None
    saved = AuditCheckpoint.load(path, key)
    if dict(saved.options) != _checkpoint_options(options):
        raise CliUsageError(
            f"{path} was written by an audit with other options"
            f" ({_options_text(saved.options)}): run it with those, or delete {path}"
            " to start over"
        )
    if report_as_of is not None and report_as_of.isoformat() != saved.as_of:
        raise CliUsageError(f"{path} judged ages as of {saved.as_of}: drop --as-of to resume")
    return saved


def _listing_text(listing: Listing | None) -> str:
    if listing is None:
        return "no listing"
    query = "&".join(f"{k}={v}" for k, v in listing.params)
    return f"{listing.path}?{query}" if query else listing.path


def _resumed(
    cc: CellcastSession, options: AuditOptions, saved: AuditCheckpoint, key: CheckpointKey
) -> Pager[ApiToken]:
    """The audit's pager from ``saved``: the walk it names must be the one these options make."""
    path = options.checkpoint
    try:
        pager = cc.tokens.resume(saved.pager, concurrency=options.concurrency)
        listing = decode_checkpoint(saved.pager, key)[0].listing
    except ValueError as exc:
        raise CliUsageError(f"{path}: {exc}") from None
    expected = decode_checkpoint(start_walk(cc, options).checkpoint(), key)[0].listing
    if listing != expected:
        raise CliUsageError(
            f"{path}: its walk lists {_listing_text(listing)}, this audit lists"
            f" {_listing_text(expected)}: delete {path} to start over"
        )
    return pager


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()) if v is not None)


def _save(
    options: AuditOptions,
    pager: Pager[ApiToken],
    now: datetime,
    handle: IO[str],
    key: CheckpointKey,
) -> None:
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
    write_atomically(options.checkpoint, checkpoint.dumps(key))


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
    _check_checkpoint_paths(options)
    if options.checkpoint is None:
        return await _audit(conn, options, settings)
    with locked(options.checkpoint):  # one audit at a time on one checkpoint
        check_writable(options.checkpoint)
        return await _audit(conn, options, settings)


async def _audit(conn: Connection, options: AuditOptions, settings: Settings) -> int:
    key = checkpoint_key(conn.cc)
    if options.checkpoint is not None:
        # The seal's key costs a scrypt: derived off the event loop, once.
        await asyncio.to_thread(lambda: key.key_id)
    saved = _resume_point(options, options.as_of, key)
    now = options.as_of or conn.default_as_of()
    if saved is not None:
        now = datetime.fromisoformat(saved.as_of)
    report = AuditReport(as_of=now, stale_days=options.stale_days)
    # The page's charts need every token's age and month; only --html pays for them.
    figures = AuditFigures() if options.html is not None else None
    if saved is not None:
        pager = _rebuild(conn.cc, options, saved, key, report, figures)
        if not settings.quiet:
            settings.err.write(
                f"resuming from {options.checkpoint}: {report.total:,}"
                f" {plural(report.total, 'token')} already in {options.output}\n"
            )
    else:
        pager = start_walk(conn.cc, options)
    findings = FindingContext(scope_of(conn.cc.base_url), now, options.stale_days)
    with (
        _open_records(options, settings.out, append=saved is not None, findings=findings) as output,
        make_reporter(settings.err, quiet=settings.quiet) as progress,
    ):
        watcher = asyncio.ensure_future(_watch_governor(conn.cc, progress))
        try:
            await _walk(pager, options, now, key, report, figures, output, progress)
            if output.finish is not None:
                output.finish(report)
        except (KeyboardInterrupt, asyncio.CancelledError):
            _resume_hint(options, settings)
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    if options.checkpoint is not None:
        _finished(options.checkpoint)
    # Records on stdout keep stdout machine-readable: the report then goes to stderr.
    target = settings.err if output.to_stdout else settings.out
    if options.html is not None and figures is not None:
        from ._audit_html import write_html  # pygal is imported only for --html

        write_html(options.html, report, figures, pager.stats)
    if settings.quiet and not settings.json and output.write is not None:
        return EXIT_OK  # --quiet: the records are the output, no report beside them
    emit_report(report, pager.stats, target, as_json=settings.json, verbose=options.verbose)
    return EXIT_OK


def _resume_hint(options: AuditOptions, settings: Settings) -> None:
    """After Ctrl-C: how to go on where the audit stopped (stderr; said even with --quiet)."""
    if options.checkpoint is not None:
        settings.err.write(
            f"to resume, run the same command again: it goes on from {options.checkpoint}\n"
        )
    elif options.record_format != "ocsf":
        settings.err.write(
            "to make an audit resumable, run it with --checkpoint FILE --output FILE:"
            " run again, it goes on where it stopped\n"
        )


def _rebuild(
    cc: CellcastSession,
    options: AuditOptions,
    saved: AuditCheckpoint,
    key: CheckpointKey,
    report: AuditReport,
    figures: AuditFigures | None,
) -> Pager[ApiToken]:
    """A resumed audit: its pager, and the report rebuilt from the records already written."""
    assert options.output is not None
    assert options.checkpoint is not None
    # Before the output is touched: a pager checkpoint that does not read stops here.
    pager = _resumed(cc, options, saved, key)
    check_length(options.output, saved.output_bytes)
    assert options.record_format != "ocsf"  # refused with --checkpoint
    fmt: RecordFormat = options.record_format or "csv"
    for record, created_at in read_records(options.output, fmt, saved.output_bytes):
        report.add(record, created_at)
        if figures is not None:
            figures.add(record, created_at)
    # Every record the walk handed over is in the output, and nothing else; checked
    # before the output is cut back to what the checkpoint counted.
    if report.total != pager.stats.items:
        raise CliUsageError(
            f"{options.output} holds {report.total:,} records where {options.checkpoint}"
            f" counted {pager.stats.items:,}: delete the checkpoint to start over"
        )
    truncate(options.output, saved.output_bytes)
    return pager


async def _walk(
    pager: Pager[ApiToken],
    options: AuditOptions,
    now: datetime,
    key: CheckpointKey,
    report: AuditReport,
    figures: AuditFigures | None,
    output: _Output,
    progress: Reporter,
) -> None:
    """Page by page: a record per token to the report and the output, then the checkpoint."""
    async for page in pager.pages():
        for token in page.items:
            record = token_record(token, now, options.stale_days)
            report.add(record, token.created_at)
            if figures is not None:
                figures.add(record, token.created_at)
            if output.write is not None:
                output.write(record)
        if options.checkpoint is not None and output.handle is not None:
            _save(options, pager, now, output.handle, key)
        progress.advance(report.total, page.total)
