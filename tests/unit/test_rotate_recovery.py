"""``plan_recovery``: where a killed rotation goes on, from its journal and the server.

Pure: each case is an in-memory record of steps and what the server (and the sink) show
(README "Rotating tokens", "Resumable").
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from cellcast_async import ApiToken, RotationStep, Secret
from cellcast_async._rotate import Observed, Recovery, RotationTarget, StepRecord, plan_recovery

S = RotationStep
TARGET = RotationTarget("old1", "Production API", "sub1", date(2026, 12, 4))
RETIRING = "Production API (retired 2026-12-04)"


def token(token_id: str, name: str) -> ApiToken:
    return ApiToken(
        id=token_id,
        name=name,
        token=Secret("ccst_****abcd"),
        status="active",
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        sub_account_id="sub1",
    )


def intent(step: RotationStep, **data: str) -> StepRecord:
    return StepRecord(step, "intent", data)


def outcome(step: RotationStep, result: str = "ok", **data: str) -> StepRecord:
    return StepRecord(step, "outcome", {"result": result, **data})


RENAMED = [intent(S.RENAME, retiring_name=RETIRING), outcome(S.RENAME)]
CREATED = [*RENAMED, intent(S.CREATE), outcome(S.CREATE, new_id="new1")]
OLD_RETIRING = Observed(old=token("old1", RETIRING))
KNOWN = Recovery(S.CREATE, retiring_name=RETIRING, renamed=True)

CASES = [
    pytest.param([], Observed(old=None), Recovery(S.RENAME), id="nothing journaled"),
    pytest.param(
        RENAMED[:1],
        OLD_RETIRING,
        Recovery(S.CREATE, retiring_name=RETIRING, confirm=S.RENAME, renamed=True),
        id="rename landed, outcome not journaled",
    ),
    pytest.param(
        RENAMED[:1],
        Observed(old=token("old1", "Production API")),
        Recovery(S.RENAME),
        id="rename never landed",
    ),
    pytest.param(
        RENAMED[:1],
        Observed(old=token("old1", "Someone else's")),
        Recovery(
            None,
            failure=(S.RENAME, 'the old token was renamed to "Someone else\'s" by someone else'),
        ),
        id="old renamed by someone else",
    ),
    pytest.param(
        RENAMED[:1],
        Observed(old=None),
        Recovery(None, failure=(S.RENAME, "the old token is gone")),
        id="old gone",
    ),
    pytest.param(RENAMED, OLD_RETIRING, KNOWN, id="renamed: create"),
    pytest.param(
        [*RENAMED, intent(S.CREATE)],
        Observed(old=OLD_RETIRING.old, holder=token("made1", "Production API")),
        Recovery(S.DISCARD, retiring_name=RETIRING, discard_id="made1", renamed=True),
        id="create made a token, answer never journaled: delete it",
    ),
    pytest.param(
        [*RENAMED, intent(S.CREATE)], OLD_RETIRING, KNOWN, id="create made nothing: again"
    ),
    pytest.param(
        [*RENAMED, intent(S.CREATE), outcome(S.CREATE, "lost", reason="TimeoutError: x")],
        Observed(old=OLD_RETIRING.old, holder=token("made1", "Production API")),
        Recovery(S.DISCARD, retiring_name=RETIRING, discard_id="made1", renamed=True),
        id="create answer lost: delete what it made",
    ),
    pytest.param(
        [*RENAMED, intent(S.CREATE), outcome(S.CREATE, "lost"), intent(S.DISCARD, new_id="m")],
        OLD_RETIRING,
        Recovery(S.DISCARD, retiring_name=RETIRING, discard_id="m", renamed=True),
        id="discard of a lost create's token under way",
    ),
    pytest.param(
        CREATED,
        OLD_RETIRING,
        Recovery(S.DISCARD, retiring_name=RETIRING, new_id="new1", discard_id="new1", renamed=True),
        id="created, secret lost with the process: delete, create again",
    ),
    pytest.param(
        [*CREATED, intent(S.DELIVER, new_id="new1")],
        Observed(old=OLD_RETIRING.old, delivered=True),
        Recovery(S.VERIFY, retiring_name=RETIRING, new_id="new1", confirm=S.DELIVER, renamed=True),
        id="sink holds it: verify",
    ),
    pytest.param(
        [*CREATED, intent(S.DELIVER, new_id="new1")],
        Observed(old=OLD_RETIRING.old, delivered=None),
        Recovery(S.DISCARD, retiring_name=RETIRING, new_id="new1", discard_id="new1", renamed=True),
        id="sink cannot tell: delete, create again",
    ),
    pytest.param(
        [*CREATED, intent(S.DELIVER, new_id="new1"), outcome(S.DELIVER, new_id="new1")],
        OLD_RETIRING,
        Recovery(S.VERIFY, retiring_name=RETIRING, new_id="new1", renamed=True),
        id="delivered: verify",
    ),
    pytest.param(
        [
            *CREATED,
            intent(S.DELIVER, new_id="new1"),
            outcome(S.DELIVER, "failed", new_id="new1", reason="OSError: full"),
        ],
        OLD_RETIRING,
        Recovery(
            S.DISCARD,
            retiring_name=RETIRING,
            new_id="new1",
            discard_id="new1",
            after_discard=S.RESTORE,
            failure=(S.DELIVER, "OSError: full"),
            renamed=True,
        ),
        id="delivery failed: finish the rollback",
    ),
    pytest.param(
        [
            *CREATED,
            intent(S.DELIVER, new_id="new1"),
            outcome(S.DELIVER, "failed", new_id="new1", reason="OSError: full"),
            intent(S.DISCARD, new_id="new1"),
            outcome(S.DISCARD, new_id="new1"),
        ],
        OLD_RETIRING,
        Recovery(
            S.RESTORE,
            retiring_name=RETIRING,
            failure=(S.DELIVER, "OSError: full"),
            renamed=True,
        ),
        id="rolled back but for the name",
    ),
    pytest.param(
        [*CREATED, intent(S.VERIFY, new_id="new1"), outcome(S.VERIFY, new_id="new1")],
        Observed(old=None),
        Recovery(None, retiring_name=RETIRING, new_id="new1"),
        id="verified: nothing to do",
    ),
    pytest.param(
        [*RENAMED, intent(S.CREATE), outcome(S.CREATE, "failed"), outcome(S.RESTORE)],
        Observed(old=None),
        Recovery(None, retiring_name=RETIRING, failure=(S.CREATE, "")),
        id="restored: nothing to do",
    ),
]


@pytest.mark.parametrize(("records", "observed", "expected"), CASES)
def test_plan_recovery(records: list[StepRecord], observed: Observed, expected: Recovery) -> None:
    assert plan_recovery(TARGET, records, observed) == expected
