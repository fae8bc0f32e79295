"""Issue 12's rough edges: broken pipes, --json errors, terminal widths, the missing extra."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from cellcast_async import CellcastError
from cellcast_async import cli as cli_module
from cellcast_async._cli import cli
from cellcast_async._cli._context import Settings
from cellcast_async._cli._errors import _policy
from cellcast_async._cli._progress import PlainProgress, RichProgress, make_reporter

from ._support import FULL_SECRET, ROOT, LiveSandbox, run_cli

MISSING = "0" * 24
ID = re.compile(r"[0-9a-f]{24}")


def run_module(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cellcast_async", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


class TestBrokenPipe:
    """A reader that stops early (``| head -1``) ends the command quietly with exit 0."""

    def test_audit_jsonl_into_head(self) -> None:
        script = (
            f"{sys.executable} -m cellcast_async --sandbox -q audit --format jsonl | head -1; "
            'echo "exit=${PIPESTATUS[0]}" >&2'
        )
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        record = json.loads(done.stdout)
        assert done.stderr == "exit=0\n"
        assert ID.fullmatch(record["id"])

    @pytest.mark.parametrize("argv", [["list", "--json", "--jsonl"], ["list"]])
    def test_closed_stdout_mid_listing(self, argv: list[str]) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "cellcast_async", "--sandbox", "-q", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        assert process.wait(timeout=60) == 0
        assert process.stderr.read() == b""


class TestSubprocess:
    """Every API command through the real entry point, against ``--sandbox``."""

    @pytest.mark.parametrize(
        ("argv", "check"),
        [
            (["get", "{id}", "--json"], '"id": "{id}"'),
            (["create", "--name", "Sub Process", "--sub-account", "demo", "--json"], '"token": "'),
            (["update", "{id}", "--status", "inactive"], "inactive"),
            (["delete", "--yes", "{id}"], "Deleted token {id}"),
            (["audit", "--json"], '"total": 300'),
            (["list", "--max-items", "2", "--json"], '"id": "{id}"'),
        ],
        ids=["get", "create", "update", "delete", "audit", "list"],
    )
    def test_command(self, argv: list[str], check: str) -> None:
        # The demo data is the same in every --sandbox run: its second token is there.
        listed = run_cli("--sandbox", "-q", "list", "--json", "--max-items", "2")
        token_id = json.loads(listed.out)[1]["id"]
        done = run_module("--sandbox", "-q", *(arg.format(id=token_id) for arg in argv))
        warning = "warning: this is the only time the full token is shown; store it securely now.\n"
        assert (done.returncode, done.stderr) == (0, warning if argv[0] == "create" else "")
        assert check.format(id=token_id) in done.stdout

    def test_json_usage_error_from_the_real_argv(self) -> None:
        """``--json`` after a bad value still makes the error JSON (argv read from sys.argv)."""
        done = run_module("list", "--page-size", "0", "--json")
        assert (done.returncode, done.stdout) == (2, "")
        assert json.loads(done.stderr)["class"] == "UsageError"


class TestJsonErrors:
    """With --json every error is one JSON object on stderr: class, status, message."""

    def test_api_error(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "get", MISSING)
        assert (result.code, result.out) == (1, "")
        assert json.loads(result.err) == {
            "class": "NotFoundError",
            "status": 404,
            "message": f"GET /api/v1/apiClient/token/{MISSING} -> 404 Not found: "
            "API token not found",
        }

    def test_network_error(self, closed_port: int) -> None:
        base = f"http://127.0.0.1:{closed_port}"
        result = run_cli(
            "--api-key", "k", "--base-url", base, "--max-retries", "0", "list", "--json"
        )
        body = json.loads(result.err)
        assert (result.code, result.out, len(result.err_lines)) == (1, "", 1)
        assert (body["class"], body["status"]) == ("TransportError", None)
        # How the transport words a refused connection is its own business; the call is ours.
        assert body["message"].startswith("GET /api/v1/apiClient/token: ")
        assert f"127.0.0.1:{closed_port}" in body["message"]

    def test_parse_error_before_json_is_read(self, live: LiveSandbox) -> None:
        """``--page-size 0 --json``: the bad value is met first, and still answered in JSON."""
        result = live.cli("list", "--page-size", "0", "--json")
        assert (result.code, result.out) == (2, "")
        assert json.loads(result.err) == {
            "class": "UsageError",
            "status": None,
            "message": "cellcast-tokens list: Invalid value for '--page-size': "
            "0 is not in the range x>=1.",
        }

    def test_sdk_misuse(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[0]
        result = live.cli("--json", "create", "--name", " ", "--sub-account", sub)
        assert (result.code, result.out) == (2, "")
        assert json.loads(result.err) == {
            "class": "UsageError",
            "status": None,
            "message": "name must not be empty or blank",
        }

    def test_missing_key(self) -> None:
        result = run_cli("--json", "--base-url", "http://127.0.0.1:1", "audit")
        assert (result.code, result.out) == (2, "")
        assert json.loads(result.err)["message"] == (
            "no API key: pass --api-key or set $CELLCAST_API_KEY"
        )


class TestTerminalWidth:
    """Tables fit the terminal's width; ids are never cut or wrapped."""

    @pytest.mark.parametrize("columns", [60, 80, 100, 160])
    @pytest.mark.parametrize("argv", [["list", "--max-items", "40"], ["audit"]])
    def test_tables_fit(
        self, monkeypatch: pytest.MonkeyPatch, columns: int, argv: list[str]
    ) -> None:
        monkeypatch.setenv("COLUMNS", str(columns))
        result = run_cli("--sandbox", "-q", *argv)
        lines = result.out.splitlines()
        table_lines = [line for line in lines if ID.match(line)]
        assert result.code == 0
        assert max(len(line) for line in table_lines) <= columns
        assert len(table_lines) >= 20
        # An id is whole at the start of its row: 24 hex digits, then a space.
        assert all(re.match(r"[0-9a-f]{24}( |$)", line) for line in table_lines)

    def test_rich_console_width_decides(self) -> None:
        """The same table at two console widths: wider rows on the wider console."""
        from cellcast_async._cli._output import make_table

        table = make_table("ID", "NAME")
        table.add_row("f" * 24, "A rather long token name that wraps on a narrow console")
        widths = []
        for width in (50, 120):
            buffer = io.StringIO()
            Console(file=buffer, width=width).print(table)
            widths.append(max(len(line.rstrip()) for line in buffer.getvalue().splitlines()))
        assert widths[0] <= 50 < widths[1] <= 120


