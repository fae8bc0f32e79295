"""A hostile token API on 127.0.0.1: every text it sends is a name chosen to fool a terminal.

It answers the listing (one page), ``GET`` by id, a create of a token named ``make``
(with hostile id, name and sub-account) and, for any other write, a 400 whose message is
hostile too. Token names, ids, sub-account ids and names all carry the texts in
:data:`HOSTILE`; the sandbox could only choose names. It runs on its own thread's loop
(``tests/_servers.py``; the CLI runs ``asyncio.run`` itself), bounded in time like the
sandbox the CLI tests use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import pytest
from aiohttp import web

from .._servers import ThreadedApp
from .._wire import TOKENS_PATH, list_data

KEY: Final = "hostile-test-key-0123456789"

# label -> text; each becomes a token name (and, shortened, an id and a sub-account name).
HOSTILE: Final[dict[str, str]] = {
    "markup_close": "oops [/] here",
    "markup_link": "[link=http://evil.example/]harmless[/link]",
    "markup_blink": "[blink red]ALERT[/]",
    "emoji_code": "done :thumbs_up: here",
    "csi_clear": "\x1b[2Jcleared",
    "osc52": "\x1b]52;c;ZXZpbA==\x07clip",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "c1_csi": "c1\x9b31mred",
    "nel": "next\x85line",
    "bel": "ring\x07bell",
    "rlo": "invoice\u202egpj.exe",
    "isolate": "a\u2066b\u2069c",
    "line_sep": "ls\u2028ps\u2029end",
    "newline": "two\nlines  | forged 999 row",
    "cr": "over\rwrite",
    "del": "del\x7fete",
    "formula": '=HYPERLINK("http://evil.example/","x")',
    "plus": "+1+1",
    "minus": "-2+3",
    "at": "@SUM(A1:A9)",
    "tab_formula": "\t=1+1",
    "cr_formula": "\r@cmd",
    "quote_formula": "'=1+1",
    "quote_plain": "'plain",
}
# What none of the command line's human-readable output may carry raw.
RAW_CONTROLS: Final = (
    "\x1b",
    "\x9b",
    "\x85",
    "\x07",
    "\x7f",
    "\u202e",
    "\u2066",
    "\u2069",
    "\u2028",
    "\u2029",
    "\r",
)
# The escaped form each label's text shows as, beside its printable parts.
SHOWN: Final[dict[str, str]] = {
    "csi_clear": "\\x1b[2Jcleared",
    "osc52": "\\x1b]52;c;ZXZpbA==\\x07clip",
    "osc8": "\\x1b]8;;http://evil.example/\\x1b\\click\\x1b]8;;\\x1b\\",
    "c1_csi": "c1\\x9b31mred",
    "nel": "next\\x85line",
    "bel": "ring\\x07bell",
    "rlo": "invoice\\u202egpj.exe",
    "isolate": "a\\u2066b\\u2069c",
    "line_sep": "ls\\u2028ps\\u2029end",
    "newline": "two\\nlines  | forged 999 row",
    "cr": "over\\rwrite",
    "del": "del\\x7fete",
    "markup_close": "oops [/] here",
    "markup_link": "[link=http://evil.example/]harmless[/link]",
    "markup_blink": "[blink red]ALERT[/]",
    "emoji_code": "done :thumbs_up: here",
    "formula": '=HYPERLINK("http://evil.example/","x")',
    "plus": "+1+1",
    "minus": "-2+3",
    "at": "@SUM(A1:A9)",
    "tab_formula": "\\t=1+1",
    "cr_formula": "\\r@cmd",
    "quote_formula": "'=1+1",
    "quote_plain": "'plain",
}
SUB_ID: Final = "sub[/]\x1b[2J\u202e"
SUB_NAME: Final = "[blink]Acme\x1b]52;c;QQ==\x07[/blink]"
OTHER_SUB_ID: Final = "other-sub"
ODD_STATUS: Final = "[blink]odd\x1b[2J\u202e"
ERROR_MESSAGE: Final = "bad [/] name\x1b[2J\x1b]52;c;ZXZpbA==\x07\u202e\nerror: forged line"


def token_id(number: int, label: str) -> str:
    """Ids carry hostile text too: ``<label-ish>`` then a unique tail."""
    return f"{HOSTILE[label][:12]}-{number:04d}"


OLD: Final = "2020-01-15T10:30:00.000Z"
RECENT: Final = "2026-11-30T10:30:00.000Z"
AS_OF: Final = "2026-12-01T00:00:00+00:00"


def items(names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every token: one per hostile text, by turns stale (and active) or inactive (and
    recent), so the report lists each of them (20 of each kind at most); the same again,
    active and recent, in another sub-account (names shared across sub-accounts); and a
    second, recent and active, token with the first hostile name in the same sub-account
    (a duplicate); and a token whose status is hostile. ``names`` replaces the names (by
    label) to stage a rename."""
    names = {**HOSTILE, **(names or {})}
    found: list[dict[str, Any]] = []
    for number, label in enumerate(HOSTILE):
        stale = number % 2 == 0
        found.append(
            _item(
                token_id(number, label),
                names[label],
                SUB_ID,
                SUB_NAME,
                status="active" if stale else "inactive",
                created=OLD if stale else RECENT,
            )
        )
    for number, label in enumerate(HOSTILE, 100):
        found.append(_item(f"other-{number}", names[label], OTHER_SUB_ID, "Other"))
    found.append(_item("dup-0001", names["markup_close"], SUB_ID, SUB_NAME))
    # A status the SDK does not know is kept as the server's string: the audit makes it a
    # column of its per-sub-account table.
    found.append(_item("odd-status", "odd status", OTHER_SUB_ID, "Other", status=ODD_STATUS))
    return found


