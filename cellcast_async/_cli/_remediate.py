"""``plan deactivate|delete|rotate``, ``show``, ``apply`` and ``undo``: acting on an audit.

``plan`` walks the listing (or reads an audit's records, ``--from``) and writes a sealed
plan; it sends no write. ``show`` prints a plan or a journal for review. ``apply`` checks
the plan, says what it will do, asks for confirmation (``--yes``, or the number of changes
typed on a terminal) and applies it with a journal; ``undo`` reactivates what a journal
deactivated. The engine is the SDK's (``cellcast_async._remediate``); this module reads
options, confirms, reports progress on stderr and prints the summary (README "Acting on an
audit").
"""

from __future__ import annotations

import os
import stat
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Final

import click

from .._exceptions import NotFoundError
from .._journal import Journal
from .._models import ApiToken, Secret
from .._plan import Plan, PlanError, build_plan, format_time, read_capped
from .._remediate import (
    DEFAULT_WRITE_RATE,
    Outcome,
    apply_plan,
    deleted,
    reverse_plan,
    undo_plan,
)
from .._rotate_plan import build_retire_plan, build_rotate_plan, finished_rotations
from ._checkpoint import check_writable
from ._context import EXIT_API, EXIT_OK, CliUsageError, Connection, Settings
from ._deliver import CommandSink, DirectorySink, deliver_options, make_sink
from ._errors import run_async, usage_error
from ._options import (
    DAYS,
    Timestamp,
    global_options,
    option_group,
    paging_options,
    per_second_option,
)
from ._output import console_for, dump_json, make_table, shown
from ._progress import make_reporter
from ._records import FIELDS, RecordError, iter_raw_records, typed_record

__all__ = ["apply_command", "plan_group", "show_command", "undo_command"]

MAX_EXEMPT_BYTES: Final = 4 * 2**20
"""The largest ``--exempt`` file read (4 MiB)."""
_RESULTS: Final = ("done", "already", "skipped", "failed", "planned")


# --- plan ----------------------------------------------------------------------------


def _read_exempt(path: str | None) -> list[str]:
    """Ids or exact names, one a line; blank lines ignored (a name keeps its spaces)."""
    if path is None:
        return []
    try:
        text = read_capped(path, MAX_EXEMPT_BYTES, "list of exemptions").decode("utf-8")
    except PlanError as exc:
        raise CliUsageError(f"--exempt: {exc.message}") from None
    except UnicodeDecodeError:
        raise CliUsageError(f"--exempt: {path} is not UTF-8 text") from None
    # A byte-order mark (Notepad's UTF-8) would glue itself to the first id, which then
    # matched nothing: that token was chosen after all.
    text = text.removeprefix("\ufeff")
    return [line.removesuffix("\r") for line in text.split("\n") if line.strip()]


def _records(path: str) -> Iterator[ApiToken]:
    """The tokens an audit's records describe (``--from``), as the plan will see them."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CliUsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            for where, raw in iter_raw_records(handle, path, FIELDS):
                try:
                    record, created = typed_record(
                        raw, from_csv=not isinstance(raw.get("stale"), bool)
                    )
                except RecordError as exc:
                    raise RecordError(f"{where}: {exc}") from None
                if not record["id"]:
                    raise RecordError(f"{where}: a record without an id")
                yield ApiToken(
                    id=record["id"],
                    name=record["name"],
                    token=Secret(record["token"]),  # masked: an audit writes no secret
                    status=record["status"],
                    created_at=created,
                    sub_account_id=record["sub_account_id"] or None,
                )
        except RecordError as exc:
            raise CliUsageError(f"--from: {exc}") from None


async def _walk(
    conn: Connection, settings: Settings, params: dict[str, Any], status: str
) -> list[ApiToken]:
    """Every token of the listing (each ``--sub-account`` in turn) with ``status``."""
    subs = params["sub_account"] or (None,)
    found: list[ApiToken] = []
    for sub in subs:
        pager = conn.cc.tokens.list(
            sub_account_id=sub,
            status=status,
            limit=params["page_size"],
            concurrency=params["concurrency"],
        )
        with make_reporter(settings.err, quiet=settings.quiet, label="plan") as progress:
            async for token in pager:
                found.append(token)
                progress.advance(len(found), None)
    return found


_plan_options: Final = option_group(
    click.option(
        "--as-of",
        type=Timestamp(),
        help="Judge ages as of this time.  [default: now; the demo's with --sandbox]",
    ),
    click.option(
        "--sub-account",
        metavar="ID",
        multiple=True,
        help="Only this sub-account's tokens (repeat for several).",
    ),
    click.option(
        "--exempt",
        metavar="FILE",
        help="Ids or exact names, one a line, never chosen.",
    ),
    click.option(
        "--from",
        "records",
        metavar="RECORDS",
        help="Choose from an audit's records (CSV or JSON Lines) instead of a walk.",
    ),
    click.option("--output", required=True, metavar="FILE", help="Write the plan here."),
    paging_options,  # last in --help
)


@click.group("plan")
def plan_group() -> None:
    """Choose tokens to deactivate, delete or rotate, and write the plan (nothing is changed)."""


def _rule_options(
    status: str, journal: str, did: str, when: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--stale-days N, or --JOURNAL-option and --grace-days D (a plan takes one rule)."""
    return option_group(
        click.option(
            "--stale-days",
            type=DAYS,
            metavar="N",
            help=f"Choose {status} tokens older than this.",
        ),
        click.option(
            f"--{journal}",
            metavar="JOURNAL",
            help=f"Choose the tokens this apply journal {did} (with --grace-days).",
        ),
        click.option(
            "--grace-days",
            type=DAYS,
            metavar="D",
            help=f"With --{journal}: {when} at least D days before --as-of.",
        ),
    )


