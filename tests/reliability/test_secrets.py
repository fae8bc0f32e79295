"""Secrets: the API key and full token values never show, whatever happens, at DEBUG.

One full run, synchronous so that ``cli.main()`` can call ``asyncio.run`` itself: every
endpoint, every error path and the CLI audit, against a sandbox on its own thread (and
a few bare servers for answers the sandbox cannot give). Every text the run produced is
then searched for every secret.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
from aiohttp import web

from cellcast_async import (
    AuthenticationError,
    BadRequestError,
    CellcastSession,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TimeoutError,
    TransportError,
    cli,
)

from .._threaded_sandbox import ThreadedSandbox
from ._support import (
    TOKEN_ID,
    ByteServer,
    RawApp,
    answering,
    dumps,
    envelope,
    exception_texts,
    token_item,
)

# A full token as create returns it, carried by answers the sandbox cannot give.
FULL_TOKEN = "ccst_Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC10b2tlbi0x"
WRONG_KEY = "cc_wrong_key_5b0e8d2a7c4f1e9b3d6a0c8e2f5b7d1a"
MISSING = "0" * 24
app_log = logging.getLogger("reliability.app")  # what a user's service would log


class Formatted(logging.Handler):
    """Every record, formatted as a service's log file would hold it (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s %(args)r")
        )
        self.lines: list[str] = []
        self.with_traceback = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.with_traceback += record.exc_info is not None


