"""Create, update and delete beyond the seeds' samples: secrets, validation order, effects."""

from __future__ import annotations

import re

import pytest

from cellcast_async.sandbox import Sandbox
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api

FULL_SECRET = re.compile(r"ccst_[A-Za-z0-9_-]{40}")
MASKED = re.compile(r"ccst_\*{36}[A-Za-z0-9_-]{4}")


class TestSecrets:
    """The full token is shown once, on create; every later read shows the masked form."""

    async def test_create_shows_full_then_reads_show_masked(self, api: Api) -> None:
        created = (await api.create("Once")).data
        assert FULL_SECRET.fullmatch(created["token"])
        masked = (await api.get(f"{TOKENS_PATH}/{created['_id']}")).data["token"]
        assert MASKED.fullmatch(masked)
        assert masked[-4:] == created["token"][-4:]
        assert created["token"] not in (await api.get(params={"limit": 100})).text
        updated = await api.put(f"{TOKENS_PATH}/{created['_id']}", json={"status": "inactive"})
        assert updated.data["token"] == masked

    async def test_list_items_are_masked(self, api: Api) -> None:
        items = (await api.get(params={"limit": 100})).data["items"]
        assert all(MASKED.fullmatch(i["token"]) for i in items)

    async def test_secrets_are_unique(self, api: Api) -> None:
        secrets = {(await api.create(f"Unique {n}")).data["token"] for n in range(5)}
        assert len(secrets) == 5


class TestCreate:
    """POST validation order, name handling, and what a created token looks like later."""

    async def test_created_token_is_newest_and_counted(self, api: Api, sb: Sandbox) -> None:
        before = sb.token_count()
        created = (await api.create("Newest")).data
        assert (await api.first_token())["_id"] == created["_id"]
        assert sb.token_count() == before + 1
        assert sb.tokens_created == 1
        assert (await api.get()).body["message"] == f"Found {before + 1} API token(s)"

    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            ({}, "API name is required"),
            ({"name": "   ", "subAccountId": "x"}, "API name is required"),
            ({"name": 42, "subAccountId": "x"}, "API name is required"),
            ({"name": None}, "API name is required"),
            ({"name": "ok"}, "Sub account ID is required"),
            ({"name": "ok", "subAccountId": ""}, "Sub account ID is required"),
            ({"name": "ok", "subAccountId": 7}, "Sub account ID is required"),
        ],
    )
    async def test_validation_order(self, api: Api, body: dict[str, object], detail: str) -> None:
        reply = await api.post(json=body)
        assert (reply.status, reply.body["message"], reply.detail) == (
            400,
            "Validation error",
            detail,
        )

    async def test_ownership_checked_before_duplicates(self, api: Api, sb: Sandbox) -> None:
        # "Production API" exists in the other key's sub-account too; still a 403, not a 400.
        reply = await api.create("Production API", sb.other_sub_account_ids[0])
        assert reply.status == 403

    async def test_same_name_in_another_sub_account_is_fine(self, api: Api, sb: Sandbox) -> None:
        assert (await api.create("Shared name", sb.sub_account_ids[0])).status == 201
        assert (await api.create("Shared name", sb.sub_account_ids[1])).status == 201

    async def test_name_is_trimmed(self, api: Api) -> None:
        assert (await api.create("  Padded  ")).data["name"] == "Padded"
        assert (
            await api.create("Padded")
        ).detail == "Token name already exists for this sub-account"

    @pytest.mark.parametrize(
        ("data", "detail"),
        [
            ('{"name": "x",', "Request body must be valid JSON"),
            ("[1, 2]", "Request body must be a JSON object"),
            ('"name"', "Request body must be a JSON object"),
        ],
    )
    async def test_bad_json_body(self, api: Api, data: str, detail: str) -> None:
        headers = {**api.auth(), "Content-Type": "application/json"}
        reply = await api.post(data=data, headers=headers)
        assert (reply.status, reply.body["message"], reply.detail) == (
            400,
            "Validation error",
            detail,
        )

    async def test_body_not_sent_as_json_is_not_read(self, api: Api, sb: Sandbox) -> None:
        # Like express.json(): without a JSON content type the body is never parsed.
        body = f'{{"name": "x", "subAccountId": "{sb.sub_account_ids[0]}"}}'
        headers = {**api.auth(), "Content-Type": "text/plain"}
        reply = await api.post(data=body, headers=headers)
        assert (reply.status, reply.detail) == (400, "API name is required")
        assert sb.tokens_created == 0


class TestUpdate:
    """PUT: optional fields, status values, names, and the effect on later reads."""

    async def test_status_only(self, api: Api) -> None:
        item = await api.first_token(status="active")
        reply = await api.put(f"{TOKENS_PATH}/{item['_id']}", json={"status": "inactive"})
        assert (reply.data["status"], reply.data["name"]) == ("inactive", item["name"])
        assert (await api.get(f"{TOKENS_PATH}/{item['_id']}")).data["status"] == "inactive"

    async def test_name_only_frees_the_old_name(self, api: Api) -> None:
        created = (await api.create("Old name")).data
        reply = await api.put(f"{TOKENS_PATH}/{created['_id']}", json={"name": "New name"})
        assert reply.data["name"] == "New name"
        assert (await api.create("Old name")).status == 201

    async def test_renaming_to_its_own_name_is_not_a_duplicate(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.put(f"{TOKENS_PATH}/{item['_id']}", json={"name": item["name"]})
        assert reply.status == 200

    async def test_invalid_status(self, api: Api) -> None:
        item = await api.first_token()
        reply = await api.put(f"{TOKENS_PATH}/{item['_id']}", json={"status": "paused"})
        assert (reply.status, reply.body["message"], reply.detail) == (
            400,
            "Validation error",
            "Status must be either active or inactive",
        )

    @pytest.mark.parametrize(
        "body",
        [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"token": "x", "subAccountId": "y"}],
    )
    async def test_no_valid_fields(self, api: Api, body: dict[str, object]) -> None:
        item = await api.first_token()
        reply = await api.put(f"{TOKENS_PATH}/{item['_id']}", json=body)
        assert (reply.status, reply.detail) == (400, "No valid fields to update")

    async def test_other_keys_token_is_not_found(self, api: Api, sb: Sandbox) -> None:
        theirs = await api.first_token(key=sb.other_api_key)
        reply = await api.put(f"{TOKENS_PATH}/{theirs['_id']}", json={"status": "inactive"})
        assert (reply.status, reply.detail) == (404, "API token not found")


class TestDelete:
    """DELETE removes the token from every view."""

    async def test_gone_everywhere(self, api: Api, sb: Sandbox) -> None:
        item = await api.first_token()
        sub = item["subAccount"]["_id"]
        before = sb.token_count(sub)
        assert (await api.delete(f"{TOKENS_PATH}/{item['_id']}")).status == 200
        assert (await api.get(f"{TOKENS_PATH}/{item['_id']}")).status == 404
        assert (await api.get()).data["total"] == 59
        assert sb.token_count(sub) == before - 1

    async def test_other_keys_token_is_not_found(self, api: Api, sb: Sandbox) -> None:
        theirs = await api.first_token(key=sb.other_api_key)
        reply = await api.delete(f"{TOKENS_PATH}/{theirs['_id']}")
        assert (reply.status, reply.detail) == (404, "API token not found")
        assert (await api.get(f"{TOKENS_PATH}/{theirs['_id']}", key=sb.other_api_key)).status == 200
