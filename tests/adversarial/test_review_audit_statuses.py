"""Statuses the server makes up cannot squeeze the audit's table to nothing (README
"Command line").

Every status the SDK does not know headed a column of its own: 2,000 distinct ones left
the table blank (no sub-account, no count visible), and a status of 100,000 characters
took the whole width. Now the three most used get a column each, headed by at most 24
characters, and the rest are counted in one ``N OTHER`` column; ``--json`` has each.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..cli._support import run_cli
from ._walk_server import API_KEY, TOKENS_PATH, WalkServer, listing, token_item

LONG = "z" * 100_000
STATUSES = [f"s{n}" for n in range(40)] + [LONG, LONG]


def respond(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
    assert path == TOKENS_PATH
    page, limit = int(query["page"]), int(query["limit"])
    numbers = range((page - 1) * limit, min(len(STATUSES), page * limit))
    items = [token_item(n + 1, status=STATUSES[n]) for n in numbers]
    more = page * limit < len(STATUSES)
    return 200, listing(items, page=page, limit=limit, total=len(STATUSES), more=more)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    with WalkServer(respond) as running:
        monkeypatch.setenv("CELLCAST_API_KEY", API_KEY)
        monkeypatch.setenv("CELLCAST_BASE_URL", running.url)
        yield running


class TestStatusColumns:
    """Three made-up statuses get a column; the other 38 share one."""

    def test_table(self, server: WalkServer) -> None:
        result = run_cli("--quiet", "audit", "--page-size", "100")
        assert result.code == 0
        rows = {
            line.split()[0]: line.split()[1:] for line in result.out.splitlines() if line.strip()
        }
        # all, active, inactive, s0, s1, z…(2), 38 others, total
        assert rows["all"] == ["0", "0", "1", "1", "2", "38", "42"]
        assert "OTHER" in result.out
        assert "Z" * 24 not in result.out

    def test_json_has_every_status(self, server: WalkServer) -> None:
        result = run_cli("--quiet", "--json", "audit", "--page-size", "100")
        assert result.code == 0
        by_status = json.loads(result.out)["by_status"]
        assert by_status == {**{f"s{n}": 1 for n in range(40)}, LONG: 2}