class Shown:
    """Every text the run showed, with a label saying where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.errors: list[type[BaseException]] = []

    def add(self, label: str, *objects: Any) -> None:
        for obj in objects:
            self.texts += [(f"{label} repr", repr(obj)), (f"{label} str", str(obj))]

    async def fails(self, label: str, expected: type[BaseException], call: Awaitable[Any]) -> None:
        """Await ``call``, which must raise ``expected``; keep every text of the error."""
        with pytest.raises(expected) as info:
            await call
        assert type(info.value) is expected, label
        self.errors.append(expected)
        for n, text in enumerate(exception_texts(info.value)):
            self.texts.append((f"{label} error text {n}", text))
        # A service logging the failure, traceback and all.
        app_log.exception("%s failed: %r", label, info.value, exc_info=info.value)

    def leaks(self, secret: str) -> list[str]:
        return [label for label, text in self.texts if secret in text]


@pytest.fixture
def live() -> Iterator[ThreadedSandbox]:
    with ThreadedSandbox(seed=3, tokens=150) as sandbox:
        yield sandbox


async def every_endpoint(live: ThreadedSandbox, shown: Shown) -> tuple[list[str], str]:
    """Every endpoint, every way to walk, every error: the full tokens created, and the
    id of a token that is still there."""
    sb = live.sb
    sub, other_sub = sb.sub_account_ids[0], sb.other_sub_account_ids[0]
    created: list[str] = []
    async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
        shown.add("session", cc, cc.tokens, cc._transport)
        pager = cc.tokens.list(limit=20, concurrency=4)
        first = await pager
        shown.add("first page", pager, first, *first.items)
        shown.add("items", *[token async for token in pager])
        shown.add("pages", *[page async for page in cc.tokens.list(status="active").pages()])
        shown.add("collect", await cc.tokens.list(search="prod", limit=5).collect())
        shown.add("by sub-account", await cc.tokens.list_for_sub_account(sub).collect())
        for n in range(3):
            token = await cc.tokens.create(f"Secret check {n}", sub)
            created.append(token.token.reveal())
            shown.add(f"created {n}", token, token.token)
            app_log.debug("created %s (%r): %s", token.id, token, token.token)
            shown.add(f"get {n}", await cc.tokens.get(token.id))
            shown.add(f"update {n}", await cc.tokens.update(token.id, name=f"Renamed {n}"))
            shown.add(f"status {n}", await cc.tokens.update(token.id, status="inactive"))
        await cc.tokens.delete(token.id)  # the last one created
        shown.add("deleted", token.id)

        # Error paths, each with every text it shows.
        await shown.fails("404 get", NotFoundError, cc.tokens.get(MISSING))
        await shown.fails("404 delete", NotFoundError, cc.tokens.delete(MISSING))
        await shown.fails("403 list", PermissionDeniedError, cc.tokens.list(other_sub).collect())
        await shown.fails("403 create", PermissionDeniedError, cc.tokens.create("x", other_sub))
        await shown.fails("400 duplicate", BadRequestError, cc.tokens.create("Renamed 0", sub))
        live.call(lambda: sb.script({len(sb.requests) + n: "503" for n in (1, 2, 3)}))
        await shown.fails("503 after retries", ServerError, cc.tokens.get(MISSING))
        live.call(lambda: sb.script({len(sb.requests) + 1: "500"}))
        await shown.fails("500 create", ServerError, cc.tokens.create("Five hundred", sub))
        live.call(lambda: sb.script({len(sb.requests) + 1: ("429", 3600.0)}))
        await shown.fails("429", RateLimitError, cc.tokens.list().collect())
        live.call(lambda: sb.script({len(sb.requests) + n: "drop" for n in (1, 2, 3)}))
        await shown.fails("drops", TransportError, cc.tokens.get(MISSING))
        live.call(lambda: sb.script({len(sb.requests) + 1: "malformed"}))
        await shown.fails("malformed create", DecodeError, cc.tokens.create("Half", sub))
        live.call(lambda: sb.script({len(sb.requests) + 1: "malformed"}))
        await shown.fails("malformed list", DecodeError, cc.tokens.list(limit=50).collect())
    async with CellcastSession(
        api_key=sb.api_key, base_url=sb.url, timeout=0.3, max_retries=0
    ) as cc:
        live.call(lambda: sb.script({len(sb.requests) + 1: "hang"}))
        await shown.fails("timeout", TimeoutError, cc.tokens.get(MISSING))
    async with CellcastSession(api_key=WRONG_KEY, base_url=sb.url) as cc:
        await shown.fails("401", AuthenticationError, cc.tokens.list().collect())
    async with CellcastSession(api_key=sb.other_api_key, base_url=sb.url) as cc:
        await shown.fails("404 other key", NotFoundError, cc.tokens.get(first.items[0].id))
    return created, first.items[0].id


async def hostile_answers(key: str, shown: Shown, closed_port: int) -> None:
    """Answers carrying a full token in a broken body, and answers that are not HTTP."""
    bodies: dict[str, bytes] = {
        "truncated": dumps(envelope(token_item(token=FULL_TOKEN)))[:-30],
        "not utf-8": dumps(envelope(token_item(token=FULL_TOKEN))).replace(b"Token", b"T\xf6ken"),
        "wrong shape": dumps(envelope(token_item(token=FULL_TOKEN, createdAt="then"))),
        "array": dumps([envelope(token_item(token=FULL_TOKEN))]),
    }
    for label, body in bodies.items():
        handler = answering(201, body, {"Content-Type": "application/json"})
        async with RawApp(handler) as app, CellcastSession(api_key=key, base_url=app.url) as cc:
            await shown.fails(f"create {label}", DecodeError, cc.tokens.create("x", "y"))
    garbage: dict[str, tuple[bytes, ...]] = {
        "not http": (b"hello\r\n\r\n",),
        "bad header": (b"HTTP/1.1 200 OK\r\nno header here\r\n\r\n",),
    }
    for label, chunks in garbage.items():
        server = ByteServer(*chunks)
        async with server, CellcastSession(api_key=key, base_url=server.url, max_retries=1) as cc:
            await shown.fails(label, TransportError, cc.tokens.get(TOKEN_ID))
    async with CellcastSession(api_key=key, base_url=f"http://127.0.0.1:{closed_port}") as cc:
        await shown.fails("refused", TransportError, cc.tokens.get(TOKEN_ID))

    async def echo_auth(request: web.Request) -> web.StreamResponse:
        # The key did travel on these requests: "never shown" is not "never sent".
        assert request.headers["Authorization"] == f"Bearer {key}"
        return web.Response(status=404, body=b"", content_type="application/json")

    async with RawApp(echo_auth) as app, CellcastSession(api_key=key, base_url=app.url) as cc:
        await shown.fails("carried", NotFoundError, cc.tokens.get(TOKEN_ID))


def run_cli(shown: Shown, label: str, *argv: str) -> int:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    shown.texts += [
        (f"cli {label} stdout", out.getvalue()),
        (f"cli {label} stderr", err.getvalue()),
    ]
    return code


class TestNothingLeaks:
    """Every endpoint, error path and CLI audit at DEBUG: no key, no full token, anywhere."""

    def test_full_run(
        self, live: ThreadedSandbox, caplog: pytest.LogCaptureFixture, closed_port: int
    ) -> None:
        caplog.set_level(logging.DEBUG)  # the root logger: every library's records
        formatted = Formatted()
        logging.getLogger().addHandler(formatted)
        shown = Shown()
        try:
            created, token_id = asyncio.run(every_endpoint(live, shown))
            asyncio.run(hostile_answers(live.sb.api_key, shown, closed_port))
            with pytest.raises(ValueError, match="must not contain CR, LF") as refused:
                CellcastSession(api_key=live.sb.api_key + "\r\nX-Evil: 1")
            shown.texts += [("cr/lf", text) for text in exception_texts(refused.value)]

            target = ("--api-key", live.sb.api_key, "--base-url", live.sb.url, "--debug")
            audit = ("audit", "--format", "jsonl", "--output", "-", "--quiet")
            codes = [
                run_cli(shown, "audit", *target, *audit),
                run_cli(shown, "audit json", *target, "--json", "audit", "--concurrency", "8"),
                run_cli(shown, "list", *target, "list", "--max-items", "30"),
                run_cli(shown, "get", *target, "--json", "get", token_id),
                run_cli(shown, "get 404", *target, "get", MISSING),
                run_cli(shown, "401", "--api-key", WRONG_KEY, *target[2:], "audit"),
            ]
            live.call(lambda: live.sb.script({len(live.sb.requests) + 1: "hang"}))
            quick = ("--timeout", "0.3", "--max-retries", "0")
            codes.append(run_cli(shown, "timeout", *target, *quick, "get", MISSING))
        finally:
            logging.getLogger().removeHandler(formatted)

        secrets = {
            "api key": live.sb.api_key,
            "other key": live.sb.other_api_key,
            "wrong key": WRONG_KEY,
            "planted token": FULL_TOKEN,
            **{f"created token {n}": value for n, value in enumerate(created)},
        }
        shown.texts += [("log line", line) for line in formatted.lines]
        shown.texts += [("caplog", caplog.text)]
        shown.texts += [
            (f"record {n}", f"{r.getMessage()} {r.args!r} {r.exc_text or ''}")
            for n, r in enumerate(caplog.records)
        ]
        leaks = {name: shown.leaks(value) for name, value in secrets.items()}
        assert leaks == {name: [] for name in secrets}

        # The run really did show things: full secrets were made, errors were raised
        # and logged with tracebacks, the SDK logged its retries, the CLI audited.
        assert all(len(value) >= 40 for value in created)
        assert len(shown.errors) >= 20
        assert formatted.with_traceback >= 20
        assert any(r.name == "cellcast_async" and "retrying" in r.message for r in caplog.records)
        assert codes == [0, 0, 0, 0, 1, 1, 1]
        records = dict(shown.texts)["cli audit stdout"].splitlines()
        assert len(records) == live.sb.token_count()
        assert all('"token": "****' in record for record in records)  # masked, every one