def _item(
    token_id: str,
    name: str,
    sub_id: str,
    sub_name: str,
    *,
    status: str = "active",
    created: str = RECENT,
) -> dict[str, Any]:
    return {
        "_id": token_id,
        "name": name,
        "token": "****abcd",
        "status": status,
        "createdAt": created,
        "subAccount": {
            "_id": sub_id,
            "name": sub_name,
            "email": "x@example.com",
            "companyName": "Co",
        },
    }


def _envelope(data: Any, *, status: bool = True, message: str = "ok") -> dict[str, Any]:
    return {"status": status, "message": message, "data": data, "error": {}}


class HostileApi(ThreadedApp):
    """The server, on its own thread (``tests/_servers.py``), until :meth:`close`."""

    def __init__(self) -> None:
        self.tokens = items()
        app = web.Application()
        app.router.add_get(TOKENS_PATH, self._list)
        app.router.add_get(TOKENS_PATH + "/{id}", self._get)
        app.router.add_route("*", TOKENS_PATH + "/{id}", self._refuse)
        app.router.add_post(TOKENS_PATH, self._create)
        super().__init__(app=app)

    async def _list(self, request: web.Request) -> web.Response:
        page = list_data(self.tokens, limit=len(self.tokens))
        return web.json_response(_envelope(page))

    async def _get(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        for item in self.tokens:
            if item["_id"] == wanted:
                return web.json_response(_envelope(item))
        return await self._refuse(request)

    async def _create(self, request: web.Request) -> web.Response:
        """A token named "make" is created, with the first hostile id, name and
        sub-account; any other name is refused with the hostile message."""
        body = await request.json()
        if body.get("name") != "make":
            return await self._refuse(request)
        item = {**self.tokens[list(HOSTILE).index("osc8")], "token": "full-secret-0123456789"}
        item["subAccountId"] = SUB_ID
        return web.json_response(_envelope(item), status=201)

    async def _refuse(self, request: web.Request) -> web.Response:
        body = {
            "status": False,
            "message": ERROR_MESSAGE,
            "data": {},
            "error": {"message": ERROR_MESSAGE},
        }
        return web.Response(status=400, text=json.dumps(body), content_type="application/json")

    def args(self, *argv: str) -> list[str]:
        return ["--api-key", KEY, "--base-url", self.url, *argv]


@pytest.fixture(scope="module")
def api() -> Iterator[HostileApi]:
    """The hostile server, one per test module."""
    with HostileApi() as server:
        yield server
