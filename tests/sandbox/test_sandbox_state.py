"""Demo data, bulk loading, counting, request recording, and the Sandbox object itself."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

import aiohttp
import pytest

from cellcast_async.sandbox import RecordedRequest, Sandbox
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api
from tests.sandbox.test_sandbox_listing import walk

OBJECT_ID = re.compile(r"[0-9a-f]{24}")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


class TestDemoData:
    """Deterministic from the seed; shaped to exercise the SDK and the CLI audit."""

    async def test_same_seed_same_data(self, http: aiohttp.ClientSession) -> None:
        seen = []
        for _ in range(2):
            async with Sandbox(seed=5, tokens=40) as sb:
                seen.append((sb.api_key, sb.sub_account_ids, (await Api(http, sb).get()).text))
        assert seen[0] == seen[1]
        async with Sandbox(seed=6, tokens=40) as sb:
            assert (await Api(http, sb).get()).text != seen[0][2]
            assert sb.api_key != seen[0][0]

    def test_given_key_does_not_change_the_data(self) -> None:
        assert Sandbox(seed=1).sub_account_ids == Sandbox(seed=1, api_key="k").sub_account_ids

    def test_keys_and_ids(self) -> None:
        sb = Sandbox(sub_accounts=4)
        assert len(sb.sub_account_ids) == 4
        assert len(sb.other_sub_account_ids) >= 1
        for sub in (*sb.sub_account_ids, *sb.other_sub_account_ids):
            assert OBJECT_ID.fullmatch(sub)
        assert not set(sb.sub_account_ids) & set(sb.other_sub_account_ids)
        assert sb.api_key != sb.other_api_key

    async def test_mix_of_ages_statuses_and_shared_names(self, api: Api, sb: Sandbox) -> None:
        items = await walk(api, limit=100)
        ages = [sb.reference_time - parse(i["createdAt"]) for i in items]
        assert all(timedelta(0) < age < timedelta(days=731) for age in ages)
        assert any(age > timedelta(days=365) for age in ages)
        assert any(age < timedelta(days=365) for age in ages)
        statuses = Counter(i["status"] for i in items)
        assert 0.6 < statuses["active"] / len(items) < 0.95
        subs_by_name: dict[str, set[str]] = {}
        for item in items:
            subs_by_name.setdefault(item["name"], set()).add(item["subAccount"]["_id"])
        assert [n for n, subs in subs_by_name.items() if len(subs) > 1]
        sub_accounts = {i["subAccount"]["_id"]: i["subAccount"] for i in items}
        assert set(sub_accounts) == set(sb.sub_account_ids)
        for sub in sub_accounts.values():
            assert sub["email"].endswith("@example.com")
            assert sub["name"]
            assert sub["companyName"]

    def test_refuses_non_loopback_hosts(self) -> None:
        for host in ("0.0.0.0", "192.168.1.10", "example.com", "::"):
            with pytest.raises(ValueError, match="loopback"):
                Sandbox(host=host)

    @pytest.mark.parametrize(
        ("host", "url"), [("localhost", "http://127.0.0.1:"), ("::1", "http://[::1]:")]
    )
    async def test_other_loopback_hosts(
        self, http: aiohttp.ClientSession, host: str, url: str
    ) -> None:
        sb = Sandbox(tokens=2, host=host)
        try:
            await sb.start()
        except OSError:  # pragma: no cover - a host without IPv6 loopback
            pytest.skip(f"cannot listen on {host}")
        try:
            assert sb.url.startswith(url)
            assert (await Api(http, sb).get()).status == 200
        finally:
            await sb.stop()

    async def test_restart(self, http: aiohttp.ClientSession) -> None:
        sb = Sandbox(tokens=2)
        async with sb:
            with pytest.raises(RuntimeError, match="already running"):
                await sb.start()
            await Api(http, sb).create("Survives a restart")
        await sb.stop()  # a second stop is a no-op
        async with sb:
            assert (await Api(http, sb).get()).data["total"] == 3

    def test_refuses_bad_sizes(self) -> None:
        with pytest.raises(ValueError, match="tokens"):
            Sandbox(tokens=-1)
        with pytest.raises(ValueError, match="sub-account"):
            Sandbox(tokens=5, sub_accounts=0)

    async def test_url_only_while_running(self) -> None:
        sb = Sandbox(tokens=0)
        with pytest.raises(RuntimeError):
            _ = sb.url
        async with sb:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.url)
            assert sb.port > 0
            assert sb.url in repr(sb)
            assert sb.api_key not in repr(sb)
        with pytest.raises(RuntimeError):
            _ = sb.url


class TestAddTokens:
    """add_tokens bulk-loads quickly and keeps every view consistent."""

    async def test_hundred_thousand(self, api: Api, sb: Sandbox) -> None:
        ids = sb.add_tokens(100_000)
        assert len(ids) == len(set(ids)) == 100_000
        assert sb.token_count() == 100_060
        reply = await api.get(params={"limit": 1000, "page": 50})
        assert reply.data["total"] == 100_060
        assert reply.data["totalPages"] == 101
        assert sb.tokens_created == 0  # bulk loading is not creating via POST

    async def test_into_one_sub_account_with_a_status(self, api: Api, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[2]
        before = sb.token_count(sub)
        ids = sb.add_tokens(25, sub_account_id=sub, status="inactive")
        assert sb.token_count(sub) == before + 25
        for token_id in ids[:3]:
            data = (await api.get(f"{TOKENS_PATH}/{token_id}")).data
            assert (data["subAccount"]["_id"], data["status"]) == (sub, "inactive")

    def test_refuses_bad_arguments(self) -> None:
        sb = Sandbox(tokens=0)
        with pytest.raises(KeyError):
            sb.add_tokens(1, sub_account_id="nope")
        with pytest.raises(ValueError, match="status"):
            sb.add_tokens(1, status="paused")


class TestRequests:
    """sb.requests records every request, in order, as received."""

    async def test_recorded_fields(self, api: Api, sb: Sandbox) -> None:
        await api.get(params={"page": 2, "search": "a b"})
        body = {"name": "Rec", "subAccountId": sb.sub_account_ids[0]}
        await api.post(json=body)
        await api.get("/nowhere", headers={})
        first, second, third = sb.requests
        assert isinstance(first, RecordedRequest)
        assert [r.number for r in sb.requests] == [1, 2, 3]
        assert (first.method, first.path, first.query, first.json) == (
            "GET",
            TOKENS_PATH,
            {"page": "2", "search": "a b"},
            None,
        )
        assert first.headers["AUTHORIZATION"] == f"Bearer {sb.api_key}"
        assert "authorization" in first.headers
        assert first.headers.get("Authorization") == first.headers["authorization"]
        assert (second.method, second.json) == ("POST", body)
        assert second.headers["content-type"].startswith("application/json")
        assert (third.path, "authorization" in third.headers) == ("/nowhere", False)

    async def test_repr_hides_the_key(self, api: Api, sb: Sandbox) -> None:
        await api.get()
        assert sb.api_key not in repr(sb.requests[0])
        assert "<redacted>" in repr(sb.requests[0])

    async def test_reset(self, api: Api, sb: Sandbox) -> None:
        await api.get()
        sb.reset_requests()
        assert sb.requests == []
        await api.get()
        assert [r.number for r in sb.requests] == [1]


class TestTokensCreated:
    """tokens_created counts successful POSTs only."""

    async def test_counts(self, api: Api, sb: Sandbox) -> None:
        await api.create("One")
        await api.create("One")  # duplicate: not created
        await api.post(json={})  # invalid: not created
        await api.create("Two")
        assert sb.tokens_created == 2


class TestReadCache:
    """GET answers are remembered only until the store changes."""

    async def test_a_repeated_read_is_the_same_answer(self, api: Api) -> None:
        """The second identical GET returns the same bytes."""
        first = await api.get(params={"limit": 5, "page": 2})
        second = await api.get(params={"page": 2, "limit": 5})
        assert (first.status, first.text) == (second.status, second.text)

    async def test_every_change_is_seen_by_the_next_read(self, api: Api, sb: Sandbox) -> None:
        """Create, update, delete and add_tokens each show up in the very next listing."""
        before = await api.get(params={"limit": 1})
        created = await api.create("Cache check")
        assert created.status == 201
        token_id = created.data["_id"]
        after_create = await api.get(params={"limit": 1})
        assert after_create.data["total"] == before.data["total"] + 1
        assert after_create.data["items"][0]["_id"] == token_id

        await api.put(f"{TOKENS_PATH}/{token_id}", json={"name": "Cache check renamed"})
        assert (await api.get(f"{TOKENS_PATH}/{token_id}")).data["name"] == "Cache check renamed"

        await api.delete(f"{TOKENS_PATH}/{token_id}")
        assert (await api.get(f"{TOKENS_PATH}/{token_id}")).status == 404

        sb.add_tokens(3)
        assert (await api.get(params={"limit": 1})).data["total"] == before.data["total"] + 3

    async def test_another_key_gets_its_own_answer(self, api: Api, sb: Sandbox) -> None:
        """The cache is per key: the other key's listing is not this key's."""
        mine = await api.get(params={"limit": 100})
        theirs = await api.get(params={"limit": 100}, key=sb.other_api_key)
        assert {i["_id"] for i in mine.data["items"]}.isdisjoint(
            {i["_id"] for i in theirs.data["items"]}
        )
