"""The sandbox's rate limit (a token bucket per key), its capacity, and deep JSON bodies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from cellcast_async import CellcastSession, RateLimitError
from cellcast_async.sandbox import Faults, Sandbox
from cellcast_async.sandbox._app import MAX_JSON_DEPTH, loads_body
from cellcast_async.sandbox._state import RateDecision, RateLimiter
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api

TOO_MANY = {
    "status": False,
    "message": "Too many requests",
    "message_type": "toast",
    "data": {},
    "error": {"message": "Rate limit exceeded"},
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestRateLimiter:
    """The bucket's arithmetic, on a fake clock."""

    def test_burst_then_refill(self) -> None:
        """A full bucket of 3 at 2/s: three pass, the fourth waits 0.5 s, refill restores."""
        clock = FakeClock()
        limiter = RateLimiter(2.0, 3, clock)
        assert [limiter.take("k").allowed for _ in range(4)] == [True, True, True, False]
        assert limiter.take("k") == RateDecision(
            allowed=False, retry_after=0.5, limit=5, remaining=2, reset=1
        )
        clock.now = 0.5
        assert limiter.take("k").allowed
        assert not limiter.take("k").allowed
        clock.now = 100.0
        assert [limiter.take("k").allowed for _ in range(4)] == [True, True, True, False]

    def test_one_bucket_per_key(self) -> None:
        """Another key (or no key) has its own bucket."""
        limiter = RateLimiter(1.0, 1, FakeClock())
        assert limiter.take("a").allowed
        assert not limiter.take("a").allowed
        assert limiter.take("b").allowed
        assert limiter.take(None).allowed

    def test_default_burst_is_one_second(self) -> None:
        """No burst given: one second's worth of tokens (at least 1)."""
        assert RateLimiter(10.0).burst == 10.0
        assert RateLimiter(0.5).burst == 1.0

    @pytest.mark.parametrize(
        ("rate", "burst", "message"),
        [
            (0, None, "rate_limit must be a positive number, got 0"),
            (-1.0, None, "rate_limit must be a positive number, got -1.0"),
            (float("nan"), None, "rate_limit must be a positive number, got nan"),
            (True, None, "rate_limit must be a positive number, got True"),
            (1.0, 0.5, "burst must be a number >= 1, got 0.5"),
            (1.0, "2", "burst must be a number >= 1, got '2'"),
        ],
    )
    def test_misuse(self, rate: object, burst: object, message: str) -> None:
        """Bad rates and bursts are ValueErrors with exact messages."""
        with pytest.raises(ValueError, match=r"^(rate_limit|burst) must") as info:
            RateLimiter(rate, burst)  # type: ignore[arg-type]
        assert str(info.value) == message


class TestSandboxArguments:
    """Sandbox(...) refuses rate-limit and capacity arguments that make no sense."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"burst": 5}, "burst needs a rate_limit"),
            ({"rate_limit_headers": True}, "rate_limit_headers needs a rate_limit"),
            ({"capacity": 0}, "capacity must be a positive integer or None, got 0"),
            ({"capacity": True}, "capacity must be a positive integer or None, got True"),
            ({"rate_limit": 0}, "rate_limit must be a positive number, got 0"),
        ],
    )
    def test_misuse(self, kwargs: dict[str, object], message: str) -> None:
        """Each is a ValueError with its exact message."""
        with pytest.raises(ValueError, match=r"^\w+ ") as info:
            Sandbox(**kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message


@pytest.fixture
async def limited() -> AsyncIterator[Sandbox]:
    async with Sandbox(tokens=30, rate_limit=0.5, burst=3) as sandbox:
        yield sandbox


class TestOverHttp:
    """Over HTTP: 429 in the sandbox's error envelope, with Retry-After, counted."""

    async def test_empty_bucket_answers_429(
        self, limited: Sandbox, http: aiohttp.ClientSession
    ) -> None:
        """Three pass (the burst), the fourth is a 429 with Retry-After in whole seconds."""
        api = Api(http, limited)
        statuses = [(await api.get()).status for _ in range(3)]
        reply = await api.get()
        assert statuses == [200, 200, 200]
        assert reply.status == 429
        assert reply.body == TOO_MANY
        assert reply.headers["Retry-After"] == "2"
        assert "X-RateLimit-Remaining" not in reply.headers
        assert limited.rate_limited == 1
        assert len(limited.requests) == 4  # a refused request is still recorded

    async def test_buckets_are_per_key(self, limited: Sandbox, http: aiohttp.ClientSession) -> None:
        """Another key's bucket is full when the first key's is empty."""
        api = Api(http, limited)
        for _ in range(3):
            await api.get()
        assert (await api.get()).status == 429
        assert (await api.get(key=limited.other_api_key)).status == 200

    async def test_headers_on_every_answer(self, http: aiohttp.ClientSession) -> None:
        """rate_limit_headers=True: X-RateLimit-* on 200s, 404s and 429s alike."""
        async with Sandbox(tokens=5, rate_limit=0.5, burst=2, rate_limit_headers=True) as sb:
            api = Api(http, sb)
            ok = await api.get()
            missing = await api.get(f"{TOKENS_PATH}/nope")
            refused = await api.get()
        replies = (ok, missing, refused)
        assert [r.status for r in replies] == [200, 404, 429]
        assert [r.headers["X-RateLimit-Limit"] for r in replies] == ["2"] * 3  # int(0.5 + 2)
        assert [r.headers["X-RateLimit-Reset"] for r in replies] == ["1"] * 3
        # What the next second can take: int(tokens left + 0.5 per second).
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["1", "0", "0"]

    async def test_sdk_reads_it_as_rate_limit_error(self, limited: Sandbox) -> None:
        """The SDK maps the sandbox's 429 to RateLimitError with its Retry-After."""
        async with CellcastSession(
            api_key=limited.api_key, base_url=limited.url, max_retries=0
        ) as cc:
            for _ in range(3):
                await cc.tokens.list()
            with pytest.raises(RateLimitError) as info:
                await cc.tokens.list()
        assert info.value.status_code == 429
        assert info.value.retry_after == 2.0


