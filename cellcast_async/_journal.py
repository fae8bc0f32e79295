"""Journals: what ``apply`` did, one authenticated JSON line per event, fsynced.

The first line is a header holding the whole plan the journal belongs to. Every line after
it is one event about one token (and, for an action of several steps, one step): an
``intent`` written before a write is sent, an ``outcome`` (``done``, ``already``,
``skipped`` or ``failed`` with a reason) after. Each line carries an HMAC-SHA256 (under the
key ``._seal`` derives from the API key) over its content and the MAC of the line before
it, so editing, reordering, or cutting lines out of the middle is found when the journal
is read. A last line cut short by a kill (no ``"\\n"``) is dropped. Each line is written
with one ``write`` and fsynced before the request it announces is sent (README "Acting on
an audit").
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Final, Literal, get_args

import attrs

from ._plan import (
    MAX_PLAN_BYTES,
    Plan,
    PlanError,
    canonical,
    format_time,
    key_of,
    parse_time,
    plan_from_json,
    read_capped,
)
from ._seal import CheckpointKey
from ._session import CellcastSession

__all__ = [
    "JOURNAL_FORMAT",
    "JOURNAL_VERSION",
    "MAX_JOURNAL_BYTES",
    "Event",
    "Journal",
    "JournalRecord",
    "Result",
]

Event = Literal["intent", "outcome"]
Result = Literal["done", "already", "skipped", "failed"]
EVENTS: Final[tuple[str, ...]] = get_args(Event)
RESULTS: Final[tuple[str, ...]] = get_args(Result)

JOURNAL_FORMAT: Final = "cellcast-journal"
JOURNAL_VERSION: Final = 1
MAX_JOURNAL_BYTES: Final = MAX_PLAN_BYTES + 256 * 2**20
"""The largest journal read: its plan and up to 256 MiB of events."""
MAX_RECORD_BYTES: Final = 8192
"""The longest event line."""
_MAX_DATA_KEYS: Final = 16
_MAX_REASON: Final = 500
_MAX_REASON_BYTES: Final = 2048  # as written: a control character is 6 bytes, an emoji 12


def _short_reason(reason: str) -> str:
    """``reason`` cut to :data:`_MAX_REASON` characters and :data:`_MAX_REASON_BYTES` as
    a journal line writes it, so that a server's long message never costs the line."""
    reason = reason[:_MAX_REASON]
    while len(json.dumps(reason)) - 2 > _MAX_REASON_BYTES:
        reason = reason[: len(reason) * 3 // 4]
    return reason


@attrs.frozen
class JournalRecord:
    """One event of a journal. ``data`` holds small, non-secret values of a step."""

    seq: int
    token_id: str
    event: Event
    at: datetime
    step: str | None = None
    result: Result | None = None
    reason: str | None = None
    data: Mapping[str, str | int | bool | None] = attrs.field(factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "token": self.token_id,
            "event": self.event,
            "at": format_time(self.at),
            "step": self.step,
            "result": self.result,
            "reason": self.reason,
            "data": dict(self.data),
        }


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Journal:
    """An open journal: read back and checked, then appended to by one process at a time.

    ``Journal.open(path, plan, session)`` creates the journal of ``plan`` or goes on with
    the one already there (it must be ``plan``'s); ``Journal.read(path, session)`` reads
    one to show or undo it. :meth:`record` appends an event and fsyncs it.
    """

    def __init__(
        self,
        path: str,
        plan: Plan,
        records: list[JournalRecord],
        mac: str,
        fd: int | None,
        key: CheckpointKey,
    ) -> None:
        self.path = path
        self._key = key
        self.plan = plan
        self.records = records
        self._mac = mac
        self._fd = fd
        self._now: Callable[[], datetime] = _now
        self._last: dict[tuple[str, str | None], JournalRecord] = {}
        for record in records:
            self._last[(record.token_id, record.step)] = record

    def __repr__(self) -> str:
        return f"<Journal {self.path!r} records={len(self.records)}>"

    # --- reading ----------------------------------------------------------------------

    @classmethod
    def read(cls, path: str | os.PathLike[str], session: CellcastSession) -> Journal:
        """The journal at ``path``, checked under ``session``'s key; read only."""
        data = read_capped(path, MAX_JOURNAL_BYTES, "journal")
        plan, records, mac, _ = _parse(os.fspath(path), data, session)
        return cls(os.fspath(path), plan, records, mac, None, key_of(session))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        plan: Plan,
        session: CellcastSession,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> Journal:
        """The journal of ``plan`` at ``path``, created if absent, locked for this process.

        A journal of another plan, or one another process holds, is a :class:`PlanError`.
        """
        target = os.fspath(path)
        try:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise PlanError(f"cannot open journal {target}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise PlanError(f"{target}: the journal is in use by another apply") from None
            journal = cls._opened(target, fd, plan, session)
        except BaseException:
            os.close(fd)
            raise
        if now is not None:
            journal._now = now
        return journal

    @classmethod
    def _opened(cls, target: str, fd: int, plan: Plan, session: CellcastSession) -> Journal:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlanError(f"{target}: not a journal (not a regular file)")
        key = key_of(session)
        data = read_capped(target, MAX_JOURNAL_BYTES, "journal") if info.st_size else b""
        if b"\n" not in data:
            # New, or its header was cut short by a kill before it was whole: start it.
            header = {
                "format": JOURNAL_FORMAT,
                "version": JOURNAL_VERSION,
                "plan": plan.body(),
                "plan_digest": plan.digest,
                "prev": "",
            }
            mac = key.mac(JOURNAL_FORMAT, canonical(header))
            line = canonical({**header, "mac": mac})
            if not line.startswith(data):
                # Not the start of this header: someone's file (a delivered secret holds
                # no "\n" either), never truncated.
                raise PlanError(f"{target}: not a journal (it holds something else): left as it is")
            os.ftruncate(fd, 0)
            _append(fd, line)
            return cls(target, plan, [], mac, fd, key)
        found, records, mac, good = _parse(target, data, session)
        if found.digest != plan.digest:
            raise PlanError(f"{target}: the journal belongs to another plan")
        if good < len(data):
            os.ftruncate(fd, good)  # a last line cut short by a kill
            os.fsync(fd)
        return cls(target, found, records, mac, fd, key)

    def close(self) -> None:
        """Release the journal (safe to call twice)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- replay -----------------------------------------------------------------------

    def last(self, token_id: str, step: str | None = None) -> JournalRecord | None:
        """The last event about ``token_id`` (and ``step``), or ``None``."""
        return self._last.get((token_id, step))

    def state(self) -> Mapping[tuple[str, str | None], JournalRecord]:
        """The last event per (token id, step)."""
        return dict(self._last)

    def final(self, token_id: str) -> JournalRecord | None:
        """The token's final outcome (the last event of its whole action), or ``None``."""
        record = self._last.get((token_id, None))
        return record if record is not None and record.event == "outcome" else None

    def deactivated(self) -> dict[str, datetime]:
        """Token id -> when this journal deactivated it (``done`` deactivates)."""
        actions = {item.id: item.action for item in self.plan.items}
        return {
            r.token_id: r.at
            for r in self.records
            if r.event == "outcome"
            and r.step is None
            and r.result == "done"
            and actions.get(r.token_id) == "deactivate"
        }

    # --- writing ----------------------------------------------------------------------

    def record(
        self,
        token_id: str,
        event: Event,
        *,
        step: str | None = None,
        result: Result | None = None,
        reason: str | None = None,
        data: Mapping[str, str | int | bool | None] | None = None,
    ) -> JournalRecord:
        """Append one event, sealed and chained to the one before, and fsync it."""
        if self._fd is None:
            raise PlanError(f"{self.path}: the journal is not open for writing")
        entry = JournalRecord(
            seq=len(self.records) + 1,
            token_id=token_id,
            event=event,
            at=self._now(),
            step=step,
            result=result,
            reason=None if reason is None else _short_reason(reason),
            data=dict(data or {}),
        )
        _check_record(entry)
        body = {**entry.as_json(), "plan": self.plan.digest, "prev": self._mac}
        mac = self._key.mac(JOURNAL_FORMAT, canonical(body))
        line = canonical({**body, "mac": mac})
        if len(line) > MAX_RECORD_BYTES:
            raise PlanError(f"a journal record is longer than {MAX_RECORD_BYTES:,} bytes")
        _append(self._fd, line)
        self._mac = mac
        self.records.append(entry)
        self._last[(token_id, step)] = entry
        return entry


def _append(fd: int, line: bytes) -> None:
    data = line + b"\n"
    written = os.write(fd, data)
    while written < len(data):  # pragma: no cover - a regular file takes it in one write
        written += os.write(fd, data[written:])
    os.fsync(fd)


def _check_record(entry: JournalRecord) -> None:
    if entry.event not in EVENTS:
        raise PlanError(f"unknown journal event {entry.event!r}")
    if entry.result is not None and entry.result not in RESULTS:
        raise PlanError(f"unknown journal result {entry.result!r}")
    if (entry.event == "outcome") != (entry.result is not None):
        raise PlanError("an outcome has a result, an intent none")
    if len(entry.data) > _MAX_DATA_KEYS:
        raise PlanError(f"a journal record holds at most {_MAX_DATA_KEYS} data fields")
    for name, value in entry.data.items():
        if not isinstance(name, str) or not (value is None or isinstance(value, str | int | bool)):
            raise PlanError("journal data holds str keys and str, int, bool or None values")


def _parse(
    path: str, data: bytes, session: CellcastSession
) -> tuple[Plan, list[JournalRecord], str, int]:
    """The plan, the events, the last MAC and how many bytes are whole lines."""
    key = key_of(session)
    end = data.rfind(b"\n") + 1  # bytes after the last "\n": a line cut short by a kill
    lines = data[:end].split(b"\n")[:-1]
    if not lines:
        raise PlanError(f"{path}: not a journal (empty)")
    header = _json_line(path, 1, lines[0])
    if header.get("format") != JOURNAL_FORMAT:
        raise PlanError(f"{path}: not a journal: no 'format' marker")
    if header.get("version") != JOURNAL_VERSION or type(header.get("version")) is not int:
        raise PlanError(
            f"{path}: a journal of version {header.get('version')!r}; this cellcast_async"
            f" reads version {JOURNAL_VERSION}"
        )
    mac = header.pop("mac", None)
    plan_body = header.get("plan")
    if isinstance(plan_body, dict) and plan_body.get("account") != key.key_id:
        raise PlanError(
            f"{path}: the journal was written under another API key: it is read only with"
            " the key of the account that wrote it"
        )
    if not key.check(JOURNAL_FORMAT, canonical(header), mac):
        raise PlanError(f"{path}: line 1 is not authentic: the journal was changed")
    plan = _plan_of(path, plan_body, header.get("plan_digest"), key, session)
    prev = str(mac)
    digest = plan.digest
    records: list[JournalRecord] = []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) > MAX_RECORD_BYTES:
            raise PlanError(f"{path}: line {number} is longer than {MAX_RECORD_BYTES:,} bytes")
        body = _json_line(path, number, line)
        mac = body.pop("mac", None)
        if body.get("prev") != prev or body.get("plan") != digest:
            raise PlanError(
                f"{path}: line {number} is out of place: lines were removed, added or moved"
            )
        if not key.check(JOURNAL_FORMAT, canonical(body), mac):
            raise PlanError(f"{path}: line {number} is not authentic: the journal was changed")
        records.append(_record(path, number, body, len(records) + 1))
        prev = str(mac)
    return plan, records, prev, end


def _plan_of(
    path: str, body: object, digest: object, key: CheckpointKey, session: CellcastSession
) -> Plan:
    if not isinstance(body, dict):
        raise PlanError(f"{path}: the journal holds no plan")
    # The header's seal covers the plan: seal it as a plan file would be, then check it.
    sealed = {**body, "mac": key.mac("cellcast-plan", canonical(body))}
    try:
        plan = plan_from_json(sealed, session)
    except PlanError as exc:
        raise PlanError(f"{path}: {exc.message}") from None
    if plan.digest != digest:
        raise PlanError(f"{path}: line 1 is not authentic: the journal was changed")
    return plan


def _json_line(path: str, number: int, line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        raise PlanError(f"{path}: line {number} is not JSON") from None
    if not isinstance(value, dict):
        raise PlanError(f"{path}: line {number} is not a JSON object")
    return value


def _record(path: str, number: int, body: Mapping[str, Any], seq: int) -> JournalRecord:
    bad = PlanError(f"{path}: line {number} is not a journal record")
    if body.get("seq") != seq or not isinstance(body.get("token"), str):
        raise bad
    data = body.get("data")
    if not isinstance(data, dict):
        raise bad
    for name in ("step", "reason"):
        if body.get(name) is not None and not isinstance(body.get(name), str):
            raise bad
    entry = JournalRecord(
        seq=seq,
        token_id=body["token"],
        event=body.get("event"),  # type: ignore[arg-type]
        at=parse_time(body.get("at"), f"{path}: line {number}: 'at'"),
        step=body.get("step"),
        result=body.get("result"),
        reason=body.get("reason"),
        data=data,
    )
    try:
        _check_record(entry)
    except PlanError:
        raise bad from None
    return entry
