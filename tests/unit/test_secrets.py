"""The API key and a full created token never show: no repr, str, exception or log record."""

from __future__ import annotations

import copy
import json
import logging
import pickle
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from cellcast_async import (
    APIError,
    CellcastSession,
    CreatedToken,
    DecodeError,
    Secret,
    TransportError,
)

from .._exceptions_seen import exception_chain
from ..seed_samples import (
    CREATE_201,
    LIST_200,
    NOT_FOUND_404,
    UNAUTHORIZED_401,
    UPDATE_200,
)
from ._support import ANY_TOKEN_URL, API_KEY, TOKENS_URL, session

# A realistic full token, as create returns it once (seed 001 shows it truncated).
FULL_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiI2ODc3YTM4M2Q2ODc4MWJlYjNiMTQxMTAiLCJqdGkiOiI2ODc3YjEyMzQ1Njc4OTBhYmNkZWYxMjMi"
    "LCJpYXQiOjE3MDUzMTQ2MDB9."
    "Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1zaWduYXR1cmUtN2Y0YQ"
)
SECRETS = (API_KEY, FULL_TOKEN)


def created_201(**data_overrides: Any) -> dict[str, Any]:
    """Seed 001's 201 answer, carrying the full token."""
    body = copy.deepcopy(CREATE_201)
    body["data"]["token"] = FULL_TOKEN
    body["data"].update(data_overrides)
    return body


class Shown:
    """Everything the SDK showed during a run: reprs, strs, exception texts, log records."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, *objects: Any) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]
            if isinstance(obj, BaseException):
                for link in exception_chain(obj):
                    self.texts += [repr(link), str(link), repr(link.args)]

    def add_records(self, records: list[logging.LogRecord]) -> None:
        for record in records:
            self.texts += [record.getMessage(), repr(record.args), repr(record.__dict__)]

    def assert_no_secret(self) -> None:
        for text in self.texts:
            for secret in SECRETS:
                assert secret not in text, f"a secret was shown in: {text[:200]}"


async def expect_error(shown: Shown, cls: type[BaseException], call: Any) -> BaseException:
    with pytest.raises(cls) as info:
        await call
    shown.add(info.value)
    return info.value


def malformed_response_error(url: URL, **kwargs: Any) -> None:
    """What aiohttp raises for a malformed HTTP answer: the request's headers ride along."""
    headers = CIMultiDictProxy(CIMultiDict(kwargs["headers"]))
    info = aiohttp.RequestInfo(url, "GET", headers, url)
    raise aiohttp.ClientResponseError(info, (), status=400, message="Invalid header value")


class TestWholeRun:
    """create, get, list, update and delete, happy and failing, at DEBUG on every logger."""

    async def test_no_secret_anywhere(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        caplog.set_level(logging.DEBUG)
        monkeypatch.setenv("CELLCAST_API_KEY", API_KEY)
        shown = Shown()
        with aioresponses() as m:
            # create: 429 then the full token; then a few broken creates holding it
            m.post(TOKENS_URL, status=429, headers={"Retry-After": "1"}, payload={})
            m.post(TOKENS_URL, status=201, payload=created_201())
            m.post(TOKENS_URL, status=201, payload=created_201(createdAt="not a date"))
            m.post(TOKENS_URL, status=201, payload=created_201(_id=None))
            m.post(TOKENS_URL, status=201, payload=created_201(name=12345))
            m.post(
                TOKENS_URL,
                status=201,
                payload={k: v for k, v in created_201().items() if k != "data"},
            )
            m.post(TOKENS_URL, status=200, payload={**created_201(), "status": False})
            m.post(TOKENS_URL, status=500, payload=created_201())
            m.post(TOKENS_URL, status=201, body=str(created_201())[:-5])
            m.post(TOKENS_URL, status=201, body=FULL_TOKEN, content_type="text/plain")
            # list: 503, then the seed listing
            m.get(ANY_TOKEN_URL, status=503, payload={"message": "Service Unavailable"})
            m.get(ANY_TOKEN_URL, payload=LIST_200)
            # get: 401, then a connection that keeps dropping, then a malformed answer
            m.get(ANY_TOKEN_URL, status=401, payload=UNAUTHORIZED_401)
            m.get(ANY_TOKEN_URL, exception=aiohttp.ServerDisconnectedError(), repeat=3)
            m.get(ANY_TOKEN_URL, callback=malformed_response_error)
            # update: 404, then ok; delete: lost answer then 404 (done), then a plain 404
            m.put(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)
            m.put(ANY_TOKEN_URL, payload=UPDATE_200)
            m.delete(ANY_TOKEN_URL, exception=aiohttp.ClientConnectionError("reset"))
            m.delete(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)
            m.delete(ANY_TOKEN_URL, status=404, payload=NOT_FOUND_404)

            async with CellcastSession() as cc:
                shown.add(cc, cc.tokens, cc._transport)
                created = await cc.tokens.create(name="Production API", sub_account_id="sub1")
                assert created.token.reveal() == FULL_TOKEN  # the secret really went through
                shown.add(created, created.token, created.token.masked)

                await expect_error(
                    shown, DecodeError, cc.tokens.create(name="n", sub_account_id="s")
                )
                await expect_error(
                    shown, DecodeError, cc.tokens.create(name="n", sub_account_id="s")
                )
                await expect_error(
                    shown, DecodeError, cc.tokens.create(name="n", sub_account_id="s")
                )
                await expect_error(
                    shown, DecodeError, cc.tokens.create(name="n", sub_account_id="s")
                )
                await expect_error(shown, APIError, cc.tokens.create(name="n", sub_account_id="s"))
                await expect_error(shown, APIError, cc.tokens.create(name="n", sub_account_id="s"))
                await expect_error(
                    shown, DecodeError, cc.tokens.create(name="n", sub_account_id="s")
                )
                await expect_error(
                    shown, DecodeError, cc.tokens.create(name="n", sub_account_id="s")
                )

                pager = cc.tokens.list(status="active", concurrency=2)
                shown.add(pager)
                page = await pager
                shown.add(pager, page, *page.items)

                await expect_error(shown, APIError, cc.tokens.get("tok001"))
                await expect_error(shown, TransportError, cc.tokens.get("tok001"))
                await expect_error(shown, TransportError, cc.tokens.get("tok001"))

                await expect_error(shown, APIError, cc.tokens.update("tok001", name="x"))
                shown.add(await cc.tokens.update("tok001", status="inactive"))
                assert await cc.tokens.delete("tok001") is None
                await expect_error(shown, APIError, cc.tokens.delete("tok001"))
            shown.add(cc)

        shown.add_records(caplog.records)
        assert any(r.getMessage().startswith("retrying ") for r in caplog.records)
        shown.assert_no_secret()

    async def test_malformed_answer_error_does_not_carry_the_key(self) -> None:
        """aiohttp's ClientResponseError repr prints the request headers: never the key."""
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, callback=malformed_response_error)
            async with session(max_retries=0) as cc:
                with pytest.raises(TransportError) as info:
                    await cc.tokens.get("tok001")

        exc = info.value
        assert type(exc) is TransportError
        assert str(exc) == (
            "GET /api/v1/apiClient/token/tok001: the answer is not valid HTTP "
            "(status line or headers)"
        )
        assert exc.kind == "protocol"
        # aiohttp's error (whose request_info holds the key) is not chained at all.
        assert exc.__cause__ is None
        assert exc.__context__ is None
        for link in exception_chain(exc):
            assert API_KEY not in repr(link)
            assert API_KEY not in str(link)

    async def test_misuse_messages_do_not_quote_the_key(self) -> None:
        with pytest.raises(ValueError, match="control characters") as info:
            CellcastSession(api_key=API_KEY + "\n")

        assert API_KEY not in str(info.value)
        assert API_KEY not in repr(info.value.args)