class TestCapacity:
    """capacity=N: beyond N requests at once, answers queue."""

    @pytest.mark.parametrize(("capacity", "peak"), [(2, 2), (None, 8)])
    async def test_peak_in_flight(
        self, http: aiohttp.ClientSession, capacity: int | None, peak: int
    ) -> None:
        """Eight concurrent requests with 50 ms latency: at most `capacity` worked on."""
        async with Sandbox(tokens=5, capacity=capacity, faults=Faults(latency=0.05)) as sb:
            api = Api(http, sb)
            replies = await asyncio.gather(*(api.get() for _ in range(8)))
            assert sb.peak_in_flight == peak
        assert [r.status for r in replies] == [200] * 8


class TestDeepJson:
    """A body nested ~1,000 levels deep is the documented 400, not a plain-text 500."""

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
    @pytest.mark.parametrize("method", ["POST", "PUT"])
    async def test_answers_400(self, api: Api, sb: Sandbox, depth: int, method: str) -> None:
        """Arrays nested `depth` deep: 400 "Request body must be valid JSON"."""
        path = (
            TOKENS_PATH if method == "POST" else f"{TOKENS_PATH}/{(await api.first_token())['_id']}"
        )
        body = "[" * depth + "]" * depth
        reply = await api.call(
            method,
            path,
            data=body,
            headers={**api.auth(), "Content-Type": "application/json"},
        )
        assert reply.status == 400
        assert reply.body["message"] == "Validation error"
        assert reply.detail == "Request body must be valid JSON"
        assert sb.requests[-1].json is None

    async def test_reads_up_to_the_limit(self, api: Api, sb: Sandbox) -> None:
        """An object nesting exactly MAX_JSON_DEPTH deep is read: its fields are checked."""
        inner = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
        reply = await api.call(
            "POST",
            TOKENS_PATH,
            data='{"name": ' + inner + "}",
            headers={**api.auth(), "Content-Type": "application/json"},
        )
        assert reply.status == 400
        assert reply.detail == "API name is required"
        assert sb.requests[-1].json is not None


class TestLoadsBody:
    """The sandbox's JSON reader gives the same verdict on every Python."""

    @pytest.mark.parametrize("depth", [1, MAX_JSON_DEPTH])
    def test_up_to_the_limit(self, depth: int) -> None:
        """Arrays or objects nested up to the limit parse as json.loads does."""
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            assert loads_body(body.encode()) == json.loads(body)

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 3_000, 100_000])
    def test_deeper_is_not_json(self, depth: int) -> None:
        """One level more (or far more, past the parser's own limit) is a ValueError."""
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            with pytest.raises(ValueError, match=r"^not JSON, or nested too deep$") as info:
                loads_body(body.encode())
            assert info.value.__context__ is None

    def test_many_brackets_side_by_side_are_fine(self) -> None:
        """Breadth is not depth: 10,000 sibling arrays two deep are read."""
        body = "[" + ",".join(["[[]]"] * 10_000) + "]"
        assert loads_body(body.encode()) == json.loads(body)

    @pytest.mark.parametrize("body", [b"", b"[", b"\xff", b"{'a': 1}"])
    def test_not_json(self, body: bytes) -> None:
        with pytest.raises(ValueError, match=r"^not JSON, or nested too deep$"):
            loads_body(body)
