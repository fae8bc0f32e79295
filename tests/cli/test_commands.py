"""``cellcast-tokens list/get/create/update/delete`` against a live sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ._support import FULL_SECRET, LiveSandbox, parse_time

HEADERS = ["ID", "NAME", "STATUS", "SUB-ACCOUNT", "CREATED", "TOKEN"]
WARNING = "warning: this is the only time the full token is shown; store it securely now.\n"


def masked(item: dict[str, Any]) -> str:
    """How the CLI shows a token the API sent masked: ``****`` and its last 4 characters."""
    return "****" + str(item["token"])[-4:]


def view(item: dict[str, Any]) -> dict[str, Any]:
    """A raw listing item as ``--json`` should print it."""
    sub = item["subAccount"]
    return {
        "id": item["_id"],
        "name": item["name"],
        "status": item["status"],
        "created_at": parse_time(item["createdAt"]).isoformat(),
        "sub_account_id": sub["_id"],
        "sub_account": {
            "id": sub["_id"],
            "name": sub["name"],
            "email": sub["email"],
            "company_name": sub["companyName"],
        },
        "token": masked(item),
    }


def row(item: dict[str, Any]) -> list[str]:
    """A raw listing item as a table row, split on whitespace (names have spaces)."""
    return [
        item["_id"],
        *item["name"].split(),
        item["status"],
        *item["subAccount"]["name"].split(),
        item["createdAt"][:10],
        masked(item),
    ]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(autouse=True)
def _wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that no row wraps: each table row is one line (tests/cli/test_width.py
    checks the narrow case)."""
    monkeypatch.setenv("COLUMNS", "200")


