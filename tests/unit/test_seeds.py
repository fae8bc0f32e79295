"""Every JSON sample of seeds 000-004, verbatim, structured or raised as README says."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from aioresponses import aioresponses

from cellcast_async import (
    APIError,
    ApiToken,
    AuthenticationError,
    BadRequestError,
    CellcastSession,
    CreatedToken,
    NotFoundError,
    Page,
    PermissionDeniedError,
    Secret,
    SubAccount,
    TokenStatus,
    meta_pagination_page_format,
)
from cellcast_async._pager import Pager, RawPage, build_page

from ..seed_samples import (
    CREATE_201,
    CREATE_400_DUPLICATE,
    CREATE_400_MISSING_NAME,
    CREATE_400_MISSING_SUB_ACCOUNT,
    DELETE_200,
    FORBIDDEN_403,
    LIST_200,
    NOT_FOUND_404,
    UNAUTHORIZED_401,
    UPDATE_200,
    UPDATE_400_DUPLICATE,
    UPDATE_400_NO_FIELDS,
    VENDOR_004_LIST,
)
from ._support import ANY_TOKEN_URL, API_KEY, TOKENS_PATH, TOKENS_URL, envelope, sent, session

TOKEN_ID = "6877b1234567890abcdef123"
SUB_ACCOUNT_ID = "6877a383d68781beb3b14110"
MASKED = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..."
# seeds 000/002 carry an e-mail obfuscated by the page they were copied from; keep it verbatim.
SEED_EMAIL = LIST_200["data"]["items"][0]["subAccount"]["email"]
SEED_SUB_ACCOUNT = SubAccount(
    id=SUB_ACCOUNT_ID,
    name="Sub Client Name",
    email=SEED_EMAIL,
    company_name="Sub Client Company",
)

Call = Callable[[CellcastSession], Awaitable[Any]]
# An error sample: its status, its body, and the class, message and detail it raises.
Sample = tuple[int, dict[str, Any], type[APIError], str, str | None]


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def seed_token(cls: type[ApiToken] = ApiToken, **changes: Any) -> ApiToken:
    """Seed 000's first token as the SDK structures it, with ``changes``."""
    fields: dict[str, Any] = {
        "id": TOKEN_ID,
        "name": "Production API",
        "token": Secret(MASKED),
        "status": TokenStatus.ACTIVE,
        "created_at": utc(2024, 1, 15, 10, 30),
        "sub_account": SEED_SUB_ACCOUNT,
        "sub_account_id": SUB_ACCOUNT_ID,
    }
    return cls(**{**fields, **changes})


def assert_api_error(exc: APIError, sample: Sample, *, method: str, path: str) -> None:
    """The exact class, every attribute, and ``str()`` naming method, path, status and words."""
    status, body, cls, message, detail = sample
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.message == message
    assert exc.detail == detail
    assert exc.body == body
    assert exc.method == method
    assert exc.path == path
    expected = f"{method} {path} -> {status} {message}"
    if detail is not None:
        expected += f": {detail}"
    assert str(exc) == expected


class TestSeedSamplesAreVerbatim:
    """The shared samples are the seeds' own words."""

    def test_samples_hold_the_documented_words(self) -> None:
        assert SEED_EMAIL == "[email\u00a0protected]"
        assert LIST_200["message"] == "Found 2 API token(s)"
        assert CREATE_400_MISSING_NAME["error"]["message"] == "API name is required"
        assert DELETE_200["data"] is None
        assert VENDOR_004_LIST["meta"]["pagination"]["lastPage"] == 123


class TestList:
    """``tokens.list`` and ``list_for_sub_account`` on seed 000's samples."""

    async def test_200_structures_every_field(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=LIST_200)
            async with session() as cc:
                page = await cc.tokens.list(sub_account_id=SUB_ACCOUNT_ID)

        assert isinstance(page, Page)
        assert (page.total, page.page, page.limit, page.total_pages) == (2, 1, 10, 1)
        assert page.has_next_page is False
        assert page.has_prev_page is False
        first, second = page.items
        assert type(first) is ApiToken
        assert first == seed_token()
        assert first.token.reveal() == MASKED
        assert first.status is TokenStatus.ACTIVE
        assert first.created_at.utcoffset() == timedelta(0)
        assert second == seed_token(
            id="6877b1234567890abcdef456", name="Development API", created_at=utc(2024, 1, 14, 8, 0)
        )
        ((method, url, kwargs),) = sent(m)
        assert method == "GET"
        assert url.path == TOKENS_PATH
        assert dict(url.query) == {"subAccountId": SUB_ACCOUNT_ID, "page": "1", "limit": "10"}
        assert kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"

    async def test_200_walk_yields_both_tokens_in_one_request(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=LIST_200, repeat=True)
            async with session() as cc:
                tokens = await cc.tokens.list().collect()

        assert [t.id for t in tokens] == [TOKEN_ID, "6877b1234567890abcdef456"]
        assert len(sent(m)) == 1

    async def test_list_for_sub_account_uses_the_seed_path(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=LIST_200)
            async with session() as cc:
                page = await cc.tokens.list_for_sub_account(SUB_ACCOUNT_ID, limit=5)

        assert [t.sub_account_id for t in page.items] == [SUB_ACCOUNT_ID, SUB_ACCOUNT_ID]
        ((_, url, _),) = sent(m)
        assert url.path == f"{TOKENS_PATH}/sub-account/{SUB_ACCOUNT_ID}"
        assert dict(url.query) == {"page": "1", "limit": "5"}


