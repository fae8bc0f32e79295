"""Exit codes and error lines: 1 for API and network errors, 2 for usage errors, 0 otherwise."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from cellcast_async import __version__
from cellcast_async.cli import main

from ._support import LiveSandbox, run_cli

MISSING = "0" * 24
NOT_YOURS = "Forbidden: Sub account does not belong to you or does not exist"


@pytest.fixture
def restore_logger() -> Iterator[logging.Logger]:
    """The SDK's logger as it was before the test, whatever ``--debug`` did to it."""
    logger = logging.getLogger("cellcast_async")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


class TestApiErrors:
    """An error answer from the API is exit code 1 and one line on stderr."""

    def test_get_missing_token(self, live: LiveSandbox) -> None:
        result = live.cli("get", MISSING)
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            f"error: GET /api/v1/apiClient/token/{MISSING} -> 404 Not found: API token not found\n"
        )

    def test_list_another_keys_sub_account(self, live: LiveSandbox) -> None:
        result = live.cli("list", "--sub-account", live.sb.other_sub_account_ids[0])
        assert (result.code, result.out) == (1, "")
        assert result.err == f"error: GET /api/v1/apiClient/token -> 403 {NOT_YOURS}\n"

    def test_create_in_another_keys_sub_account(self, live: LiveSandbox) -> None:
        other = live.sb.other_sub_account_ids[0]
        result = live.cli("create", "--name", "Sneaky", "--sub-account", other)
        assert (result.code, result.out) == (1, "")
        assert result.err == f"error: POST /api/v1/apiClient/token -> 403 {NOT_YOURS}\n"
        assert live.call(lambda: live.sb.tokens_created) == 0

    def test_another_keys_token_is_not_found(self, live: LiveSandbox) -> None:
        theirs = live.items()[0]["_id"]
        result = live.cli("get", theirs, key=live.sb.other_api_key)
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            f"error: GET /api/v1/apiClient/token/{theirs} -> 404 Not found: API token not found\n"
        )

    def test_unknown_key(self, live: LiveSandbox) -> None:
        result = live.cli("audit", key="cc_not_a_real_key")
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            "error: GET /api/v1/apiClient/token -> 401 Token expired"
            " (check the API key: --api-key or $CELLCAST_API_KEY)\n"
        )

    def test_server_error_after_retries(self, live: LiveSandbox, fake_sleep: Any) -> None:
        live.script({1: "503", 2: "502", 3: "503"})
        result = live.cli("list")
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            "error: GET /api/v1/apiClient/token -> 503 Service unavailable: "
            "Service temporarily unavailable\n"
        )
        assert len(fake_sleep.delays) == 2

    def test_malformed_body(self, live: LiveSandbox) -> None:
        live.script({1: "malformed"})
        result = live.cli("--max-retries", "0", "get", MISSING)
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            f"error: GET /api/v1/apiClient/token/{MISSING} -> 200: the body is not valid JSON\n"
        )


class TestNetworkErrors:
    """No usable answer at all is exit code 1 and one line on stderr."""

    def test_connection_refused(self, closed_port: int) -> None:
        base = f"http://127.0.0.1:{closed_port}"
        result = run_cli("--api-key", "k", "--base-url", base, "--max-retries", "0", "list")
        assert (result.code, result.out) == (1, "")
        assert len(result.err_lines) == 1
        assert result.err.startswith(
            f"error: GET /api/v1/apiClient/token: cannot connect to 127.0.0.1:{closed_port}: "
        )

    def test_connection_refused_after_retries(self, closed_port: int, fake_sleep: Any) -> None:
        base = f"http://127.0.0.1:{closed_port}"
        result = run_cli("--api-key", "k", "--base-url", base, "get", MISSING)
        assert (result.code, result.out, len(result.err_lines)) == (1, "", 1)
        assert result.err.startswith(
            f"error: GET /api/v1/apiClient/token/{MISSING}: cannot connect to 127.0.0.1:"
        )
        assert len(fake_sleep.delays) == 2

    def test_timeout(self, live: LiveSandbox) -> None:
        live.script({1: "hang"})
        result = live.cli("--timeout", "0.2", "--max-retries", "0", "list")
        assert (result.code, result.out) == (1, "")
        assert result.err == "error: GET /api/v1/apiClient/token: no answer within 0.2 s\n"


