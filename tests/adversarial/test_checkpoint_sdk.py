"""A pager checkpoint is untrusted input (README "Long audits").

Whoever can write the place a checkpoint is kept can edit it, swap in another account's,
inflate it or plant a hostile listing path. Each is a ``ValueError`` from
``cc.tokens.resume()`` naming what is wrong, before anything is sent; a checkpoint never
holds the key or anything cheap to test a guess of it against. The server here is a real
aiohttp server on 127.0.0.1 that records every request line as it arrived (raw path and
query), so what reached the wire is checked, not what the SDK meant to send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from cellcast_async import CellcastSession, Pager
from cellcast_async._seal import CheckpointKey, _derive
from cellcast_async._walk import (
    MAX_CHECKPOINT_CHARS,
    MAX_CHECKPOINT_IDS,
    WalkState,
    WalkStats,
    encode_checkpoint,
)

from .._checkpoint_seal import reseal
from .._wire import TOKENS_PATH

KEY_A = "ck_live_account_A_7c2e9f4b1d8a6e3c0f5b9d2a7e4c1f8b"
KEY_B = "ck_live_account_B_0a3d6f9c2e5b8d1f4a7c0e3b6d9f2a5c"
SUB = "6877a383d68781beb3b14110"
NOT_AUTHENTIC = "checkpoint is not authentic: it was changed after it was written"
OTHER_KEY = (
    "checkpoint was made under another API key: it resumes only with the key of the"
    " account that made it"
)


def token(n: int) -> dict[str, Any]:
    return {
        "_id": f"tok{n:03d}",
        "name": f"Token {n}",
        "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
        "status": "active",
        "createdAt": f"2024-01-{28 - n:02d}T10:30:00.000Z",  # newest first
        "subAccountId": SUB,
    }


class Recorder:
    """A listing of 9 tokens in pages of 3 on every path; each request line is kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.lines.append(request.raw_path)
        page = int(request.query.get("page", "1"))
        items = [token(n) for n in range(1, 10)][(page - 1) * 3 : page * 3]
        data = {
            "items": items,
            "total": 9,
            "page": page,
            "limit": 3,
            "totalPages": 3,
            "hasNextPage": page < 3,
            "hasPrevPage": page > 1,
        }
        return web.json_response({"status": True, "message": "OK", "data": data, "error": {}})


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder.url = f"http://127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


def session(server: Recorder, key: str = KEY_A) -> CellcastSession:
    return CellcastSession(api_key=key, base_url=server.url, max_retries=0)


async def first_page(server: Recorder, key: str = KEY_A, *, sub: str | None = None) -> str:
    """A genuine checkpoint taken after page 1 of 3 (of the sub-account's list with ``sub``)."""
    async with session(server, key) as cc:
        pager = cc.tokens.list_for_sub_account(sub, limit=3) if sub else cc.tokens.list(limit=3)
        pages = pager.pages()
        await pages.__anext__()
        await pages.aclose()
        text = pager.checkpoint()
    server.lines.clear()
    return text


async def refused(server: Recorder, text: object, key: str = KEY_A) -> str:
    """``resume(text)`` raises ValueError; nothing reaches the server. Its message."""
    async with session(server, key) as cc:
        with pytest.raises(ValueError, match=r"^checkpoint") as info:
            cc.tokens.resume(text)  # type: ignore[arg-type]
    assert server.lines == []
    return str(info.value)