class TestGet:
    """``tokens.get`` on a seed-000 token object and its error samples."""

    async def test_200_structures_the_nested_sub_account(self) -> None:
        data = copy.deepcopy(LIST_200["data"]["items"][0])
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=envelope(data))
            async with session() as cc:
                token = await cc.tokens.get(TOKEN_ID)

        assert type(token) is ApiToken
        assert token.sub_account == SEED_SUB_ACCOUNT
        assert token.sub_account_id == SUB_ACCOUNT_ID
        ((method, url, _),) = sent(m)
        assert (method, url.raw_path) == ("GET", f"{TOKENS_PATH}/{TOKEN_ID}")


class TestCreate:
    """``tokens.create`` on seed 001's samples."""

    async def test_201_structures_a_created_token(self) -> None:
        with aioresponses() as m:
            m.post(TOKENS_URL, status=201, payload=CREATE_201)
            async with session() as cc:
                created = await cc.tokens.create(
                    name="Production API", sub_account_id=SUB_ACCOUNT_ID
                )

        assert type(created) is CreatedToken
        assert isinstance(created, ApiToken)
        assert created == seed_token(CreatedToken, sub_account=None)
        assert created.token.reveal() == MASKED
        assert created.created_at.tzinfo is not None
        ((method, url, kwargs),) = sent(m)
        assert (method, url.path) == ("POST", TOKENS_PATH)
        assert kwargs["json"] == {"name": "Production API", "subAccountId": SUB_ACCOUNT_ID}


class TestUpdate:
    """``tokens.update`` on seed 002's samples."""

    async def test_200_structures_the_updated_token(self) -> None:
        with aioresponses() as m:
            m.put(ANY_TOKEN_URL, payload=UPDATE_200)
            async with session() as cc:
                token = await cc.tokens.update(
                    TOKEN_ID, name="Updated API Name", status=TokenStatus.INACTIVE
                )

        assert token == seed_token(name="Updated API Name", status=TokenStatus.INACTIVE)
        assert token.status is TokenStatus.INACTIVE
        ((method, url, kwargs),) = sent(m)
        assert (method, url.raw_path) == ("PUT", f"{TOKENS_PATH}/{TOKEN_ID}")
        assert kwargs["json"] == {"name": "Updated API Name", "status": "inactive"}


class TestDelete:
    """``tokens.delete`` on seed 003's samples."""

    async def test_200_with_null_data_returns_none(self) -> None:
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, payload=DELETE_200)
            async with session() as cc:
                result = await cc.tokens.delete(TOKEN_ID)

        assert result is None
        ((method, url, _),) = sent(m)
        assert (method, url.raw_path) == ("DELETE", f"{TOKENS_PATH}/{TOKEN_ID}")


# Each error sample of seeds 000-003, with the class, message and detail README promises.
SAMPLES: dict[str, Sample] = {
    "400 missing name": (
        400,
        CREATE_400_MISSING_NAME,
        BadRequestError,
        "Validation error",
        "API name is required",
    ),
    "400 missing sub-account": (
        400,
        CREATE_400_MISSING_SUB_ACCOUNT,
        BadRequestError,
        "Validation error",
        "Sub account ID is required",
    ),
    "400 duplicate on create": (
        400,
        CREATE_400_DUPLICATE,
        BadRequestError,
        "Validation error",
        "Token name already exists for this sub-account",
    ),
    "400 no fields": (
        400,
        UPDATE_400_NO_FIELDS,
        BadRequestError,
        "Validation error",
        "No valid fields to update",
    ),
    "400 duplicate on update": (
        400,
        UPDATE_400_DUPLICATE,
        BadRequestError,
        "Validation error",
        "Token name already exists for this sub-account",
    ),
    "401": (401, UNAUTHORIZED_401, AuthenticationError, "Token expired", None),
    "403": (
        403,
        FORBIDDEN_403,
        PermissionDeniedError,
        "Forbidden",
        "Sub account does not belong to you or does not exist",
    ),
    "404": (404, NOT_FOUND_404, NotFoundError, "Not found", "API token not found"),
}

