"""``diff OLD NEW``: what changed between two audits' records (CSV or JSON Lines, any mix).

The records are read as streams (:mod:`._records`: bounded lines, records and nesting)
and compared by token id (:func:`diff_files`: an id and a digest per old record in
memory); the command prints the changes grouped by sub-account, as data (README "What
the command line prints"), and exits 0 when nothing changed and 1 when something did,
like ``diff``, so that a nightly job can alert on drift. Records hold no full token value
(the audit never writes one) and none is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, Final, Literal

import attrs
import click
from rich.text import Text

from ._context import EXIT_API, EXIT_OK, CliUsageError, Settings
from ._errors import execute
from ._options import global_options
from ._output import console_for, data, dump_json, make_table, shown
from ._records import DIFF_FIELDS, Record, RecordError, diff_record, iter_raw_records

__all__ = [
    "CHANGE_KINDS",
    "ChangeKind",
    "Change",
    "as_json",
    "compare",
    "diff_command",
    "diff_files",
    "iter_records",
    "load_records",
    "parse_records",
    "render",
]

ChangeKind = Literal["created", "deleted", "status_changed", "renamed"]
CHANGE_KINDS: Final[tuple[ChangeKind, ...]] = ("created", "deleted", "status_changed", "renamed")
_LABELS: Final[dict[ChangeKind, str]] = {
    "created": "created",
    "deleted": "deleted",
    "status_changed": "status",
    "renamed": "renamed",
}


@attrs.frozen
class Change:
    """One change to one token; ``old``/``new`` are the status or the name that changed."""

    kind: ChangeKind
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


def iter_records(
    stream: IO[bytes], label: str, *, copy: IO[bytes] | None = None
) -> Iterator[tuple[str, Record]]:
    """``(where, record)`` for each record of an audit's output, read as a stream
    (README "What the command line prints": bounded lines, records and nesting)."""
    try:
        for where, raw in iter_raw_records(stream, label, DIFF_FIELDS, copy=copy):
            yield where, diff_record(raw, where)
    except RecordError as exc:
        raise CliUsageError(str(exc)) from None


def _by_id(found: Iterable[tuple[str, Record]]) -> dict[str, Record]:
    records: dict[str, Record] = {}
    for where, record in found:
        if record.id in records:
            raise CliUsageError(_twice(where, record.id))
        records[record.id] = record
    return records


def parse_records(text: str, label: str) -> dict[str, Record]:
    """Records by id from an audit's output held in memory; a repeated id is refused."""
    return _by_id(iter_records(io.BytesIO(text.encode("utf-8", "surrogatepass")), label))


def _twice(where: str, token_id: str) -> str:
    return f"{where}: a second record for id {token_id!r}"


@contextlib.contextmanager
def _open(path: str) -> Iterator[IO[bytes]]:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CliUsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def load_records(path: str) -> dict[str, Record]:
    """Every record of the file at ``path`` by id, in memory (``diff`` itself streams)."""
    with _open(path) as stream:
        return _by_id(iter_records(stream, path))


def _digest(record: Record) -> bytes:
    """What a diff compares, in 16 bytes: the name and the status."""
    # The status's length first: no two (status, name) pairs spell the same text.
    text = f"{len(record.status)}:{record.status}{record.name}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=16).digest()


_SEEN: Final = b""  # an old id also found in NEW with the same digest: nothing to print


def diff_files(old_path: str, new_path: str) -> list[Change]:
    """Every change from the audit in ``old_path`` to the one in ``new_path``.

    Memory holds one id and a 16-byte digest per old record, and whole records only for
    what is printed (the changes): OLD is read, NEW is read against it, and OLD is read
    a second time for the old side of the changes, if there are any. OLD is copied to a
    temporary file on the first read when it is not a regular file (a pipe).
    """
    with contextlib.ExitStack() as stack:
        old_stream = stack.enter_context(_open(old_path))
        copy: IO[bytes] | None = None
        if not stat.S_ISREG(os.fstat(old_stream.fileno()).st_mode):
            copy = stack.enter_context(tempfile.TemporaryFile())
        digests = _old_digests(iter_records(old_stream, old_path, copy=copy))
        with _open(new_path) as new_stream:
            created, changed = _against_old(iter_records(new_stream, new_path), digests)
        wanted = {i: d for i, d in digests.items() if d != _SEEN}
        wanted.update((i, d) for i, (_, d) in changed.items())
        del digests
        olds: dict[str, Record] = {}
        if wanted:
            if copy is not None:
                copy.seek(0)
                again: IO[bytes] = copy
            else:
                again = stack.enter_context(_open(old_path))
            olds = _old_sides(iter_records(again, old_path), wanted, old_path)
    return _changes(olds, created, {i: r for i, (r, _) in changed.items()})


