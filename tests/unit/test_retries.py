"""Retries, backoff, Retry-After and timeouts, on the fake clock of ``tests/conftest.py``."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

import cellcast_async
from cellcast_async import (
    ApiToken,
    BadRequestError,
    CreatedToken,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
    TransportError,
)
from cellcast_async._protocol import backoff_delay, is_retryable, parse_retry_after

from ..seed_samples import CREATE_201, CREATE_400_DUPLICATE, DELETE_200, NOT_FOUND_404
from ._support import (
    ANY_TOKEN_URL,
    API_KEY,
    OK,
    SLOW_DOWN,
    TOKEN_PATH,
    TOKENS_PATH,
    TOKENS_URL,
    UNAVAILABLE,
    exactly,
    session,
)


def count(m: aioresponses) -> int:
    return sum(len(calls) for calls in m.requests.values())


def retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "cellcast_async" and r.getMessage().startswith("retrying ")
    ]


async def get_after(
    retry_after: str, *, status: int = 429, body: dict[str, Any] = SLOW_DOWN
) -> tuple[ApiToken, int]:
    """``tokens.get("tok001")`` answered ``status`` with ``Retry-After: retry_after``, then
    200: the token and how many requests were sent."""
    with aioresponses() as m:
        m.get(ANY_TOKEN_URL, status=status, headers={"Retry-After": retry_after}, payload=body)
        m.get(ANY_TOKEN_URL, payload=OK)
        async with session() as cc:
            token = await cc.tokens.get("tok001")
    return token, count(m)


class TestRetryAfter:
    """429 waits what ``Retry-After`` says, in seconds or as an HTTP date, up to a cap."""

    async def test_seconds(self, fake_sleep: Any) -> None:
        token, requests = await get_after("2")

        assert token.id == "tok001"
        # A 429 pauses the session for Retry-After from the answer: a hair under 2 s.
        assert fake_sleep.delays == [pytest.approx(2.0, abs=0.05)]
        assert requests == 2

    async def test_http_date(self, fake_sleep: Any) -> None:
        when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=30)
        await get_after(format_datetime(when, usegmt=True))

        (delay,) = fake_sleep.delays
        assert 28.0 <= delay <= 30.0

    @pytest.mark.parametrize(
        "retry_after",
        [
            # A date already past would mean instant retries: the normal backoff applies.
            pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", id="http_date_in_the_past"),
            pytest.param("soon", id="unparseable"),
        ],
    )
    async def test_falls_back_to_backoff(self, retry_after: str, fake_sleep: Any) -> None:
        await get_after(retry_after)

        (delay,) = fake_sleep.delays
        assert 0.0 <= delay <= 0.5  # backoff attempt 0: base 0.5, full jitter

    async def test_longer_than_the_cap_raises_with_retry_after(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=429, headers={"Retry-After": "120"}, payload=SLOW_DOWN)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session() as cc:
                with pytest.raises(RateLimitError) as info:
                    await cc.tokens.get("tok001")

        assert info.value.retry_after == 120.0
        assert info.value.status_code == 429
        assert str(info.value) == f"GET {TOKEN_PATH} -> 429 Too many requests"
        assert fake_sleep.delays == []
        assert count(m) == 1

    async def test_exhausted_429_raises_rate_limit_with_retry_after(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(
                ANY_TOKEN_URL,
                status=429,
                headers={"Retry-After": "3"},
                payload=SLOW_DOWN,
                repeat=True,
            )
            async with session(max_retries=2) as cc:
                with pytest.raises(RateLimitError) as info:
                    await cc.tokens.get("tok001")

        assert info.value.retry_after == 3.0
        assert fake_sleep.delays == [pytest.approx(3.0, abs=0.05)] * 2
        assert count(m) == 3

    async def test_retry_after_on_a_503_is_honoured(self, fake_sleep: Any) -> None:
        await get_after("4", status=503, body=UNAVAILABLE)

        assert fake_sleep.delays == [4.0]

    async def test_date_too_large_for_a_datetime_falls_back_to_backoff(
        self, fake_sleep: Any
    ) -> None:
        # email.utils raises OverflowError, not ValueError, on a huge hour or offset.
        huge = "Wed, 21 Oct 2015 99999999999999999999:00:00 GMT"
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=429, headers={"Retry-After": huge}, payload=SLOW_DOWN)
            m.get(ANY_TOKEN_URL, status=429, headers={"Retry-After": huge}, payload=SLOW_DOWN)
            async with session(max_retries=1) as cc:
                with pytest.raises(RateLimitError) as info:
                    await cc.tokens.get("tok001")

        assert info.value.retry_after is None
        assert fake_sleep.delays  # a short hold, as with no Retry-After at all
        assert all(0.0 <= delay <= 0.5 for delay in fake_sleep.delays)


class TestRetryOnStatus:
    """GET, PUT and DELETE are retried on 429, 500, 502, 503 and 504; POST only on 429."""

    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
    async def test_get_then_200(self, status: int, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=status, payload=UNAVAILABLE)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session() as cc:
                token = await cc.tokens.get("tok001")

        assert isinstance(token, ApiToken)
        assert count(m) == 2
        assert len(fake_sleep.delays) == 1

    async def test_put_503_then_200(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.put(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE)
            m.put(ANY_TOKEN_URL, payload=OK)
            async with session() as cc:
                token = await cc.tokens.update("tok001", name="New")

        assert token.id == "tok001"
        assert count(m) == 2

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 501])
    async def test_other_statuses_are_not_retried(self, status: int, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=status, payload=NOT_FOUND_404, repeat=True)
            async with session() as cc:
                with pytest.raises(cellcast_async.APIError):
                    await cc.tokens.get("tok001")

        assert count(m) == 1
        assert fake_sleep.delays == []

    async def test_exhausted_raises_the_last_server_error(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=500, payload={"message": "first"})
            m.get(ANY_TOKEN_URL, status=502, payload={"message": "second"})
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session(max_retries=2) as cc:
                with pytest.raises(ServerError) as info:
                    await cc.tokens.get("tok001")

        assert info.value.status_code == 503
        assert info.value.message == "Service Unavailable"
        assert count(m) == 3
        assert len(fake_sleep.delays) == 2

    async def test_post_500_is_sent_once(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.post(TOKENS_URL, status=500, payload={"message": "Internal error"})
            m.post(TOKENS_URL, status=201, payload=CREATE_201)
            async with session() as cc:
                with pytest.raises(ServerError) as info:
                    await cc.tokens.create(name="Production API", sub_account_id="sub1")

        assert info.value.status_code == 500
        assert str(info.value) == f"POST {TOKENS_PATH} -> 500 Internal error"
        assert count(m) == 1
        assert fake_sleep.delays == []

    @pytest.mark.parametrize(
        ("status", "body", "error"),
        [
            pytest.param(502, UNAVAILABLE, ServerError, id="502"),
            pytest.param(503, UNAVAILABLE, ServerError, id="503"),
            pytest.param(504, UNAVAILABLE, ServerError, id="504"),
            pytest.param(400, CREATE_400_DUPLICATE, BadRequestError, id="400"),
        ],
    )
    async def test_post_is_sent_once(
        self, status: int, body: dict[str, Any], error: type[Exception], fake_sleep: Any
    ) -> None:
        """A 5xx or a 400 on a POST: one request, the exact error class, no retry."""
        with aioresponses() as m:
            m.post(TOKENS_URL, status=status, payload=body, repeat=True)
            async with session() as cc:
                with pytest.raises(error) as info:
                    await cc.tokens.create(name="Production API", sub_account_id="sub1")

        assert type(info.value) is error
        assert count(m) == 1

    async def test_post_429_then_201_is_retried(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.post(TOKENS_URL, status=429, headers={"Retry-After": "1"}, payload=SLOW_DOWN)
            m.post(TOKENS_URL, status=201, payload=CREATE_201)
            async with session() as cc:
                created = await cc.tokens.create(name="Production API", sub_account_id="sub1")

        assert type(created) is CreatedToken
        assert count(m) == 2
        # README "Rate limits": a Retry-After of 1 s or less bounds a short hold (0.1 s,
        # jittered down by at most a fifth) before the one probing retry.
        (delay,) = fake_sleep.delays
        assert 0.07 <= delay <= 0.1

    async def test_max_retries_zero_is_one_attempt(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session(max_retries=0) as cc:
                with pytest.raises(ServerError):
                    await cc.tokens.get("tok001")

        assert count(m) == 1
        assert fake_sleep.delays == []

    async def test_max_retries_counts_extra_attempts(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE, repeat=5)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session(max_retries=5) as cc:
                await cc.tokens.get("tok001")

        assert count(m) == 6
        assert len(fake_sleep.delays) == 5


class TestRetryOnTransport:
    """Lost answers: connection errors and timeouts are retried for GET, PUT and DELETE."""

    @pytest.mark.parametrize(
        "error",
        [
            aiohttp.ServerDisconnectedError(),
            aiohttp.ClientConnectionError("Connection reset by peer"),
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            aiohttp.ClientPayloadError("Response payload is not completed"),
        ],
    )
    async def test_connection_error_then_200(self, error: Exception, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, exception=error)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session() as cc:
                token = await cc.tokens.get("tok001")

        assert token.id == "tok001"
        assert count(m) == 2
        assert len(fake_sleep.delays) == 1

    async def test_exhausted_raises_transport_error(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, exception=aiohttp.ClientConnectionError("reset"), repeat=True)
            async with session(max_retries=2) as cc:
                with pytest.raises(TransportError) as info:
                    await cc.tokens.get("tok001")

        assert type(info.value) is TransportError
        assert str(info.value) == f"GET {TOKEN_PATH}: the connection failed"
        assert info.value.kind == "connection"
        # aiohttp's own exception is never chained: its text may quote response bytes.
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
        assert count(m) == 3

    async def test_tls_certificate_error_is_not_retried(self, fake_sleep: Any) -> None:
        """A bad certificate will be just as bad on the next attempt: raised at once."""
        from aiohttp.client_reqrep import ConnectionKey

        key = ConnectionKey("api.cellcast.com", 443, True, True, None, None, None)
        error = aiohttp.ClientConnectorCertificateError(key, ValueError("self-signed"))
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, exception=error, repeat=True)
            async with session(max_retries=3) as cc:
                with pytest.raises(TransportError) as info:
                    await cc.tokens.get("tok001")

        assert type(info.value) is TransportError
        assert str(info.value) == (
            f"GET {TOKEN_PATH}: the certificate of api.cellcast.com:443 could not be verified"
        )
        assert info.value.kind == "tls"
        assert info.value.__cause__ is None
        assert count(m) == 1
        assert fake_sleep.delays == []

    async def test_post_connection_error_is_not_retried(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.post(TOKENS_URL, exception=aiohttp.ServerDisconnectedError())
            m.post(TOKENS_URL, status=201, payload=CREATE_201)
            async with session() as cc:
                with pytest.raises(TransportError):
                    await cc.tokens.create(name="Production API", sub_account_id="sub1")

        assert count(m) == 1

    async def test_timeout_is_our_timeout_error_and_retried(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, exception=asyncio.TimeoutError())
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session(timeout=5) as cc:
                token = await cc.tokens.get("tok001")

        assert token.id == "tok001"
        assert count(m) == 2

    async def test_timeouts_exhausted(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, exception=asyncio.TimeoutError(), repeat=True)
            async with session(timeout=5, max_retries=1) as cc:
                with pytest.raises(TimeoutError) as info:
                    await cc.tokens.get("tok001")

        assert isinstance(info.value, TransportError)
        assert isinstance(info.value, cellcast_async.CellcastError)
        assert type(info.value) is TimeoutError
        assert str(info.value) == f"GET {TOKEN_PATH}: no answer within 5 s"
        assert count(m) == 2

    async def test_timeout_without_a_limit(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, exception=asyncio.TimeoutError(), repeat=True)
            async with session(timeout=None, max_retries=0) as cc:
                with pytest.raises(TimeoutError, match=exactly(f"GET {TOKEN_PATH}: timed out")):
                    await cc.tokens.get("tok001")

    async def test_aiohttp_server_timeout_is_a_timeout(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.put(ANY_TOKEN_URL, exception=aiohttp.ServerTimeoutError("read timeout"), repeat=True)
            async with session(max_retries=0) as cc:
                with pytest.raises(TimeoutError):
                    await cc.tokens.update("tok001", name="x")

    async def test_post_timeout_is_not_retried(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.post(TOKENS_URL, exception=asyncio.TimeoutError(), repeat=True)
            async with session() as cc:
                with pytest.raises(TimeoutError):
                    await cc.tokens.create(name="Production API", sub_account_id="sub1")

        assert count(m) == 1


class TestDelete:
    """DELETE is retried, and a 404 after a lost answer counts as done."""

    async def test_lost_answer_then_404_returns_none(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, exception=aiohttp.ServerDisconnectedError())
            m.delete(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)
            async with session() as cc:
                result = await cc.tokens.delete("tok001")

        assert result is None
        assert count(m) == 2

    async def test_timeout_then_404_returns_none(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, exception=asyncio.TimeoutError())
            m.delete(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)
            async with session() as cc:
                assert await cc.tokens.delete("tok001") is None

    async def test_plain_404_is_not_found(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)
            async with session() as cc:
                with pytest.raises(NotFoundError) as info:
                    await cc.tokens.delete("tok001")

        assert info.value.detail == "API token not found"

    async def test_503_then_404_is_not_found(self, fake_sleep: Any) -> None:
        """A 503 is an answer, not a lost one: the first attempt did not delete anything."""
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE)
            m.delete(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)
            async with session() as cc:
                with pytest.raises(NotFoundError):
                    await cc.tokens.delete("tok001")

    @pytest.mark.parametrize(
        ("status", "content_type"),
        [(204, "text/plain"), (200, "application/json")],
        ids=["204-no-content", "200-no-body"],
    )
    async def test_an_empty_answer_is_done(
        self, fake_sleep: Any, status: int, content_type: str
    ) -> None:
        """A bare 204 (not in seed 003, but common) counts as deleted; so does a 200 with
        an empty body."""
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, status=status, body=b"", content_type=content_type)
            async with session() as cc:
                assert await cc.tokens.delete("tok001") is None

        assert count(m) == 1

    async def test_503_then_200(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.delete(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE)
            m.delete(ANY_TOKEN_URL, payload=DELETE_200)
            async with session() as cc:
                assert await cc.tokens.delete("tok001") is None

        assert count(m) == 2


CLOSED = "this CellcastSession is closed; open a new one"


class TestBackoff:
    """Exponential backoff with full jitter: each wait in ``[0, min(cap, base * 2**attempt)]``."""

    async def test_waits_stay_within_the_bounds(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE, repeat=True)
            async with session(max_retries=8) as cc:
                with pytest.raises(ServerError):
                    await cc.tokens.get("tok001")

        assert len(fake_sleep.delays) == 8
        for attempt, delay in enumerate(fake_sleep.delays):
            assert 0.0 <= delay <= min(8.0, 0.5 * 2**attempt)

    def test_a_huge_attempt_number_stays_at_the_cap(self) -> None:
        """2.0**attempt would overflow past about 1024 attempts; the cap holds instead."""
        rng = random.Random(7)
        assert 0.0 <= backoff_delay(5000, base=0.5, cap=8.0, rng=rng) <= 8.0

    async def test_closing_during_a_backoff_stops_the_retries(self) -> None:
        """aclose() while a request waits to retry: our RuntimeError, not aiohttp's."""
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE, repeat=True)

            async def close_while_waiting(delay: float) -> None:
                await cc.aclose()

            cc = session(max_retries=3, sleep=close_while_waiting)
            with pytest.raises(RuntimeError, match=exactly(CLOSED)):
                await cc.tokens.get("tok001")

        assert count(m) == 1

    def test_backoff_delay_bounds(self) -> None:
        rng = random.Random(1234)
        for attempt in range(12):
            ceiling = min(8.0, 0.5 * 2**attempt)
            delays = [backoff_delay(attempt, base=0.5, cap=8.0, rng=rng) for _ in range(200)]
            assert all(0.0 <= d <= ceiling for d in delays)
            assert max(delays) > ceiling / 2  # full jitter spreads over the whole range

    def test_backoff_delay_is_jittered(self) -> None:
        rng = random.Random(1)
        delays = {backoff_delay(3, base=0.5, cap=8.0, rng=rng) for _ in range(20)}

        assert len(delays) == 20


