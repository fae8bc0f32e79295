"""Text with a lone surrogate is misuse, refused before anything is sent (README "Errors").

Python turns bytes that are not UTF-8 in argv (``cellcast-tokens get $'\\xff'``) or a
file into lone surrogates (``'\\udcff'``). Such a value cannot be sent: it was a bare
``UnicodeEncodeError`` from the codec mid-call, which the CLI reported as "cannot write
the output" with exit 1. It is a ``ValueError`` that names the argument, and exit 2.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cellcast_async import CellcastSession

from ..cli._support import LiveSandbox
from ._walk_server import API_KEY, WalkServer

BAD = "ab\udcffcd"


def never(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
    raise AssertionError("nothing may be sent")  # pragma: no cover


Call = Callable[[CellcastSession], Awaitable[Any]]

CALLS: list[tuple[str, Call, str]] = [
    ("get", lambda cc: cc.tokens.get(BAD), "token_id"),
    ("delete", lambda cc: cc.tokens.delete(BAD), "token_id"),
    ("update-id", lambda cc: cc.tokens.update(BAD, status="active"), "token_id"),
    ("update-name", lambda cc: cc.tokens.update("a1", name=BAD), "name"),
    ("create-name", lambda cc: cc.tokens.create(name=BAD, sub_account_id="s1"), "name"),
    (
        "create-sub",
        lambda cc: cc.tokens.create(name="n", sub_account_id=BAD),
        "sub_account_id",
    ),
    ("list-sub", lambda cc: cc.tokens.list(sub_account_id=BAD).collect(), "sub_account_id"),
    ("list-search", lambda cc: cc.tokens.list(search=BAD).collect(), "search"),
    (
        "list-for-sub",
        lambda cc: cc.tokens.list_for_sub_account(BAD).collect(),
        "sub_account_id",
    ),
]


class TestSdk:
    """Every argument that is sent refuses a lone surrogate with a ValueError."""

    @pytest.mark.parametrize(
        ("call", "what"), [(c, w) for _, c, w in CALLS], ids=[n for n, _, _ in CALLS]
    )
    async def test_refused(self, call: Call, what: str) -> None:
        with WalkServer(never) as server:
            async with CellcastSession(api_key=API_KEY, base_url=server.url) as cc:
                with pytest.raises(ValueError, match="not valid Unicode text") as info:
                    await call(cc)
        assert type(info.value) is ValueError
        assert str(info.value) == f"{what} is not valid Unicode text (a lone surrogate at index 2)"
        assert server.requests == []


class TestCli:
    """Undecodable bytes in an argument are a usage error, exit 2, nothing sent."""

    @pytest.mark.parametrize(
        ("argv", "what"),
        [
            (["get", BAD], "token_id"),
            (["update", BAD, "--status", "inactive"], "token_id"),
            (["list", "--search", BAD], "search"),
            (["list", "--sub-account", BAD], "sub_account_id"),
        ],
    )
    def test_usage_error(self, live: LiveSandbox, argv: list[str], what: str) -> None:
        live.script({})
        result = live.cli(*argv)
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            f"usage error: {what} is not valid Unicode text (a lone surrogate at index 2)\n"
        )
        assert live.cli_requests() == []
