"""Hostile and malformed input: every bad answer is a typed error, and nothing hangs.

Answers come from a bare aiohttp.web app or a raw asyncio server on 127.0.0.1, never the
sandbox, so each one is exactly the bytes under test.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellcast_async import (
    APIError,
    ApiToken,
    AuthenticationError,
    BadRequestError,
    CellcastError,
    CellcastSession,
    CreatedToken,
    DecodeError,
    NotFoundError,
    Page,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimeoutError,
    TransportError,
)
from cellcast_async._pager import build_page, cellcast_page_format
from cellcast_async._transport import Response
from cellcast_async.sandbox import Sandbox

from ._support import (
    TOKEN_ID,
    TOKENS_PATH,
    ByteServer,
    RawApp,
    answering,
    dumps,
    envelope,
    page_data,
    raises_timeout,
    token_item,
)

OPS = ("list", "get", "create", "update", "delete")
SHAPED = ("list", "get", "create", "update")  # the ones whose answer carries data
METHOD = {"list": "GET", "get": "GET", "create": "POST", "update": "PUT", "delete": "DELETE"}
JSON = "application/json"
HTML_PAGE = b"<html><head><title>Oops</title></head><body><h1>Oops</h1></body></html>"
TEN_MB = 10 * 1024 * 1024


def path_of(op: str) -> str:
    return TOKENS_PATH if op in ("list", "create") else f"{TOKENS_PATH}/{TOKEN_ID}"


async def call(cc: CellcastSession, op: str, token_id: str = TOKEN_ID) -> Any:
    if op == "list":
        return await cc.tokens.list(limit=10).collect()
    if op == "get":
        return await cc.tokens.get(token_id)
    if op == "create":
        return await cc.tokens.create("Production API", "6877a383d68781beb3b14110")
    if op == "update":
        return await cc.tokens.update(token_id, name="Renamed")
    return await cc.tokens.delete(token_id)


@dataclass(frozen=True)
class Bad:
    """One malformed answer, and the error it must become."""

    status: int
    body: bytes
    error: type[CellcastError]
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()

    def handler(self) -> Callable[[web.Request], Any]:
        headers = dict(self.headers)
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        return answering(self.status, self.body, headers)


def _answers() -> Iterator[tuple[str, str, Bad]]:
    """The corpus: (name, operation, answer)."""
    valid = dumps(envelope(token_item()))
    whole: dict[str, Bad] = {
        "html-200": Bad(200, HTML_PAGE, DecodeError, "text/html"),
        "html-502": Bad(502, HTML_PAGE, ServerError, "text/html"),
        "html-500-said-json": Bad(500, HTML_PAGE, ServerError),
        "html-503-retry-after-soon": Bad(
            503, HTML_PAGE, ServerError, "text/html", (("Retry-After", "soon"),)
        ),
        "truncated-json": Bad(200, valid[: len(valid) // 2], DecodeError),
        "json-array": Bad(200, b'[{"status": true}]', DecodeError),
        "json-string": Bad(200, b'"ok"', DecodeError),
        "json-null": Bad(200, b"null", DecodeError),
        "json-number": Bad(200, b"200", DecodeError),
        "json-nan": Bad(200, b"NaN", DecodeError),
        "json-huge-exponent": Bad(200, b"1e999", DecodeError),
        "non-utf8": Bad(200, b'{"status": true, "message": "caf\xe9 \xff\xfe"}', DecodeError),
        "text-plain": Bad(200, valid, DecodeError, "text/plain"),
        "xml": Bad(200, b"<ok/>", DecodeError, "application/xml"),
        "10mb-garbage": Bad(200, b"x" * TEN_MB, DecodeError),
        "10mb-502": Bad(502, b"<p>" + b"x" * TEN_MB, ServerError, "text/html"),
        "nested-100k": Bad(200, b"[" * 100_000, DecodeError),
        "nested-in-envelope": Bad(
            200, b'{"status": true, "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", DecodeError
        ),
        "duplicate-status-false": Bad(
            200,
            b'{"status": true, "data": {}, "status": false, "message": "Forbidden",'
            b' "error": {"message": "Sub account does not belong to you or does not exist"}}',
            PermissionDeniedError,
        ),
        "bom-array": Bad(200, b"\xef\xbb\xbf[]", DecodeError),
        "gzip-but-plain": Bad(200, valid, DecodeError, JSON, (("Content-Encoding", "gzip"),)),
        "gzip-but-plain-502": Bad(
            502, HTML_PAGE, ServerError, "text/html", (("Content-Encoding", "gzip"),)
        ),
        "redirect-301": Bad(
            301, b"", APIError, None, (("Location", "https://elsewhere.example/api"),)
        ),
        "status-false-200": Bad(
            200,
            dumps({"status": False, "message": "Validation error", "error": {"message": "No"}}),
            BadRequestError,
        ),
        "status-false-unknown": Bad(200, dumps({"status": False, "message": "Hmm"}), APIError),
        "status-false-number-message": Bad(200, dumps({"status": False, "message": 7}), APIError),
        "429-html": Bad(429, HTML_PAGE, RateLimitError, "text/html"),
        "404-html": Bad(404, HTML_PAGE, NotFoundError, "text/html"),
        "401-empty": Bad(401, b"", AuthenticationError),
        "403-array": Bad(403, b"[1, 2]", PermissionDeniedError),
        "400-truncated": Bad(400, b'{"status": false, "message": "Valid', BadRequestError),
        "418-json": Bad(418, dumps({"message": "I'm a teapot"}), APIError),
    }
    for name, bad in whole.items():
        for op in OPS:
            yield name, op, bad

    # The operations whose answer must carry `data` (DELETE's is not read: seed 003 null,
    # and an empty 2xx to a DELETE counts as done).
    shaped: dict[str, Bad] = {
        "no-content-204": Bad(204, b"", DecodeError, None),
        "empty-200": Bad(200, b"", DecodeError),
        "data-missing": Bad(200, dumps({"status": True, "message": "OK"}), DecodeError),
        "data-null": Bad(200, dumps(envelope(None)), DecodeError),
        "data-string": Bad(200, dumps(envelope("items")), DecodeError),
        "data-array": Bad(200, dumps(envelope([token_item()])), DecodeError),
        "duplicate-data-null": Bad(
            200,
            b'{"status": true, "data": ' + dumps(token_item()) + b', "data": null}',
            DecodeError,
        ),
    }
    for name, bad in shaped.items():
        for op in SHAPED:
            yield name, op, bad

    pages: dict[str, dict[str, Any]] = {
        "items-object": {"items": {"0": token_item()}},
        "items-null": {"items": None},
        "total-string": {"total": "1"},
        "total-nan": {"total": math.nan},
        "total-infinite": {"total": math.inf},
        "total-negative": {"total": -1},
        "total-pages-float": {"totalPages": 1.5},
        "has-next-page-missing": {"hasNextPage": None},
        "has-next-page-string": {"hasNextPage": "false"},
    }
    for name, change in pages.items():
        data = {**page_data([token_item()]), **change}
        data = {k: v for k, v in data.items() if v is not None or k == "items"}
        yield name, "list", Bad(200, dumps(envelope(data)), DecodeError)
    # Past Python's 4300-digit limit for int(): json.loads raises a bare ValueError.
    huge = dumps(envelope(page_data([token_item()]))).replace(
        b'"total": 1', b'"total": ' + b"9" * 5000
    )
    yield "total-5000-digits", "list", Bad(200, huge, DecodeError)

    items: dict[str, Any] = {
        "created-at-words": token_item(createdAt="yesterday"),
        "created-at-number": token_item(createdAt=1705314600),
        "created-at-null": token_item(createdAt=None),
        "created-at-impossible": token_item(createdAt="2024-13-45T99:00:00Z"),
        "created-at-nan": token_item(createdAt=math.nan),
        "id-null": token_item(_id=None),
        "id-missing": {k: v for k, v in token_item().items() if k != "_id"},
        "id-number": token_item(_id=6877),
        "name-null": token_item(name=None),
        "name-number": token_item(name=42),
        "token-null": token_item(token=None),
        "token-object": token_item(token={"value": "x"}),
        "status-null": token_item(status=None),
        "status-number": token_item(status=1),
        "sub-account-string": token_item(subAccount="6877a383d68781beb3b14110"),
        "sub-account-array": token_item(subAccount=[]),
        "sub-account-without-id": token_item(subAccount={"name": "x"}),
        "item-number": 7,
        "item-string": "6877b1234567890abcdef123",
    }
    for name, item in items.items():
        yield name, "list", Bad(200, dumps(envelope(page_data([item]))), DecodeError)
        for op in ("get", "create", "update"):
            yield name, op, Bad(200, dumps(envelope(item)), DecodeError)


CORPUS = list(_answers())


def _case_id(case: tuple[str, str, Bad]) -> str:
    return f"{case[0]}-{case[1]}"


@pytest.fixture
async def served() -> AsyncIterator[RawApp]:
    async def unset(request: web.Request) -> web.StreamResponse:
        raise AssertionError("no answer set")

    async with RawApp(unset) as app:
        yield app


class TestMalformedAnswers:
    """Each malformed answer raises DecodeError or the right APIError, never a bare error."""

    def test_the_corpus_is_big_enough(self) -> None:
        assert len({name for name, _, _ in CORPUS}) >= 30

    @pytest.mark.parametrize(("name", "op", "bad"), CORPUS, ids=map(_case_id, CORPUS))
    async def test_answer(self, served: RawApp, name: str, op: str, bad: Bad) -> None:
        served.handler = bad.handler()
        async with CellcastSession(
            api_key="k" * 32, base_url=served.url, timeout=5, max_retries=1
        ) as cc:
            with pytest.raises(CellcastError) as info:
                # Never hangs: well inside the session's own timeout.
                await asyncio.wait_for(call(cc, op), 10)

        exc = info.value
        assert type(exc) is bad.error
        assert exc.method == METHOD[op]
        assert exc.path == path_of(op)
        assert str(exc).startswith(f"{METHOD[op]} {path_of(op)}")
        if isinstance(exc, (APIError, DecodeError)):
            assert exc.status_code == bad.status

    async def test_bom_before_a_valid_envelope_is_read(self, served: RawApp) -> None:
        # RFC 8259 lets a parser ignore a byte order mark; Python's json does.
        body = b"\xef\xbb\xbf" + dumps(envelope(token_item()))
        served.handler = answering(200, body, {"Content-Type": JSON})
        async with CellcastSession(api_key="k" * 32, base_url=served.url) as cc:
            token = await cc.tokens.get(TOKEN_ID)
        assert token.id == token_item()["_id"]

    async def test_real_gzip_is_read(self, served: RawApp) -> None:
        body = gzip.compress(dumps(envelope(token_item())))
        served.handler = answering(200, body, {"Content-Encoding": "gzip", "Content-Type": JSON})
        async with CellcastSession(api_key="k" * 32, base_url=served.url) as cc:
            token = await cc.tokens.get(TOKEN_ID)
        assert token.name == "Token 1"

    async def test_204_to_delete_is_done(self, served: RawApp) -> None:
        served.handler = answering(204)
        async with CellcastSession(api_key="k" * 32, base_url=served.url) as cc:
            await cc.tokens.delete(TOKEN_ID)  # no DecodeError for the empty body
        assert [r.method for r in served.requests] == ["DELETE"]

    async def test_decode_error_words(self, served: RawApp) -> None:
        served.handler = answering(200, HTML_PAGE, {"Content-Type": "text/html"})
        async with CellcastSession(api_key="k" * 32, base_url=served.url) as cc:
            with pytest.raises(DecodeError) as info:
                await cc.tokens.get(TOKEN_ID)
        assert str(info.value) == (
            f"GET {TOKENS_PATH}/{TOKEN_ID} -> 200: expected a JSON answer, got 'text/html'"
        )


# --- byte-level garbage --------------------------------------------------------------

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
PLAIN = dumps(envelope(token_item()))


def _length(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body)


BYTES: dict[str, tuple[tuple[bytes, ...], type[CellcastError]]] = {
    "not-http": ((b"hello there\r\n\r\n",), TransportError),
    "bad-header-line": ((b"HTTP/1.1 200 OK\r\nthis is no header\r\n\r\n{}",), TransportError),
    "bad-chunk-size": (
        (OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",),
        TransportError,
    ),
    "short-content-length": (
        (OK_HEAD + b"Content-Length: 1000\r\n\r\n" + PLAIN[:50],),
        TransportError,
    ),
    "closed-at-once": ((), TransportError),
    "status-999": ((b"HTTP/1.1 999 Odd\r\n" + _length(PLAIN) + PLAIN,), ServerError),
    "gzip-but-plain": (
        (OK_HEAD + b"Content-Encoding: gzip\r\n" + _length(PLAIN) + PLAIN,),
        DecodeError,
    ),
    "gzip-header-then-plain": (
        (OK_HEAD + b"Content-Encoding: gzip\r\n" + _length(PLAIN), PLAIN),
        DecodeError,
    ),
    "unsupported-encoding": (
        (OK_HEAD + b"Content-Encoding: zstd\r\n" + _length(PLAIN) + PLAIN,),
        DecodeError,
    ),
}


class TestByteLevelGarbage:
    """Answers that are not even HTTP are a TransportError (or typed like any answer)."""

    @pytest.mark.parametrize(("name"), list(BYTES))
    async def test_answer(self, name: str) -> None:
        chunks, error = BYTES[name]
        async with (
            ByteServer(*chunks, pause=0.01) as server,
            CellcastSession(api_key="k" * 32, base_url=server.url, timeout=2, max_retries=0) as cc,
        ):
            started = time.monotonic()
            with pytest.raises(CellcastError) as info:
                await asyncio.wait_for(cc.tokens.get(TOKEN_ID), 10)
            elapsed = time.monotonic() - started

        assert type(info.value) is error
        assert str(info.value).startswith(f"GET {TOKENS_PATH}/{TOKEN_ID}")
        assert elapsed < 1.0  # an answer, however bad, is not waited out

    @pytest.mark.parametrize(
        "chunks",
        [
            pytest.param((OK_HEAD + b"Content-Length: 100\r\n\r\n",), id="head-then-silence"),
            pytest.param(
                (OK_HEAD + b"Content-Length: 100\r\n\r\n", *([b"{"] * 100)), id="dripping-body"
            ),
            pytest.param((b"HTTP/1.1 200 OK\r\n",), id="half-a-head"),
        ],
    )
    async def test_stalled_answers_end_at_the_timeout(self, chunks: tuple[bytes, ...]) -> None:
        async with (
            ByteServer(*chunks, pause=0.05, stall=True) as server,
            CellcastSession(
                api_key="k" * 32, base_url=server.url, timeout=0.3, max_retries=0
            ) as cc,
        ):
            error = await raises_timeout(cc.tokens.get(TOKEN_ID))

        assert str(error) == f"GET {TOKENS_PATH}/{TOKEN_ID}: no answer within 0.3 s"

    async def test_deflate_but_plain_ends_in_time(self) -> None:
        # aiohttp 3.14 waits for the end of a deflate stream that never comes (its
        # decoder only fails at EOF): the per-attempt timeout is what ends it.
        head = OK_HEAD + b"Content-Encoding: deflate\r\n" + _length(PLAIN)
        server = ByteServer(head, PLAIN, pause=0.01, stall=True)
        async with (
            server,
            CellcastSession(
                api_key="k" * 32, base_url=server.url, timeout=0.3, max_retries=0
            ) as cc,
        ):
            started = time.monotonic()
            with pytest.raises((TimeoutError, DecodeError)):
                await cc.tokens.get(TOKEN_ID)
            elapsed = time.monotonic() - started

        assert elapsed < 1.5


# --- property-based: arbitrary JSON at the decoder -----------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TOKEN_KEYS = ("_id", "name", "token", "status", "createdAt", "subAccount", "subAccountId")


@st.composite
def token_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A seed-shaped token with some fields dropped or replaced by arbitrary JSON."""
    item = dict(token_item())
    for key in TOKEN_KEYS:
        choice = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if choice == "drop":
            item.pop(key, None)
        elif choice == "replace":
            item[key] = draw(
                json_values
                | st.text(max_size=30)
                | st.sampled_from(["2024-01-15T10:30:00Z", "2024-02-30T00:00:00Z", "active"])
            )
    extra = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    return {**extra, **item}


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A Cellcast envelope whose data is a page, a token or arbitrary JSON."""
    data = draw(
        json_values
        | token_dicts()
        | st.builds(
            lambda items, more: {**page_data(items), **more},
            st.lists(token_dicts() | json_values, max_size=3),
            st.dictionaries(
                st.sampled_from(["total", "page", "limit", "totalPages", "hasNextPage"]),
                json_values,
                max_size=3,
            ),
        )
    )
    status = draw(st.sampled_from([True, True, False]) | json_values)
    body = {"status": status, "message": draw(json_values), "data": data}
    if draw(st.booleans()):
        body["error"] = draw(json_values)
    return body


# The decoder alone: a session is built (no I/O happens until a request) but never used.
DECODING = CellcastSession(api_key="k" * 32, base_url="http://127.0.0.1:9")


async def _decode_list(envelope: dict[str, Any]) -> Any:
    return build_page(cellcast_page_format(envelope), 1, DECODING.tokens._structure_token)


DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "list": _decode_list,
    "get": DECODING.tokens._one(ApiToken, DECODING.tokens._token_hook),
    "create": DECODING.tokens._one(CreatedToken, DECODING.tokens._created_hook),
}


class TestDecoderProperties:
    """Arbitrary JSON through the decoder: a result, DecodeError or APIError, nothing else."""

    def decode(self, which: str, body: bytes, status: int = 200) -> Any:
        """The decoded result, or the DecodeError/APIError it raised; anything else fails."""
        response = Response(status=status, reason=None, headers={"Content-Type": JSON}, body=body)
        try:
            result = asyncio.run(
                DECODING._pipeline._finish(
                    "GET", TOKENS_PATH, response, DECODERS[which], None, answer_lost=False
                )
            )
        except (DecodeError, APIError) as exc:
            error: CellcastError = exc
        else:
            if which == "list":
                assert isinstance(result, Page)
                assert all(type(item) is ApiToken for item in result.items)
            else:
                assert type(result) is (CreatedToken if which == "create" else ApiToken)
            return result
        assert error.path == TOKENS_PATH
        return error

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=json_values, which=st.sampled_from(["list", "get", "create"]))
    def test_any_json(self, doc: Any, which: str) -> None:
        result = self.decode(which, json.dumps(doc).encode())
        if not isinstance(doc, dict):
            assert type(result) is DecodeError

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=envelopes(), which=st.sampled_from(["list", "get", "create"]))
    def test_any_json_in_an_envelope(self, doc: Any, which: str) -> None:
        result = self.decode(which, json.dumps(doc).encode())
        if doc["status"] is False:
            assert isinstance(result, APIError)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(item=token_dicts())
    def test_any_token_item(self, item: dict[str, Any]) -> None:
        listing = self.decode("list", dumps(envelope(page_data([item]))))
        single = self.decode("get", dumps(envelope(item)))
        # The same item decodes the same way alone and inside a page.
        if isinstance(single, ApiToken):
            assert isinstance(listing, Page)
            assert listing.items == (single,)
        else:
            assert type(listing) is type(single) is DecodeError

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=st.binary(max_size=64), status=st.integers(min_value=100, max_value=599))
    def test_any_bytes_any_status(self, body: bytes, status: int) -> None:
        result = self.decode("get", body, status)
        if not 200 <= status < 300:
            assert isinstance(result, APIError)
            assert result.status_code == status


# --- ids, names and keys -------------------------------------------------------------

ODD = [
    "a/b",
    "../admin",
    "..%2Fadmin",
    "%2e%2e",
    "?page=2",
    "#top",
    "100%",
    "a b",
    "a+b&c=d",
    "ünïcödé",
    "名前",
    "🚀",
    "line\r\nbreak",
    "tab\there",
    ";jsessionid=1",
]


def one_segment(value: str) -> str:
    return quote(value, safe="")


class TestOddIdsAndNames:
    """Ids stay one path segment, names travel intact, a key with CR/LF is refused."""

    @pytest.mark.parametrize("token_id", ODD)
    @pytest.mark.parametrize("op", ["get", "update", "delete"])
    async def test_token_id_is_one_segment(self, sb: Sandbox, op: str, token_id: str) -> None:
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
            with pytest.raises(NotFoundError) as info:
                await call(cc, op, token_id)

        # The token route answered ("API token not found"), not "Route not found".
        assert info.value.detail == "API token not found"
        seen = sb.requests[-1]
        assert seen.method == METHOD[op]
        assert seen.path == f"{TOKENS_PATH}/{one_segment(token_id)}"
        assert unquote(seen.path.rsplit("/", 1)[1]) == token_id

    @pytest.mark.parametrize("sub_id", ODD)
    async def test_sub_account_id_in_path_and_query(self, sb: Sandbox, sub_id: str) -> None:
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
            with pytest.raises(PermissionDeniedError):
                await cc.tokens.list_for_sub_account(sub_id, search=sub_id).collect()
            in_path = sb.requests[-1]
            with pytest.raises(PermissionDeniedError):
                await cc.tokens.list(sub_account_id=sub_id, search=sub_id).collect()
            in_query = sb.requests[-1]

        assert in_path.path == f"{TOKENS_PATH}/sub-account/{one_segment(sub_id)}"
        assert in_path.query["search"] == sub_id
        assert in_query.path == TOKENS_PATH
        assert in_query.query["subAccountId"] == sub_id
        assert in_query.query["search"] == sub_id

    @pytest.mark.parametrize(
        "name",
        [*ODD, '"quoted" \\ back', "<b>bold</b>", "x" * 500],
    )
    async def test_name_travels_intact(self, sb: Sandbox, name: str) -> None:
        sub = sb.sub_account_ids[0]
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
            created = await cc.tokens.create(name, sub)
            sent_create = sb.requests[-1].json
            renamed = await cc.tokens.update(created.id, name=name + " v2")
            sent_update = sb.requests[-1].json
            fetched = await cc.tokens.get(created.id)

        assert sent_create == {"name": name, "subAccountId": sub}
        assert created.name == name
        assert sent_update == {"name": name + " v2"}
        assert renamed.name == fetched.name == name + " v2"

    async def test_padded_name_is_sent_as_given(self, sb: Sandbox) -> None:
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
            created = await cc.tokens.create("  padded  ", sb.sub_account_ids[0])
        assert sb.requests[-1].json["name"] == "  padded  "
        assert created.name == "padded"  # the server's own trimming, not the SDK's

    @pytest.mark.parametrize(
        "key", ["key\r\nX-Injected: 1", "key\n", "\rkey", "ke\x00y", "key\x1b[31m"]
    )
    async def test_key_with_control_characters_is_refused(self, sb: Sandbox, key: str) -> None:
        with pytest.raises(ValueError, match=r"^api_key must not contain CR, LF or other"):
            CellcastSession(api_key=key, base_url=sb.url)
        assert sb.requests == []

    async def test_key_from_the_environment_too(
        self, sb: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", sb.api_key + "\n")  # read from a file
        with pytest.raises(ValueError, match=r"^\$CELLCAST_API_KEY must not contain CR, LF"):
            CellcastSession(base_url=sb.url)
        assert sb.requests == []


# --- redirects -----------------------------------------------------------------------


@pytest.fixture
async def elsewhere() -> AsyncIterator[Sandbox]:
    """A second sandbox: the host a redirect points at."""
    async with Sandbox(seed=9, tokens=5) as other:
        yield other


class TestRedirects:
    """A redirect is never followed, so the Authorization header never reaches another host."""

    @pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
    @pytest.mark.parametrize("op", OPS)
    @pytest.mark.parametrize("injected", [False, True], ids=["own-session", "injected-session"])
    async def test_not_followed(
        self, elsewhere: Sandbox, op: str, code: int, injected: bool
    ) -> None:
        target = f"{elsewhere.url}{path_of(op)}"
        redirector = RawApp(answering(code, b"", {"Location": target}))
        async with (
            redirector,
            aiohttp.ClientSession() as http,
            CellcastSession(
                api_key=elsewhere.api_key,
                base_url=redirector.url,
                max_retries=3,
                session=http if injected else None,
            ) as cc,
        ):
            with pytest.raises(APIError) as info:
                await call(cc, op)

        assert elsewhere.requests == []  # the key never left for the other host
        assert len(redirector.requests) == 1  # and a redirect is not retried either
        exc = info.value
        assert type(exc) is APIError
        assert exc.status_code == code
        reason = {301: "Moved Permanently", 302: "Found", 303: "See Other"}.get(
            code, {307: "Temporary Redirect", 308: "Permanent Redirect"}.get(code)
        )
        assert str(exc) == (
            f"{METHOD[op]} {path_of(op)} -> {code} {reason}: redirect to "
            f"{elsewhere.url}{path_of(op)} not followed (check base_url)"
        )

    @pytest.mark.parametrize(
        ("location", "said"),
        [
            (
                "https://login.example/sso?state=abc&code=SECRET#frag",
                "redirect to https://login.example/sso not followed",
            ),
            (
                "https://user:SECRET@other.example:8443/x",
                "redirect to https://other.example:8443/x",
            ),
            ("/api/v2/apiClient/token", "redirect to /api/v2/apiClient/token not followed"),
            (None, "a redirect, not followed"),
        ],
    )
    async def test_location_is_shown_without_secrets(self, location: str | None, said: str) -> None:
        headers = {} if location is None else {"Location": location}
        redirector = RawApp(answering(302, b"", headers))
        async with redirector, CellcastSession(api_key="k" * 32, base_url=redirector.url) as cc:
            with pytest.raises(APIError) as info:
                await cc.tokens.get(TOKEN_ID)

        assert "SECRET" not in str(info.value)
        assert str(info.value) == (
            f"GET {TOKENS_PATH}/{TOKEN_ID} -> 302 Found: {said.removesuffix(' not followed')}"
            " not followed (check base_url)"
        )