def _old_digests(found: Iterable[tuple[str, Record]]) -> dict[str, bytes]:
    """OLD's first read: an id and a digest per record; an id twice is refused."""
    digests: dict[str, bytes] = {}
    for where, record in found:
        if record.id in digests:
            raise CliUsageError(_twice(where, record.id))
        digests[record.id] = _digest(record)
    return digests


def _against_old(
    found: Iterable[tuple[str, Record]], digests: dict[str, bytes]
) -> tuple[dict[str, Record], dict[str, tuple[Record, bytes]]]:
    """NEW read against OLD's digests: the records created, and the changed ones with
    their old digest. Each old id met is marked :data:`_SEEN` in ``digests``."""
    created: dict[str, Record] = {}
    changed: dict[str, tuple[Record, bytes]] = {}  # new record, old digest
    for where, record in found:
        before = digests.get(record.id)
        if before is None:
            if record.id in created:
                raise CliUsageError(_twice(where, record.id))
            created[record.id] = record
            continue
        if before == _SEEN or record.id in changed:
            raise CliUsageError(_twice(where, record.id))
        digests[record.id] = _SEEN
        if before != _digest(record):
            changed[record.id] = (record, before)
    return created, changed


def _old_sides(
    found: Iterable[tuple[str, Record]], wanted: Mapping[str, bytes], old_path: str
) -> dict[str, Record]:
    """OLD's second read: the records of the ids in ``wanted``, each as the first read saw it."""
    olds: dict[str, Record] = {}
    for _, record in found:
        if record.id in wanted:
            if _digest(record) != wanted[record.id] or record.id in olds:
                raise CliUsageError(f"{old_path} changed while diff was reading it")
            olds[record.id] = record
    if len(olds) != len(wanted):
        raise CliUsageError(f"{old_path} changed while diff was reading it")
    return olds


def _changes(
    olds: Mapping[str, Record], created: Mapping[str, Record], changed: Mapping[str, Record]
) -> list[Change]:
    """The changes, from the old records that differ (or went), the new ones and the
    changed ones' new side; in compare()'s order."""
    changes = [Change("created", record) for record in created.values()]
    changes += [Change("deleted", r) for i, r in olds.items() if i not in changed]
    for token_id, after in changed.items():
        changes += _edits(olds[token_id], after)
    return _ordered(changes)


def _edits(before: Record, after: Record) -> list[Change]:
    """What changed in one token: its status, its name, both or neither."""
    edits = []
    if before.status != after.status:
        edits.append(Change("status_changed", after, before.status, after.status))
    if before.name != after.name:
        edits.append(Change("renamed", after, before.name, after.name))
    return edits


def _ordered(changes: list[Change]) -> list[Change]:
    kinds = {kind: n for n, kind in enumerate(CHANGE_KINDS)}
    return sorted(
        changes,
        key=lambda c: (c.record.sub_account_id, kinds[c.kind], c.record.name, c.record.id),
    )


def compare(old: Mapping[str, Record], new: Mapping[str, Record]) -> list[Change]:
    """Every change from ``old`` to ``new``: created, deleted, status changed, renamed.

    A token both renamed and re-statused is two changes. Ordered by sub-account, then
    kind, then name and id, so the same inputs always print the same way.
    """
    changes = [Change("created", new[i]) for i in new.keys() - old.keys()]
    changes += [Change("deleted", old[i]) for i in old.keys() - new.keys()]
    for token_id in old.keys() & new.keys():
        changes += _edits(old[token_id], new[token_id])
    return _ordered(changes)


