"""A token whose ``_id`` is empty is not a token (README "Models").

No call can name it (``get("")`` is refused), a walk's duplicate check keys on the id,
and ``diff`` refuses a record without one, so an audit that wrote it could not be
compared. Such an answer is a ``DecodeError``, from ``get`` and from a walk.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cellcast_async import CellcastSession, DecodeError

from ..cli._support import run_cli
from ._walk_server import API_KEY, TOKENS_PATH, WalkServer, envelope, listing, token_item

EMPTY = "expected a token id, got an empty string"


def respond(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
    if path == TOKENS_PATH:
        items = [token_item(1), token_item(2, _id="")]
        return 200, listing(items, page=int(query["page"]), limit=10, total=2, more=False)
    return 200, envelope(token_item(3, _id=""))


class TestEmptyId:
    """``"_id": ""`` is a DecodeError that says so."""

    async def test_get(self) -> None:
        with WalkServer(respond) as server:
            async with CellcastSession(api_key=API_KEY, base_url=server.url) as cc:
                with pytest.raises(DecodeError) as info:
                    await cc.tokens.get("abc")
        assert str(info.value) == f"GET {TOKENS_PATH}/abc -> 200: {EMPTY}"

    @pytest.mark.parametrize("concurrency", [1, 4])
    async def test_walk(self, concurrency: int) -> None:
        with WalkServer(respond) as server:
            async with CellcastSession(api_key=API_KEY, base_url=server.url) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(pager.collect(), 30)
        assert str(info.value) == f"GET {TOKENS_PATH} -> 200: {EMPTY}"
        assert pager.next_page == 1  # the page is read again by a resume, nothing lost

    def test_cli_audit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        with WalkServer(respond) as server:
            monkeypatch.setenv("CELLCAST_API_KEY", API_KEY)
            monkeypatch.setenv("CELLCAST_BASE_URL", server.url)
            result = run_cli("--quiet", "audit", "--format", "jsonl")
        assert (result.code, result.out) == (1, "")
        assert result.err == f"error: GET {TOKENS_PATH} -> 200: {EMPTY}\n"