class TestAuthenticity:
    """Only an unchanged checkpoint, under the key that made it, resumes."""

    async def test_a_genuine_checkpoint_resumes(self, server: Recorder) -> None:
        text = await first_page(server)
        async with session(server) as cc:
            rest = [t.id for t in await cc.tokens.resume(text).collect()]
        assert rest == [f"tok{n:03d}" for n in range(4, 10)]
        assert server.lines == [f"{TOKENS_PATH}?page=2&limit=3", f"{TOKENS_PATH}?page=3&limit=3"]

    @pytest.mark.parametrize(
        "edit",
        [
            # Hide chosen tokens from the rest of an audit: ids added to "the last page".
            lambda s: s["prev_keys"].extend([f"tok{n:03d}" for n in range(4, 10)]),
            lambda s: s["partial"].extend(["tok004", "tok005"]),
            lambda s: s.update(page=3, forward=2),
            lambda s: s["stats"].update(complete=True),
            lambda s: s.update(listing={"path": f"{TOKENS_PATH}/sub-account/{SUB}", "params": {}}),
            lambda s: s["listing"]["params"].update(status="active"),
        ],
        ids=["hide-ids", "skip-partial", "skip-a-page", "stats", "other-listing", "filter"],
    )
    async def test_an_edited_checkpoint(self, server: Recorder, edit: Any) -> None:
        outer = json.loads(await first_page(server))
        edit(outer["state"])
        # The attacker can recompute any checksum; without the key, not the MAC.
        outer["digest"] = hashlib.sha256(json.dumps(outer["state"]).encode()).hexdigest()
        assert await refused(server, json.dumps(outer)) == NOT_AUTHENTIC

    async def test_an_edited_version_or_key_id(self, server: Recorder) -> None:
        text = await first_page(server)
        outer = json.loads(text)
        assert await refused(server, text.replace('"version":2', '"version":1')) == (
            "checkpoint is format version 1; this cellcast_async reads version 2"
        )
        assert await refused(server, json.dumps({**outer, "key": "0" * 16})) == OTHER_KEY
        assert await refused(server, json.dumps({**outer, "mac": 7})) == NOT_AUTHENTIC
        assert await refused(server, json.dumps({**outer, "mac": "é" * 64})) == NOT_AUTHENTIC
        no_mac = {k: v for k, v in outer.items() if k != "mac"}
        assert await refused(server, json.dumps(no_mac)) == NOT_AUTHENTIC
        assert await refused(server, json.dumps({**outer, "extra": 1})) == NOT_AUTHENTIC

    async def test_account_a_checkpoint_under_account_b_key(self, server: Recorder) -> None:
        text = await first_page(server, KEY_A)
        assert await refused(server, text, KEY_B) == OTHER_KEY

    async def test_account_a_checkpoint_relabelled_with_b_key_id(self, server: Recorder) -> None:
        """B's key id is in any checkpoint B made: copying it over does not forge the MAC."""
        outer = json.loads(await first_page(server, KEY_A))
        outer["key"] = json.loads(await first_page(server, KEY_B))["key"]
        assert await refused(server, json.dumps(outer), KEY_B) == NOT_AUTHENTIC

    async def test_a_views_checkpoint_resumes_in_the_session(self, server: Recorder) -> None:
        async with session(server) as cc:
            view = cc.with_options(timeout=5)
            pager = view.tokens.list(limit=3)
            await pager.pages().__anext__()
            text = pager.checkpoint()
            server.lines.clear()
            assert len(await cc.tokens.resume(text).collect()) == 6


class TestNoSecretInACheckpoint:
    """The key, and nothing cheap to test a guess of it against, is written."""

    async def test_key_and_its_digests_are_absent(self, server: Recorder) -> None:
        text = await first_page(server)
        secret = KEY_A.encode()
        derived = _derive(KEY_A)
        for shown in [
            KEY_A,
            KEY_A[-8:],
            hashlib.sha256(secret).hexdigest()[:16],
            hashlib.sha1(secret).hexdigest()[:16],
            hashlib.md5(secret).hexdigest()[:16],
            base64.b64encode(secret).decode()[:16],
            secret.hex()[:16],
            derived.hex()[:16],
            base64.b64encode(derived).decode()[:16],
        ]:
            assert shown not in text
        assert set(json.loads(text)) == {"format", "version", "key", "state", "mac"}

    def test_the_key_object_shows_nothing(self) -> None:
        key = CheckpointKey(KEY_A)
        assert repr(key) == "<CheckpointKey>"
        assert KEY_A not in repr(key)
        key.key_id  # noqa: B018 - derives: the API key is dropped once the key is derived
        assert key._api_key is None

    async def test_refusals_never_show_the_key(self, server: Recorder) -> None:
        text = await first_page(server, KEY_A)
        for message in [await refused(server, text, KEY_B), await refused(server, text[:-3])]:
            assert KEY_A not in message
            assert KEY_B not in message


