"""A refusal by the rate governor on a call with no deadline is a TimeoutError with a
message, never a TypeError from formatting a deadline that does not exist."""

from __future__ import annotations

import hashlib

import pytest

from cellcast_async import CellcastSession, TimeoutError
from cellcast_async._governor import GovernorWaitTooLong
from cellcast_async._rate_store import rate_scope

from ._hostile_http import API_KEY, TOKEN_ID, HostileHeaders


class _Refusing:
    """A governor that refuses every call, as a shared store could make it."""

    async def acquire(self, *, max_wait: float | None = None) -> float:
        raise GovernorWaitTooLong(7.5)


class TestRefusalWithoutDeadline:
    async def test_message(self) -> None:
        """No deadline: 'the rate governor refused the call', nothing sent."""
        async with (
            HostileHeaders([{}]) as server,
            CellcastSession(api_key=API_KEY, base_url=server.url) as cc,
        ):
            cc._pipeline.governor = _Refusing()  # type: ignore[assignment]
            with pytest.raises(TimeoutError) as info:
                await cc.tokens.get(TOKEN_ID)
        assert server.seen == 0
        assert info.value.kind == "deadline"
        assert str(info.value) == (
            f"GET /api/v1/apiClient/token/{TOKEN_ID}: the rate governor refused the call:"
            " it needs a wait of 7.5 s"
        )


class TestScope:
    """README "Rate limits": the Redis scope is scrypt of the key, salted with the URL."""

    def test_not_a_plain_hash(self) -> None:
        """Not the SHA-256 of the key and URL that anyone could test guesses against."""
        key, url = "ccak_live_0123456789abcdef", "https://api.cellcast.com"
        old = hashlib.sha256(f"{len(key)}:{key}\n{len(url)}:{url}".encode()).hexdigest()
        assert rate_scope(key, url) != old

    def test_the_documented_derivation(self) -> None:
        """scrypt(N=2**14, r=8, p=1) of the length-prefixed key, salted by the base URL:
        what README "Rate limits" documents, so another client can share the scope."""
        key, url = "ccak_live_0123456789abcdef", "https://api.cellcast.com/"
        expected = hashlib.scrypt(
            b"26:ccak_live_0123456789abcdef",
            salt=b"cellcast_async rate scope v2\n24:https://api.cellcast.com",
            n=2**14,
            r=8,
            p=1,
            maxmem=2**26,
            dklen=32,
        ).hex()
        assert rate_scope(key, url) == expected

    def test_processes_share_it(self) -> None:
        """Deterministic: the same key and base URL give the same scope every time."""
        assert rate_scope("k", "https://x") == rate_scope("k", "https://x/")
        assert rate_scope("k", "https://x") != rate_scope("k2", "https://x")
