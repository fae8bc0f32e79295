"""``audit --checkpoint FILE``: an audit that survives being killed at any moment.

After each page whose records are flushed (and fsynced) to ``--output``, the audit writes
FILE atomically (write a temporary file, fsync it, rename it over FILE, fsync the
folder). FILE holds the pager's own checkpoint, the audit's options, its "as of" time and
the length of the output at that moment. Started again with FILE present, the audit cuts
the output back to that length (a record half-written at the kill, or the records of a
page written after the last checkpoint, are dropped and written again, never twice),
rebuilds its report from the records already there, and resumes the walk. FILE is
removed once the audit has finished (README "Long audits").
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .._converters import parse_datetime
from .._exceptions import ShapeError
from ._app import CliUsageError
from ._records import decode_row

__all__ = ["AuditCheckpoint", "read_records", "truncate", "write_atomically"]

FORMAT: Final = "cellcast-audit-checkpoint"
VERSION: Final = 1


@attrs.frozen
class AuditCheckpoint:
    """What a resumed audit needs beside the pager's own checkpoint."""

    pager: str
    options: Mapping[str, Any]
    as_of: str
    output: str
    output_bytes: int

    def dumps(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "pager": self.pager,
                "options": dict(self.options),
                "as_of": self.as_of,
                "output": self.output,
                "output_bytes": self.output_bytes,
            },
            sort_keys=True,
        )

    @classmethod
    def load(cls, path: str) -> AuditCheckpoint:
        try:
            text = Path(path).read_text(encoding="utf-8")
            body = json.loads(text)
        except OSError as exc:
            raise CliUsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise CliUsageError(f"{path}: not an audit checkpoint (not JSON)") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise CliUsageError(f"{path}: not an audit checkpoint")
        if body.get("version") != VERSION:
            raise CliUsageError(
                f"{path}: an audit checkpoint of version {body.get('version')!r};"
                f" this cellcast-tokens reads version {VERSION}"
            )
        try:
            saved = cls(
                pager=_typed(body, "pager", str),
                options=_typed(body, "options", dict),
                as_of=_typed(body, "as_of", str),
                output=_typed(body, "output", str),
                output_bytes=_typed(body, "output_bytes", int),
            )
        except ValueError as exc:
            raise CliUsageError(f"{path}: {exc}") from None
        if saved.output_bytes < 0:
            raise CliUsageError(f"{path}: 'output_bytes' is negative")
        return saved


_JSON_NAMES: Final = {str: "a string", dict: "an object", int: "a whole number"}


def _typed(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"'{key}' is missing or not {_JSON_NAMES[kind]}")
    return value


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that a kill at any moment leaves old or new, whole."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    folder = os.open(target.parent if str(target.parent) else ".", os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def truncate(path: str, length: int) -> None:
    """Cut ``path`` back to ``length`` bytes (what the last checkpoint saw written)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        raise CliUsageError(
            f"the checkpoint's output {path} is missing: delete the checkpoint to start over"
        ) from None
    if size < length:
        raise CliUsageError(
            f"{path} is shorter than when the checkpoint was written: delete the checkpoint"
            " to start over"
        )
    with open(path, "r+b") as handle:
        handle.truncate(length)


def read_records(path: str, record_format: str) -> Iterator[tuple[dict[str, Any], Any]]:
    """The records already in ``path`` as the report adds them: ``(record, created_at)``.

    What the checkpoint counted is whole records, each ending its line: anything else (an
    edited checkpoint, another file under the output's name) is refused, never appended to.
    """
    unreadable = CliUsageError(
        f"{path}: a record the checkpoint counted is not readable: delete the"
        " checkpoint to start over"
    )
    try:
        # Bytes as written: no newline translation ("\r" alone is a cut CSV row).
        text = Path(path).read_bytes().decode("utf-8")
    except ValueError:  # cut inside a character
        raise unreadable from None
    if text and not text.endswith("\n"):
        raise unreadable
    if record_format == "jsonl":
        # Only "\n" ends a record: a name may hold U+2028 or U+0085, which splitlines() splits.
        rows: Iterator[Any] = (line for line in text.split("\n") if line)
    else:
        rows = iter(csv.DictReader(io.StringIO(text, newline="")))
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error:
            raise unreadable from None
        try:
            if record_format == "jsonl":
                record = json.loads(row)
                if not isinstance(record, dict):
                    raise ValueError("not a record")
            else:
                if None in row or None in row.values():
                    raise ValueError("a short or long row")
                row = decode_row(row)  # README "What the command line prints": formulas
                record = {**row, "stale": row["stale"] == "true", "age_days": int(row["age_days"])}
            created = parse_datetime(record["created_at"])
        except (KeyError, TypeError, ValueError, ShapeError):
            raise unreadable from None
        yield record, created