class TestList:
    """``list`` prints every token the API lists, newest first, as a table or JSON lines."""

    def test_table_has_one_row_per_token_and_a_count(self, live: LiveSandbox) -> None:
        result = live.cli("list")
        items = live.items()
        lines = result.out.splitlines()
        assert (result.code, result.err) == (0, "")
        assert lines[0].split() == HEADERS
        assert set(lines[1]) == {"─"}
        assert [line.split() for line in lines[2:-1]] == [row(item) for item in items]
        assert lines[-1] == "300 token(s)"

    def test_json_prints_one_array_of_masked_objects(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "list")
        assert (result.code, result.err) == (0, "")
        assert len(result.out.splitlines()) == 1
        assert json.loads(result.out) == [view(item) for item in live.items()]

    def test_jsonl_prints_one_object_per_line(self, live: LiveSandbox) -> None:
        result = live.cli("list", "--json", "--jsonl")
        assert (result.code, result.err) == (0, "")
        assert json_lines(result.out) == [view(item) for item in live.items()]

    def test_status_filter_is_sent_and_applied(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "list", "--status", "inactive")
        expected = live.items(status="inactive")
        assert result.code == 0
        assert [t["id"] for t in json.loads(result.out)] == [t["_id"] for t in expected]
        assert {t["status"] for t in json.loads(result.out)} == {"inactive"}
        assert 0 < len(expected) < 300
        assert live.cli_requests()[0][2]["status"] == "inactive"

    def test_search_matches_names_case_insensitively(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "list", "--search", "PRODUCTION api")
        printed = json.loads(result.out)
        assert result.code == 0
        assert [t["name"] for t in printed] == ["Production API"] * 3
        assert [t["id"] for t in printed] == [t["_id"] for t in live.items(search="production")]
        assert live.cli_requests()[0][2]["search"] == "PRODUCTION api"

    def test_sub_account_filter(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[1]
        result = live.cli("--json", "list", "--sub-account", sub)
        printed = json.loads(result.out)
        assert result.code == 0
        assert [t["id"] for t in printed] == [t["_id"] for t in live.items(subAccountId=sub)]
        assert len(printed) == live.call(lambda: live.sb.token_count(sub))
        assert {t["sub_account_id"] for t in printed} == {sub}

    def test_max_items_stops_the_walk(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "list", "--max-items", "7", "--page-size", "5")
        assert result.code == 0
        assert [t["id"] for t in json.loads(result.out)] == [t["_id"] for t in live.items()[:7]]
        assert [query for _, _, query, _ in live.cli_requests()] == [
            {"page": "1", "limit": "5"},
            {"page": "2", "limit": "5"},
        ]

    def test_no_match_prints_an_empty_table(self, live: LiveSandbox) -> None:
        result = live.cli("list", "--search", "no such token anywhere")
        assert (result.code, result.err) == (0, "")
        assert result.out.splitlines()[0].split() == HEADERS
        assert result.out.splitlines()[2:] == ["0 token(s)"]


class TestGet:
    """``get`` shows one token, masked."""

    def test_table(self, live: LiveSandbox) -> None:
        item = live.items()[5]
        result = live.cli("get", item["_id"])
        lines = result.out.splitlines()
        assert (result.code, result.err) == (0, "")
        assert len(lines) == 3
        assert lines[0].split() == HEADERS
        assert lines[2].split() == row(item)

    def test_json(self, live: LiveSandbox) -> None:
        item = live.items()[5]
        result = live.cli("--json", "get", item["_id"])
        assert (result.code, result.err) == (0, "")
        assert json_lines(result.out) == [view(item)]
        assert live.cli_requests() == [("GET", f"/api/v1/apiClient/token/{item['_id']}", {}, None)]

    def test_an_id_cannot_leave_its_path_segment(self, live: LiveSandbox) -> None:
        result = live.cli("get", "../admin")
        assert result.code == 1
        assert result.err == (
            "error: GET /api/v1/apiClient/token/..%2Fadmin -> 404 Not found: API token not found\n"
        )
        assert live.cli_requests()[0][1] == "/api/v1/apiClient/token/..%2Fadmin"


class TestCreate:
    """``create`` makes a token and prints its full value once, with a warning."""

    def test_text_prints_the_secret_once_and_warns(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[2]
        result = live.cli("create", "--name", "Nightly Export", "--sub-account", sub)
        created = live.items(search="nightly export")
        assert len(created) == 1
        token_id = created[0]["_id"]
        first, second = result.out.splitlines()
        secret = second.removeprefix("token: ")
        assert result.code == 0
        assert first == f"Created token {token_id} ('Nightly Export') for {sub}"
        assert second == f"token: {secret}"
        assert FULL_SECRET.fullmatch(secret)
        assert created[0]["token"][-4:] == secret[-4:]
        assert result.out.count(secret) == 1
        assert result.err == WARNING
        assert live.call(lambda: live.sb.tokens_created) == 1

    def test_json_carries_the_full_secret(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[0]
        result = live.cli("--json", "create", "--name", "CI Runner", "--sub-account", sub)
        (printed,) = json_lines(result.out)
        (item,) = live.items(search="ci runner")
        assert (result.code, result.err) == (0, WARNING)
        # create's answer (seed 001) has subAccountId but no nested subAccount object.
        assert printed == {**view(item), "sub_account": None, "token": printed["token"]}
        assert FULL_SECRET.fullmatch(printed["token"])
        assert item["token"][-4:] == printed["token"][-4:]
        assert result.out.count(printed["token"]) == 1

    def test_a_duplicate_name_is_an_api_error(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[0]
        result = live.cli("create", "--name", "Production API", "--sub-account", sub)
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            "error: POST /api/v1/apiClient/token -> 400 Validation error: "
            "Token name already exists for this sub-account\n"
        )

    def test_a_blank_name_is_refused_before_sending(self, live: LiveSandbox) -> None:
        result = live.cli("create", "--name", " ", "--sub-account", live.sb.sub_account_ids[0])
        assert (result.code, result.out) == (2, "")
        assert result.err == "usage error: name must not be empty or blank\n"
        assert live.cli_requests() == []


class TestUpdate:
    """``update`` renames a token or sets its status and shows the result."""

    def test_status(self, live: LiveSandbox) -> None:
        item = next(t for t in live.items() if t["status"] == "active")
        result = live.cli("update", item["_id"], "--status", "inactive")
        after = live.token(item["_id"])[1]["data"]
        assert (result.code, result.err) == (0, "")
        assert after["status"] == "inactive"
        assert result.out.splitlines()[2].split() == row({**item, "status": "inactive"})
        assert live.cli_requests() == [
            ("PUT", f"/api/v1/apiClient/token/{item['_id']}", {}, {"status": "inactive"})
        ]

    def test_name_with_json(self, live: LiveSandbox) -> None:
        item = live.items()[3]
        result = live.cli("--json", "update", item["_id"], "--name", "Renamed Token")
        assert (result.code, result.err) == (0, "")
        assert json_lines(result.out) == [view({**item, "name": "Renamed Token"})]
        assert live.token(item["_id"])[1]["data"]["name"] == "Renamed Token"

    def test_nothing_to_change_is_a_usage_error(self, live: LiveSandbox) -> None:
        result = live.cli("update", live.items()[0]["_id"])
        assert (result.code, result.out) == (2, "")
        assert result.err == "usage error: update needs at least one of --name or --status\n"
        assert live.cli_requests() == []

    def test_missing_token(self, live: LiveSandbox) -> None:
        result = live.cli("update", "0" * 24, "--status", "active")
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            f"error: PUT /api/v1/apiClient/token/{'0' * 24} -> 404 Not found: API token not found\n"
        )


class TestDelete:
    """``delete`` removes a token for good."""

    def test_text(self, live: LiveSandbox) -> None:
        token_id = live.items()[0]["_id"]
        result = live.cli("delete", "--yes", token_id)
        assert (result.code, result.out, result.err) == (0, f"Deleted token {token_id}\n", "")
        assert live.token(token_id)[0] == 404
        assert live.call(live.sb.token_count) == 299

    def test_json(self, live: LiveSandbox) -> None:
        token_id = live.items()[0]["_id"]
        result = live.cli("--json", "delete", "--yes", token_id)
        assert (result.code, result.err) == (0, "")
        assert json_lines(result.out) == [{"id": token_id, "deleted": True}]

    def test_missing_token(self, live: LiveSandbox) -> None:
        result = live.cli("delete", "--yes", "0" * 24)
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            f"error: DELETE /api/v1/apiClient/token/{'0' * 24} -> 404 Not found: "
            "API token not found\n"
        )