def _one_rule(settings: Settings, command: str, params: dict[str, Any], journal: str) -> int:
    """0 when --stale-days, or the journal option with --grace-days, is given (exactly one
    of the two); else the usage error's exit code."""
    by_age = params["stale_days"] is not None
    by_journal = params[journal] is not None or params["grace_days"] is not None
    both = params[journal] is not None and params["grace_days"] is not None
    if by_age != by_journal and (by_age or both):
        return 0
    option = journal.replace("_", "-")
    return usage_error(
        settings, f"{command} needs --stale-days N, or --{option} JOURNAL and --grace-days D"
    )


@plan_group.command("deactivate")
@_rule_options("active", "rotated-by", "rotated", "rotation finished")
@_plan_options
@global_options()
@click.pass_obj
def plan_deactivate_command(settings: Settings, /, **params: Any) -> int:
    """Plan to deactivate active tokens older than --stale-days (the audit's rule), or the
    old tokens of rotations a journal finished at least --grace-days ago (reversible: undo)."""
    return _one_rule(settings, "plan deactivate", params, "rotated_by") or _plan(
        settings, "deactivate", params
    )


@plan_group.command("delete")
@_rule_options("inactive", "deactivated-by", "deactivated", "deactivated")
@_plan_options
@global_options()
@click.pass_obj
def plan_delete_command(settings: Settings, /, **params: Any) -> int:
    """Plan to delete inactive tokens: older than --stale-days, or deactivated by a journal
    at least --grace-days ago. An active token is never chosen."""
    return _one_rule(settings, "plan delete", params, "deactivated_by") or _plan(
        settings, "delete", params
    )


@plan_group.command("rotate")
@click.option(
    "--stale-days",
    type=DAYS,
    metavar="N",
    help="Choose active tokens older than this (the audit's rule).",
)
@click.option(
    "--id",
    "ids",
    metavar="ID",
    multiple=True,
    help="Choose this token (repeat for several).",
)
@_plan_options
@global_options()
@click.pass_obj
def plan_rotate_command(settings: Settings, /, **params: Any) -> int:
    """Plan to rotate active tokens: older than --stale-days, or those --id names. Apply
    it with --deliver-dir or --deliver-cmd (README "Rotating tokens")."""
    if (params["stale_days"] is None) == (not params["ids"]):
        return usage_error(settings, "plan rotate needs --stale-days N or --id ID, one of them")
    return _plan(settings, "rotate", params)


def _plan(settings: Settings, action: str, params: dict[str, Any]) -> int:
    async def work(conn: Connection) -> int:
        try:
            return await _plan_work(conn, settings, action, params)
        except PlanError as exc:
            raise CliUsageError(str(exc)) from None

    return run_async(settings, work)


def _check_output(output: str, params: dict[str, Any]) -> None:
    if not output or output == "-" or os.path.isdir(output):
        raise CliUsageError(f"--output needs a file name, got {output!r}")
    # The plan replaces --output: never one of this command's own inputs (the journal
    # an undo needs, the audit's records, the exemptions).
    for name in ("records", "exempt", "deactivated_by", "rotated_by"):
        source = params.get(name)
        if source is None:
            continue
        try:
            same = os.path.samefile(source, output)
        except OSError:
            continue  # one of them does not exist: not the same file
        if same:
            option = "--from" if name == "records" else f"--{name.replace('_', '-')}"
            raise CliUsageError(
                f"--output and {option} name the same file ({shown(output)}): the plan"
                " would replace it"
            )
    check_writable(output)