TOKEN_PATH = f"{TOKENS_PATH}/{TOKEN_ID}"
# Each endpoint: its method, its path, one call of it, and the error samples its seed lists.
ENDPOINTS: dict[str, tuple[str, str, Call, tuple[str, ...]]] = {
    "list": (
        "GET",
        TOKENS_PATH,
        lambda cc: cc.tokens.list(sub_account_id=SUB_ACCOUNT_ID),
        ("403",),
    ),
    "list walk": ("GET", TOKENS_PATH, lambda cc: cc.tokens.list().collect(), ("401",)),
    "get": ("GET", TOKEN_PATH, lambda cc: cc.tokens.get(TOKEN_ID), ("404",)),
    "create": (
        "POST",
        TOKENS_PATH,
        lambda cc: cc.tokens.create(name="Production API", sub_account_id=SUB_ACCOUNT_ID),
        ("400 missing name", "400 missing sub-account", "400 duplicate on create", "403", "401"),
    ),
    "update": (
        "PUT",
        TOKEN_PATH,
        lambda cc: cc.tokens.update(TOKEN_ID, name="Updated API Name"),
        ("400 no fields", "400 duplicate on update", "404", "401"),
    ),
    "delete": ("DELETE", TOKEN_PATH, lambda cc: cc.tokens.delete(TOKEN_ID), ("404", "401")),
}


class TestErrorSamples:
    """Every error sample of every endpoint: the exact class and attributes, one request."""

    @pytest.mark.parametrize(
        ("endpoint", "sample"),
        [(endpoint, sample) for endpoint, row in ENDPOINTS.items() for sample in row[3]],
    )
    async def test_error_sample(self, endpoint: str, sample: str) -> None:
        method, path, call, _ = ENDPOINTS[endpoint]
        status, body, cls, _, _ = SAMPLES[sample]
        with aioresponses() as m:
            m.add(ANY_TOKEN_URL, method=method, status=status, payload=body)
            async with session() as cc:
                with pytest.raises(cls) as info:
                    await call(cc)

        assert_api_error(info.value, SAMPLES[sample], method=method, path=path)
        # The server's stack trace (seed 000's 401) never reaches the message.
        assert "stack" not in str(info.value)
        assert "APIError:" not in str(info.value)
        assert len(sent(m)) == 1


@attrs.frozen
class VendorToken:
    """Seed 004's token, as small as a test needs."""

    id: str
    description: str
    api_token: Secret

    @classmethod
    def from_json(cls, obj: Any) -> VendorToken:
        return cls(id=obj["id"], description=obj["description"], api_token=Secret(obj["apiToken"]))


def vendor_page(number: int, last: int, ids: list[str]) -> dict[str, Any]:
    """Seed 004's sample re-numbered: page ``number`` of ``last`` holding ``ids``."""
    body = copy.deepcopy(VENDOR_004_LIST)
    template = body["data"][0]
    body["data"] = [{**template, "id": i} for i in ids]
    body["meta"]["pagination"].update(
        currentPage=number, lastPage=last, itemsPerPage=2, totalItems=5, pageTotalItems=len(ids)
    )
    return body


class TestMetaPaginationFormat:
    """Seed 004's ``meta.pagination`` page format, and a Pager walking it."""

    def test_reads_the_seed_sample(self) -> None:
        raw = meta_pagination_page_format(VENDOR_004_LIST)

        assert raw == RawPage(
            items=VENDOR_004_LIST["data"],
            total=123,
            page=123,
            limit=123,
            total_pages=123,
            has_next_page=False,
            has_prev_page=True,
        )

    def test_build_page_structures_the_sample_items(self) -> None:
        # The sample answers page 123 (its placeholder currentPage): ask for that one.
        raw = meta_pagination_page_format(VENDOR_004_LIST)
        page = build_page(raw, 123, VendorToken.from_json)

        assert page.items == (
            VendorToken(
                id="A1B2C3D4E5F6G7H8I9J0",
                description="My API token",
                api_token=Secret("**********"),
            ),
        )
        assert (page.page, page.total_pages, page.has_next_page) == (123, 123, False)

    async def test_pager_walks_every_page_until_last_page(self) -> None:
        bodies = {
            1: vendor_page(1, 3, ["a", "b"]),
            2: vendor_page(2, 3, ["c", "d"]),
            3: vendor_page(3, 3, ["e"]),
        }
        requested: list[int] = []

        async def fetch(number: int) -> Page[VendorToken]:
            requested.append(number)
            return build_page(
                meta_pagination_page_format(bodies[number]), number, VendorToken.from_json
            )

        pager = Pager(fetch, page=1, limit=2)
        tokens = await pager.collect()

        assert [t.id for t in tokens] == ["a", "b", "c", "d", "e"]
        assert requested == [1, 2, 3]
        assert pager.next_page == 4

    async def test_pager_over_dict_items_with_concurrency(self) -> None:
        bodies = {n: vendor_page(n, 4, [f"{n}-x", f"{n}-y"]) for n in range(1, 5)}
        requested: list[int] = []

        async def fetch(number: int) -> Page[dict[str, Any]]:
            requested.append(number)
            return build_page(meta_pagination_page_format(bodies[number]), number, dict)

        items = await Pager(fetch, limit=2, concurrency=3).collect()

        assert [item["id"] for item in items] == [f"{n}-{s}" for n in range(1, 5) for s in "xy"]
        assert sorted(requested) == [1, 2, 3, 4]
