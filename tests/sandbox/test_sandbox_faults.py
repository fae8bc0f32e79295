"""Fault injection: scripted and seeded-random faults, drops after apply, hangs, latency."""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import pytest

from cellcast_async.sandbox import Faults, Sandbox
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api

FAST = aiohttp.ClientTimeout(total=0.5)


async def outcome(api: Api, method: str = "GET", path: str = TOKENS_PATH, **kwargs: object) -> str:
    """What the client saw: the status, "drop", "timeout" or "malformed"."""
    try:
        reply = await api.call(method, path, **kwargs)  # type: ignore[arg-type]
    except aiohttp.ServerDisconnectedError:
        return "drop"
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
        return "timeout"
    if reply.status == 200 and reply.body is not None and not isinstance(reply.body, dict):
        return "malformed"
    return str(reply.status)


async def arrived(sb: Sandbox, count: int = 1) -> None:
    """Wait (briefly) until the sandbox has received ``count`` requests."""
    for _ in range(500):
        if len(sb.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never arrived")


async def stops_at_once(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    """``sb.stop()`` with a request in flight that the sandbox holds: the stop takes well
    under the hold, and the request fails instead of waiting."""
    pending = asyncio.ensure_future(http.get(sb.url + TOKENS_PATH))
    await arrived(sb)
    started = time.monotonic()
    await sb.stop()
    assert time.monotonic() - started < 1.5
    with pytest.raises(aiohttp.ClientError):
        await pending


class TestScript:
    """sb.script() fails exact request numbers, once each, ahead of random faults."""

    @pytest.mark.parametrize("status", ["500", "502", "503", "504", "429"])
    async def test_statuses(self, api: Api, sb: Sandbox, status: str) -> None:
        sb.script({2: status})
        assert [await outcome(api) for _ in range(3)] == ["200", status, "200"]

    async def test_json_error_bodies_for_500_and_503(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "500", 2: "503"})
        for expected in (500, 503):
            reply = await api.get()
            assert reply.status == expected
            assert list(reply.body) == ["status", "message", "message_type", "data", "error"]
            assert reply.body["status"] is False

    async def test_gateway_502_and_504_are_html(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "502", 2: "504"})
        for expected in (502, 504):
            reply = await api.get()
            assert reply.status == expected
            assert reply.headers["Content-Type"].startswith("text/html")

    async def test_429_retry_after(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "429", 2: ("429", 2), 3: ("429", 1.5)})
        seen = [(await api.get()).headers.get("Retry-After") for _ in range(3)]
        assert seen == ["0", "2", "1.5"]

    async def test_retry_after_from_faults(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(retry_after=1.0)
        sb.script({1: "429"})
        reply = await api.get()
        assert (reply.status, reply.headers["Retry-After"], reply.body["status"]) == (
            429,
            "1",
            False,
        )

    async def test_drop(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "drop"})
        assert await outcome(api) == "drop"
        assert await outcome(api) == "200"

    async def test_malformed(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "malformed"})
        reply = await api.get()
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            json.loads(reply.text)
        assert reply.text.startswith('{"app_type":"web"')

    async def test_hang_until_client_gives_up(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(tokens=5) as sb:
            sb.script({1: "hang"})
            api = Api(http, sb)
            with pytest.raises(asyncio.TimeoutError):
                await api.http.get(sb.url + TOKENS_PATH, headers=api.auth(), timeout=FAST)
            assert await outcome(api) == "200"

    async def test_stop_does_not_wait_for_a_hang(self, http: aiohttp.ClientSession) -> None:
        sb = Sandbox(tokens=5)
        await sb.start()
        sb.script({1: "hang"})
        await stops_at_once(sb, http)

    async def test_numbers_count_every_request_and_restart_on_reset(
        self, api: Api, sb: Sandbox
    ) -> None:
        await api.get("/not/a/route")
        await api.get(headers={})
        sb.script({3: "503"})
        assert await outcome(api) == "503"
        sb.reset_requests()
        sb.script({1: "500"})
        assert await outcome(api) == "500"
        assert [r.number for r in sb.requests] == [1]

    async def test_fault_comes_before_auth(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "503"})
        assert await outcome(api, headers={}) == "503"

    @pytest.mark.parametrize(
        "entry", ["404", "boom", ("503", 1), ("429",), ("429", "1"), ("429", -1)]
    )
    def test_bad_entries_are_refused(self, entry: object) -> None:
        with pytest.raises(ValueError, match=r"script entry|fault kind|retry_after"):
            Sandbox(tokens=0).script({1: entry})  # type: ignore[dict-item]

    def test_bad_numbers_are_refused(self) -> None:
        with pytest.raises(ValueError, match="1-based"):
            Sandbox(tokens=0).script({0: "500"})