async def _plan_work(
    conn: Connection, settings: Settings, action: str, params: dict[str, Any]
) -> int:
    output: str = params["output"]
    _check_output(output, params)
    exempt = _read_exempt(params["exempt"])
    deactivated_by = None
    if params.get("deactivated_by") is not None:
        deactivated_by = Journal.read(params["deactivated_by"], conn.cc).deactivated()
    rotated_by = None
    if params.get("rotated_by") is not None:
        rotated_by = finished_rotations(Journal.read(params["rotated_by"], conn.cc))
    status = "inactive" if action == "delete" else "active"
    tokens: Iterable[ApiToken]
    if params["records"] is not None:
        tokens = list(_records(params["records"]))
    elif params.get("ids"):
        tokens = await _by_id(conn, params["ids"])
    else:
        tokens = await _walk(conn, settings, params, status)
    as_of: datetime = params["as_of"] or conn.default_as_of()
    common: dict[str, Any] = {
        "as_of": as_of,
        "account": conn.cc,
        "exempt": exempt,
        "sub_accounts": params["sub_account"],
        "source": "records" if params["records"] is not None else "listing",
    }
    if action == "rotate":
        plan = build_rotate_plan(
            tokens, stale_days=params["stale_days"], ids=params["ids"] or None, **common
        )
    elif rotated_by is not None:
        plan = build_retire_plan(
            tokens, rotated_by=rotated_by, grace_days=params["grace_days"], **common
        )
    else:
        plan = build_plan(
            tokens,
            action="deactivate" if action == "deactivate" else "delete",
            stale_days=params["stale_days"],
            deactivated_by=deactivated_by,
            grace_days=params.get("grace_days"),
            **common,
        )
    plan.save(output, conn.cc)
    if settings.json:
        dump_json(_plan_summary(plan, output), settings.out)
    else:
        _print_counts(settings, plan)
        settings.out.write(
            f"plan: {len(plan.items):,} token(s) to {action}, written to {shown(output)}\n"
        )
    return EXIT_OK


async def _by_id(conn: Connection, ids: Iterable[str]) -> list[ApiToken]:
    """The tokens ``--id`` names, read one by one (one missing is the plan's to name)."""
    found = []
    for token_id in dict.fromkeys(ids):
        try:
            found.append(await conn.cc.tokens.get(token_id))
        except NotFoundError:
            continue
    return found


def _plan_summary(plan: Plan, path: str) -> dict[str, Any]:
    return {
        "plan": path,
        "digest": plan.digest,
        "action": plan.action,
        "as_of": format_time(plan.as_of),
        "tokens": len(plan.items),
        "by_sub_account": _by_sub(plan),
    }


def _by_sub(plan: Plan) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (action, sub), count in sorted(plan.counts().items()):
        out.setdefault(sub, {})[action] = count
    return out


def _print_counts(settings: Settings, plan: Plan, *, stream: Any = None) -> None:
    table = make_table("ACTION", "SUB-ACCOUNT", "COUNT", title="Changes", whole=["SUB-ACCOUNT"])
    for (action, sub), count in sorted(plan.counts().items()):
        table.add_row(action, sub or "-", f"{count:,}")
    console_for(stream or settings.out).print(table)


# --- show ----------------------------------------------------------------------------


def _is_journal(path: str) -> bool:
    try:
        # Non-blocking, and only a regular file: a FIFO must not hang ``show``.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # Plan.load says why
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # Plan.load refuses it
        head = handle.read(64)
    # A journal's first line starts with its sorted keys: {"format":"cellcast-journal",...
    return head.startswith(b'{"format":"cellcast-journal"')


@click.command("show")
@click.argument("path", metavar="PLAN_OR_JOURNAL")
@global_options()
@click.pass_obj
def show_command(settings: Settings, path: str) -> int:
    """Print what a plan or a journal holds: a table, or with --json one object."""

    async def work(conn: Connection) -> int:
        try:
            if _is_journal(path):
                journal = Journal.read(path, conn.cc)
                _show(settings, journal.plan, journal)
            else:
                _show(settings, Plan.load(path, conn.cc), None)
        except PlanError as exc:
            raise CliUsageError(str(exc)) from None
        return EXIT_OK

    return run_async(settings, work)


