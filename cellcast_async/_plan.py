"""Plans: what acting on an audit will change, chosen before anything is written.

A :class:`Plan` lists, per token, what was seen when the plan was made (id, name,
sub-account, status, ``createdAt``) and the action to take. :func:`build_plan` selects
from tokens with the audit's rule and never sends a request. A plan is written as
canonical JSON (sorted keys, fixed separators, items in a fixed order), so the same
tokens, options and ``as_of`` give the same bytes, and sealed with an HMAC-SHA256 under a
key derived from the API key (``._seal``, as checkpoints are): an edited plan, or one made
under another API key or for another base URL, is a :class:`PlanError` when loaded. A
plan never holds the key or a token value (README "Acting on an audit").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal, get_args

import attrs

from . import _files
from ._exceptions import CellcastError
from ._models import ApiToken, TokenStatus
from ._seal import CheckpointKey
from ._session import CellcastSession, checkpoint_key

__all__ = [
    "ACTIONS",
    "MAX_DAYS",
    "MAX_ID_BYTES",
    "MAX_PLAN_BYTES",
    "MAX_PLAN_ITEMS",
    "PLAN_FORMAT",
    "PLAN_VERSION",
    "Action",
    "Plan",
    "PlanError",
    "PlanItem",
    "build_plan",
    "canonical",
    "check_account",
    "check_days",
    "check_items",
    "format_time",
    "key_of",
    "parse_time",
    "plan_from_json",
    "read_capped",
]

Action = Literal["deactivate", "delete", "reactivate", "rotate"]
"""What a plan does to one token. ``reactivate`` is what ``undo`` plans; ``rotate`` is
README "Rotating tokens" (``._rotate_plan``)."""
ACTIONS: Final[tuple[str, ...]] = get_args(Action)

PLAN_FORMAT: Final = "cellcast-plan"
PLAN_VERSION: Final = 1
MAX_PLAN_ITEMS: Final = 200_000
"""The most tokens one plan holds."""
MAX_PLAN_BYTES: Final = 64 * 2**20
"""The largest plan file read (64 MiB)."""
_MAX_TEXT: Final = 1024  # an id, a name or a sub-account id longer than this is refused
MAX_ID_BYTES: Final = 2048
"""The longest id a plan holds, as a journal line writes it (JSON, ASCII escapes)."""
MAX_DAYS: Final = timedelta.max.days
"""The largest ``stale_days`` or ``grace_days`` (999,999,999: what a ``timedelta`` holds)."""


class PlanError(CellcastError, ValueError):
    """A plan or journal that cannot be used: edited, made for another account, malformed,
    too large, or asking for something refused (deleting an active token). Nothing is sent."""


def format_time(when: datetime) -> str:
    """``when`` in UTC as ISO 8601 with microseconds and ``Z``: one spelling per instant."""
    if when.tzinfo is None:
        raise PlanError("a time must be timezone-aware")
    return when.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: object, what: str) -> datetime:
    """The instant :func:`format_time` wrote; anything else is a :class:`PlanError`."""
    if not isinstance(text, str) or len(text) > 40:
        raise PlanError(f"{what} is not a time")
    # format_time ends in "Z", which datetime.fromisoformat reads only from Python 3.11.
    iso = text[:-1] + "+00:00" if text.endswith("Z") else text
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise PlanError(f"{what} is not a time") from None
    if when.tzinfo is None:
        raise PlanError(f"{what} has no timezone")
    return when


def canonical(body: Mapping[str, Any]) -> bytes:
    """The one byte form of ``body`` that is sealed and written."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def read_capped(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; a FIFO, a device, a folder or a
    larger file is a :class:`PlanError` (opened non-blocking: a FIFO never hangs)."""
    return _files.read_capped(path, limit, what, error=PlanError)


@attrs.frozen
class PlanItem:
    """One token of a plan: what was seen when the plan was made, and the action.

    ``apply`` writes the token only if it still looks exactly like this (same name,
    status, sub-account and ``created_at``); otherwise it is skipped.
    """

    id: str
    name: str
    sub_account_id: str | None
    status: str
    created_at: datetime
    action: Action

    @classmethod
    def of(cls, token: ApiToken, action: Action) -> PlanItem:
        """The item for ``token`` as it is now."""
        return cls(
            id=token.id,
            name=token.name,
            sub_account_id=token.sub_account_id,
            status=str(token.status),
            created_at=token.created_at,
            action=action,
        )

    def changed(self, token: ApiToken) -> str | None:
        """What differs between ``token`` and what the plan saw, or ``None``."""
        for field, now in (
            ("name", token.name),
            ("status", str(token.status)),
            ("sub-account", token.sub_account_id),
            ("createdAt", token.created_at),
        ):
            seen = {
                "name": self.name,
                "status": self.status,
                "sub-account": self.sub_account_id,
                "createdAt": self.created_at,
            }[field]
            if seen != now:
                return f"{field} changed since the plan"
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "sub_account_id": self.sub_account_id,
            "status": self.status,
            "created_at": format_time(self.created_at),
            "action": self.action,
        }


def _item_order(item: PlanItem) -> tuple[datetime, str]:
    return (item.created_at, item.id)  # oldest first, ties by id: one order for one set


@attrs.frozen
class Plan:
    """What ``apply`` will change, per token, and how the tokens were chosen.

    ``account`` names the API key the plan was made under (a key id, never the key) and
    ``base_url`` the API; ``selection`` holds the options that chose the tokens. Save and
    load it with :meth:`dumps` / :meth:`loads` (or :meth:`save` / :meth:`load`), which
    seal and check it with the session's key.
    """

    account: str
    base_url: str
    as_of: datetime
    action: Action
    selection: Mapping[str, Any]
    items: tuple[PlanItem, ...]
    _digest: str | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def body(self) -> dict[str, Any]:
        """The plan as JSON, without its seal."""
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "account": self.account,
            "base_url": self.base_url,
            "as_of": format_time(self.as_of),
            "action": self.action,
            "selection": dict(self.selection),
            "items": [item.as_json() for item in self.items],
        }

    @property
    def digest(self) -> str:
        """SHA-256 of the plan's canonical form, in hex: what a journal is bound to."""
        if self._digest is None:  # computed once: a journal names it on every line
            object.__setattr__(self, "_digest", hashlib.sha256(canonical(self.body())).hexdigest())
        assert self._digest is not None
        return self._digest

    def counts(self) -> dict[tuple[str, str], int]:
        """How many tokens per (action, sub-account id)."""
        out: dict[tuple[str, str], int] = {}
        for item in self.items:
            key = (item.action, item.sub_account_id or "")
            out[key] = out.get(key, 0) + 1
        return out

    def dumps(self, session: CellcastSession) -> str:
        """The plan's file text: canonical JSON sealed with ``session``'s key, ending "\\n"."""
        key = key_of(session)
        check_account(self, session)
        body = self.body()
        return canonical({**body, "mac": key.mac(PLAN_FORMAT, canonical(body))}).decode() + "\n"

    def save(self, path: str | os.PathLike[str], session: CellcastSession) -> None:
        """Write :meth:`dumps` to ``path`` (a fresh file beside it, fsynced, renamed over)."""
        data = self.dumps(session).encode()
        target = os.fspath(path)
        # A new file under a name no one can guess (O_EXCL, mode 0600): a symlink planted
        # under a predictable temporary name in a shared folder is never written through.
        folder, name = os.path.split(target)
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    @classmethod
    def loads(cls, text: str | bytes, session: CellcastSession) -> Plan:
        """A plan :meth:`dumps` wrote under ``session``'s key and base URL; anything else
        (edited, another account, malformed, too large) is a :class:`PlanError`."""
        if len(text) > MAX_PLAN_BYTES:
            raise PlanError(f"not a plan: larger than {MAX_PLAN_BYTES:,} bytes")
        try:
            outer = json.loads(text)
        except (ValueError, RecursionError):
            raise PlanError("not a plan: not JSON") from None
        return plan_from_json(outer, session)

    @classmethod
    def load(cls, path: str | os.PathLike[str], session: CellcastSession) -> Plan:
        """:meth:`loads` of a file: a regular file of at most 64 MiB."""
        data = read_capped(path, MAX_PLAN_BYTES, "plan")  # its errors name the file
        try:
            return cls.loads(data, session)
        except PlanError as exc:
            raise PlanError(f"{os.fspath(path)}: {exc.message}") from None