class TestUsageErrors:
    """A mistake in the command line is exit code 2, one line on stderr, and nothing sent."""

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["create", "--name", "x"], "cellcast-tokens create: Missing option '--sub-account'."),
            (["get"], "cellcast-tokens get: Missing argument 'TOKEN_ID'."),
            (
                ["list", "--page-size", "0"],
                "cellcast-tokens list: Invalid value for '--page-size': "
                "0 is not in the range x>=1.",
            ),
            (
                ["audit", "--concurrency", "0"],
                "cellcast-tokens audit: Invalid value for '--concurrency': "
                "0 is not in the range x>=1.",
            ),
            (
                ["audit", "--concurrency", "fast"],
                "cellcast-tokens audit: Invalid value for '--concurrency': "
                "'fast' is neither a whole number nor 'auto'.",
            ),
            (
                ["list", "--max-items", "-1"],
                "cellcast-tokens list: Invalid value for '--max-items': "
                "-1 is not in the range x>=0.",
            ),
            (
                ["--timeout", "0", "list"],
                "cellcast-tokens: Invalid value for '--timeout': must be more than 0, got 0",
            ),
            (
                ["list", "--timeout", "x"],
                "cellcast-tokens list: Invalid value for '--timeout': expected a number, got 'x'",
            ),
            # nan passes click's range checks; neither it nor inf is a rate.
            *(
                (
                    [*before, option, value, *after],
                    f"cellcast-tokens{where}: Invalid value for '{option}': "
                    f"'{value}' is not a finite number.",
                )
                for before, option, after, where in [
                    ([], "--rate-limit", ["list"], ""),
                    (["apply", "plan.json", "--journal", "j"], "--write-rate", [], " apply"),
                ]
                for value in ["nan", "inf"]
            ),
            (
                ["--max-retries", "x", "list"],
                "cellcast-tokens: Invalid value for '--max-retries': "
                "'x' is not a valid integer range.",
            ),
            (["list", "--bogus"], "cellcast-tokens list: No such option '--bogus'."),
            (["frob"], "cellcast-tokens: No such command 'frob'."),
            (
                ["list", "--status", "maybe"],
                "cellcast-tokens list: Invalid value for '--status': "
                "'maybe' is not one of 'active', 'inactive'.",
            ),
            (
                ["update", MISSING, "--status", "paused"],
                "cellcast-tokens update: Invalid value for '--status': "
                "'paused' is not one of 'active', 'inactive'.",
            ),
            (
                ["--sandbox", "--base-url", "http://127.0.0.1:1", "list"],
                "--sandbox serves its own API and key: drop --base-url and --api-key",
            ),
        ],
    )
    def test_parser_errors(self, live: LiveSandbox, argv: list[str], message: str) -> None:
        result = live.cli(*argv)
        assert (result.code, result.out, result.err) == (2, "", f"usage error: {message}\n")
        assert live.cli_requests() == []

    def test_no_command_prints_the_help_on_stderr(self) -> None:
        result = run_cli()
        assert (result.code, result.out) == (2, "")
        assert result.err.startswith("Usage: cellcast-tokens [OPTIONS] COMMAND [ARGS]...\n")

    def test_missing_api_key_with_the_environment_unset(self, live: LiveSandbox) -> None:
        result = run_cli("--base-url", live.url, "list")
        assert (result.code, result.out) == (2, "")
        assert result.err == "usage error: no API key: pass --api-key or set $CELLCAST_API_KEY\n"
        assert live.cli_requests() == []

    def test_the_key_and_url_come_from_the_environment(
        self, live: LiveSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", live.api_key)
        monkeypatch.setenv("CELLCAST_BASE_URL", live.url)
        result = run_cli("list", "--max-items", "2")
        assert (result.code, result.err) == (0, "")
        assert result.out.splitlines()[-1] == "2 token(s)"

    @pytest.mark.parametrize("key", ["abc\r\nX-Injected: 1", "abc\ndef", "abc\rdef"])
    def test_a_key_with_cr_or_lf(self, live: LiveSandbox, key: str) -> None:
        result = live.cli("list", key=key)
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            "usage error: api_key must not contain CR, LF or other control characters\n"
        )
        assert live.cli_requests() == []

    def test_a_key_with_lf_from_the_environment(
        self, live: LiveSandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", "abc\ndef")
        result = run_cli("--base-url", live.url, "list")
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            "usage error: $CELLCAST_API_KEY must not contain CR, LF or other control characters\n"
        )

    def test_an_empty_key(self, live: LiveSandbox) -> None:
        result = run_cli("--api-key", "", "--base-url", live.url, "list")
        assert (result.code, result.out, result.err) == (2, "", "usage error: api_key is empty\n")

    def test_plain_http_to_a_remote_host(self) -> None:
        result = run_cli("--api-key", "k", "--base-url", "http://example.com", "list")
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            "usage error: refusing plain http:// to 'example.com': the API key would travel in "
            "the clear; use https:// (plain http is allowed only for loopback hosts)\n"
        )


