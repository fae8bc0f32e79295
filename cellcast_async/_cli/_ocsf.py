"""``audit --format ocsf``: the audit's findings as OCSF Compliance Finding events.

One event (OCSF 1.3.0, class ``compliance_finding``, ``class_uid`` 2003, with the
``cloud`` profile) per token per rule, as JSON Lines (README "Command line", "OCSF
findings"):

- ``stale_active``: an active token older than ``--stale-days`` (medium severity);
- ``inactive``: an inactive token (informational);
- ``duplicate_name``: a token whose name another token of its sub-account also carries
  (low); known only once the walk is over, so these come last.

The token is the event's resource, its sub-account ``cloud.account``. ``finding_info.uid``
is a digest of the API's host, the sub-account, the token's id and the rule: the same for
the same token and rule in every run, so a SIEM can de-duplicate, and it holds no key and
no token value (the records never hold one either). Pure apart from the stream it writes
to; the schema the events follow is vendored in tests/schemas/ocsf.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import IO, Any, Final, Literal

import attrs
from yarl import URL

from .._models import TokenStatus
from .._version import __version__
from ._audit_report import NO_SUB_ACCOUNT, AuditReport
from ._output import dump_json

__all__ = [
    "MAX_TEXT",
    "OCSF_VERSION",
    "RULES",
    "FindingContext",
    "FindingWriter",
    "Rule",
    "duplicate_findings",
    "finding_uid",
    "scope_of",
    "token_findings",
]

OCSF_VERSION: Final = "1.3.0"
Rule = Literal["stale_active", "inactive", "duplicate_name"]
RULES: Final[tuple[Rule, ...]] = ("stale_active", "inactive", "duplicate_name")

MAX_TEXT: Final = 65535
"""OCSF's ``string_t`` holds at most this many characters: longer server text is cut."""

_UID_VERSION: Final = "cellcast-tokens/ocsf/1"
"""Part of every finding uid: a change to how uids are made changes this, and so every uid."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RESOURCE_TYPE: Final = "Cellcast API token"
_ACCOUNT_TYPE: Final = "Cellcast sub-account"


class _Severity(IntEnum):
    """OCSF's ``severity_id``; its caption (``severity``) is the name, title-cased."""

    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3


class _ComplianceStatus(IntEnum):
    """OCSF's compliance ``status_id``; its caption (``status``) is the name, title-cased."""

    WARNING = 2
    FAIL = 3


@attrs.frozen
class _RuleInfo:
    """What a rule's findings say: a title, OCSF's severity and compliance status, and the
    requirement the rule checks."""

    title: str
    severity: _Severity
    compliance_status: _ComplianceStatus
    requirement: str


_RULE_INFO: Final[dict[Rule, _RuleInfo]] = {
    "stale_active": _RuleInfo(
        title="Stale API token still active",
        severity=_Severity.MEDIUM,
        compliance_status=_ComplianceStatus.FAIL,
        requirement="An API token older than the stale threshold is deactivated",
    ),
    "inactive": _RuleInfo(
        title="Inactive API token kept",
        severity=_Severity.INFORMATIONAL,
        compliance_status=_ComplianceStatus.WARNING,
        requirement="An inactive API token that no one needs back is deleted",
    ),
    "duplicate_name": _RuleInfo(
        title="API token name used twice in one sub-account",
        severity=_Severity.LOW,
        compliance_status=_ComplianceStatus.WARNING,
        requirement="Each API token of a sub-account has a name of its own",
    ),
}


def scope_of(base_url: str) -> str:
    """The part of the API's address a finding uid depends on: its host, lowercased.

    Not the port: an embedded sandbox (``--sandbox``) listens on a new one every run,
    and its demo data, like a real account, is the same every time.
    """
    return (URL(base_url).host or "").lower()


