"""Answers that are not the seeds' happy path: error envelopes on 2xx, odd fields, broken bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aioresponses import aioresponses

from cellcast_async import (
    APIError,
    ApiToken,
    AuthenticationError,
    BadRequestError,
    CellcastSession,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SubAccount,
    TokenStatus,
)

from ..seed_samples import CREATE_201, LIST_200, NOT_FOUND_404
from ._support import (
    ANY_TOKEN_URL,
    TOKEN_PATH,
    TOKENS_PATH,
    envelope,
    list_data,
    session,
    token_json,
)

Call = Callable[[CellcastSession], Awaitable[Any]]


async def get_one(cc: CellcastSession) -> Any:
    return await cc.tokens.get("tok001")


async def list_page(cc: CellcastSession) -> Any:
    return await cc.tokens.list()


async def create_one(cc: CellcastSession) -> Any:
    return await cc.tokens.create(name="Production API", sub_account_id="sub1")


async def update_one(cc: CellcastSession) -> Any:
    return await cc.tokens.update("tok001", status="inactive")


async def delete_one(cc: CellcastSession) -> Any:
    return await cc.tokens.delete("tok001")


CALLS: dict[str, tuple[str, str, Call]] = {
    "get": ("GET", TOKEN_PATH, get_one),
    "list": ("GET", TOKENS_PATH, list_page),
    "create": ("POST", TOKENS_PATH, create_one),
    "update": ("PUT", TOKEN_PATH, update_one),
    "delete": ("DELETE", TOKEN_PATH, delete_one),
}


async def answer(
    call: str,
    *,
    status: int = 200,
    body: bytes | str | None = None,
    payload: Any = None,
    content_type: str = "application/json",
    max_retries: int = 0,
) -> Any:
    """Make ``call`` against one canned answer; return its result (or let it raise)."""
    method, _, func = CALLS[call]
    if body is None:
        body = json.dumps(payload)
    with aioresponses() as m:
        m.add(ANY_TOKEN_URL, method, status=status, body=body, content_type=content_type)
        async with session(max_retries=max_retries) as cc:
            return await func(cc)


def token_answer(**overrides: Any) -> dict[str, Any]:
    return envelope(token_json(1, **overrides))


class TestStatusFalseOnSuccess:
    """A 2xx whose envelope says ``"status": false`` is an APIError chosen by its message."""

    @pytest.mark.parametrize(
        ("message", "cls"),
        [
            ("Validation error", BadRequestError),
            ("Forbidden", PermissionDeniedError),
            ("Not found", NotFoundError),
            ("Token expired", AuthenticationError),
            ("Unauthorized", AuthenticationError),
            ("Too many requests", RateLimitError),
            ("Something unexpected", APIError),
        ],
    )
    async def test_class_from_the_message(self, message: str, cls: type[APIError]) -> None:
        body = {**NOT_FOUND_404, "message": message}

        with pytest.raises(APIError) as info:
            await answer("get", payload=body)

        exc = info.value
        assert type(exc) is cls
        assert exc.status_code == 200
        assert exc.message == message
        assert exc.detail == "API token not found"
        assert exc.body == body
        assert str(exc) == f"GET {TOKEN_PATH} -> 200 {message}: API token not found"

    @pytest.mark.parametrize("call", ["list", "create", "update", "delete"])
    async def test_every_endpoint(self, call: str) -> None:
        method, path, _ = CALLS[call]
        body = {
            "status": False,
            "message": "Validation error",
            "data": {},
            "error": {"message": "No valid fields to update"},
        }

        with pytest.raises(BadRequestError) as info:
            await answer(call, status=201 if call == "create" else 200, payload=body)

        assert info.value.detail == "No valid fields to update"
        assert str(info.value).startswith(f"{method} {path} -> ")


class TestFields:
    """Unknown fields ignored, unknown status kept, missing optional -> None, required -> error."""

    async def test_unknown_status_is_kept_as_the_plain_string(self) -> None:
        token = await answer("get", payload=token_answer(status="suspended"))

        assert token.status == "suspended"
        assert type(token.status) is str

    async def test_known_status_becomes_the_enum(self) -> None:
        token = await answer("get", payload=token_answer(status="inactive"))

        assert token.status is TokenStatus.INACTIVE

    async def test_unknown_fields_are_ignored(self) -> None:
        item = token_json(1, updatedAt="2024-02-01T00:00:00Z", scopes=["sms"], _v=3)
        item["subAccount"]["phone"] = "+61400000000"
        body = {**envelope(item), "pagination": None, "extra": {"x": 1}}

        token = await answer("get", payload=body)

        assert token.id == "tok001"
        assert token.sub_account == SubAccount(
            id="6877a383d68781beb3b14110",
            name="Sub Client Name",
            email="sub@example.com",
            company_name="Sub Client Company",
        )

    async def test_missing_optional_fields_become_none(self) -> None:
        item = {k: v for k, v in token_json(1).items() if k != "subAccount"}

        token = await answer("get", payload=envelope(item))

        assert token.sub_account is None
        assert token.sub_account_id is None

    async def test_sub_account_with_only_an_id(self) -> None:
        token = await answer("get", payload=token_answer(subAccount={"_id": "s1"}))

        assert token.sub_account == SubAccount(id="s1", name=None, email=None, company_name=None)
        assert token.sub_account_id == "s1"

    async def test_null_sub_account(self) -> None:
        token = await answer("get", payload=token_answer(subAccount=None))

        assert token.sub_account is None
        assert token.sub_account_id is None

    async def test_sub_account_id_wins_over_the_nested_id(self) -> None:
        token = await answer("get", payload=token_answer(subAccountId="explicit"))

        assert token.sub_account_id == "explicit"
        assert token.sub_account is not None
        assert token.sub_account.id == "6877a383d68781beb3b14110"

    async def test_null_sub_account_id_falls_back_to_the_nested_id(self) -> None:
        """`"subAccountId": null` beside a nested subAccount: the nested id is the answer."""
        token = await answer("get", payload=token_answer(subAccountId=None))

        assert token.sub_account_id == "6877a383d68781beb3b14110"

    async def test_naive_and_offset_timestamps_are_aware(self) -> None:
        naive = await answer("get", payload=token_answer(createdAt="2024-01-15T10:30:00"))
        offset = await answer("get", payload=token_answer(createdAt="2024-01-15T20:30:00+10:00"))

        assert naive.created_at.tzinfo is not None
        assert naive.created_at == offset.created_at

    @pytest.mark.parametrize("field", ["_id", "name", "token", "status", "createdAt"])
    async def test_missing_required_field_is_a_decode_error(self, field: str) -> None:
        item = {k: v for k, v in token_json(1).items() if k != field}

        with pytest.raises(DecodeError) as info:
            await answer("get", payload=envelope(item))

        assert type(info.value) is DecodeError
        assert info.value.status_code == 200
        assert str(info.value) == f"GET {TOKEN_PATH} -> 200: missing required field {field!r}"

    async def test_missing_required_field_in_a_listing_item(self) -> None:
        item = {k: v for k, v in token_json(2).items() if k != "name"}
        data = list_data([token_json(1), item], page=1, limit=10, total=2, total_pages=1)

        with pytest.raises(DecodeError) as info:
            await answer("list", payload=envelope(data))

        assert str(info.value) == f"GET {TOKENS_PATH} -> 200: missing required field 'name'"

    async def test_missing_sub_account_id_in_a_nested_account(self) -> None:
        with pytest.raises(DecodeError) as info:
            await answer("get", payload=token_answer(subAccount={"name": "x"}))

        assert str(info.value) == f"GET {TOKEN_PATH} -> 200: missing required field '_id'"

    @pytest.mark.parametrize(
        ("overrides", "words"),
        [
            ({"_id": 123}, "expected a string, got a number"),
            ({"name": None}, "expected a string, got null"),
            ({"token": ["x"]}, "expected the token as a string, got an array"),
            ({"status": True}, "expected the status as a string, got a boolean"),
            ({"createdAt": 1705314600}, "expected an ISO-8601 timestamp string, got a number"),
            ({"createdAt": "yesterday"}, "not an ISO-8601 timestamp (a string of 9 characters)"),
            ({"subAccountId": 5}, "expected a string, got a number"),
        ],
    )
    async def test_wrong_types_are_decode_errors(
        self, overrides: dict[str, Any], words: str
    ) -> None:
        with pytest.raises(DecodeError) as info:
            await answer("get", payload=token_answer(**overrides))

        assert str(info.value) == f"GET {TOKEN_PATH} -> 200: {words}"

    async def test_nested_sub_account_of_the_wrong_type(self) -> None:
        with pytest.raises(DecodeError) as info:
            await answer("get", payload=token_answer(subAccount="6877a383d68781beb3b14110"))

        assert type(info.value) is DecodeError
        assert info.value.path == TOKEN_PATH


def listing(**data_overrides: Any) -> dict[str, Any]:
    data = list_data([token_json(1)], page=1, limit=10, total=1, total_pages=1)
    data.update(data_overrides)
    return envelope({k: v for k, v in data.items() if v is not MISSING})


MISSING: Any = object()


class TestBrokenSuccessBodies:
    """A 2xx that is not the documented JSON is a DecodeError that names what is wrong."""

    @pytest.mark.parametrize(
        ("call", "body", "content_type", "words"),
        [
            (
                "get",
                b"<html><body>OK</body></html>",
                "text/html",
                "expected a JSON answer, got 'text/html'",
            ),
            ("list", b"<html>maintenance</html>", "application/json", "the body is not valid JSON"),
            ("get", b"", "application/json", "the answer is empty"),
            (
                "list",
                json.dumps(LIST_200)[:200].encode(),
                "application/json",
                "the body is not valid JSON",
            ),
            (
                "create",
                json.dumps(CREATE_201)[:-1].encode(),
                "application/json",
                "the body is not valid JSON",
            ),
            ("get", b"[]", "application/json", "expected a JSON object envelope"),
            ("list", b"[1, 2]", "application/json", "expected a JSON object envelope"),
            ("get", b"null", "application/json", "expected a JSON object envelope"),
            ("update", b'"ok"', "application/json", "expected a JSON object envelope"),
            ("get", b"\xff\xfe\xfa\x00{", "application/json", "the body is not valid JSON"),
            (
                "get",
                b'{"status": true, "data": "\xe9"}',
                "application/json",
                "the body is not valid JSON",
            ),
            ("get", b"[" * 100_000, "application/json", "the body is not valid JSON"),
            (
                "get",
                json.dumps(token_answer()).encode(),
                "text/plain",
                "expected a JSON answer, got 'text/plain'",
            ),
            (
                "delete",
                b"<p>deleted</p>",
                "text/html; charset=utf-8",
                "expected a JSON answer, got 'text/html; charset=utf-8'",
            ),
        ],
    )
    async def test_not_json(self, call: str, body: bytes, content_type: str, words: str) -> None:
        method, path, _ = CALLS[call]

        with pytest.raises(DecodeError) as info:
            await answer(call, body=body, content_type=content_type)

        assert type(info.value) is DecodeError
        assert info.value.status_code == 200
        assert str(info.value) == f"{method} {path} -> 200: {words}"

    async def test_vendor_json_content_type_is_json(self) -> None:
        body = json.dumps(token_answer()).encode()

        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, body=body, content_type="application/vnd.cellcast+json")
            async with session() as cc:
                token = await cc.tokens.get("tok001")

        assert isinstance(token, ApiToken)

    @pytest.mark.parametrize(
        ("call", "payload", "words"),
        [
            ("get", envelope(None), "'data' must be the token object"),
            ("create", envelope([token_json(1)]), "'data' must be the token object"),
            ("update", {"status": True, "message": "ok"}, "'data' must be the token object"),
            ("get", envelope("tok001"), "'data' must be the token object"),
            ("list", envelope(None), "'data' must be an object holding the page"),
            ("list", envelope([token_json(1)]), "'data' must be an object holding the page"),
            ("list", listing(items={"0": token_json(1)}), "'data.items' must be an array"),
            ("list", listing(items=None), "'data.items' must be an array"),
            ("list", listing(total="1"), "'total' must be a non-negative integer"),
            ("list", listing(page=1.5), "'page' must be a non-negative integer"),
            ("list", listing(totalPages=-1), "'totalPages' must be a non-negative integer"),
            ("list", listing(limit=True), "'limit' must be a non-negative integer"),
            ("list", listing(hasNextPage=MISSING), "'hasNextPage' must be true or false"),
            ("list", listing(hasNextPage="false"), "'hasNextPage' must be true or false"),
            ("list", listing(items=["tok001"]), "expected a token object, got a string"),
            ("list", listing(items=[None]), "expected a token object, got null"),
            (
                "list",
                listing(items=[token_json(1, createdAt="2024-13-45")]),
                "not an ISO-8601 timestamp: '2024-13-45'",
            ),
        ],
    )
    async def test_wrong_shape(self, call: str, payload: Any, words: str) -> None:
        method, path, _ = CALLS[call]
        status = 201 if call == "create" else 200

        with pytest.raises(DecodeError) as info:
            await answer(call, payload=payload, status=status)

        assert type(info.value) is DecodeError
        assert str(info.value) == f"{method} {path} -> {status}: {words}"

    async def test_delete_ignores_whatever_data_a_success_carries(self) -> None:
        assert await answer("delete", payload=envelope({"_id": "tok001"})) is None
        assert await answer("delete", payload={"status": True}) is None

    async def test_counts_may_be_missing_from_a_listing(self) -> None:
        page = await answer(
            "list",
            payload=listing(total=MISSING, page=MISSING, limit=MISSING, totalPages=MISSING),
        )

        assert (page.total, page.page, page.limit, page.total_pages) == (None, 1, None, None)
        assert page.has_prev_page is False


class TestErrorStatuses:
    """4xx and 5xx answers raise their APIError subclass whatever the body looks like."""

    @pytest.mark.parametrize(
        ("status", "cls", "reason"),
        [
            (400, BadRequestError, "Bad Request"),
            (401, AuthenticationError, "Unauthorized"),
            (403, PermissionDeniedError, "Forbidden"),
            (404, NotFoundError, "Not Found"),
            (409, APIError, "Conflict"),
            (418, APIError, "I'm a Teapot"),
            (429, RateLimitError, "Too Many Requests"),
            (500, ServerError, "Internal Server Error"),
            (502, ServerError, "Bad Gateway"),
            (503, ServerError, "Service Unavailable"),
        ],
    )
    async def test_html_error_page(self, status: int, cls: type[APIError], reason: str) -> None:
        with pytest.raises(APIError) as info:
            await answer(
                "get", status=status, body=b"<html><h1>Oops</h1></html>", content_type="text/html"
            )

        exc = info.value
        assert type(exc) is cls
        assert exc.status_code == status
        assert exc.message == reason
        assert exc.detail is None
        assert exc.body is None
        assert str(exc) == f"GET {TOKEN_PATH} -> {status} {reason}"

    @pytest.mark.parametrize(
        ("body", "parsed"),
        [
            (b"", None),
            (b"{trunc", None),
            (b"\xff\xfe", None),
            (b"[1, 2]", [1, 2]),
            (b'"oops"', "oops"),
            (b'{"error": "flat string"}', {"error": "flat string"}),
        ],
    )
    async def test_odd_json_error_bodies(self, body: bytes, parsed: Any) -> None:
        with pytest.raises(ServerError) as info:
            await answer("update", status=500, body=body)

        assert info.value.status_code == 500
        assert info.value.message == "Internal Server Error"
        assert info.value.detail is None
        assert info.value.body == parsed
        assert str(info.value) == f"PUT {TOKEN_PATH} -> 500 Internal Server Error"

    async def test_only_an_error_message(self) -> None:
        body = {"error": {"message": "API token not found"}}

        with pytest.raises(NotFoundError) as info:
            await answer("delete", status=404, payload=body)

        assert info.value.message == "API token not found"
        assert info.value.detail == "API token not found"
        assert str(info.value) == f"DELETE {TOKEN_PATH} -> 404 API token not found"

    async def test_non_string_words_are_not_used(self) -> None:
        body = {"status": False, "message": 42, "error": {"message": ["a", "b"]}}

        with pytest.raises(BadRequestError) as info:
            await answer("get", status=400, payload=body)

        assert info.value.message == "Bad Request"
        assert info.value.detail is None
        assert info.value.body == body

    async def test_429_without_retry_after(self) -> None:
        with pytest.raises(RateLimitError) as info:
            await answer("get", status=429, payload={"message": "Too many requests"})

        assert info.value.retry_after is None
        assert str(info.value) == f"GET {TOKEN_PATH} -> 429 Too many requests"

    async def test_redirect_is_not_followed(self) -> None:
        with aioresponses() as m:
            m.get(
                ANY_TOKEN_URL,
                status=302,
                headers={"Location": "https://evil.example/steal"},
                body=b"",
            )
            async with session() as cc:
                with pytest.raises(APIError) as info:
                    await cc.tokens.get("tok001")

        assert type(info.value) is APIError
        assert info.value.status_code == 302
        assert len(m.requests) == 1