class TestDebug:
    """``--debug`` adds the traceback and the SDK's DEBUG log; without it there is neither."""

    @pytest.mark.usefixtures("restore_logger")
    def test_api_error_with_traceback(self, live: LiveSandbox) -> None:
        result = live.cli("--debug", "get", MISSING)
        lines = result.err_lines
        assert (result.code, result.out) == (1, "")
        assert f"cellcast_async DEBUG GET /api/v1/apiClient/token/{MISSING} -> 404 in" in lines[0]
        assert lines[1] == "Traceback (most recent call last):"
        assert lines[-2] == (
            "cellcast_async._exceptions.NotFoundError: "
            f"GET /api/v1/apiClient/token/{MISSING} -> 404 Not found: API token not found"
        )
        assert lines[-1] == (
            f"error: GET /api/v1/apiClient/token/{MISSING} -> 404 Not found: API token not found"
        )

    @pytest.mark.usefixtures("restore_logger")
    def test_usage_error_with_traceback(self, live: LiveSandbox) -> None:
        result = live.cli("--debug", "update", MISSING)
        lines = result.err_lines
        assert (result.code, result.out) == (2, "")
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[-2] == (
            "cellcast_async._cli._context.CliUsageError: "
            "update needs at least one of --name or --status"
        )
        assert lines[-1] == "usage error: update needs at least one of --name or --status"

    def test_the_debug_log_ends_with_the_run(
        self, live: LiveSandbox, restore_logger: logging.Logger
    ) -> None:
        debug_err = io.StringIO()
        debug = live.cli("--debug", "get", MISSING, stderr=debug_err)
        later = live.cli("get", MISSING)
        assert (debug.code, later.code) == (1, 1)
        assert debug.err.count(" DEBUG ") == 1
        assert debug_err.getvalue() == debug.err
        assert later.err.count(" DEBUG ") == 0
        assert restore_logger.level == logging.NOTSET
        assert not any(
            isinstance(h, logging.StreamHandler) and h.stream is debug_err
            for h in restore_logger.handlers
        )


