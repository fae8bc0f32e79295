"""Helpers of the rotation tests (SDK, engine, command line): a sink that keeps what it
receives, and the check every rotated token passes (README "Rotating tokens")."""

from __future__ import annotations

import re

from cellcast_async import ApiToken, CellcastSession, CreatedToken, TokenStatus

RETIRED = " (retired 2026-12-04)"
"""The retiring suffix for the day the SDK tests rotate on (``AS_OF``)."""
FULL_SECRET = re.compile(r"ccst_[A-Za-z0-9_-]{40}")
"""The shape of a full sandbox token: a leaked one matches this."""


class Sink:
    """A sink that keeps what it receives, by token id; can be told to fail."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.received: dict[str, str] = {}
        self.calls = 0
        self.fail = fail

    async def __call__(self, token: CreatedToken) -> None:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        assert token.id not in self.received
        self.received[token.id] = token.token.reveal()

    def delivered(self, token_id: str, name: str) -> bool:
        return token_id in self.received


async def by_name(cc: CellcastSession, sub_account_id: str, name: str) -> list[ApiToken]:
    """The tokens named exactly ``name`` in the sub-account."""
    pager = cc.tokens.list_for_sub_account(sub_account_id, limit=100, search=name)
    return [t async for t in pager if t.name == name]


async def assert_rotated(
    cc: CellcastSession, old: ApiToken, sink: Sink, retiring: str | None = None
) -> ApiToken:
    """Exactly one active token under the old name, the old renamed (to ``retiring``, or
    any retiring name when None and no RETIRED day is known) and active, and the sink
    holding that one token's secret (its masked form ends as the secret does)."""
    assert old.sub_account_id is not None
    now = await by_name(cc, old.sub_account_id, old.name)
    assert len(now) == 1
    new = now[0]
    assert new.id != old.id
    assert new.status == TokenStatus.ACTIVE
    again = await cc.tokens.get(old.id)
    assert again.status == TokenStatus.ACTIVE
    if retiring is None:
        assert again.name.startswith(old.name + " (retired ")
    else:
        assert again.name == retiring
    assert new.id in sink.received
    secret = sink.received[new.id]
    assert FULL_SECRET.fullmatch(secret)
    assert new.token.reveal().endswith(secret[-4:])
    return new
