"""A response hook never sees the key or a token value the session has received, even
when the server echoes them in its headers (README "Redaction").

The answer's headers reached ``ResponseEvent.headers`` raw: a hook that logs them (the
usual metrics or debug hook) wrote the key to its log.
"""

from __future__ import annotations

import base64
from typing import Any

from cellcast_async import CellcastSession, ResponseEvent

from ._walk_server import API_KEY, TOKENS_PATH, WalkServer, envelope, token_item

FULL = "ccst_Rev1ewFullTokenValue0123456789abcdefXYZ"
B64_KEY = base64.b64encode(API_KEY.encode()).decode()


def respond(method: str, path: str, query: dict[str, str]) -> tuple[Any, ...]:
    if method == "POST":
        return 201, envelope(token_item(1, token=FULL, subAccountId="s1"))
    headers = {
        "X-Echo": f"Bearer {API_KEY}",
        "X-Key": API_KEY,
        "X-Key-B64": B64_KEY,
        "X-Token": FULL,
        "X-Request-Id": "req-42",
    }
    return 200, envelope(token_item(2)), headers


class TestResponseEventHeaders:
    """The headers a hook gets went through the session's redactor."""

    async def test_echoed_secrets_are_masked(self) -> None:
        events: list[ResponseEvent] = []

        async def on_response(event: ResponseEvent) -> None:
            events.append(event)

        with WalkServer(respond) as server:
            async with CellcastSession(
                api_key=API_KEY, base_url=server.url, event_hooks={"response": [on_response]}
            ) as cc:
                await cc.tokens.create(name="n", sub_account_id="s1")
                await cc.tokens.get("abc")
        assert [(e.method, e.path) for e in events] == [
            ("POST", TOKENS_PATH),
            ("GET", f"{TOKENS_PATH}/abc"),
        ]
        headers = events[1].headers  # case-insensitive, as aiohttp's
        assert headers["X-Echo"] == "Bearer ****"
        assert headers["X-Key"] == "****"
        assert headers["X-Key-B64"] == "****"
        assert headers["X-Token"] == "****"
        assert headers["X-Request-Id"] == "req-42"  # what is no secret is kept
        shown = repr(events) + repr([dict(e.headers) for e in events])
        for secret in (API_KEY, B64_KEY, FULL):
            assert secret not in shown
