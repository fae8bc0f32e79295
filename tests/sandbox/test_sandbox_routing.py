"""Authentication, unknown routes, and ids that arrive percent-encoded."""

from __future__ import annotations

import aiohttp
import pytest

from cellcast_async.sandbox import Sandbox
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api
from tests.seed_samples import UNAUTHORIZED_401

ROUTE_NOT_FOUND = {
    "status": False,
    "message": "Not found",
    "message_type": "toast",
    "data": {},
    "error": {"message": "Route not found"},
}


class TestAuth:
    """Bearer keys: the header name and scheme ignore case; anything else is the seeds' 401."""

    @pytest.mark.parametrize(
        ("name", "template"),
        [
            ("Authorization", "Bearer {key}"),
            ("authorization", "bearer {key}"),
            ("AUTHORIZATION", "BEARER  {key} "),
        ],
    )
    async def test_accepted(self, api: Api, sb: Sandbox, name: str, template: str) -> None:
        reply = await api.get(headers={name: template.format(key=sb.api_key)})
        assert reply.status == 200

    async def test_other_key_is_valid_too(self, api: Api, sb: Sandbox) -> None:
        assert (await api.get(key=sb.other_api_key)).status == 200

    @pytest.mark.parametrize(
        "value",
        [None, "", "Bearer", "Bearer ", "Bearer nope", "Basic {key}", "{key}", "Token {key}"],
    )
    async def test_rejected(self, api: Api, sb: Sandbox, value: str | None) -> None:
        headers = {} if value is None else {"Authorization": value.format(key=sb.api_key)}
        reply = await api.get(headers=headers)
        assert reply.status == 401
        assert reply.body == UNAUTHORIZED_401

    async def test_given_key_is_used(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(tokens=3, api_key="my-test-key") as sb:
            assert sb.api_key == "my-test-key"
            api = Api(http, sb)
            assert (await api.get()).status == 200


class TestRoutes:
    """Anything outside the six routes is a 404 in the seeds' error shape."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/"),
            ("GET", "/api/v1/apiClient"),
            ("GET", "/api/v1/apiClient/tokens"),
            ("GET", "/api/v2/apiClient/token"),
            ("GET", f"{TOKENS_PATH}/a/b"),
            ("GET", f"{TOKENS_PATH}/sub-account/x/y"),
            ("PATCH", f"{TOKENS_PATH}/6877b1234567890abcdef123"),
            ("POST", f"{TOKENS_PATH}/6877b1234567890abcdef123"),
            ("PUT", TOKENS_PATH),
            ("DELETE", TOKENS_PATH),
            ("POST", f"{TOKENS_PATH}/sub-account/x"),
        ],
    )
    async def test_unknown_route(self, api: Api, method: str, path: str) -> None:
        reply = await api.call(method, path)
        assert (reply.status, reply.body) == (404, ROUTE_NOT_FOUND)

    async def test_trailing_slash_is_ignored(self, api: Api) -> None:
        assert (await api.get(f"{TOKENS_PATH}/")).data["total"] == 60

    async def test_unknown_route_needs_no_key(self, api: Api) -> None:
        assert (await api.get("/nowhere", headers={})).status == 404


class TestEncodedIds:
    """A path id is one segment: decoded for lookup, never re-routed."""

    @pytest.mark.parametrize(
        "raw_id", ["a%2Fb", "..%2Fadmin", "%2E%2E", "%2e%2e%2f%2e%2e", "sub-account", "%20"]
    )
    async def test_odd_ids_are_just_missing_tokens(self, api: Api, raw_id: str) -> None:
        for method in ("GET", "PUT", "DELETE"):
            reply = await api.call(method, f"{TOKENS_PATH}/{raw_id}", json={"status": "active"})
            assert (reply.status, reply.detail) == (404, "API token not found"), method

    async def test_raw_path_is_recorded(self, api: Api, sb: Sandbox) -> None:
        await api.get(f"{TOKENS_PATH}/..%2Fadmin")
        assert sb.requests[-1].path == f"{TOKENS_PATH}/..%2Fadmin"

    async def test_encoded_real_id_is_found(self, api: Api) -> None:
        item = await api.first_token()
        encoded = "".join(f"%{ord(c):02X}" for c in item["_id"])
        assert (await api.get(f"{TOKENS_PATH}/{encoded}")).data["_id"] == item["_id"]

    async def test_encoded_sub_account_id(self, api: Api, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[0]
        encoded = "".join(f"%{ord(c):02x}" for c in sub)
        assert (await api.get(f"{TOKENS_PATH}/sub-account/{encoded}")).status == 200
        assert (await api.get(f"{TOKENS_PATH}/sub-account/{sub}%2F..")).status == 403
