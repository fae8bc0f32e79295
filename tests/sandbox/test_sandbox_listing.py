"""Listing behaviour: pagination math, ordering, filters, visibility, bad query values."""

from __future__ import annotations

from typing import Any

import pytest

from cellcast_async.sandbox import Sandbox
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api


async def walk(
    api: Api, path: str = TOKENS_PATH, key: str | None = None, **params: str | int
) -> list[dict[str, Any]]:
    """Every page, following hasNextPage."""
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = await api.get(path, params={**params, "page": page}, key=key)
        assert reply.status == 200, reply.text
        items.extend(reply.data["items"])
        if not reply.data["hasNextPage"]:
            return items
        page += 1


class TestPagination:
    """total, totalPages, hasNextPage and hasPrevPage, page by page."""

    @pytest.mark.parametrize(
        ("page", "count", "has_next", "has_prev"),
        [(1, 25, True, False), (2, 25, True, True), (3, 10, False, True), (4, 0, False, True)],
    )
    async def test_page_math(
        self, api: Api, page: int, count: int, has_next: bool, has_prev: bool
    ) -> None:
        reply = await api.get(params={"page": page, "limit": 25})
        data = reply.data
        assert reply.body["message"] == "Found 60 API token(s)"
        assert (data["total"], data["page"], data["limit"], data["totalPages"]) == (
            60,
            page,
            25,
            3,
        )
        assert len(data["items"]) == count
        assert (data["hasNextPage"], data["hasPrevPage"]) == (has_next, has_prev)

    async def test_defaults_are_page_1_limit_10(self, api: Api) -> None:
        data = (await api.get()).data
        assert (data["page"], data["limit"], data["totalPages"], len(data["items"])) == (
            1,
            10,
            6,
            10,
        )

    async def test_exact_multiple_has_no_extra_page(self, api: Api) -> None:
        data = (await api.get(params={"page": 3, "limit": 20})).data
        assert (data["totalPages"], data["hasNextPage"], len(data["items"])) == (3, False, 20)

    async def test_empty_result_has_zero_pages(self, api: Api) -> None:
        reply = await api.get(params={"search": "no such token name"})
        data = reply.data
        assert reply.body["message"] == "Found 0 API token(s)"
        assert (data["total"], data["totalPages"], data["items"]) == (0, 0, [])
        assert (data["hasNextPage"], data["hasPrevPage"]) == (False, False)

    async def test_walk_sees_every_token_once_newest_first(self, api: Api) -> None:
        items = await walk(api, limit=7)
        assert len({i["_id"] for i in items}) == 60
        keys = [(i["createdAt"], i["_id"]) for i in items]
        assert keys == sorted(keys, reverse=True)

    async def test_walk_of_a_big_store(self, sb: Sandbox, api: Api) -> None:
        sb.add_tokens(5_000)
        items = await walk(api, limit=1000)
        assert len({i["_id"] for i in items}) == 5_060


class TestFilters:
    """status, search and subAccountId narrow the listing and its totals."""

    async def test_status(self, api: Api, sb: Sandbox) -> None:
        active = await walk(api, status="active", limit=100)
        inactive = await walk(api, status="inactive", limit=100)
        assert {i["status"] for i in active} == {"active"}
        assert {i["status"] for i in inactive} == {"inactive"}
        assert len(active) + len(inactive) == sb.token_count() == 60
        assert 0 < len(inactive) < len(active)  # a mix, mostly active

    async def test_search_is_a_case_insensitive_substring(self, api: Api) -> None:
        reply = await api.get(params={"search": "pRoDuCtIoN", "limit": 100})
        names = [i["name"] for i in reply.data["items"]]
        assert names
        assert all("production" in n.lower() for n in names)
        assert reply.data["total"] == len(names)

    async def test_search_is_literal_not_a_pattern(self, api: Api) -> None:
        assert (await api.get(params={"search": ".*"})).data["total"] == 0

    async def test_sub_account(self, api: Api, sb: Sandbox) -> None:
        totals = 0
        for sub in sb.sub_account_ids:
            reply = await api.get(params={"subAccountId": sub, "limit": 100})
            assert {i["subAccount"]["_id"] for i in reply.data["items"]} == {sub}
            assert reply.data["total"] == sb.token_count(sub)
            totals += reply.data["total"]
        assert totals == 60

    async def test_filters_combine_on_sub_account_route(self, api: Api, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[0]
        reply = await api.get(
            f"{TOKENS_PATH}/sub-account/{sub}", params={"status": "active", "search": "api"}
        )
        for item in reply.data["items"]:
            assert item["subAccount"]["_id"] == sub
            assert item["status"] == "active"
            assert "api" in item["name"].lower()

    async def test_empty_filters_are_ignored(self, api: Api) -> None:
        reply = await api.get(params={"status": "", "search": "", "subAccountId": ""})
        assert reply.data["total"] == 60


class TestVisibility:
    """A key sees the tokens of its own sub-accounts and nothing else."""

    async def test_keys_see_disjoint_sets(self, api: Api, sb: Sandbox) -> None:
        ours = await walk(api, limit=100)
        theirs = await walk(api, limit=100, key=sb.other_api_key)
        assert {i["subAccount"]["_id"] for i in ours} <= set(sb.sub_account_ids)
        assert {i["subAccount"]["_id"] for i in theirs} == set(sb.other_sub_account_ids)
        assert not {i["_id"] for i in ours} & {i["_id"] for i in theirs}


class TestBadQueries:
    """Bad page/limit/status values are a 400 in the seeds' validation shape, never a 500."""

    @pytest.mark.parametrize(
        ("params", "detail"),
        [
            ({"page": "0"}, "page must be a positive integer"),
            ({"page": "-1"}, "page must be a positive integer"),
            ({"page": "1.5"}, "page must be a positive integer"),
            ({"page": "abc"}, "page must be a positive integer"),
            ({"page": ""}, "page must be a positive integer"),
            ({"page": "9" * 5000}, "page must be a positive integer"),
            ({"limit": "abc"}, "limit must be an integer between 1 and 1000"),
            ({"limit": "0"}, "limit must be an integer between 1 and 1000"),
            ({"limit": "1001"}, "limit must be an integer between 1 and 1000"),
            ({"limit": "-5"}, "limit must be an integer between 1 and 1000"),
            ({"status": "maybe"}, "status must be one of: active, inactive"),
            ({"status": "ACTIVE"}, "status must be one of: active, inactive"),
        ],
    )
    async def test_400(self, api: Api, params: dict[str, str], detail: str) -> None:
        reply = await api.get(params=params)
        assert reply.status == 400
        assert reply.body == {
            "status": False,
            "message": "Validation error",
            "message_type": "toast",
            "data": {},
            "error": {"message": detail},
        }

    async def test_same_checks_on_sub_account_route(self, api: Api, sb: Sandbox) -> None:
        reply = await api.get(
            f"{TOKENS_PATH}/sub-account/{sb.sub_account_ids[0]}", params={"page": 0}
        )
        assert (reply.status, reply.detail) == (400, "page must be a positive integer")

    async def test_largest_limit_is_accepted(self, api: Api) -> None:
        assert (await api.get(params={"limit": 1000})).data["totalPages"] == 1