def key_of(session: CellcastSession) -> CheckpointKey:
    """The key that seals ``session``'s plans and journals (its checkpoints' key)."""
    return checkpoint_key(session)


def check_account(plan: Plan, session: CellcastSession) -> None:
    """A :class:`PlanError` unless ``plan`` was made for ``session``'s key and base URL."""
    if plan.account != key_of(session).key_id:
        raise PlanError(
            "the plan was made under another API key: it applies only to the account that made it"
        )
    if plan.base_url != session.base_url:
        raise PlanError(
            f"the plan was made for another API ({_short(plan.base_url)}), not"
            f" {_short(session.base_url)}"
        )


def _short(text: str) -> str:
    return repr(text[:200])


def check_items(plan: Plan) -> None:
    """Refuse what no plan may ask: deleting a token seen active, an id twice, too many."""
    if len(plan.items) > MAX_PLAN_ITEMS:
        raise PlanError(f"a plan holds at most {MAX_PLAN_ITEMS:,} tokens")
    seen: set[str] = set()
    for item in plan.items:
        _check_lengths(item)
        if item.id in seen:
            raise PlanError(f"token {_short(item.id)} is in the plan twice")
        seen.add(item.id)
        if item.action == "delete" and item.status != TokenStatus.INACTIVE.value:
            raise PlanError(
                f"token {_short(item.id)} is {_short(item.status)}: only an inactive token"
                " is deleted (deactivate it first)"
            )


