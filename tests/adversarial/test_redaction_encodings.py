"""A server that echoes a secret in any encoding never gets it past the redactor.

Every encoding of README "Redaction" x the API key and a token value the session got
from an earlier answer: each is masked in the exception's message, ``str()``, args,
``.detail``, ``.body``, ``.headers`` and ``.request_id``, and in the CLI's error line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from cellcast_async import BadRequestError, CellcastSession

from ..cli._support import run_cli
from ._redaction_server import ENCODINGS, HUGE_CUT, TOKEN_ID, EchoServer

# A key with characters every encoding spells differently: '"', '\\', '/', '+', '='.
KEY = 'ck_live_q"u\\o/te+eq=9f2a7c4e1b8d6f3a0e5c9b7d1a3f8e6c'
MASK = "****"
BODY_BUDGET = 2**20  # README "Redaction": an error's .body keeps the first MiB of text
# What str() of the error says: the server's message, then its error.message.
SAID = f"key {MASK} rejected: echo {MASK} end"


@pytest.fixture(scope="module")
def server() -> Iterator[EchoServer]:
    hostile = EchoServer()
    yield hostile
    hostile.close()


@pytest.fixture
def echo(server: EchoServer) -> Iterator[EchoServer]:
    yield server
    server.secret, server.encode = None, ENCODINGS["plain"]


def shown(exc: BadRequestError) -> list[str]:
    """Every text of the error a user could print or log."""
    return [
        str(exc),
        repr(exc),
        exc.message,
        repr(exc.args),
        repr(exc.detail),
        json.dumps(exc.body),
        repr(dict(exc.headers)),
        repr(exc.request_id),
    ]


def leaks(texts: list[str], secret: str) -> list[tuple[str, str]]:
    return [
        (name, text[:120])
        for name, encode in ENCODINGS.items()
        for text in texts
        if encode(secret) in text
    ]


def assert_masked(exc: BadRequestError, secret: str) -> None:
    assert type(exc) is BadRequestError
    assert exc.status_code == 400
    # The whole echo is one mask, and the server's own words stay around it.
    assert exc.message == f"key {MASK} rejected"
    assert exc.detail == f"echo {MASK} end"
    assert exc.body == {
        "status": False,
        "message": f"key {MASK} rejected",
        "data": {"echo": MASK},
        "error": {"message": f"echo {MASK} end"},
    }
    assert exc.headers["X-Echo"] == f"was {MASK}"
    assert exc.request_id == f"req-{MASK}"
    assert str(exc) == f"GET /api/v1/apiClient/token/{TOKEN_ID} -> 400 {SAID}"
    assert leaks(shown(exc), secret) == []


async def failing_get(cc: CellcastSession) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        await cc.tokens.get(TOKEN_ID)
    return info.value


class TestTheKey:
    """The session's key, echoed in each encoding, is masked in every field."""

    @pytest.mark.parametrize("encoding", list(ENCODINGS))
    async def test_every_field(self, echo: EchoServer, encoding: str) -> None:
        echo.encode = ENCODINGS[encoding]
        async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
            exc = await failing_get(cc)
        assert_masked(exc, KEY)


class TestTokenValuesTheSessionHasSeen:
    """A full token value from an earlier answer of the session is masked when echoed."""

    @pytest.mark.parametrize("encoding", list(ENCODINGS))
    async def test_from_create(self, echo: EchoServer, encoding: str) -> None:
        async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
            created = await cc.tokens.create(name="Production API", sub_account_id="s")
            echo.secret, echo.encode = created.token.reveal(), ENCODINGS[encoding]
            exc = await failing_get(cc)
        assert echo.secret == echo.created[-1]
        assert_masked(exc, echo.secret)

    async def test_never_logged(self, echo: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
        """Learning a value logs nothing of it; a view of the session knows it too."""
        with caplog.at_level(logging.DEBUG):
            async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
                view = cc.with_options(timeout=5)
                await view.tokens.create(name="Production API", sub_account_id="s")
                echo.secret, echo.encode = echo.created[-1], ENCODINGS["hex"]
                exc = await failing_get(cc)
                logging.getLogger("cellcast_async").debug("echo: %s", echo.secret)
        assert_masked(exc, echo.secret)
        records = [record.getMessage() for record in caplog.records]
        assert records[-1] == f"echo: {MASK}"
        assert leaks(records, echo.secret) == []
        assert leaks([repr(cc), repr(cc._redactor)], echo.secret) == []

    async def test_from_any_answer(self, echo: EchoServer) -> None:
        async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
            await cc.tokens.get("full")  # a server that sends a full value on a read
            echo.secret, echo.encode = echo.created[-1], ENCODINGS["base64url-unpadded"]
            exc = await failing_get(cc)
        assert_masked(exc, echo.secret)

    async def test_another_session_did_not_see_it(self, echo: EchoServer) -> None:
        """What a session learns is its own: a value it never received is not guessed."""
        async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
            await cc.tokens.create(name="Production API", sub_account_id="s")
        seen_elsewhere = echo.created[-1]
        echo.secret = seen_elsewhere
        async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
            exc = await failing_get(cc)
        assert exc.message == f"key {seen_elsewhere} rejected"


class TestHugeAnswers:
    """A 5 MB error answer: the message is cut once masked, the body kept up to 1 MiB."""

    async def test_cut_and_budget(self, echo: EchoServer) -> None:
        async with CellcastSession(api_key=KEY, base_url=echo.url, max_retries=0) as cc:
            with pytest.raises(BadRequestError) as info:
                await cc.tokens.get("huge")
        exc = info.value
        assert exc.message == (
            "x" * (HUGE_CUT - 10) + MASK + "y" * 6 + "... [34,464 more characters not shown]"
        )
        data = exc.body["data"]
        assert data[0] == f"{MASK} {0:090d}"
        assert data[-1] == "... [the rest of the answer is not shown: over 1 MiB of text]"
        # The budget counts each string and key as its length plus 16 (a bool as 16):
        # "status", False, "message", the message, "data", then items until it is spent.
        before = (6 + 16) + 16 + (7 + 16) + (100_000 + 16) + (4 + 16)
        per_item = len(KEY) + 1 + 90 + 16
        assert len(data) == -(-(BODY_BUDGET - before) // per_item) + 1
        assert leaks([exc.message, json.dumps(exc.body)], KEY) == []


class TestCommandLine:
    """The CLI's error line (plain, ``--json``, ``--debug``) masks every encoding."""

    @pytest.mark.parametrize("encoding", list(ENCODINGS))
    def test_error_line(self, echo: EchoServer, encoding: str) -> None:
        echo.encode = ENCODINGS[encoding]
        args = ["--api-key", KEY, "--base-url", echo.url, "--max-retries", "0"]
        plain = run_cli(*args, "get", TOKEN_ID)
        as_json = run_cli(*args, "--json", "get", TOKEN_ID)
        debug = run_cli(*args, "--debug", "get", TOKEN_ID)
        expected = f"GET /api/v1/apiClient/token/{TOKEN_ID} -> 400 {SAID}"
        assert (plain.code, plain.out, plain.err) == (1, "", f"error: {expected}\n")
        assert (as_json.code, as_json.out) == (1, "")
        answer: dict[str, Any] = json.loads(as_json.err)
        assert answer == {"class": "BadRequestError", "status": 400, "message": expected}
        assert debug.code == 1
        assert debug.err.endswith(f"error: {expected}\n")
        runs = (plain, as_json, debug)
        assert leaks([text for run in runs for text in (run.out, run.err)], KEY) == []