class TestListingPath:
    """A resumed path is rebuilt from checked parts, the id encoded as one segment."""

    async def resume_path(self, server: Recorder, path: str, **params: str) -> str | list[str]:
        """Resume a checkpoint sealed by the key's holder with ``path``: the request lines
        sent, or the ValueError's message (then nothing was sent)."""
        outer = json.loads(await first_page(server, sub=SUB))
        outer["state"]["listing"]["path"] = path
        outer["state"]["listing"]["params"].update(params)
        text = reseal(outer, KEY_A)
        async with session(server) as cc:
            try:
                pager = cc.tokens.resume(text)
            except ValueError as exc:
                assert server.lines == []
                return str(exc)
            await pager.collect()
        return server.lines

    @pytest.mark.parametrize(
        ("segment", "sent"),
        [
            # Percent-decoded, then encoded again as get() encodes an id.
            ("..%2F..%2Fadmin", "..%2F..%2Fadmin"),
            ("a%5Cb", "a%5Cb"),
            ("a\\b", "a%5Cb"),
            ("..\\..\\admin", "..%5C..%5Cadmin"),
            ("a b", "a%20b"),
            ("a%20b", "a%20b"),
            ("\u00e9t\u00e9", "%C3%A9t%C3%A9"),
            ("%C3%A9t%C3%A9", "%C3%A9t%C3%A9"),
            ("%2e%2eadmin", "..admin"),
            ("a%3Fb%23c", "a%3Fb%23c"),
            ("100%", "100%25"),
        ],
    )
    async def test_encoded_as_one_segment(self, server: Recorder, segment: str, sent: str) -> None:
        lines = await self.resume_path(server, f"{TOKENS_PATH}/sub-account/{segment}")
        expected = f"{TOKENS_PATH}/sub-account/{sent}"
        assert lines == [f"{expected}?page=2&limit=3", f"{expected}?page=3&limit=3"]

    @pytest.mark.parametrize(
        ("path", "message"),
        [
            (
                f"{TOKENS_PATH}/sub-account/%2e%2e",
                "checkpoint's sub-account id is a dot segment: '..'",
            ),
            (f"{TOKENS_PATH}/sub-account/..", "checkpoint's sub-account id is a dot segment: '..'"),
            (f"{TOKENS_PATH}/sub-account/.", "checkpoint's sub-account id is a dot segment: '.'"),
            (
                f"{TOKENS_PATH}/sub-account/a\x00b",
                "checkpoint's sub-account id holds a control character: 'a\\x00b'",
            ),
            (
                f"{TOKENS_PATH}/sub-account/a%00b",
                "checkpoint's sub-account id holds a control character: 'a\\x00b'",
            ),
            (
                f"{TOKENS_PATH}/sub-account/a\x7fb",
                "checkpoint's sub-account id holds a control character: 'a\\x7fb'",
            ),
            (
                f"{TOKENS_PATH}/sub-account/a%7Fb",
                "checkpoint's sub-account id holds a control character: 'a\\x7fb'",
            ),
            (
                f"{TOKENS_PATH}/sub-account/a%0D%0AHost:%20evil",
                "checkpoint's sub-account id holds a control character: 'a\\r\\nHost: evil'",
            ),
            (
                f"{TOKENS_PATH}/sub-account/%C2%9B",
                "checkpoint's sub-account id holds a control character: '\\x9b'",
            ),
            (
                f"{TOKENS_PATH}/sub-account/%ff",
                "checkpoint's sub-account id is not percent-encoded UTF-8: '%ff'",
            ),
            (f"{TOKENS_PATH}/sub-account/%20", "checkpoint's sub-account id is empty"),
            (
                f"{TOKENS_PATH}/sub-account/../../admin",
                "checkpoint is for '/api/v1/apiClient/token/sub-account/../../admin',"
                " not a token listing",
            ),
            (
                f"{TOKENS_PATH}/sub-account/a?b=c",
                "checkpoint is for '/api/v1/apiClient/token/sub-account/a?b=c',"
                " not a token listing",
            ),
            (
                f"{TOKENS_PATH}/../admin",
                "checkpoint is for '/api/v1/apiClient/token/../admin', not a token listing",
            ),
            (
                "/admin/" + "x" * 200,
                f"checkpoint is for {('/admin/' + 'x' * 200)[:80]!r}..., not a token listing",
            ),
        ],
    )
    async def test_refused_at_resume(self, server: Recorder, path: str, message: str) -> None:
        assert await self.resume_path(server, path) == message

    async def test_a_control_character_in_a_filter_is_encoded(self, server: Recorder) -> None:
        """A filter is a query value: percent-encoded whatever it holds, as list() sends it."""
        lines = await self.resume_path(server, TOKENS_PATH, search="a\x00b\x7f\r\n")
        assert lines == [
            f"{TOKENS_PATH}?search=a%00b%7F%0D%0A&page=2&limit=3",
            f"{TOKENS_PATH}?search=a%00b%7F%0D%0A&page=3&limit=3",
        ]

    async def test_filters_are_rebuilt(self, server: Recorder) -> None:
        lines = await self.resume_path(server, TOKENS_PATH, search="a b&c=d", status="inactive")
        assert lines == [
            f"{TOKENS_PATH}?status=inactive&search=a+b%26c%3Dd&page=2&limit=3",
            f"{TOKENS_PATH}?status=inactive&search=a+b%26c%3Dd&page=3&limit=3",
        ]

    async def test_a_sub_account_filter_on_a_sub_account_path(self, server: Recorder) -> None:
        path = f"{TOKENS_PATH}/sub-account/{SUB}"
        assert await self.resume_path(server, path, subAccountId="x") == (
            "checkpoint has unknown listing parameters: ['subAccountId']"
        )

    async def test_a_listing_cc_tokens_never_makes(self, server: Recorder) -> None:
        assert await self.resume_path(server, TOKENS_PATH, status="deleted") == (
            "checkpoint's listing is not one cc.tokens makes: status must be 'active' or"
            " 'inactive' (or a TokenStatus), got 'deleted'"
        )