def _check_lengths(item: PlanItem) -> None:
    """A token whose id, name, sub-account or status no plan file may hold (longer than
    ``_MAX_TEXT``) is refused when the plan is made, not when it is applied."""
    for field, value in (
        ("id", item.id),
        ("name", item.name),
        ("sub-account id", item.sub_account_id or ""),
        ("status", item.status),
    ):
        if len(value) > _MAX_TEXT:
            raise PlanError(
                f"token {_short(item.id)} has a {field} of {len(value):,} characters; a plan"
                f" holds at most {_MAX_TEXT}: exempt it (by id) or rename it"
            )
    # The id stands in every journal line of the token (8 KiB at most): its escaped form
    # (a control character is 6 bytes, an emoji 12) must leave room for the rest.
    written = len(json.dumps(item.id)) - 2
    if written > MAX_ID_BYTES:
        raise PlanError(
            f"token {_short(item.id)} has an id {written:,} bytes long as a journal writes it;"
            f" a plan holds at most {MAX_ID_BYTES:,}: exempt it (by name)"
        )


def plan_from_json(outer: object, session: CellcastSession) -> Plan:
    """A sealed plan's JSON, checked: format, account, seal, then every field."""
    if not isinstance(outer, dict) or outer.get("format") != PLAN_FORMAT:
        raise PlanError("not a plan: no 'format' marker")
    if outer.get("version") != PLAN_VERSION or type(outer.get("version")) is not int:
        raise PlanError(
            f"a plan of version {outer.get('version')!r}; this cellcast_async reads"
            f" version {PLAN_VERSION}"
        )
    key = key_of(session)
    if outer.get("account") != key.key_id:
        raise PlanError(
            "the plan was made under another API key: it applies only to the account that made it"
        )
    mac = outer.pop("mac", None)
    if not key.check(PLAN_FORMAT, canonical(outer), mac):
        raise PlanError("the plan is not authentic: it was changed after it was made")
    plan = _fields(outer)
    check_account(plan, session)
    check_items(plan)
    return plan


