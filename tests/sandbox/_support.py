"""Helpers for the sandbox tests: a thin raw-HTTP client and seed-shape comparisons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from cellcast_async.sandbox import Sandbox

from .._wire import TOKENS_PATH

ENVELOPE_LITERALS = (
    "app_type",
    "app_version",
    "maintainence",
    "new_version",
    "force_update",
    "invalid_token",
    "refresh_token",
    "show_message",
    "is_enc",
    "status",
    "message_type",
    "error",
)

_MISSING = object()


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str
    body: Any  # parsed JSON, or _MISSING when the body is not JSON

    @property
    def detail(self) -> Any:
        return self.body["error"]["message"]

    @property
    def data(self) -> Any:
        return self.body["data"]


class Api:
    """Raw HTTP against one sandbox; paths are sent exactly as given (no re-encoding)."""

    def __init__(self, http: aiohttp.ClientSession, sb: Sandbox) -> None:
        self.http = http
        self.sb = sb

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.sb.api_key}"}

    async def call(
        self,
        method: str,
        path: str = TOKENS_PATH,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = _MISSING,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Reply:
        url = yarl.URL(self.sb.url + path, encoded=True)
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        send_headers = self.auth(key) if headers is None else dict(headers)
        kwargs: dict[str, Any] = {"headers": send_headers}
        if json is not _MISSING:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.http.request(method, url, **kwargs) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = _MISSING
            return Reply(response.status, dict(response.headers), text, body)

    async def get(self, path: str = TOKENS_PATH, **kwargs: Any) -> Reply:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str = TOKENS_PATH, **kwargs: Any) -> Reply:
        return await self.call("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("DELETE", path, **kwargs)

    async def create(self, name: str, sub_account_id: str | None = None) -> Reply:
        sub = sub_account_id or self.sb.sub_account_ids[0]
        return await self.post(json={"name": name, "subAccountId": sub})

    async def first_token(self, key: str | None = None, **params: str | int) -> dict[str, Any]:
        """The newest token the key can see (with optional list filters)."""
        reply = await self.get(params={"limit": 1, **params}, key=key)
        assert reply.status == 200, reply.text
        item: dict[str, Any] = reply.data["items"][0]
        return item


def _kind(value: Any) -> str:
    # bool before int: JSON true is not JSON 1.
    for name, kind in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def assert_same_shape(actual: Any, sample: Any, where: str = "$") -> None:
    """Same keys in the same order and the same JSON types, all the way down.

    A list is compared item by item against the sample's first item (an empty sample list
    says nothing about its items).
    """
    assert _kind(actual) == _kind(sample), f"{where}: {_kind(actual)} != seed's {_kind(sample)}"
    if isinstance(sample, dict):
        assert list(actual) == list(sample), (
            f"{where}: keys {list(actual)} != seed's {list(sample)}"
        )
        for key in sample:
            assert_same_shape(actual[key], sample[key], f"{where}.{key}")
    elif isinstance(sample, list) and sample:
        for index, item in enumerate(actual):
            assert_same_shape(item, sample[0], f"{where}[{index}]")


def assert_matches_seed(reply: Reply, sample: Mapping[str, Any], status: int) -> None:
    """Status, shape, and the literal values the seed fixes (envelope fields, messages)."""
    assert reply.status == status, reply.text
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    assert_same_shape(reply.body, sample)
    for key in ENVELOPE_LITERALS:
        if key in sample:
            assert reply.body[key] == sample[key], key
    if sample.get("status") is False:
        assert reply.body == sample, "error bodies are fixed texts: equal to the seed's"
