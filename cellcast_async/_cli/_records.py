"""The audit's record: one home for its format, written and read back.

:data:`FIELDS` names a record's fields, in order; :func:`token_record` makes one from a
token, :func:`record_writer` writes records as CSV or JSON Lines. ``diff``
(:func:`diff_record`) and a resumed ``audit --checkpoint`` (:func:`typed_record`) read
them again through :func:`iter_raw_records`. Both directions follow README "What the
command line prints":

- a CSV cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return: OWASP's "CSV injection" rule) is written with
  a ``'`` in front; so is a cell that starts with ``'`` followed by one of those or by
  another ``'``, so that reading strips exactly one ``'`` from such a cell and every
  value comes back as it was (:func:`encode_cell`, :func:`decode_cell`);
- a JSON Lines record ends at ``"\\n"`` and nowhere else: a name may hold U+2028, U+2029
  or U+0085, which ``str.splitlines()`` would split on;
- whatever a file holds is untrusted: a line longer than :data:`MAX_LINE_BYTES`, a record
  (CSV rows may span lines) longer than that, a CSV field over csv's 128 KiB, JSON nested
  deeper than :data:`MAX_DEPTH`, ``NaN``, a repeated key, text that is not UTF-8, a short
  or long row or an unclosed quote is refused with the file and the line, never read
  whole into memory.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import IO, Any, Final, Literal

import attrs

from .._converters import parse_datetime
from .._exceptions import ShapeError
from .._models import ApiToken, TokenStatus
from ._output import json_text

__all__ = [
    "FORMULA_STARTS",
    "DIFF_FIELDS",
    "FIELDS",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "LineReader",
    "Record",
    "RecordError",
    "RecordFormat",
    "csv_cell",
    "csv_writer",
    "decode_cell",
    "decode_row",
    "diff_record",
    "encode_cell",
    "iter_raw_records",
    "loads_record",
    "record_writer",
    "token_record",
    "typed_record",
]

RecordFormat = Literal["csv", "jsonl"]

FIELDS: Final = (
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
"""An audit record's fields, in the order a CSV's columns have them."""
DIFF_FIELDS: Final = ("id", "name", "status", "sub_account_id")
"""The fields ``diff`` needs in every record it reads."""
_TEXT_FIELDS: Final = ("id", "name", "status", "sub_account_id", "sub_account_name", "token")

# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS: Final = frozenset("=+-@\t\r")
_QUOTED_STARTS: Final = FORMULA_STARTS | {"'"}

MAX_LINE_BYTES: Final = 1 << 20
"""The longest line (and the longest CSV record, which may span lines) read back: 1 MiB.
An audit record is a few hundred bytes."""
MAX_DEPTH: Final = 32
"""The deepest JSON nesting read back: an audit record is one flat object."""


class RecordError(ValueError):
    """A record file that cannot be read as an audit's output; the message names the file
    and the line. The commands report it as a usage error."""


def encode_cell(value: str) -> str:
    """A CSV cell no spreadsheet runs as a formula; :func:`decode_cell` undoes it exactly."""
    if value and (
        value[0] in FORMULA_STARTS
        or (value[0] == "'" and len(value) > 1 and value[1] in _QUOTED_STARTS)
    ):
        return "'" + value
    return value


def decode_cell(cell: str) -> str:
    """The value :func:`encode_cell` wrote. A cell written before the quoting (``=1``,
    ``'abc``) reads as itself; only an old cell starting with ``'`` and then one of
    ``=+-@'``, a tab or a carriage return loses that first ``'``."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in _QUOTED_STARTS:
        return cell[1:]
    return cell


def token_record(token: ApiToken, now: datetime, stale_days: int) -> dict[str, Any]:
    """One audit record. ``token`` is the masked form: a secret is never written."""
    # Called once per token of a 100,000-token audit: plain attribute reads, no more.
    created = token.created_at
    age = now - created
    sub = token.sub_account
    status = token.status
    days = age.days
    return {
        "id": token.id,
        "name": token.name,
        "status": status.value if isinstance(status, TokenStatus) else status,
        "sub_account_id": token.sub_account_id or "",
        "sub_account_name": (sub.name if sub is not None and sub.name else "") or "",
        "created_at": created.isoformat(),
        "age_days": days if days > 0 else 0,
        "stale": age > timedelta(days=stale_days),
        "token": token.token.masked,
    }


def csv_cell(value: Any) -> Any:
    """CSV cells as other tools read them: booleans ``true``/``false``, not Python's, and
    text that a spreadsheet would run as a formula quoted (:func:`encode_cell`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return encode_cell(value)
    return value


def csv_writer(
    stream: IO[str], fields: Sequence[str], *, header: bool = True
) -> Callable[[Mapping[str, Any]], None]:
    """A writer of one dict per row with ``true``/``false`` booleans."""
    writer = csv.DictWriter(stream, fieldnames=list(fields))
    if header:
        writer.writeheader()

    def write(record: Mapping[str, Any]) -> None:
        row = {key: csv_cell(value) for key, value in record.items()}
        try:
            writer.writerow(row)
        except UnicodeEncodeError:
            # A lone surrogate (a server's "\ud800") has no UTF-8 form: the row is written
            # with U+FFFD in its place, as a UTF-8 reader shows bad bytes (nothing of the
            # failed row was written: the text layer encodes before it buffers).
            writer.writerow({key: _utf8_text(value) for key, value in row.items()})

    return write


_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _utf8_text(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD, if it is text."""
    return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value


def record_writer(
    stream: IO[str], record_format: RecordFormat, *, header: bool = True
) -> Callable[[Mapping[str, Any]], None]:
    """Writes one record per call: a CSV row (after a header unless ``header=False``, to
    append) or one JSON line, escaped as ``--json`` is."""
    if record_format == "csv":
        return csv_writer(stream, FIELDS, header=header)

    put = stream.write

    def write(record: Mapping[str, Any]) -> None:
        put(json_text(record) + "\n")  # dump_json's line, one call less per record

    return write


def typed_record(raw: Mapping[str, Any], *, from_csv: bool) -> tuple[dict[str, Any], datetime]:
    """A record read back as :func:`token_record` made it, and its creation time.

    A CSV cell is text: ``stale`` is ``true`` or ``false``, ``age_days`` a whole number.
    A field missing, or of another type, is a :class:`RecordError`.
    """
    if set(FIELDS) - raw.keys():
        raise RecordError(
            f"not an audit record (no {', '.join(f for f in FIELDS if f not in raw)})"
        )
    record = dict(raw)
    if from_csv:
        if record["stale"] not in ("true", "false") or not record["age_days"].isdigit():
            raise RecordError("'stale' or 'age_days' is not what the audit writes")
        record["stale"] = record["stale"] == "true"
        record["age_days"] = int(record["age_days"])
    if not all(isinstance(record[f], str) for f in _TEXT_FIELDS) or not (
        type(record["stale"]) is bool and type(record["age_days"]) is int
    ):
        raise RecordError("a field of another type than the audit writes")
    try:
        return record, parse_datetime(record["created_at"])
    except ShapeError as exc:
        raise RecordError(str(exc)) from None


@attrs.frozen
class Record:
    """The fields of one audit record that a diff compares."""

    id: str
    name: str
    status: str
    sub_account_id: str
    sub_account_name: str = ""


def _text(raw: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str:
    value = raw.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{where}: '{key}' is not a string")
    return value


def diff_record(raw: Mapping[str, Any], where: str) -> Record:
    """The fields ``diff`` compares, from one raw record (``where`` names it in an error)."""
    token_id, name, status = raw.get("id"), raw.get("name"), raw.get("status")
    sub_id, sub_name = raw.get("sub_account_id"), raw.get("sub_account_name")
    if (  # the usual case, checked at once; any other goes the long way for its message
        type(token_id) is str
        and token_id
        and type(name) is str
        and type(status) is str
        and (type(sub_id) is str or (sub_id is None and "sub_account_id" in raw))
        and (sub_name is None or type(sub_name) is str)
    ):
        return Record(token_id, name, status, sub_id or "", sub_name or "")
    missing = [key for key in DIFF_FIELDS if key not in raw]
    if missing:
        raise RecordError(f"{where}: not an audit record (no {', '.join(missing)})")
    if raw["id"] == "":
        raise RecordError(f"{where}: a record without an id")
    return Record(
        id=_text(raw, "id", where),
        name=_text(raw, "name", where),
        status=_text(raw, "status", where),
        sub_account_id=_text(raw, "sub_account_id", where, optional=True),
        sub_account_name=_text(raw, "sub_account_name", where, optional=True),
    )


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``csv.DictReader`` row with every cell decoded (:func:`decode_cell`)."""
    return {
        key: decode_cell(value) if isinstance(value, str) else value for key, value in row.items()
    }


class LineReader:
    """The lines of a binary stream as text, split on ``"\\n"`` only, each bounded.

    ``number`` is the last line's number (1-based). ``start_record()`` marks where a
    record begins: the lines read from there on may not add up to more than
    :data:`MAX_LINE_BYTES` either (a CSV row with an unclosed quote would otherwise run to
    the end of the file). ``copy`` receives every byte read, for a second pass over a
    stream that cannot be read twice (a pipe).
    """

    def __init__(self, stream: IO[bytes], label: str, *, copy: IO[bytes] | None = None) -> None:
        self._stream = stream
        self._label = label
        self._copy = copy
        self.number = 0
        self._record_start = 1
        self._record_bytes = 0

    def start_record(self) -> None:
        self._record_start = self.number + 1
        self._record_bytes = 0

    def fail(self, message: str, line: int | None = None) -> RecordError:
        return RecordError(f"{self._label} line {line or self.number}: {message}")

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            raw = self._stream.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise RecordError(f"cannot read {self._label}: {exc.strerror or exc}") from None
        if not raw:
            raise StopIteration
        self.number += 1
        if self._copy is not None:
            self._copy.write(raw)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise self.fail(f"a line longer than {MAX_LINE_BYTES // 1024} KiB")
        self._record_bytes += len(raw)
        if self._record_bytes > MAX_LINE_BYTES + 1:
            raise self.fail(
                f"a record longer than {MAX_LINE_BYTES // 1024} KiB", self._record_start
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("not UTF-8 text") from None
        if self.number == 1 and text.startswith("\ufeff"):
            text = text[1:]  # a byte-order mark, as spreadsheets save UTF-8 CSV
        return text


# A JSON string literal, with its escapes: what the nesting count skips.
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def _too_deep(line: str) -> bool:
    if line.count("{") + line.count("[") <= MAX_DEPTH:  # the usual case: no counting needed
        return False
    depth = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", line)):
        depth = depth + 1 if char in "[{" else depth - 1
        if depth > MAX_DEPTH:
            return True
    return False


class _Refused(ValueError):
    """Valid JSON that a record may not hold; the message says what."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _Refused("a key appears twice in one object")
    return found


# One decoder for every line: json.loads() with options builds a new one per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_unique_keys)


def loads_record(line: str) -> Any:
    """One JSON Lines record, strictly: bounded nesting, no NaN or Infinity, no repeated
    key. Raises ``ValueError``: "not valid JSON", with the reason when it is one of ours."""
    try:
        if _too_deep(line):
            raise _Refused(f"nested deeper than {MAX_DEPTH}")
        try:
            return _DECODER.decode(line)
        except RecursionError:  # pragma: no cover - _too_deep() stops it first
            raise _Refused(f"nested deeper than {MAX_DEPTH}") from None
    except _Refused as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    except ValueError:
        raise ValueError("not valid JSON") from None


def _is_jsonl(first: str) -> bool:
    return first.lstrip().startswith("{")


def iter_raw_records(
    stream: IO[bytes],
    label: str,
    required: tuple[str, ...],
    *,
    copy: IO[bytes] | None = None,
    record_format: RecordFormat | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, fields)`` for each record of an audit's output, JSON Lines if its first
    non-blank line starts with ``{``, else CSV with a header naming ``required``; a
    ``record_format`` given is the one read, whatever the first line looks like.

    CSV cells come back decoded (:func:`decode_cell`); JSON values as they are. Every
    malformed input is a :class:`RecordError` naming ``label`` and the line.
    """
    lines = LineReader(stream, label, copy=copy)
    while True:
        lines.start_record()  # each blank line is its own (empty) record
        first = next(lines, None)
        if first is None:
            return
        if first.strip():
            break
    if record_format == "jsonl" or (record_format is None and _is_jsonl(first)):
        yield from _jsonl(lines, first, label)
    else:
        yield from _csv(lines, first, label, required)


def _jsonl(lines: LineReader, first: str, label: str) -> Iterator[tuple[str, dict[str, Any]]]:
    line: str | None = first
    while line is not None:
        if line.strip():
            where = f"{label} line {lines.number}"
            try:
                raw = loads_record(line)
            except ValueError as exc:
                raise RecordError(f"{where}: {exc}") from None
            if not isinstance(raw, dict):
                raise RecordError(f"{where}: not a JSON object")
            yield where, raw
        lines.start_record()
        line = next(lines, None)


def _csv(
    lines: LineReader, first: str, label: str, required: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, Any]]]:
    def rows() -> Iterator[str]:
        yield first
        yield from lines

    reader = csv.reader(rows(), strict=True)
    header_at = lines.number
    try:
        header = next(reader)
    except csv.Error as exc:
        raise RecordError(f"{label} line {header_at}: {exc}") from None
    if not set(required) <= set(header) or len(set(header)) != len(header):
        raise RecordError(
            f"{label}: neither JSON Lines nor an audit CSV (its header needs {', '.join(required)})"
        )
    while True:
        lines.start_record()
        start = lines.number + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RecordError(f"{label} line {start}: not valid CSV ({exc})") from None
        if not row:
            continue  # a blank line
        where = f"{label} line {start}"
        if len(row) != len(header):
            raise RecordError(f"{where}: {len(row)} field(s) where the header names {len(header)}")
        yield where, {key: decode_cell(value) for key, value in zip(header, row, strict=True)}