class TestHelpAndVersion:
    """``--help`` and ``--version`` write to the given stdout and exit 0."""

    def test_version(self) -> None:
        result = run_cli("--version")
        assert (result.code, result.out, result.err) == (0, f"cellcast-tokens {__version__}\n", "")

    @pytest.mark.parametrize(
        "command", ["audit", "list", "get", "create", "update", "delete", "diff", "sandbox"]
    )
    def test_every_command_has_a_description_and_shows_defaults(self, command: str) -> None:
        result = run_cli(command, "--help")
        text = " ".join(result.out.split())
        assert (result.code, result.err) == (0, "")
        assert result.out.startswith(f"Usage: cellcast-tokens {command} [OPTIONS]")
        description = result.out.split("\n\n", 2)[1].strip()
        assert len(description) > 20
        if command not in ("get", "delete", "create", "update", "diff"):
            assert "[default: " in text
        assert "--json" in text

    def test_defaults_in_the_group_help(self) -> None:
        result = run_cli("--help")
        text = " ".join(result.out.split())
        assert result.code == 0
        assert "--timeout SECONDS Seconds per try. [default: 30.0]" in text
        assert "--max-retries N Retries of a failed request. [default: 2; x>=0]" in text
        assert "[default: ($CELLCAST_API_KEY)]" in text

    def test_list_help_says_array_or_json_lines(self) -> None:
        text = " ".join(run_cli("list", "--help").out.split())
        assert "with --json one JSON array" in text
        assert "With --json: JSON Lines, one object per token, instead of one JSON array." in text


class TestGlobalOptionsAfterTheCommand:
    """Global options work after the command's name as well as before it."""

    def test_json_either_side(self, live: LiveSandbox) -> None:
        before = live.cli("--json", "list", "--max-items", "3")
        after = live.cli("list", "--max-items", "3", "--json")
        assert (before.code, before.err) == (after.code, after.err) == (0, "")
        assert before.out == after.out
        assert len(json.loads(after.out)) == 3

    def test_an_option_before_is_kept_when_another_comes_after(
        self, live: LiveSandbox, fake_sleep: Any
    ) -> None:
        """``--max-retries 0`` before the command survives ``--timeout 5`` after it."""
        live.script({1: "503"})
        result = live.cli("--max-retries", "0", "list", "--timeout", "5")
        assert result.code == 1
        assert fake_sleep.delays == []

    def test_after_wins_over_before(self, live: LiveSandbox, fake_sleep: Any) -> None:
        live.script({1: "503"})
        result = live.cli("--max-retries", "0", "list", "--max-retries", "1", "--json")
        assert result.code == 0
        assert len(fake_sleep.delays) == 1

    def test_same_output_either_side(self, live: LiveSandbox) -> None:
        """``audit --json`` after the command prints what ``--json audit`` prints."""
        before = live.cli("--json", "audit", "--quiet", "--as-of", "2025-07-16")
        after = run_cli(
            *("audit", "--quiet", "--as-of", "2025-07-16", "--json"),
            *("--api-key", live.api_key, "--base-url", live.url),
        )
        assert (before.code, before.err) == (after.code, after.err) == (0, "")
        assert json.loads(after.out)["total"] == 300
        # The same but for the walk's timings, which no two runs share.
        timing = ("elapsed", "waited", "waited_sum")

        def strip(out: str) -> dict[str, Any]:
            summary: dict[str, Any] = json.loads(out)
            walk = {k: v for k, v in summary["walk"].items() if k not in timing}
            return {**summary, "walk": walk}

        assert strip(after.out) == strip(before.out)


class TestUnencodableOutput:
    """A name the output stream cannot encode is an error exit, not a usage error."""

    def test_ascii_stdout(self, live: LiveSandbox) -> None:
        """stdout that only takes ASCII meets a non-ASCII name: exit 1, one line."""
        created = live.cli(
            "create", "--name", "Café API", "--sub-account", live.sb.sub_account_ids[0]
        )
        assert created.code == 0
        out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        err = io.StringIO()
        code = main(live.args("list", "--search", "Café"), stdout=out, stderr=err)
        assert code == 1
        assert err.getvalue().startswith("error: cannot write the output: ordinal not in range")
        assert len(err.getvalue().splitlines()) == 1
