"""Every route and every documented answer, compared key for key with the seeds' samples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellcast_async.sandbox import Sandbox
from tests import seed_samples
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api, assert_matches_seed, assert_same_shape

# The API documentation samples, copied verbatim into the repository so these checks run
# on any clone (tests/seeds/README.md).
SEEDS = Path(__file__).resolve().parents[1] / "seeds"
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class TestSeedSamples:
    """tests/seed_samples.py holds the seeds' JSON blocks verbatim."""

    def test_the_seed_documents_ship_with_the_tests(self) -> None:
        assert sorted(path.name[:3] for path in SEEDS.glob("*.txt")) == [
            "000",
            "001",
            "002",
            "003",
            "004",
        ]

    @pytest.mark.parametrize("name", [n for n in seed_samples.__all__ if n.endswith("_JSON")])
    def test_block_is_verbatim_in_a_seed(self, name: str) -> None:
        block = getattr(seed_samples, name)
        assert any(block in path.read_text() for path in SEEDS.glob("*.txt"))


class TestList:
    """GET /api/v1/apiClient/token (seeds/000)."""

    async def test_200_matches_seed(self, api: Api) -> None:
        reply = await api.get(params={"page": 1, "limit": 10})
        assert_matches_seed(reply, seed_samples.LIST_200, 200)
        assert reply.body["message"] == "Found 60 API token(s)"
        item = reply.data["items"][0]
        assert OBJECT_ID.fullmatch(item["_id"])
        assert OBJECT_ID.fullmatch(item["subAccount"]["_id"])
        assert TIMESTAMP.fullmatch(item["createdAt"])
        assert item["subAccount"]["email"].endswith("@example.com")

    async def test_403_for_another_keys_sub_account(self, api: Api, sb: Sandbox) -> None:
        reply = await api.get(params={"subAccountId": sb.other_sub_account_ids[0]})
        assert_matches_seed(reply, seed_samples.FORBIDDEN_403, 403)

    async def test_401_without_key(self, api: Api) -> None:
        assert_matches_seed(await api.get(headers={}), seed_samples.UNAUTHORIZED_401, 401)