class TestRetryRules:
    """The pure retry rules of ``_protocol``."""

    @pytest.mark.parametrize(
        ("method", "status", "expected"),
        [
            ("GET", None, True),
            ("PUT", None, True),
            ("DELETE", None, True),
            ("POST", None, False),
            ("GET", 429, True),
            ("POST", 429, True),
            ("POST", 500, False),
            ("POST", 503, False),
            ("PUT", 504, True),
            ("DELETE", 502, True),
            ("GET", 501, False),
            ("GET", 404, False),
            ("GET", 200, False),
        ],
    )
    def test_is_retryable(self, method: str, status: int | None, expected: bool) -> None:
        assert is_retryable(method, status) is expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            ("2", 2.0),
            (" 7 ", 7.0),
            ("1.5", 1.5),
            ("-3", None),  # negative: treated as absent, the normal backoff applies
            ("soon", None),
            ("", None),
            ("inf", None),
            ("nan", None),
            ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
            ("Wed, 21 Oct 2015 07:27:00 GMT", None),  # already past: absent
            ("Wed, 21 Oct 2015 99999999999999999999:00:00 GMT", None),
            ("Wed, 21 Oct 2015 07:28:30 +99999999999999999999", None),
        ],
    )
    def test_parse_retry_after(self, value: str | None, expected: float | None) -> None:
        now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc)

        assert parse_retry_after(value, now=now) == expected