def _item_view(plan: Plan, journal: Journal | None) -> list[dict[str, Any]]:
    rows = []
    for item in plan.items:
        view: dict[str, Any] = item.as_json()
        if journal is not None:
            final = journal.final(item.id)
            last = journal.last(item.id)
            view["result"] = (
                final.result if final else ("intent" if last is not None else "pending")
            )
            view["reason"] = final.reason if final else None
        rows.append(view)
    return rows


def _show(settings: Settings, plan: Plan, journal: Journal | None) -> None:
    rows = _item_view(plan, journal)
    if settings.json:
        body = {
            "kind": "journal" if journal is not None else "plan",
            "digest": plan.digest,
            "action": plan.action,
            "as_of": format_time(plan.as_of),
            "base_url": plan.base_url,
            "selection": dict(plan.selection),
            "tokens": len(plan.items),
            "items": rows,
        }
        if journal is not None:
            body["counts"] = dict(Counter(r["result"] for r in rows))
        dump_json(body, settings.out)
        return
    headers = ["ID", "NAME", "SUB-ACCOUNT", "STATUS", "CREATED", "ACTION"]
    if journal is not None:
        headers += ["RESULT", "REASON"]
    table = make_table(*headers, whole=["SUB-ACCOUNT", "ACTION", "RESULT"])
    for row in rows:
        cells = [
            row["id"],
            row["name"],
            row["sub_account_id"] or "-",
            row["status"],
            row["created_at"],
            row["action"],
        ]
        if journal is not None:
            cells += [row["result"], row["reason"] or ""]
        table.add_row(*cells)
    console = console_for(settings.out)
    console.print(table)
    what = "journal" if journal is not None else "plan"
    settings.out.write(
        f"{what}: {len(plan.items):,} token(s), action {plan.action}, as of"
        f" {format_time(plan.as_of)}, for {shown(plan.base_url)}\n"
    )
    if journal is not None:
        counts = Counter(r["result"] for r in rows)
        settings.out.write(", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) + "\n")


# --- apply and undo -------------------------------------------------------------------


def _confirm(settings: Settings, changes: int, *, yes: bool, dry_run: bool) -> None:
    """``--yes``, or the number of changes typed on a terminal; else a usage error."""
    if yes or dry_run or changes == 0:
        return
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise CliUsageError(
            "nothing was changed: confirm with --yes, or run on a terminal and type the"
            " number of changes"
        )
    settings.err.write(f"Type {changes} to make these {changes:,} change(s): ")
    settings.err.flush()
    answer = stdin.readline().strip()
    if answer != str(changes):
        raise CliUsageError(f"nothing was changed: {shown(answer)!r} is not {changes}")


_common: Final = option_group(
    click.option(
        "--journal",
        "journal",
        required=True,
        metavar="FILE",
        help="The journal (resumed if there).",
    ),
    click.option("--yes", is_flag=True, help="Confirm: make the changes without asking."),
    click.option("--dry-run", is_flag=True, help="Read and report; send no write."),
    per_second_option(
        "--write-rate",
        DEFAULT_WRITE_RATE,
        "Writes (PUT, DELETE) per second at most, on top of --rate-limit.",
    ),
)


@click.command("apply")
@click.argument("plan_path", metavar="PLAN")
@_common
@deliver_options
@global_options()
@click.pass_obj
def apply_command(
    settings: Settings,
    plan_path: str,
    journal: str,
    yes: bool,
    dry_run: bool,
    write_rate: float,
    deliver_dir: str | None,
    deliver_cmd: str | None,
    deliver_timeout: float,
) -> int:
    """Apply a plan, token by token, with a journal; started again, it goes on.

    A token gone or changed since the plan is skipped. A rotate plan needs --deliver-dir
    or --deliver-cmd, where the new secrets go (and nowhere else). Exit 0 when every token
    ended done, already or skipped; 1 when any failed.
    """

    async def work(conn: Connection) -> int:
        try:
            plan = Plan.load(plan_path, conn.cc)
        except PlanError as exc:
            raise CliUsageError(str(exc)) from None
        sink = _sink_for(plan, deliver_dir, deliver_cmd, deliver_timeout)
        try:
            _print_counts(settings, plan, stream=settings.err)
            _confirm(settings, len(plan.items), yes=yes, dry_run=dry_run)
            outcomes = apply_plan(
                conn.cc,
                plan,
                journal_path=journal,
                write_rate=write_rate,
                dry_run=dry_run,
                deliver=sink,
            )
            return await _report(settings, outcomes, len(plan.items), "apply", dry_run)
        finally:
            if sink is not None:
                sink.close()

    return run_async(settings, work)


def _sink_for(
    plan: Plan, deliver_dir: str | None, deliver_cmd: str | None, timeout: float
) -> DirectorySink | CommandSink | None:
    """The sink of a rotate plan (required), none for any other (refused)."""
    rotates = any(item.action == "rotate" for item in plan.items)
    if not rotates and (deliver_dir is not None or deliver_cmd is not None):
        raise CliUsageError("--deliver-dir and --deliver-cmd are for rotate plans only")
    sink = make_sink(deliver_dir, deliver_cmd, timeout)
    if rotates and sink is None:
        raise CliUsageError(
            "a rotate plan needs --deliver-dir or --deliver-cmd: the new secrets go there"
            " only; nothing was sent"
        )
    return sink


@click.command("undo")
@click.argument("source", metavar="JOURNAL")
@_common
@global_options()
@click.pass_obj
def undo_command(
    settings: Settings, source: str, journal: str, yes: bool, dry_run: bool, write_rate: float
) -> int:
    """Reactivate every token an apply journal deactivated (tokens changed since are
    skipped); journaled in --journal and resumed like apply. Deletes cannot be undone:
    they are listed."""

    async def work(conn: Connection) -> int:
        try:
            journal_in = Journal.read(source, conn.cc)
            plan = reverse_plan(journal_in)
            gone = deleted(journal_in)
        except PlanError as exc:
            raise CliUsageError(str(exc)) from None
        _print_counts(settings, plan, stream=settings.err)
        if gone:
            settings.err.write(f"{len(gone):,} deleted token(s) cannot be undone\n")
        _confirm(settings, len(plan.items), yes=yes, dry_run=dry_run)
        outcomes = undo_plan(
            conn.cc, source, journal_path_out=journal, write_rate=write_rate, dry_run=dry_run
        )
        return await _report(settings, outcomes, len(plan.items) + len(gone), "undo", dry_run)

    return run_async(settings, work)


async def _report(
    settings: Settings, outcomes: AsyncIterator[Outcome], total: int, label: str, dry_run: bool
) -> int:
    seen: list[Outcome] = []
    try:
        with make_reporter(settings.err, quiet=settings.quiet, label=label) as progress:
            async for outcome in outcomes:
                seen.append(outcome)
                progress.advance(len(seen), total)
    except PlanError as exc:
        raise CliUsageError(str(exc)) from None
    counts = Counter(o.result for o in seen)
    failed = [o for o in seen if o.result == "failed"]
    if settings.json:
        dump_json(
            {
                "command": label,
                "dry_run": dry_run,
                "tokens": len(seen),
                "counts": {r: counts.get(r, 0) for r in _RESULTS},
                "outcomes": [_outcome_view(o) for o in seen],
                "failed": [_outcome_view(o) for o in failed],
            },
            settings.out,
        )
    else:
        _print_outcomes(settings, seen, label, dry_run)
    return EXIT_API if failed else EXIT_OK


def _outcome_view(outcome: Outcome) -> dict[str, Any]:
    return {
        "id": outcome.token_id,
        "name": outcome.name,
        "action": outcome.action,
        "result": outcome.result,
        "reason": outcome.reason,
        "resumed": outcome.resumed,
    }


def _print_outcomes(settings: Settings, seen: list[Outcome], label: str, dry_run: bool) -> None:
    notable = [o for o in seen if o.result not in ("done", "planned")]
    if notable:
        table = make_table("ID", "NAME", "ACTION", "RESULT", "REASON", whole=["ACTION", "RESULT"])
        for o in notable:
            table.add_row(o.token_id, o.name, o.action, o.result, o.reason or "")
        console_for(settings.out).print(table)
    counts = Counter(o.result for o in seen)
    parts = ", ".join(f"{r} {counts[r]:,}" for r in _RESULTS if counts.get(r))
    prefix = f"{label} (dry run)" if dry_run else label
    settings.out.write(f"{prefix}: {len(seen):,} token(s): {parts or 'nothing to do'}\n")
    for o in seen:
        if o.result == "failed":
            settings.out.write(
                f"failed: {shown(o.token_id)} {shown(o.name)!r}: {shown(o.reason)}\n"
            )