def _by_sub_account(changes: Iterable[Change]) -> dict[str, list[Change]]:
    grouped: defaultdict[str, list[Change]] = defaultdict(list)
    for change in changes:
        grouped[change.record.sub_account_id].append(change)
    return dict(grouped)


def _counts(changes: Iterable[Change]) -> dict[ChangeKind, int]:
    found = Counter(change.kind for change in changes)
    return {kind: found[kind] for kind in CHANGE_KINDS}


def _sub_account_name(items: Iterable[Change]) -> str:
    """The sub-account's name as the first record that carries one says it."""
    return next((c.record.sub_account_name for c in items if c.record.sub_account_name), "")


def as_json(old: str, new: str, changes: list[Change]) -> dict[str, Any]:
    groups = []
    for sub, items in _by_sub_account(changes).items():
        group: dict[str, Any] = {
            "sub_account_id": sub,
            "sub_account_name": _sub_account_name(items),
        }
        for kind in CHANGE_KINDS:
            group[kind] = [c.as_json() for c in items if c.kind == kind]
        groups.append(group)
    return {
        "old": old,
        "new": new,
        "changed": bool(changes),
        "counts": _counts(changes),
        "sub_accounts": groups,
    }


def _detail(change: Change) -> str:
    if change.kind in ("status_changed", "renamed"):
        # repr() quotes a name and escapes what shown() would (the table cell is data).
        old = change.old if change.kind == "status_changed" else repr(change.old)
        new = change.new if change.kind == "status_changed" else repr(change.new)
        return f"{old} -> {new}"
    return change.record.status


_ROWS_PER_TABLE: Final = 1000
"""A sub-account's changes print as tables of this many rows: rich lays a table out whole,
and one table of a million rows would take its time and memory."""


def render(settings: Settings, old: str, new: str, changes: list[Change]) -> None:
    console = console_for(settings.out)
    if not changes:
        console.print(data(f"No changes between {old} and {new}."))
        return
    counts = _counts(changes)
    summary = ", ".join(f"{counts[k]:,} {_LABELS[k]}" for k in CHANGE_KINDS if counts[k])
    console.print(
        Text.assemble(
            (f"{len(changes):,} change(s)", "bold"),
            f" from {shown(old)} to {shown(new)}: {summary}",
        )
    )
    for sub, items in _by_sub_account(changes).items():
        name = _sub_account_name(items)
        console.print()
        heading = Text.assemble((f"sub-account {shown(sub or '(none)')}", "bold"))
        if name:
            heading.append(" " + shown(name))
        console.print(heading)
        for at in range(0, len(items), _ROWS_PER_TABLE):
            table = make_table("CHANGE", "ID", "NAME", "DETAIL")
            for change in items[at : at + _ROWS_PER_TABLE]:
                row = (_LABELS[change.kind], change.record.id, change.record.name, _detail(change))
                table.add_row(*row)
            console.print(table)


@click.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--missing-ok",
    is_flag=True,
    help="An OLD that does not exist is a first run: nothing to compare, exit 0.",
)
@global_options("json", "debug")
@click.pass_obj
def diff_command(settings: Settings, old: str, new: str, missing_ok: bool) -> int:
    """Compare two audits' records (CSV or JSON Lines, any mix) by token id.

    Reports tokens created, deleted, status changed and renamed, grouped by sub-account.
    Exit code 0: nothing changed; 1: something changed; 2: a usage error (as diff does).
    """

    def work() -> int:
        if missing_ok and not os.path.lexists(old):
            # A nightly job's first night: no yesterday to compare with, and no alarm.
            # NEW is still read: a broken NEW is an error on the first night too.
            load_records(new)
            settings.err.write(f"{shown(old)} does not exist: first run, nothing compared\n")
            if settings.json:
                dump_json(as_json(old, new, []), settings.out, indent=2)
            return EXIT_OK
        changes = diff_files(old, new)
        if settings.json:
            dump_json(as_json(old, new, changes), settings.out, indent=2)
        else:
            render(settings, old, new, changes)
        return EXIT_API if changes else EXIT_OK

    return execute(settings, work)
