"""Path parameters stay one percent-encoded segment: no id leaves ``/api/v1/apiClient/token/``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import pytest
from aioresponses import aioresponses
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from cellcast_async import CellcastSession
from cellcast_async._protocol import segment, sub_account_tokens_path, token_path

from ..seed_samples import DELETE_200, LIST_200, UPDATE_200
from ._support import (
    ANY_TOKEN_URL,
    TOKENS_PATH,
    TOKENS_URL,
    envelope,
    exactly,
    sent,
    session,
    token_json,
)

# (id as the caller passes it, the one segment it must become on the wire)
HOSTILE_IDS = [
    ("6877b1234567890abcdef123", "6877b1234567890abcdef123"),
    ("../admin", "..%2Fadmin"),
    ("a/b", "a%2Fb"),
    ("a?b=1", "a%3Fb%3D1"),
    ("a#b", "a%23b"),
    ("%2e%2e", "%252e%252e"),
    ("..a", "..a"),
    ("a..", "a.."),
    (".a.", ".a."),
    ("é", "%C3%A9"),
    ("токен", "%D1%82%D0%BE%D0%BA%D0%B5%D0%BD"),
    ("a b", "a%20b"),
    ("..\\admin", "..%5Cadmin"),
    ("a;b", "a%3Bb"),
    ("a&page=9", "a%26page%3D9"),
    ("x\r\nHost: evil", "x%0D%0AHost%3A%20evil"),
]

Call = Callable[[CellcastSession, str], Awaitable[Any]]


async def get_token(cc: CellcastSession, token_id: str) -> Any:
    return await cc.tokens.get(token_id)


async def update_token(cc: CellcastSession, token_id: str) -> Any:
    return await cc.tokens.update(token_id, name="Updated API Name")


async def delete_token(cc: CellcastSession, token_id: str) -> Any:
    return await cc.tokens.delete(token_id)


CALLS: list[tuple[str, Call, dict[str, Any]]] = [
    ("GET", get_token, envelope(token_json(1))),
    ("PUT", update_token, UPDATE_200),
    ("DELETE", delete_token, DELETE_200),
]


def assert_one_segment(url: URL, prefix: str, encoded: str) -> None:
    """The request went to ``prefix/encoded`` exactly, with no query and no fragment."""
    assert url.raw_path == f"{prefix}/{encoded}"
    assert url.raw_path.count("/") == prefix.count("/") + 1
    assert url.raw_query_string == ""
    assert url.raw_fragment == ""
    assert url.host == "api.cellcast.com"


class TestTokenIdOnTheWire:
    """get, update and delete send the id as exactly one segment."""

    @pytest.mark.parametrize(("token_id", "encoded"), HOSTILE_IDS)
    @pytest.mark.parametrize(("method", "call", "payload"), CALLS, ids=[c[0] for c in CALLS])
    async def test_one_segment(
        self, method: str, call: Call, payload: dict[str, Any], token_id: str, encoded: str
    ) -> None:
        with aioresponses() as m:
            m.add(ANY_TOKEN_URL, method, payload=payload)
            async with session() as cc:
                await call(cc, token_id)

        ((sent_method, url, _),) = sent(m)
        assert sent_method == method
        assert_one_segment(url, TOKENS_PATH, encoded)
        assert unquote(url.raw_path.rsplit("/", 1)[1]) == token_id

    async def test_matches_an_encoded_registration(self) -> None:
        """Registered as an already-encoded URL, the hostile id is matched, not normalised away."""
        with aioresponses() as m:
            m.get(URL(f"{TOKENS_URL}/..%2Fadmin", encoded=True), payload=envelope(token_json(1)))
            async with session() as cc:
                token = await cc.tokens.get("../admin")

        assert token.id == "tok001"


class TestSubAccountIdOnTheWire:
    """list_for_sub_account sends the sub-account id as one segment too."""

    @pytest.mark.parametrize(("sub_account_id", "encoded"), HOSTILE_IDS)
    async def test_one_segment(self, sub_account_id: str, encoded: str) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=LIST_200)
            async with session() as cc:
                await cc.tokens.list_for_sub_account(sub_account_id)

        ((_, url, _),) = sent(m)
        assert url.raw_path == f"{TOKENS_PATH}/sub-account/{encoded}"
        assert dict(url.query) == {"page": "1", "limit": "10"}

    async def test_filter_id_travels_in_the_query_not_the_path(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=LIST_200)
            async with session() as cc:
                await cc.tokens.list(sub_account_id="../a&page=9", search="x#y")

        ((_, url, _),) = sent(m)
        assert url.raw_path == TOKENS_PATH
        assert dict(url.query) == {
            "subAccountId": "../a&page=9",
            "search": "x#y",
            "page": "1",
            "limit": "10",
        }


# Dot segments: a normalising proxy climbs them even percent-encoded (README "Tokens").
DOT_IDS = [".", "..", "...", "...."]


class TestDotIdsAreRefused:
    """An id made only of dots is a ValueError before anything is sent, wherever it goes."""

    @pytest.mark.parametrize("token_id", DOT_IDS)
    @pytest.mark.parametrize(("method", "call", "payload"), CALLS, ids=[c[0] for c in CALLS])
    async def test_get_update_delete(
        self, method: str, call: Call, payload: dict[str, Any], token_id: str
    ) -> None:
        with aioresponses() as m:
            m.add(ANY_TOKEN_URL, method, payload=payload)
            async with session() as cc:
                with pytest.raises(
                    ValueError,
                    match=exactly(f"token_id must not be made only of dots, got {token_id!r}"),
                ):
                    await call(cc, token_id)
        assert sent(m) == []

    @pytest.mark.parametrize("sub_account_id", DOT_IDS)
    async def test_list_for_sub_account(self, sub_account_id: str) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=LIST_200)
            async with session() as cc:
                message = f"sub_account_id must not be made only of dots, got {sub_account_id!r}"
                with pytest.raises(ValueError, match=exactly(message)):
                    cc.tokens.list_for_sub_account(sub_account_id)
        assert sent(m) == []

    @pytest.mark.parametrize("value", DOT_IDS)
    def test_the_pure_functions(self, value: str) -> None:
        with pytest.raises(
            ValueError, match=exactly(f"token_id must not be made only of dots, got {value!r}")
        ):
            segment(value, "token_id")


class TestSegment:
    """``_protocol.segment``, ``token_path`` and ``sub_account_tokens_path`` as pure functions."""

    @pytest.mark.parametrize(("value", "encoded"), HOSTILE_IDS)
    def test_segment(self, value: str, encoded: str) -> None:
        assert segment(value, "token_id") == encoded

    def test_token_path(self) -> None:
        assert token_path("../admin") == "/api/v1/apiClient/token/..%2Fadmin"
        assert token_path("..a") == "/api/v1/apiClient/token/..a"

    def test_sub_account_tokens_path(self) -> None:
        assert sub_account_tokens_path("a/b") == "/api/v1/apiClient/token/sub-account/a%2Fb"

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("", "token_id must not be empty"),
            ("   ", "token_id must not be empty"),
            (None, "token_id must be a str, not NoneType"),
            (123, "token_id must be a str, not int"),
            (b"abc", "token_id must be a str, not bytes"),
        ],
    )
    def test_token_path_refuses(self, value: object, message: str) -> None:
        with pytest.raises(ValueError, match=exactly(message)):
            token_path(value)

    def test_sub_account_tokens_path_refuses(self) -> None:
        with pytest.raises(ValueError, match=exactly("sub_account_id must not be empty")):
            sub_account_tokens_path("")

    @given(st.text(min_size=1).filter(lambda s: s.strip() and s.strip(".")))
    def test_any_text_is_one_reversible_segment(self, value: str) -> None:
        encoded = segment(value, "token_id")

        assert not set(encoded) & set("/?#\\ ")
        assert encoded.strip(".")  # never "." or ".."
        assert unquote(encoded, errors="strict") == value