class TestSize:
    """A checkpoint is bounded; the bound is checked before the text is parsed."""

    async def test_a_100_mb_checkpoint(self, server: Recorder, monkeypatch: Any) -> None:
        outer = json.loads(await first_page(server))
        outer["state"]["pad"] = "x" * (100 * 2**20)
        text = reseal(outer, KEY_A)
        parsed: list[int] = []
        monkeypatch.setattr(json, "loads", lambda s, *a, **k: parsed.append(len(s)))
        tracemalloc.start()
        try:
            began = time.perf_counter()
            message = await refused(server, text)
            took = time.perf_counter() - began
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert message == (
            f"checkpoint is too large: {len(text):,} characters, more than the 4,194,304 a"
            ' checkpoint holds (README "Long audits")'
        )
        assert parsed == []
        assert peak < 2 * 2**20  # the session's own; nothing in proportion to the text
        assert took < 5

    async def test_3_million_ids(self, server: Recorder) -> None:
        outer = json.loads(await first_page(server))
        outer["state"]["prev_keys"] = list(range(3_000_000))
        message = await refused(server, reseal(outer, KEY_A))
        assert message.startswith("checkpoint is too large: ")
        assert message.endswith(
            ' characters, more than the 4,194,304 a checkpoint holds (README "Long audits")'
        )

    async def test_many_short_ids_are_refused_before_parsing(
        self, server: Recorder, monkeypatch: Any
    ) -> None:
        outer = json.loads(await first_page(server))
        outer["state"]["prev_keys"] = [1] * 1_500_000  # 3 MB: under the size bound
        text = reseal(outer, KEY_A)
        assert len(text) < MAX_CHECKPOINT_CHARS
        parsed: list[int] = []
        monkeypatch.setattr(json, "loads", lambda s, *a, **k: parsed.append(len(s)))
        assert await refused(server, text) == (
            "checkpoint is too large: it may hold more than 100,000 ids, the most a"
            ' checkpoint holds (README "Long audits")'
        )
        assert parsed == []

    async def test_one_id_too_many(self, server: Recorder) -> None:
        outer = json.loads(await first_page(server))
        outer["state"]["prev_keys"] = [1] * (MAX_CHECKPOINT_IDS - 1)
        outer["state"]["partial"] = [2, 3]
        assert await refused(server, reseal(outer, KEY_A)) == (
            "checkpoint is too large: 100,001 ids, more than the 100,000 a checkpoint holds"
            ' (README "Long audits")'
        )

    def test_a_walk_too_large_to_checkpoint_says_so(self) -> None:
        state = WalkState(None, 60_000, 1, 2, None, prev_keys=tuple(range(60_000)))
        with pytest.raises(ValueError, match=r"^this walk") as info:
            encode_checkpoint(state, tuple(range(40_001)), WalkStats(), key=CheckpointKey(KEY_A))
        assert str(info.value) == (
            "this walk cannot be checkpointed: 100,001 ids, more than the 100,000 a"
            ' checkpoint holds (README "Long audits"); use a smaller limit'
        )
        long_ids = tuple("x" * 100 for _ in range(50_000))
        with pytest.raises(ValueError, match=r"^this walk cannot be checkpointed: 5,"):
            encode_checkpoint(
                WalkState(None, 50_000, 1, 2, None, prev_keys=long_ids),
                (),
                WalkStats(),
                key=CheckpointKey(KEY_A),
            )

    async def test_the_largest_walk_that_fits_round_trips(self, server: Recorder) -> None:
        """Two pages of 50,000 ObjectId-like ids fit, and resume."""
        ids = tuple(f"{n:024x}" for n in range(50_000))
        state = WalkState(None, 50_000, 1, 2, None, prev_keys=ids)
        text = encode_checkpoint(state, ids, WalkStats(), key=CheckpointKey(KEY_A))
        assert len(text) < MAX_CHECKPOINT_CHARS
        assert await refused(server, text) == (
            "checkpoint is not from cc.tokens: it names no listing"
        )