class TestDropAndMutations:
    """A dropped mutation loses its answer, not its effect (unless drop_before_apply)."""

    async def test_post_applied_then_dropped(self, api: Api, sb: Sandbox) -> None:
        sb.script({1: "drop"})
        assert await outcome(api, "POST", json={"name": "Lost answer", **self._sub(sb)}) == "drop"
        assert sb.tokens_created == 1
        retry = await api.create("Lost answer")
        assert retry.detail == "Token name already exists for this sub-account"
        assert sb.tokens_created == 1

    async def test_drop_before_apply(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(drop_before_apply=True)
        sb.script({1: "drop"})
        assert await outcome(api, "POST", json={"name": "Never made", **self._sub(sb)}) == "drop"
        assert sb.tokens_created == 0
        assert (await api.create("Never made")).status == 201

    async def test_delete_applied_then_dropped(self, api: Api, sb: Sandbox) -> None:
        item = await api.first_token()
        sb.script({2: "drop"})
        assert await outcome(api, "DELETE", f"{TOKENS_PATH}/{item['_id']}") == "drop"
        assert (await api.delete(f"{TOKENS_PATH}/{item['_id']}")).status == 404

    async def test_put_applied_then_malformed(self, api: Api, sb: Sandbox) -> None:
        item = await api.first_token(status="active")
        sb.script({2: "malformed"})
        path = f"{TOKENS_PATH}/{item['_id']}"
        assert await outcome(api, "PUT", path, json={"status": "inactive"}) == "malformed"
        assert (await api.get(path)).data["status"] == "inactive"

    @staticmethod
    def _sub(sb: Sandbox) -> dict[str, str]:
        return {"subAccountId": sb.sub_account_ids[0]}


class TestRandomFaults:
    """error_rate with a seeded RNG: the same seed gives the same sequence."""

    async def _sequence(self, http: aiohttp.ClientSession, faults: Faults, n: int) -> list[str]:
        async with Sandbox(tokens=5, faults=faults) as sb:
            api = Api(http, sb)
            return [await outcome(api) for _ in range(n)]

    async def test_same_seed_same_faults(self, http: aiohttp.ClientSession) -> None:
        faults = Faults(error_rate=0.4, kinds=("500", "503", "429", "drop"), seed=7)
        first = await self._sequence(http, faults, 40)
        assert first == await self._sequence(http, faults, 40)
        assert {"200", "500", "503", "429", "drop"} <= set(first)
        other = await self._sequence(http, Faults(error_rate=0.4, seed=8), 40)
        assert other != first

    async def test_rate_is_roughly_honoured(self, http: aiohttp.ClientSession) -> None:
        seen = await self._sequence(http, Faults(error_rate=0.25, kinds=("503",), seed=1), 200)
        assert 30 <= seen.count("503") <= 70

    async def test_every_request_fails_at_rate_1(self, http: aiohttp.ClientSession) -> None:
        assert set(await self._sequence(http, Faults(error_rate=1.0, kinds=("500",)), 10)) == {
            "500"
        }

    async def test_swapping_faults_while_running(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(error_rate=1.0, kinds=("503",))
        assert await outcome(api) == "503"
        sb.faults = None
        assert await outcome(api) == "200"

    async def test_mutations_only(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(error_rate=1.0, kinds=("503",), mutations_only=True)
        assert await outcome(api) == "200"
        assert await outcome(api, "POST", json={}) == "503"

    async def test_script_wins(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(error_rate=1.0, kinds=("503",))
        sb.script({1: "429"})
        assert [await outcome(api), await outcome(api)] == ["429", "503"]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"error_rate": 1.5},
            {"latency": -1},
            {"kinds": ("418",)},
            {"error_rate": 0.5, "kinds": ()},
        ],
    )
    def test_bad_faults_are_refused(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError, match=r"must|unknown|needs"):
            Faults(**kwargs)  # type: ignore[arg-type]


class TestGuaranteedFaults:
    """first_n and every fail exact eligible requests, whatever the RNG would draw."""

    async def test_every_third_request(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(every=3, kinds=("503",))
        seen = [await outcome(api) for _ in range(7)]
        assert seen == ["200", "200", "503", "200", "200", "503", "200"]

    async def test_first_n(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(first_n=2, kinds=("500",))
        assert [await outcome(api) for _ in range(4)] == ["500", "500", "200", "200"]

    async def test_first_n_and_every_together(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(first_n=1, every=4, kinds=("429",))
        seen = [await outcome(api) for _ in range(8)]
        assert seen == ["429", "200", "200", "429", "200", "200", "200", "429"]

    async def test_counts_only_eligible_requests(self, api: Api, sb: Sandbox) -> None:
        """With mutations_only, GETs neither fail nor count towards every=2."""
        sb.faults = Faults(every=2, kinds=("503",), mutations_only=True)
        seen = [
            await outcome(api, "POST", json={}),
            await outcome(api),
            await outcome(api, "POST", json={}),
            await outcome(api),
        ]
        assert seen == ["400", "200", "503", "200"]

    async def test_swapping_faults_restarts_the_count(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(every=2, kinds=("503",))
        assert await outcome(api) == "200"
        sb.faults = Faults(every=2, kinds=("503",))
        assert [await outcome(api), await outcome(api)] == ["200", "503"]

    async def test_script_wins(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(first_n=2, kinds=("503",))
        sb.script({1: "429"})
        assert [await outcome(api), await outcome(api), await outcome(api)] == [
            "429",
            "503",
            "503",
        ]

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"every": -1}, "every must be a whole number >= 0, got -1"),
            ({"first_n": 1.5}, "first_n must be a whole number >= 0, got 1.5"),
            ({"every": True}, "every must be a whole number >= 0, got True"),
            (
                {"every": 3, "kinds": ()},
                "error_rate, first_n or every needs at least one fault kind",
            ),
        ],
    )
    def test_bad_values_are_refused(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            Faults(**kwargs)  # type: ignore[arg-type]


class TestLatency:
    """latency (and jitter) delay every answer."""

    async def test_latency(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(latency=0.15)
        started = time.monotonic()
        assert (await api.get()).status == 200
        assert time.monotonic() - started >= 0.15

    async def test_jitter_adds_up_to_its_bound(self, api: Api, sb: Sandbox) -> None:
        sb.faults = Faults(latency=0.02, latency_jitter=0.05)
        for _ in range(3):
            started = time.monotonic()
            await api.get()
            assert 0.02 <= time.monotonic() - started < 0.5

    async def test_stop_does_not_wait_out_latency(self, http: aiohttp.ClientSession) -> None:
        sb = Sandbox(tokens=5, faults=Faults(latency=30))
        await sb.start()
        await stops_at_once(sb, http)