class TestMissingExtra:
    """Without click and rich: one line naming the install command, exit 2."""

    HINT = (
        "cellcast-tokens needs the cli extra (click and rich): "
        "python -m pip install 'cellcast-async[cli]'\n"
    )

    @pytest.mark.parametrize("missing", ["click", "rich"])
    def test_in_process(self, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
        for name in [m for m in sys.modules if m.startswith("cellcast_async._cli")]:
            monkeypatch.delitem(sys.modules, name)
        for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, missing, None)  # import -> ImportError
        out, err = io.StringIO(), io.StringIO()
        assert cli_module.main(["--sandbox", "audit"], stdout=out, stderr=err) == 2
        assert (out.getvalue(), err.getvalue()) == ("", self.HINT)
        out, err = io.StringIO(), io.StringIO()
        assert cli_module.sandbox_main(["--port", "0"], stdout=out, stderr=err) == 2
        assert (out.getvalue(), err.getvalue()) == ("", self.HINT)

    def test_the_sdk_imports_without_them(self) -> None:
        code = (
            "import sys; sys.modules['click'] = sys.modules['rich'] = None; "
            "import cellcast_async, cellcast_async.sandbox; "
            "from cellcast_async.cli import main; sys.exit(main(['list']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert (done.returncode, done.stdout, done.stderr) == (2, "", self.HINT)


class TestCliRunner:
    """Every command through click's own test runner (the group, standalone)."""

    def invoke(self, *argv: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["--sandbox", "-q", *argv])
        return result.exit_code, result.stdout, result.stderr

    def test_every_command(self, tmp_path: Path) -> None:
        code, out, _ = self.invoke("list", "--json", "--max-items", "3")
        ids = [token["id"] for token in json.loads(out)]
        assert (code, len(ids)) == (0, 3)
        code, out, _ = self.invoke("get", ids[0], "--json")
        assert (code, json.loads(out)["id"]) == (0, ids[0])
        code, out, err = self.invoke("create", "--name", "Runner", "--sub-account", "demo")
        assert code == 0
        assert FULL_SECRET.search(out)
        assert err.startswith("warning: this is the only time")
        code, out, _ = self.invoke("update", ids[0], "--status", "inactive", "--json")
        assert (code, json.loads(out)["status"]) == (0, "inactive")
        code, out, _ = self.invoke("delete", "--yes", ids[0])
        assert (code, out) == (0, f"Deleted token {ids[0]}\n")
        code, out, _ = self.invoke("audit", "--json")
        assert (code, json.loads(out)["total"]) == (0, 300)
        records = tmp_path / "a.jsonl"
        code, _, _ = self.invoke("audit", "--format", "jsonl", "--output", str(records))
        assert code == 0
        code, out, _ = self.invoke("diff", str(records), str(records))
        assert (code, out) == (0, f"No changes between {records} and {records}.\n")
        code, out, _ = self.invoke("sandbox", "--help")
        assert code == 0
        assert "--fail-every N" in out

    def test_exit_codes(self) -> None:
        assert self.invoke("get", MISSING)[0] == 1
        assert self.invoke("update", MISSING)[0] == 2
        assert self.invoke("list", "--page-size", "0")[0] == 2


class TestProgressReporters:
    """Plain lines on a fake clock; the rich bar's columns and its status slot."""

    def test_plain_lines_every_interval_and_at_the_end(self) -> None:
        now = [0.0]
        stream = io.StringIO()
        progress = PlainProgress(stream, interval=5.0, clock=lambda: now[0])
        for done, at in [(100, 1.0), (200, 2.0), (300, 6.0), (400, 7.0), (500, 8.0)]:
            now[0] = at
            progress.advance(done, 12_500)
        progress.status("paused for 429 (2.0 s)")
        now[0] = 10.0
        progress.status(None)
        progress.advance(12_500, 12_500)
        progress.close()
        assert stream.getvalue().splitlines() == [
            "audit: 100/12,500 tokens, 100/s, 0:00:01 elapsed",
            "audit: 300/12,500 tokens, 50/s, 0:00:06 elapsed",
            "audit: 500/12,500 tokens, 62/s, 0:00:08 elapsed (paused for 429 (2.0 s))",
            "audit: 12,500/12,500 tokens, 1,250/s, 0:00:10 elapsed",
        ]

    def test_plain_progress_says_nothing_for_a_walk_that_never_started(self) -> None:
        stream = io.StringIO()
        PlainProgress(stream).close()
        assert stream.getvalue() == ""

    def test_rich_bar(self) -> None:
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
        with RichProgress(console) as progress:
            progress.advance(1_500, 3_000)
            progress.status("paused for 429")
            progress.advance(3_000, 3_000)
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
        last = [line for line in text.splitlines() if "tokens" in line][-1]
        assert re.search(r"audit .*3,000/3,000 tokens +[\d,]+/s +0:00:0\d +eta +0:00:00", last)
        assert "paused for 429" in last

    @pytest.mark.parametrize(
        ("tty", "quiet", "kind"),
        [(True, False, RichProgress), (False, False, PlainProgress), (True, True, None)],
    )
    def test_make_reporter(self, tty: bool, quiet: bool, kind: type | None) -> None:
        class Stream(io.StringIO):
            def isatty(self) -> bool:
                return tty

        reporter = make_reporter(Stream(), quiet=quiet)
        with reporter:
            pass
        if kind is None:
            assert type(reporter).__name__ == "Reporter"
        else:
            assert isinstance(reporter, kind)


class TestErrorPolicy:
    """One exception, one exit code and one line (or one JSON object) on stderr."""

    @pytest.mark.parametrize(
        ("exc", "code", "line", "as_json"),
        [
            (
                CellcastError("GET /x: no usable answer"),
                1,
                "error: GET /x: no usable answer",
                {"class": "CellcastError", "status": None, "message": "GET /x: no usable answer"},
            ),
            (
                ValueError("page must be at least 1"),
                2,
                "usage error: page must be at least 1",
                {"class": "UsageError", "status": None, "message": "page must be at least 1"},
            ),
            (
                FileNotFoundError(2, "No such file or directory", "out/x.csv"),
                1,
                "error: [Errno 2] No such file or directory: 'out/x.csv'",
                {
                    "class": "FileNotFoundError",
                    "status": None,
                    "message": "[Errno 2] No such file or directory: 'out/x.csv'",
                },
            ),
            (
                KeyboardInterrupt(),
                130,
                "interrupted",
                {"class": "KeyboardInterrupt", "status": None, "message": "interrupted"},
            ),
            (BrokenPipeError(32, "Broken pipe"), 0, None, None),
        ],
        ids=["api", "sdk-misuse", "os", "ctrl-c", "broken-pipe"],
    )
    @pytest.mark.parametrize("json_mode", [False, True])
    def test_mapping(
        self,
        exc: BaseException,
        code: int,
        line: str | None,
        as_json: dict[str, object] | None,
        json_mode: bool,
    ) -> None:
        def work() -> int:
            raise exc

        stderr = io.StringIO()
        settings = Settings(out=io.StringIO(), err=stderr, json=json_mode)
        assert _policy(settings, work) == code
        err = stderr.getvalue()
        if line is None:
            assert err == ""
        elif json_mode:
            assert json.loads(err) == as_json
        else:
            assert err == line + "\n"