class TestSecret:
    """``Secret`` shows at most its last 4 characters, compares by value, is immutable."""

    def test_repr_and_str_show_only_the_last_four(self) -> None:
        secret = Secret(FULL_TOKEN)

        assert repr(secret) == f"Secret('****{FULL_TOKEN[-4:]}')"
        assert str(secret) == f"****{FULL_TOKEN[-4:]}"
        assert secret.masked == f"****{FULL_TOKEN[-4:]}"
        assert f"{secret}" == f"****{FULL_TOKEN[-4:]}"
        assert FULL_TOKEN not in f"{secret!r} {secret!s} {[secret]} { ({'t': secret}) }"

    @pytest.mark.parametrize("value", ["", "a", "abcd", "abcdefgh", "abcdefghijk"])
    def test_short_values_show_nothing(self, value: str) -> None:
        assert str(Secret(value)) == "****"
        assert repr(Secret(value)) == "Secret('****')"

    def test_reveal(self) -> None:
        assert Secret(FULL_TOKEN).reveal() == FULL_TOKEN

    def test_equality_by_value(self) -> None:
        assert Secret(FULL_TOKEN) == Secret(FULL_TOKEN)
        assert Secret(FULL_TOKEN) != Secret(FULL_TOKEN + "x")
        assert Secret(FULL_TOKEN) != FULL_TOKEN  # a Secret is not its plain string

    def test_equality_of_a_value_json_can_carry_but_utf8_cannot(self) -> None:
        # json.loads('"\\ud800"') is a lone surrogate: a server can send one.
        odd = json.loads('"tok\\ud800en-value"')

        assert Secret(odd) == Secret(odd)
        assert Secret(odd) != Secret(odd + "x")

    def test_hashable(self) -> None:
        assert hash(Secret(FULL_TOKEN)) == hash(Secret(FULL_TOKEN))
        assert len({Secret("a" * 20), Secret("a" * 20), Secret("b" * 20)}) == 2

    def test_immutable(self) -> None:
        secret = Secret(FULL_TOKEN)

        with pytest.raises(AttributeError, match="Secret is immutable"):
            secret._value = "other"
        with pytest.raises(AttributeError, match="Secret is immutable"):
            secret.extra = 1
        with pytest.raises(AttributeError, match="Secret is immutable"):
            del secret._value
        assert secret.reveal() == FULL_TOKEN

    def test_only_strings(self) -> None:
        with pytest.raises(TypeError, match="Secret takes a str, not bytes"):
            Secret(FULL_TOKEN.encode())  # type: ignore[arg-type]

    def test_copy_and_pickle_keep_the_value(self) -> None:
        secret = Secret(FULL_TOKEN)

        assert copy.copy(secret) == secret
        assert copy.deepcopy(secret) == secret
        assert pickle.loads(pickle.dumps(secret)) == secret

    def test_created_token_repr_is_masked(self) -> None:
        from datetime import datetime, timezone

        created = CreatedToken(
            id="t",
            name="n",
            token=Secret(FULL_TOKEN),
            status="active",
            created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
        )

        assert FULL_TOKEN not in repr(created)
        assert FULL_TOKEN not in str(created)
        assert f"****{FULL_TOKEN[-4:]}" in repr(created)