class TestRetryLogging:
    """Each retry is logged at DEBUG with method, path, attempt and wait, never the key."""

    async def test_retry_records(self, caplog: pytest.LogCaptureFixture, fake_sleep: Any) -> None:
        caplog.set_level(logging.DEBUG, logger="cellcast_async")
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=429, headers={"Retry-After": "2"}, payload=SLOW_DOWN)
            m.get(ANY_TOKEN_URL, exception=aiohttp.ServerDisconnectedError())
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session(max_retries=3) as cc:
                await cc.tokens.get("tok001")

        first, second = retry_records(caplog)
        assert first.levelno == logging.DEBUG
        assert first.getMessage() == (
            f"retrying GET {TOKEN_PATH} after 429: attempt 2 of 4 in 2.000 s"
        )
        wait = fake_sleep.delays[1]
        assert second.getMessage() == (
            f"retrying GET {TOKEN_PATH} after disconnected: attempt 3 of 4 in {wait:.3f} s"
        )
        for record in caplog.records:
            assert API_KEY not in record.getMessage()
            assert API_KEY not in repr(record.args)

    async def test_no_retry_no_retry_record(
        self, caplog: pytest.LogCaptureFixture, fake_sleep: Any
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="cellcast_async")
        with aioresponses() as m:
            m.post(TOKENS_URL, status=500, payload={"message": "boom"})
            async with session() as cc:
                with pytest.raises(ServerError):
                    await cc.tokens.create(name="n", sub_account_id="s")

        assert retry_records(caplog) == []
