"""The audit's report: what an audit found, built one record at a time.

Pure: fed one record at a time (:meth:`AuditReport.add`), so memory grows only with the
tokens that need action; counts per status and sub-account, the stale and the inactive
tokens, names used twice. ``_audit_render`` draws it; ``_audit_run`` feeds it.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

import attrs

from .._models import TokenStatus

__all__ = ["NO_SUB_ACCOUNT", "AuditReport", "Flagged", "oldest"]

NO_SUB_ACCOUNT: Final = "(none)"


class Flagged(NamedTuple):
    """A token that needs action, with what an operator needs to find it; oldest sorts first.

    A named tuple: an audit makes one per stale or inactive token (100,000 of them in a
    big account), and a tuple is made and compared in C, several times faster than a
    frozen attrs class."""

    created_at: datetime
    id: str
    name: str
    status: str
    sub_account_id: str
    sub_account_name: str
    age_days: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "sub_account_id": self.sub_account_id,
            "sub_account_name": self.sub_account_name,
            "created_at": self.created_at.isoformat(),
            "age_days": self.age_days,
        }


def oldest(tokens: Iterable[Flagged], count: int) -> list[Flagged]:
    """The ``count`` oldest, oldest first, without sorting them all (a heap)."""
    return heapq.nsmallest(count, tokens)


_INACTIVE: Final = TokenStatus.INACTIVE.value


@attrs.define
class AuditReport:
    """What an audit found, built one record at a time."""

    as_of: datetime
    stale_days: int
    total: int = 0
    by_status: Counter[str] = attrs.field(factory=Counter)
    by_sub_account: defaultdict[str, Counter[str]] = attrs.field(
        factory=lambda: defaultdict(Counter)
    )
    sub_account_names: dict[str, str] = attrs.field(factory=dict)
    stale: list[Flagged] = attrs.field(factory=list)
    inactive: list[Flagged] = attrs.field(factory=list)
    oldest: datetime | None = None
    # (sub-account, name) -> the first id carrying it, and the ids after the first: a
    # name twice in one sub-account is a warning. Two maps, not a list per name: 100,000
    # names mostly used once would be 100,000 lists.
    _first_id: dict[tuple[str, str], str] = attrs.field(factory=dict, alias="_first_id")
    _more_ids: dict[tuple[str, str], list[str]] = attrs.field(factory=dict, alias="_more_ids")

    def add(self, record: Mapping[str, Any], created_at: datetime) -> None:
        # Called once per token of a 100,000-token audit: plain lookups, no more.
        self.total += 1
        status: str = record["status"]
        sub_id = record["sub_account_id"] or NO_SUB_ACCOUNT
        sub_name = record["sub_account_name"]
        self.by_status[status] += 1
        self.by_sub_account[sub_id][status] += 1
        if sub_name:
            self.sub_account_names[sub_id] = sub_name
        if self.oldest is None or created_at < self.oldest:
            self.oldest = created_at
        key = (sub_id, record["name"])
        if key in self._first_id:
            self._more_ids.setdefault(key, []).append(record["id"])
        else:
            self._first_id[key] = record["id"]
        stale = record["stale"]
        inactive = status == _INACTIVE
        if stale or inactive:
            flagged = Flagged(
                created_at,
                record["id"],
                record["name"],
                status,
                sub_id,
                sub_name,
                record["age_days"],
            )
            if stale:
                self.stale.append(flagged)
            if inactive:
                self.inactive.append(flagged)

    def duplicate_names(self) -> list[dict[str, Any]]:
        """Names carried by more than one token within one sub-account."""
        return [
            {
                "sub_account_id": sub,
                "sub_account_name": self.sub_account_names.get(sub, ""),
                "name": name,
                "ids": sorted([self._first_id[(sub, name)], *more]),
            }
            for (sub, name), more in sorted(self._more_ids.items())
        ]

    def shared_names(self) -> dict[str, list[str]]:
        """Names used in more than one sub-account: normal (each has its "Production API")."""
        subs: defaultdict[str, set[str]] = defaultdict(set)
        for sub, name in self._first_id:
            subs[name].add(sub)
        return {name: sorted(s) for name, s in sorted(subs.items()) if len(s) > 1}

    def statuses(self) -> list[str]:
        """Active and inactive always, then any status the server sent that we do not know."""
        known = [s.value for s in TokenStatus]
        return known + sorted(set(self.by_status) - set(known))

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "stale_days": self.stale_days,
            "total": self.total,
            "by_status": dict(sorted(self.by_status.items())),
            "by_sub_account": [
                {
                    "id": sub,
                    "name": self.sub_account_names.get(sub),
                    "tokens": sum(counts.values()),
                    "by_status": dict(sorted(counts.items())),
                }
                for sub, counts in sorted(self.by_sub_account.items())
            ],
            "stale": {
                "count": len(self.stale),
                "tokens": [t.as_json() for t in sorted(self.stale)],
            },
            "inactive": {
                "count": len(self.inactive),
                "tokens": [t.as_json() for t in sorted(self.inactive)],
            },
            "oldest_created_at": self.oldest.isoformat() if self.oldest else None,
            "duplicate_names": self.duplicate_names(),
            "names_in_several_sub_accounts": self.shared_names(),
        }
