"""``audit --checkpoint FILE``: an audit that survives being killed at any moment.

After each page whose records are flushed (and fsynced) to ``--output``, the audit writes
FILE atomically (write a fresh temporary file beside it, fsync it, rename it over FILE,
fsync the folder). FILE holds the pager's own checkpoint, the audit's options, its "as
of" time and the length of the output at that moment, sealed with a MAC under the
session's key like the pager's checkpoint. Started again with FILE present, the audit
cuts the output back to that length (a record half-written at the kill, or the records
of a page written after the last checkpoint, are dropped and written again, never
twice), rebuilds its report from the records already there, and resumes the walk. FILE
is removed once the audit has finished. One audit at a time holds FILE: a lock file
beside it (README "Command line", "Long audits").
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs

from .._files import read_capped
from .._seal import CheckpointKey
from .._walk import MAX_CHECKPOINT_CHARS
from ._context import CliUsageError
from ._records import FIELDS, RecordError, RecordFormat, iter_raw_records, typed_record

__all__ = [
    "FORMAT",
    "MAX_BYTES",
    "VERSION",
    "AuditCheckpoint",
    "check_length",
    "check_writable",
    "locked",
    "read_records",
    "truncate",
    "write_atomically",
]

FORMAT: Final = "cellcast-audit-checkpoint"
VERSION: Final = 2
MAX_BYTES: Final = 2 * MAX_CHECKPOINT_CHARS + 2**16
"""The largest audit checkpoint read: the pager's (escaped in a JSON string) and a little."""


@attrs.frozen
class AuditCheckpoint:
    """What a resumed audit needs beside the pager's own checkpoint."""

    pager: str
    options: Mapping[str, Any]
    as_of: str
    output: str
    output_bytes: int

    def dumps(self, key: CheckpointKey) -> str:
        """The file's text, sealed with ``key`` (the session's)."""
        body = {
            "format": FORMAT,
            "version": VERSION,
            "key": key.key_id,
            "pager": self.pager,
            "options": dict(self.options),
            "as_of": self.as_of,
            "output": self.output,
            "output_bytes": self.output_bytes,
        }
        return json.dumps({**body, "mac": key.mac(FORMAT, _canonical(body))}, sort_keys=True)

    @classmethod
    def load(cls, path: str, key: CheckpointKey) -> AuditCheckpoint:
        """FILE as written by an audit under ``key``; anything else is a usage error."""
        data = _read_capped(path)
        try:
            body = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError):
            raise CliUsageError(f"{path}: not an audit checkpoint (not JSON)") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise CliUsageError(f"{path}: not an audit checkpoint")
        if body.get("version") != VERSION:
            raise CliUsageError(
                f"{path}: an audit checkpoint of version {body.get('version')!r};"
                f" this cellcast-tokens reads version {VERSION}"
            )
        # Sealed before any field is believed (README "Long audits").
        if body.get("key") != key.key_id:
            raise CliUsageError(
                f"{path}: written by an audit under another API key: resume it with that"
                " key, or delete it to start over"
            )
        mac = body.pop("mac", None)
        if not key.check(FORMAT, _canonical(body), mac):
            raise CliUsageError(
                f"{path}: not authentic: it was changed after it was written; delete it to"
                " start over"
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


def _read_capped(path: str) -> bytes:
    """FILE's bytes, if it is a regular file of at most :data:`MAX_BYTES`."""
    return read_capped(path, MAX_BYTES, "audit checkpoint", error=CliUsageError)


_JSON_NAMES: Final = {str: "a string", dict: "an object", int: "a whole number"}


def _canonical(body: Mapping[str, Any]) -> bytes:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def _typed(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"'{key}' is missing or not {_JSON_NAMES[kind]}")
    return value


def _temporary_name(target: Path) -> re.Pattern[str]:
    """The names :func:`write_atomically` gives its temporaries for ``target``."""
    return re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.tmp")


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so that a kill at any moment leaves old or new, whole.

    The temporary is new and private (``mkstemp``: created exclusively, never through a
    symlink, mode 0600) in the target's folder, so a file or symlink planted beside the
    target is never written through.
    """
    target = Path(path)
    folder = target.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def check_writable(path: str) -> None:
    """``path`` can be replaced as :func:`write_atomically` does: tried before anything is
    sent, so a folder that refuses the temporary, or a name too long once the temporary's
    prefix and suffix are added, is a usage error and not a failure after the first page."""
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise CliUsageError(
            f"cannot write {path} (through a temporary beside it): {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(temporary)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold ``path`` for one audit: an exclusive ``flock`` on ``.NAME.lock`` beside it.

    A second audit on the same checkpoint is a usage error at once, never a wait. While
    it is held, temporaries a killed audit left beside ``path`` are removed; the lock
    file is removed when the audit ends.
    """
    target = Path(path)
    lock = target.with_name(f".{target.name}.lock")
    busy = CliUsageError(
        f"{path} is in use by another audit: wait for it to end, or use another --checkpoint"
    )
    for _ in range(8):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CliUsageError(f"cannot lock {path} ({lock}): {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy from None
        # The holder before us may have removed the file between our open and our lock:
        # ours is the lock only if the name still leads to the file we locked.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:  # pragma: no cover - eight removals in a row between open and flock
        raise busy
    try:
        leftover = _temporary_name(target)
        for entry in os.scandir(target.parent):
            if leftover.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def truncate(path: str, length: int) -> None:
    """Cut ``path`` back to ``length`` bytes (what the last checkpoint saw written)."""
    check_length(path, length)
    with open(path, "r+b") as handle:
        handle.truncate(length)


def check_length(path: str, length: int) -> None:
    """``path`` holds at least the ``length`` bytes the checkpoint counted."""
    try:
        info = os.stat(path)
    except OSError:
        raise CliUsageError(
            f"the checkpoint's output {path} is missing: delete the checkpoint to start over"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        # A FIFO or a device would hang or never end the read-back.
        raise CliUsageError(
            f"the checkpoint's output {path} is not a regular file: delete the checkpoint"
            " to start over"
        )
    size = info.st_size
    if size < length:
        raise CliUsageError(
            f"{path} is shorter than when the checkpoint was written: delete the checkpoint"
            " to start over"
        )


def read_records(
    path: str, record_format: RecordFormat, length: int | None = None
) -> Iterator[tuple[dict[str, Any], datetime]]:
    """The records already in ``path`` (its first ``length`` bytes: what the checkpoint
    counted) as the report adds them: ``(record, created_at)``.

    What the checkpoint counted is whole records of ``record_format``, each ending its
    line, read back as :mod:`._records` reads any record file: anything else (an edited
    checkpoint, another file under the output's name) is refused, never appended to.
    """
    unreadable = CliUsageError(
        f"{path}: a record the checkpoint counted is not readable: delete the"
        " checkpoint to start over"
    )
    # Bytes as written: no newline translation ("\r" alone is a cut CSV row).
    with open(path, "rb") as handle:
        counted = handle.read(-1 if length is None else length)
    if counted and not counted.endswith(b"\n"):
        raise unreadable
    stream = io.BytesIO(counted)
    try:
        for _, raw in iter_raw_records(stream, path, FIELDS, record_format=record_format):
            yield typed_record(raw, from_csv=record_format == "csv")
    except RecordError:
        raise unreadable from None