def finding_uid(scope: str, sub_account_id: str, token_id: str, rule: Rule) -> str:
    """A finding's ``finding_info.uid``: 32 hex digits of a SHA-256 over what it is about."""
    text = "\0".join((_UID_VERSION, scope, sub_account_id, token_id, rule))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _capped(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "\u2026"


@attrs.frozen
class FindingContext:
    """What every finding of one audit shares: the API's host (:func:`scope_of`), the
    "as of" time the rules were judged at (the events' ``time``) and the stale threshold."""

    scope: str
    as_of: datetime
    stale_days: int

    @property
    def time(self) -> int:
        return (self.as_of - _EPOCH) // timedelta(milliseconds=1)

    def _plan_args(self, sub_account_id: str) -> str:
        sub = f" --sub-account {shlex.quote(sub_account_id)}" if sub_account_id else ""
        return f"--as-of {self.as_of.isoformat()}{sub} --output plan.json"

    def remediation(self, rule: Rule, token_id: str, sub_account_id: str) -> str:
        """What to do, as the commands that do it (README "Command line"). Ids are quoted
        for a shell: they come from the server."""
        review = (
            "review the plan (cellcast-tokens show plan.json), then apply it"
            " (cellcast-tokens apply plan.json --journal apply.journal)."
        )
        if rule == "stale_active":
            return (
                "Deactivate the token, which can be undone (the API reports no last use:"
                " check that nothing still needs it): cellcast-tokens plan deactivate"
                f" --stale-days {self.stale_days} {self._plan_args(sub_account_id)}, {review}"
            )
        if rule == "inactive":
            return (
                "An inactive token cannot authenticate; delete it once no one needs it"
                " back (a delete cannot be undone): cellcast-tokens plan delete --stale-days 0"
                f" {self._plan_args(sub_account_id)}, {review} For tokens a plan"
                " deactivated, wait a grace period: cellcast-tokens plan delete"
                " --deactivated-by apply.journal --grace-days 30 --output plan.json."
            )
        return (
            "Give each token of the sub-account a name of its own, so that the right one"
            f" is deactivated or deleted: cellcast-tokens update {shlex.quote(token_id)}"
            " --name NEW-NAME, or deactivate the one no one uses"
            f" (cellcast-tokens update {shlex.quote(token_id)} --status inactive)."
        )

    def finding(
        self,
        rule: Rule,
        token_id: str,
        resource: dict[str, Any],
        sub_account_id: str,
        sub_account_name: str,
        message: str,
    ) -> dict[str, Any]:
        """One Compliance Finding event about the token ``resource`` describes (its text
        cut to OCSF's length; ``token_id`` whole, for the uid)."""
        info = _RULE_INFO[rule]
        account: dict[str, Any] = {"type": _ACCOUNT_TYPE, "type_id": 99}
        if sub_account_id:
            account["uid"] = _capped(sub_account_id)
        if sub_account_name:
            account["name"] = _capped(sub_account_name)
        cloud: dict[str, Any] = {"provider": "Cellcast"}
        if len(account) > 2:  # OCSF's account needs a uid or a name
            cloud["account"] = account
        return {
            "activity_id": 1,
            "activity_name": "Create",
            "category_uid": 2,
            "category_name": "Findings",
            "class_uid": 2003,
            "class_name": "Compliance Finding",
            "type_uid": 200301,
            "type_name": "Compliance Finding: Create",
            "severity_id": int(info.severity),
            "severity": info.severity.name.title(),
            "time": self.time,
            "message": _capped(message),
            "metadata": {
                "version": OCSF_VERSION,
                "profiles": ["cloud"],
                "product": {
                    "name": "cellcast-tokens",
                    "vendor_name": "cellcast_async",
                    "version": __version__,
                },
            },
            "finding_info": {
                "uid": finding_uid(self.scope, sub_account_id, token_id, rule),
                "title": info.title,
                "types": [f"cellcast-tokens/{rule}"],
            },
            "compliance": {
                "standards": ["cellcast-tokens audit"],
                "control": rule,
                "requirements": [info.requirement],
                "status_id": int(info.compliance_status),
                "status": info.compliance_status.name.title(),
            },
            "remediation": {"desc": _capped(self.remediation(rule, token_id, sub_account_id))},
            "resources": [resource],
            "cloud": cloud,
        }


def _resource(token_id: str, name: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"uid": _capped(token_id), "name": _capped(name)}
    resource["type"] = _RESOURCE_TYPE
    if data is not None:
        resource["data"] = dict(data)
    return resource


def token_findings(record: Mapping[str, Any], context: FindingContext) -> list[dict[str, Any]]:
    """The findings of one audit record (``_records.token_record``): none, stale and
    still active, or inactive."""
    status = record["status"]
    stale_active = bool(record["stale"]) and status == TokenStatus.ACTIVE
    if not stale_active and status != TokenStatus.INACTIVE:
        return []
    token_id, sub_id = record["id"], record["sub_account_id"]
    resource = _resource(
        token_id,
        record["name"],
        {
            "status": _capped(status),
            "created_at": record["created_at"],
            "age_days": record["age_days"],
        },
    )
    if stale_active:
        rule: Rule = "stale_active"
        message = (
            f"API token {token_id} is {record['age_days']:,} days old (stale: older than"
            f" {context.stale_days:,} days) and still active"
        )
    else:
        rule, message = "inactive", f"API token {token_id} is inactive"
    return [context.finding(rule, token_id, resource, sub_id, record["sub_account_name"], message)]


def duplicate_findings(report: AuditReport, context: FindingContext) -> list[dict[str, Any]]:
    """One ``duplicate_name`` finding per token whose name another token of its
    sub-account carries, in the report's order (sub-account, name, id)."""
    found = []
    for duplicate in report.duplicate_names():
        sub_id = duplicate["sub_account_id"]
        sub_id = "" if sub_id == NO_SUB_ACCOUNT else sub_id
        name, ids = duplicate["name"], duplicate["ids"]
        message = f"{len(ids):,} API tokens of sub-account {sub_id} are named {name!r}"
        for token_id in ids:
            found.append(
                context.finding(
                    "duplicate_name",
                    token_id,
                    _resource(token_id, name),
                    sub_id,
                    duplicate["sub_account_name"],
                    message,
                )
            )
    return found


@attrs.define
class FindingWriter:
    """Writes an audit's findings as JSON Lines: a token's as its record comes
    (:meth:`write`), the duplicate names' once the walk is over (:meth:`finish`)."""

    stream: IO[str]
    context: FindingContext

    def write(self, record: Mapping[str, Any]) -> None:
        for finding in token_findings(record, self.context):
            dump_json(finding, self.stream)

    def finish(self, report: AuditReport) -> None:
        for finding in duplicate_findings(report, self.context):
            dump_json(finding, self.stream)