class TestAPagerOfYourOwn:
    """A Pager not made by cc.tokens has no key to seal with."""

    async def test_checkpoint_is_a_value_error(self) -> None:
        pager: Pager[Any] = Pager(lambda n: None, limit=3)  # type: ignore[arg-type,return-value]
        with pytest.raises(ValueError, match=r"^this pager") as info:
            pager.checkpoint()
        assert str(info.value) == (
            "this pager makes no checkpoints: only pagers from cc.tokens do, sealed with"
            " the session's key"
        )


class TestEveryCheckpointWrittenReads:
    """What ``encode_checkpoint`` writes, ``decode_checkpoint`` reads: bounds agree."""

    def test_ids_full_of_commas(self) -> None:
        ids = tuple("," * 3 for _ in range(40_000))
        with pytest.raises(ValueError, match=r"^this walk") as info:
            encode_checkpoint(
                WalkState(None, 40_000, 1, 2, None, prev_keys=ids),
                (),
                WalkStats(),
                key=CheckpointKey(KEY_A),
            )
        assert str(info.value) == (
            "this walk cannot be checkpointed: its ids hold too many commas to tell from"
            " more than 100,000 ids; use a smaller limit"
        )

    def test_the_key_is_derived_once_across_threads(self) -> None:
        key = CheckpointKey("ck_live_threads_5e1f9a2c7b3d8e4f0a6c")
        seen: list[str] = []
        threads = [threading.Thread(target=lambda: seen.append(key.key_id)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(seen) == 8
        assert len(set(seen)) == 1
