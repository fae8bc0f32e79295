"""``diff OLD NEW``: what changed between two audits' records (CSV or JSON Lines, any mix).

Pure functions read the records and compare them by token id; the command prints the
changes grouped by sub-account and exits 0 when nothing changed and 1 when something
did, like ``diff``, so that a nightly job can alert on drift. Records hold no full
token value (the audit never writes one) and none is needed.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import click

from ._app import EXIT_API, EXIT_OK, CliUsageError, Settings, cli, execute, global_options
from ._output import console_for, dump_json, make_table

__all__ = ["CHANGE_KINDS", "Change", "Record", "compare", "load_records", "parse_records"]

REQUIRED: Final = ("id", "name", "status", "sub_account_id")
CHANGE_KINDS: Final = ("created", "deleted", "status_changed", "renamed")
_LABELS: Final = {
    "created": "created",
    "deleted": "deleted",
    "status_changed": "status",
    "renamed": "renamed",
}


@attrs.frozen
class Record:
    """The fields of one audit record that a diff compares."""

    id: str
    name: str
    status: str
    sub_account_id: str
    sub_account_name: str = ""


@attrs.frozen
class Change:
    """One change to one token; ``old``/``new`` are the status or the name that changed."""

    kind: str
    record: Record
    old: str | None = None
    new: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.record.id, "name": self.record.name}
        if self.kind == "status_changed":
            data.update(old_status=self.old, new_status=self.new)
        elif self.kind == "renamed":
            data.update(old_name=self.old, new_name=self.new)
        else:
            data["status"] = self.record.status
        return data


def _record(raw: Mapping[str, Any], where: str) -> Record:
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise CliUsageError(f"{where}: not an audit record (no {', '.join(missing)})")
    if not raw["id"]:
        raise CliUsageError(f"{where}: a record without an id")
    return Record(
        id=str(raw["id"]),
        name=str(raw["name"]),
        status=str(raw["status"]),
        sub_account_id=str(raw["sub_account_id"] or ""),
        sub_account_name=str(raw.get("sub_account_name") or ""),
    )


def parse_records(text: str, label: str) -> dict[str, Record]:
    """Records by id from an audit's output; JSON Lines if it starts with ``{``, else CSV."""
    if text.lstrip().startswith("{"):
        records: dict[str, Record] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{label} line {number}"
            try:
                raw = json.loads(line)
            except ValueError:
                raise CliUsageError(f"{where}: not valid JSON") from None
            if not isinstance(raw, dict):
                raise CliUsageError(f"{where}: not a JSON object")
            record = _record(raw, where)
            records[record.id] = record
        return records
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if text.strip() and not set(REQUIRED) <= set(reader.fieldnames or ()):
        raise CliUsageError(
            f"{label}: neither JSON Lines nor an audit CSV (its header needs {', '.join(REQUIRED)})"
        )
    rows = (_record(row, f"{label} line {n}") for n, row in enumerate(reader, 2))
    return {record.id: record for record in rows}


def load_records(path: str) -> dict[str, Record]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliUsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliUsageError(f"{path}: not UTF-8 text") from None
    return parse_records(text, path)


def compare(old: Mapping[str, Record], new: Mapping[str, Record]) -> list[Change]:
    """Every change from ``old`` to ``new``: created, deleted, status changed, renamed.

    A token both renamed and re-statused is two changes. Ordered by sub-account, then
    kind, then name and id, so the same inputs always print the same way.
    """
    changes = [Change("created", new[i]) for i in new.keys() - old.keys()]
    changes += [Change("deleted", old[i]) for i in old.keys() - new.keys()]
    for token_id in old.keys() & new.keys():
        before, after = old[token_id], new[token_id]
        if before.status != after.status:
            changes.append(Change("status_changed", after, before.status, after.status))
        if before.name != after.name:
            changes.append(Change("renamed", after, before.name, after.name))
    kinds = {kind: n for n, kind in enumerate(CHANGE_KINDS)}
    return sorted(
        changes,
        key=lambda c: (c.record.sub_account_id, kinds[c.kind], c.record.name, c.record.id),
    )


def _by_sub_account(changes: Iterable[Change]) -> dict[str, list[Change]]:
    grouped: defaultdict[str, list[Change]] = defaultdict(list)
    for change in changes:
        grouped[change.record.sub_account_id].append(change)
    return dict(grouped)


def as_json(old: str, new: str, changes: list[Change]) -> dict[str, Any]:
    counts = {kind: sum(c.kind == kind for c in changes) for kind in CHANGE_KINDS}
    groups = []
    for sub, items in _by_sub_account(changes).items():
        group: dict[str, Any] = {
            "sub_account_id": sub,
            "sub_account_name": next(
                (c.record.sub_account_name for c in items if c.record.sub_account_name), ""
            ),
        }
        for kind in CHANGE_KINDS:
            group[kind] = [c.as_json() for c in items if c.kind == kind]
        groups.append(group)
    return {
        "old": old,
        "new": new,
        "changed": bool(changes),
        "counts": counts,
        "sub_accounts": groups,
    }


def _detail(change: Change) -> str:
    if change.kind in ("status_changed", "renamed"):
        old = change.old if change.kind == "status_changed" else repr(change.old)
        new = change.new if change.kind == "status_changed" else repr(change.new)
        return f"{old} -> {new}"
    return change.record.status


def render(settings: Settings, old: str, new: str, changes: list[Change]) -> None:
    console = console_for(settings.out)
    if not changes:
        console.print(f"No changes between {old} and {new}.")
        return
    counts = {kind: sum(c.kind == kind for c in changes) for kind in CHANGE_KINDS}
    summary = ", ".join(f"{counts[k]:,} {_LABELS[k]}" for k in CHANGE_KINDS if counts[k])
    console.print(f"[bold]{len(changes):,} change(s)[/bold] from {old} to {new}: {summary}")
    for sub, items in _by_sub_account(changes).items():
        name = next((c.record.sub_account_name for c in items if c.record.sub_account_name), "")
        table = make_table("CHANGE", "ID", "NAME", "DETAIL")
        for change in items:
            row = (_LABELS[change.kind], change.record.id, change.record.name, _detail(change))
            table.add_row(*row)
        console.print()
        console.print(f"[bold]sub-account {sub or '(none)'}[/bold] {name}".rstrip())
        console.print(table)


@cli.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@global_options("json", "debug")
@click.pass_obj
def diff_command(settings: Settings, old: str, new: str) -> int:
    """Compare two audits' records (CSV or JSON Lines, any mix) by token id.

    Reports tokens created, deleted, status changed and renamed, grouped by sub-account.
    Exit code 0: nothing changed; 1: something changed; 2: a usage error (as diff does).
    """

    def work() -> int:
        changes = compare(load_records(old), load_records(new))
        if settings.json:
            dump_json(as_json(old, new, changes), settings.out, indent=2)
        else:
            render(settings, old, new, changes)
        return EXIT_API if changes else EXIT_OK

    return execute(settings, work)