class TestListForSubAccount:
    """GET /api/v1/apiClient/token/sub-account/:subAccountId (seeds/000)."""

    async def test_200_matches_seed(self, api: Api, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[1]
        reply = await api.get(f"{TOKENS_PATH}/sub-account/{sub}", params={"page": 1, "limit": 10})
        assert_matches_seed(reply, seed_samples.LIST_200, 200)
        assert {i["subAccount"]["_id"] for i in reply.data["items"]} == {sub}

    async def test_403_for_another_keys_sub_account(self, api: Api, sb: Sandbox) -> None:
        reply = await api.get(f"{TOKENS_PATH}/sub-account/{sb.other_sub_account_ids[0]}")
        assert_matches_seed(reply, seed_samples.FORBIDDEN_403, 403)

    async def test_403_for_unknown_sub_account(self, api: Api) -> None:
        reply = await api.get(f"{TOKENS_PATH}/sub-account/6877a383d68781beb3b14110")
        assert_matches_seed(reply, seed_samples.FORBIDDEN_403, 403)

    async def test_401_without_key(self, api: Api, sb: Sandbox) -> None:
        reply = await api.get(f"{TOKENS_PATH}/sub-account/{sb.sub_account_ids[0]}", headers={})
        assert_matches_seed(reply, seed_samples.UNAUTHORIZED_401, 401)


class TestGet:
    """GET /api/v1/apiClient/token/:id (seeds/000; the answer is not shown, a list item is)."""

    async def test_200_is_the_list_item(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.get(f"{TOKENS_PATH}/{item['_id']}")
        assert reply.status == 200
        assert_same_shape(
            reply.body, {**seed_samples.LIST_200, "data": seed_samples.LIST_200["data"]["items"][0]}
        )
        assert reply.body["message"] == "API token retrieved successfully"
        assert reply.data == item

    async def test_404_when_absent(self, api: Api) -> None:
        assert_matches_seed(
            await api.get(f"{TOKENS_PATH}/6877b1234567890abcdef123"),
            seed_samples.NOT_FOUND_404,
            404,
        )

    async def test_404_for_another_keys_token(self, api: Api, sb: Sandbox) -> None:
        theirs = await api.first_token(key=sb.other_api_key)
        assert theirs  # visible to its owner ...
        reply = await api.get(f"{TOKENS_PATH}/{theirs['_id']}", key=sb.api_key)
        assert_matches_seed(reply, seed_samples.NOT_FOUND_404, 404)  # ... not to us


class TestCreate:
    """POST /api/v1/apiClient/token (seeds/001)."""

    async def test_201_matches_seed(self, api: Api, sb: Sandbox) -> None:
        reply = await api.create("Production API 2", sb.sub_account_ids[0])
        assert_matches_seed(reply, seed_samples.CREATE_201, 201)
        data = reply.data
        assert data["name"] == "Production API 2"
        assert data["status"] == "active"
        assert data["subAccountId"] == sb.sub_account_ids[0]
        assert OBJECT_ID.fullmatch(data["_id"])
        assert TIMESTAMP.fullmatch(data["createdAt"])

    async def test_400_missing_name(self, api: Api, sb: Sandbox) -> None:
        reply = await api.post(json={"subAccountId": sb.sub_account_ids[0]})
        assert_matches_seed(reply, seed_samples.CREATE_400_MISSING_NAME, 400)

    async def test_400_missing_sub_account(self, api: Api) -> None:
        reply = await api.post(json={"name": "Production API"})
        assert_matches_seed(reply, seed_samples.CREATE_400_MISSING_SUB_ACCOUNT, 400)

    async def test_400_duplicate(self, api: Api, sb: Sandbox) -> None:
        assert (await api.create("Twice", sb.sub_account_ids[0])).status == 201
        reply = await api.create("Twice", sb.sub_account_ids[0])
        assert_matches_seed(reply, seed_samples.CREATE_400_DUPLICATE, 400)

    async def test_403_for_another_keys_sub_account(self, api: Api, sb: Sandbox) -> None:
        reply = await api.create("Mine now", sb.other_sub_account_ids[0])
        assert_matches_seed(reply, seed_samples.FORBIDDEN_403, 403)

    async def test_401_with_unknown_key(self, api: Api, sb: Sandbox) -> None:
        reply = await api.post(
            json={"name": "x", "subAccountId": sb.sub_account_ids[0]}, key="not-a-key"
        )
        assert_matches_seed(reply, seed_samples.UNAUTHORIZED_401, 401)


class TestUpdate:
    """PUT /api/v1/apiClient/token/:id (seeds/002)."""

    async def test_200_matches_seed(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.put(
            f"{TOKENS_PATH}/{item['_id']}", json={"name": "Updated API Name", "status": "inactive"}
        )
        assert_matches_seed(reply, seed_samples.UPDATE_200, 200)
        assert reply.data["name"] == "Updated API Name"
        assert reply.data["status"] == "inactive"
        assert reply.data["token"] == item["token"]  # still masked

    async def test_400_no_valid_fields(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.put(f"{TOKENS_PATH}/{item['_id']}", json={})
        assert_matches_seed(reply, seed_samples.UPDATE_400_NO_FIELDS, 400)

    async def test_400_duplicate(self, api: Api, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[0]
        first = (await api.create("Name A", sub)).data
        await api.create("Name B", sub)
        reply = await api.put(f"{TOKENS_PATH}/{first['_id']}", json={"name": "Name B"})
        assert_matches_seed(reply, seed_samples.UPDATE_400_DUPLICATE, 400)

    async def test_404_when_absent(self, api: Api) -> None:
        reply = await api.put(f"{TOKENS_PATH}/6877b1234567890abcdef123", json={"status": "active"})
        assert_matches_seed(reply, seed_samples.NOT_FOUND_404, 404)

    async def test_401_without_key(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.put(f"{TOKENS_PATH}/{item['_id']}", json={"status": "active"}, headers={})
        assert_matches_seed(reply, seed_samples.UNAUTHORIZED_401, 401)


class TestDelete:
    """DELETE /api/v1/apiClient/token/:id (seeds/003)."""

    async def test_200_matches_seed(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.delete(f"{TOKENS_PATH}/{item['_id']}")
        assert_matches_seed(reply, seed_samples.DELETE_200, 200)
        assert reply.body["data"] is None

    async def test_404_when_absent(self, api: Api) -> None:
        reply = await api.delete(f"{TOKENS_PATH}/6877b1234567890abcdef123")
        assert_matches_seed(reply, seed_samples.NOT_FOUND_404, 404)

    async def test_404_when_already_deleted(self, api: Api) -> None:
        item = await api.first_token()
        assert (await api.delete(f"{TOKENS_PATH}/{item['_id']}")).status == 200
        reply = await api.delete(f"{TOKENS_PATH}/{item['_id']}")
        assert_matches_seed(reply, seed_samples.NOT_FOUND_404, 404)

    async def test_401_without_key(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.delete(f"{TOKENS_PATH}/{item['_id']}", headers={})
        assert_matches_seed(reply, seed_samples.UNAUTHORIZED_401, 401)