def _text(body: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise PlanError(f"plan field {name!r} is not a string of at most {_MAX_TEXT} characters")
    return value


def _action(value: object) -> Action:
    if value not in ACTIONS:
        raise PlanError(f"unknown action {value!r}")
    return value  # type: ignore[return-value]


def _fields(body: Mapping[str, Any]) -> Plan:
    items = body.get("items")
    if not isinstance(items, list) or len(items) > MAX_PLAN_ITEMS:
        raise PlanError(f"plan field 'items' is not a list of at most {MAX_PLAN_ITEMS:,}")
    selection = body.get("selection")
    if not isinstance(selection, dict):
        raise PlanError("plan field 'selection' is not an object")
    parsed: list[PlanItem] = []
    for raw in items:
        if not isinstance(raw, dict):
            raise PlanError("a plan item is not an object")
        parsed.append(
            PlanItem(
                id=_text(raw, "id"),
                name=_text(raw, "name"),
                sub_account_id=_text(raw, "sub_account_id", optional=True),
                status=_text(raw, "status"),
                created_at=parse_time(raw.get("created_at"), "plan field 'created_at'"),
                action=_action(raw.get("action")),
            )
        )
    return Plan(
        account=_text(body, "account"),
        base_url=_text(body, "base_url"),
        as_of=parse_time(body.get("as_of"), "plan field 'as_of'"),
        action=_action(body.get("action")),
        selection=selection,
        items=tuple(parsed),
    )


def build_plan(
    tokens: Iterable[ApiToken],
    *,
    action: Literal["deactivate", "delete"],
    as_of: datetime,
    account: CellcastSession,
    stale_days: int | None = None,
    exempt: Collection[str] = (),
    sub_accounts: Collection[str] = (),
    deactivated_by: Mapping[str, datetime] | None = None,
    grace_days: int | None = None,
    source: str | None = None,
) -> Plan:
    """Choose the tokens to act on; no request is sent.

    ``deactivate`` chooses active tokens older than ``stale_days`` at ``as_of`` (the
    audit's rule: age > ``stale_days`` days). ``delete`` chooses inactive tokens only:
    older than ``stale_days``, or deactivated (``deactivated_by``: token id -> when, from
    :meth:`Journal.deactivated`) at least ``grace_days`` before ``as_of``. ``exempt``
    holds ids or exact names never chosen; ``sub_accounts``, when given, limits the
    choice to those. ``account`` is the session the plan is for: its key id and base URL
    bind the plan. ``source`` names where the tokens came from (kept in the selection).
    """
    rule = _rule(action, stale_days, deactivated_by, grace_days)
    if as_of.tzinfo is None:
        raise PlanError("as_of must be timezone-aware")
    limits = frozenset(sub_accounts)
    skip = frozenset(exempt)
    wanted = TokenStatus.ACTIVE.value if action == "deactivate" else TokenStatus.INACTIVE.value
    chosen: dict[str, PlanItem] = {}
    for token in tokens:
        if str(token.status) != wanted or token.id in skip or token.name in skip:
            continue
        if limits and token.sub_account_id not in limits:
            continue
        if rule(token, as_of):
            chosen[token.id] = PlanItem.of(token, action)
    items = tuple(sorted(chosen.values(), key=_item_order))
    if len(items) > MAX_PLAN_ITEMS:
        raise PlanError(f"{len(items):,} tokens chosen; a plan holds at most {MAX_PLAN_ITEMS:,}")
    selection: dict[str, Any] = {
        "stale_days": stale_days,
        "grace_days": grace_days,
        "deactivated_by": None if deactivated_by is None else len(deactivated_by),
        "exempt": len(skip),
        "sub_accounts": sorted(limits),
        "source": source,
    }
    plan = Plan(
        account=key_of(account).key_id,
        base_url=account.base_url,
        as_of=as_of,
        action=action,
        selection=selection,
        items=items,
    )
    check_items(plan)
    return plan


def check_days(value: int | None, name: str) -> None:
    """A :class:`PlanError` unless ``value`` is None or a whole number of days from 0 to
    :data:`MAX_DAYS` (more would overflow a ``timedelta``)."""
    if value is None:
        return
    if type(value) is not int or value < 0:
        raise PlanError(f"{name} must be a whole number >= 0")
    if value > MAX_DAYS:
        raise PlanError(f"{name} must be at most {MAX_DAYS:,} days")


def _rule(
    action: str,
    stale_days: int | None,
    deactivated_by: Mapping[str, datetime] | None,
    grace_days: int | None,
) -> Any:
    if action not in ("deactivate", "delete"):
        raise PlanError(f"a plan deactivates or deletes, not {action!r}")
    check_days(stale_days, "stale_days")
    check_days(grace_days, "grace_days")
    by_age = stale_days is not None
    by_journal = deactivated_by is not None or grace_days is not None
    if action == "deactivate" and (not by_age or by_journal):
        raise PlanError("a deactivate plan chooses by stale_days only")
    if by_age == by_journal:
        raise PlanError("a delete plan chooses by stale_days, or by deactivated_by and grace_days")
    if by_journal and (deactivated_by is None or grace_days is None):
        raise PlanError("deactivated_by and grace_days go together")
    if by_age:
        age = timedelta(days=stale_days or 0)
        return lambda token, as_of: as_of - token.created_at > age
    grace = timedelta(days=grace_days or 0)
    when = deactivated_by or {}

    def deactivated_long_ago(token: ApiToken, as_of: datetime) -> bool:
        at = when.get(token.id)
        return at is not None and as_of - at >= grace

    return deactivated_long_ago
