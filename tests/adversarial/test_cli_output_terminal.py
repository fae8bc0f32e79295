"""The command line prints data, never markup or control sequences (README "What the
command line prints").

A hostile server (``_cli_output_server``) names tokens, ids and sub-accounts with rich
markup, escape sequences (CSI, OSC 52, OSC 8), C1 controls, BEL, DEL, bidi overrides,
line separators and newlines, and answers writes with a 400 whose message is made of the
same. Every command that shows them (list, get, audit's report, diff, error lines,
progress) must show each visibly escaped, literally, on one line: checked through
``main()`` on string streams and, where the terminal matters (rich writes styles and
hyperlinks only to one), on real pseudo-terminals.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from cellcast_async._cli._progress import PlainProgress, RichProgress

from ..cli._support import TtyStringIO, run_cli
from ._cli_output_server import (
    AS_OF,
    ERROR_MESSAGE,
    HOSTILE,
    RAW_CONTROLS,
    SHOWN,
    SUB_ID,
    SUB_NAME,
    HostileApi,
    items,
)
from ._pty import run_on_pty

# The error line as it must read: the server's words escaped, on one line.
ERROR_SHOWN = "bad [/] name\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\u202e\\nerror: forged line"
SGR = re.compile(r"\x1b\[([0-9;]*)m")


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide enough that no name wraps."""
    monkeypatch.setenv("COLUMNS", "250")


def assert_inert(text: str) -> None:
    """No control character or bidi/line-separator raw; no ESC at all (not a terminal)."""
    found = [c for c in RAW_CONTROLS if c in text]
    assert found == [], f"raw control characters {found!r} in {text!r}"


def assert_inert_terminal(text: str) -> None:
    """On a terminal: only rich's own SGR styles (bold, colours), no blink, no hyperlink,
    no other sequence."""
    for match in SGR.finditer(text):
        params = match.group(1).split(";")
        while params:
            param = params.pop(0)
            if param in ("38", "48"):  # an extended colour: 5;N or 2;R;G;B
                del params[: 2 if params[:1] == ["5"] else 4]
            assert param not in ("5", "6"), f"blink in {match.group(0)!r}"
    assert_inert(SGR.sub("", text))


def assert_every_name_shown(text: str, labels: list[str] | None = None) -> None:
    for label in labels or list(HOSTILE):
        assert SHOWN[label] in text, label


def table_rows(text: str) -> list[str]:
    """A table's lines below its header rule."""
    lines = text.splitlines()
    rule = next(n for n, line in enumerate(lines) if line.startswith("─"))
    return [line for line in lines[rule + 1 :] if line.strip()]


class TestList:
    """list: the table shows every name literally, one row per token; --json round-trips."""

    def test_table(self, api: HostileApi) -> None:
        result = run_cli(*api.args("list"))
        assert (result.code, result.err) == (0, "")
        assert_inert(result.out)
        assert_every_name_shown(result.out)
        rows = table_rows(result.out)
        assert rows[-1] == f"{len(api.tokens)} token(s)"
        assert len(rows) - 1 == len(api.tokens)  # no forged row
        forged = [row for row in rows if "forged 999 row" in row]
        assert len(forged) == 2
        assert all("two\\nlines" in row for row in forged)

    def test_table_on_a_terminal(self, api: HostileApi) -> None:
        result = run_on_pty(*api.args("list"))
        assert (result.code, result.err) == (0, "")
        assert_inert_terminal(result.out)
        assert_every_name_shown(SGR.sub("", result.out))

    @pytest.mark.parametrize("jsonl", [False, True], ids=["array", "jsonl"])
    def test_json(self, api: HostileApi, jsonl: bool) -> None:
        result = run_cli(*api.args("--json", "list", *(["--jsonl"] if jsonl else [])))
        assert (result.code, result.err) == (0, "")
        assert_inert(result.out)
        if jsonl:
            body = [json.loads(line) for line in result.out.split("\n") if line]
        else:
            body = json.loads(result.out)
        assert [t["name"] for t in body] == [t["name"] for t in api.tokens]
        assert [t["id"] for t in body] == [t["_id"] for t in api.tokens]
        assert body[0]["sub_account"]["name"] == SUB_NAME
        for escape in ("\\u202e", "\\u2028", "\\u0085", "\\u009b", "\\u007f"):
            assert escape in result.out


class TestGet:
    """get: one token's row, its id, name and sub-account escaped."""

    @pytest.mark.parametrize("label", list(HOSTILE))
    def test_table(self, api: HostileApi, label: str) -> None:
        number = list(HOSTILE).index(label)
        token = api.tokens[number]
        result = run_cli(*api.args("get", "--", token["_id"]))  # an id may start with "-"
        assert (result.code, result.err) == (0, "")
        assert_inert(result.out)
        (row,) = table_rows(result.out)
        assert SHOWN[label] in row
        assert row.startswith(SHOWN[label][:12])  # the id, escaped alike

    def test_on_a_terminal(self, api: HostileApi) -> None:
        token = api.tokens[list(HOSTILE).index("markup_link")]
        result = run_on_pty(*api.args("get", token["_id"]))
        assert (result.code, result.err) == (0, "")
        assert_inert_terminal(result.out)
        assert "[link=http://evil.example/]harmless[/link]" in SGR.sub("", result.out)

    def test_json(self, api: HostileApi) -> None:
        token = api.tokens[list(HOSTILE).index("line_sep")]
        result = run_cli(*api.args("--json", "get", token["_id"]))
        assert (result.code, result.err) == (0, "")
        assert_inert(result.out)
        assert json.loads(result.out)["name"] == HOSTILE["line_sep"]


class TestCreate:
    """create: the created token's id, name and sub-account are escaped too."""

    def test_plain(self, api: HostileApi) -> None:
        result = run_cli(*api.args("create", "--name", "make", "--sub-account", "s"))
        assert result.code == 0, result.err
        assert_inert(result.out)
        number = list(HOSTILE).index("osc8")
        assert result.out.splitlines()[0] == (
            f"Created token \\x1b]8;;http://-{number:04d} ({HOSTILE['osc8']!r})"
            " for sub[/]\\x1b[2J\\u202e"
        )


class TestAudit:
    """audit: the report's tables, warnings and --verbose lines show names as data."""

    def test_report(self, api: HostileApi) -> None:
        result = run_cli(*api.args("audit", "--as-of", AS_OF, "-q", "--verbose"))
        assert (result.code, result.err) == (0, "")
        assert_inert(result.out)
        assert_every_name_shown(result.out)
        out = result.out
        assert "\\x1b[2J\\u202e" in out  # the sub-account id in the per-sub-account table
        assert "[blink]Acme\\x1b]52;c;QQ==\\x07[/blink]" in out  # its name
        warning = [line for line in out.splitlines() if line.startswith("warning:")]
        assert warning == [
            "warning: 2 tokens named 'oops [/] here' in sub-account sub[/]\\x1b[2J\\u202e"
            " ([blink]Acme\\x1b]52;c;QQ==\\x07[/blink]): dup-0001, oops [/] her-0000"
        ]
        assert "  'invoice\\u202egpj.exe': other-sub, sub[/]\\x1b[2J\\u202e" in out
        assert "[BLINK]ODD\\x1b[2J\\u202e" in out  # a status, as a column's header

    def test_report_on_a_terminal(self, api: HostileApi) -> None:
        result = run_on_pty(*api.args("audit", "--as-of", AS_OF, "-q", "--verbose"))
        assert (result.code, result.err) == (0, "")
        assert_inert_terminal(result.out)
        assert_every_name_shown(SGR.sub("", result.out))

    def test_progress_on_a_terminal(self, api: HostileApi) -> None:
        result = run_on_pty(*api.args("audit", "--as-of", AS_OF))
        assert result.code == 0
        # The live bar moves the cursor: those sequences are rich's, not the server's.
        bar = re.sub(r"\x1b\[\?25[lh]|\x1b\[2K|\x1b\[1A|\r", "", result.err)
        assert_inert_terminal(bar)

    def test_json_report(self, api: HostileApi) -> None:
        result = run_cli(*api.args("--json", "audit", "--as-of", AS_OF, "-q"))
        assert (result.code, result.err) == (0, "")
        assert_inert(result.out)
        body = json.loads(result.out)
        names = {t["name"] for t in body["stale"]["tokens"] + body["inactive"]["tokens"]}
        assert names == set(HOSTILE.values())
        assert body["by_sub_account"][1]["id"] == SUB_ID

    def test_jsonl_records(self, api: HostileApi) -> None:
        result = run_cli(*api.args("audit", "--format", "jsonl", "--as-of", AS_OF, "-q"))
        assert result.code == 0
        assert_inert(result.out)
        assert_inert(result.err)  # the report, on stderr beside records on stdout
        records = [json.loads(line) for line in result.out.split("\n") if line]
        assert [r["name"] for r in records] == [t["name"] for t in api.tokens]
        assert [r["sub_account_name"] for r in records][:1] == [SUB_NAME]


@pytest.fixture(scope="module")
def audits(api: HostileApi, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Two audits of the hostile account: benign names, then the hostile ones."""
    folder = tmp_path_factory.mktemp("diff")
    before, after = folder / "before.csv", folder / "after.jsonl"
    hostile = api.tokens
    try:
        api.tokens = items({label: f"plain {n}" for n, label in enumerate(HOSTILE)})
        api.tokens.append(items()[0] | {"_id": "gone\x1b[2J"})
        argv = ["audit", "--output", str(before), "--as-of", AS_OF, "-q"]
        assert run_cli(*api.args(*argv)).code == 0
    finally:
        api.tokens = hostile
    argv = ["audit", "--format", "jsonl", "--output", str(after), "--as-of", AS_OF, "-q"]
    assert run_cli(*api.args(*argv)).code == 0
    return str(before), str(after)


class TestDiff:
    """diff: renamed, created and deleted tokens and their sub-accounts print as data."""

    def test_table(self, audits: tuple[str, str]) -> None:
        before, after = audits
        result = run_cli("diff", before, after)
        assert (result.code, result.err) == (1, "")
        assert_inert(result.out)
        assert_every_name_shown(result.out)
        lines = result.out.splitlines()
        renamed = 2 * len(HOSTILE) + 1  # every token, the duplicate too; one deleted
        assert lines[0] == (
            f"{renamed + 1} change(s) from {before} to {after}: 1 deleted, {renamed} renamed"
        )
        assert "sub-account sub[/]\\x1b[2J\\u202e [blink]Acme\\x1b]52;c;QQ==" in result.out
        assert "gone\\x1b[2J" in result.out

    def test_table_on_a_terminal(self, audits: tuple[str, str]) -> None:
        result = run_on_pty("diff", *audits)
        assert (result.code, result.err) == (1, "")
        assert_inert_terminal(result.out)
        assert_every_name_shown(SGR.sub("", result.out))

    def test_json(self, audits: tuple[str, str]) -> None:
        result = run_cli("--json", "diff", *audits)
        assert result.code == 1
        assert_inert(result.out)
        body = json.loads(result.out)
        renamed = [e["new_name"] for g in body["sub_accounts"] for e in g["renamed"]]
        assert sorted(renamed) == sorted(
            [*HOSTILE.values(), *HOSTILE.values(), HOSTILE["markup_close"]]
        )

    def test_file_names_are_data(self, tmp_path: Path) -> None:
        """Even the file names the user gave are printed as data."""
        old = tmp_path / "[blink]old"
        old.write_text("", encoding="utf-8")
        result = run_cli("diff", str(old), str(old))
        assert (result.code, result.out) == (0, f"No changes between {old} and {old}.\n")


class TestErrorLines:
    """The server's words in an error line: escaped, one line, in plain and --json."""

    def test_plain(self, api: HostileApi) -> None:
        result = run_cli(*api.args("update", "some-id", "--name", "x"))
        assert (result.code, result.out) == (1, "")
        assert result.err == (f"error: PUT /api/v1/apiClient/token/some-id -> 400 {ERROR_SHOWN}\n")

    def test_on_a_terminal(self, api: HostileApi) -> None:
        result = run_on_pty(*api.args("get", "no-such-id"))
        assert (result.code, result.out) == (1, "")
        assert_inert_terminal(result.err)
        assert result.err.count("\n") == 1
        assert ERROR_SHOWN in result.err

    def test_debug_traceback_and_log(self, api: HostileApi) -> None:
        """--debug prints a traceback and the SDK's log: escaped line by line."""
        result = run_cli(*api.args("--debug", "get", "no-such-id"))
        assert (result.code, result.out) == (1, "")
        assert_inert(result.err)
        assert "Traceback (most recent call last)" in result.err
        lines = result.err.splitlines()
        assert lines[-2:] == [
            "cellcast_async._exceptions.BadRequestError: GET /api/v1/apiClient/token/no-such-id"
            f" -> 400 {ERROR_SHOWN}",
            f"error: GET /api/v1/apiClient/token/no-such-id -> 400 {ERROR_SHOWN}",
        ]
        assert "  File " in result.err  # the frames keep their own lines

    def test_json(self, api: HostileApi) -> None:
        result = run_cli(*api.args("--json", "delete", "--yes", "some-id"))
        assert (result.code, result.out) == (1, "")
        assert_inert(result.err)
        assert result.err.count("\n") == 1
        assert json.loads(result.err)["message"].endswith(ERROR_MESSAGE)


class TestProgress:
    """A status shown beside the count is data too, on a terminal and in plain lines."""

    STATUS = "[blink]paused[/] \x1b[2J\u202e"

    def test_rich_bar(self) -> None:
        stream = TtyStringIO()
        console = Console(file=stream, force_terminal=True, width=200, highlight=False)
        progress = RichProgress(console, label="[blink]audit[/]")
        progress.status(self.STATUS)
        progress.advance(5, 10)
        progress.close()
        text = re.sub(r"\x1b\[\?25[lh]|\x1b\[2K|\x1b\[1A|\r", "", stream.getvalue())
        assert_inert_terminal(text)
        plain = SGR.sub("", text)
        assert "[blink]paused[/] \\x1b[2J\\u202e" in plain
        assert "[blink]audit[/]" in plain

    def test_plain_lines(self) -> None:
        stream = io.StringIO()
        progress = PlainProgress(stream, clock=lambda: 0.0)
        progress.status(self.STATUS)
        progress.close()
        assert stream.getvalue() == (
            "audit: 0 tokens, -/s, 0:00:00 elapsed ([blink]paused[/] \\x1b[2J\\u202e)\n"
        )


class TestLongText:
    """A 1 MB name (the seeds set no limit) is cut in every table at MAX_CELL characters,
    the rest counted: a human view of seven tokens is not 21 MB of padding and text.
    ``--json`` and the records keep every character."""

    BIG = "B" * 1_000_000
    CUT = "B" * 200 + "\u2026 (999,800 more characters)"

    @pytest.fixture
    def long_api(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileApi]:
        monkeypatch.setenv("COLUMNS", "2000")  # a cut cell fits: no row wraps
        with HostileApi() as server:
            server.tokens = items({"plus": self.BIG, "at": "x\x1b" * 300_000})
            yield server

    @pytest.mark.parametrize(
        "argv", [["audit", "--as-of", AS_OF, "-q"], ["list"]], ids=["audit", "list"]
    )
    def test_tables_cut_long_cells(self, long_api: HostileApi, argv: list[str]) -> None:
        result = run_cli(*long_api.args(*argv))
        assert (result.code, result.err) == (0, "")
        assert len(result.out) < 200_000
        assert self.CUT in result.out
        assert "x\\x1b" * 10 in result.out
        assert "(1,499,800 more characters)" in result.out  # 300,000 times "x\\x1b"
        assert "\x1b" not in result.out

    def test_get_and_json_keep_every_character(self, long_api: HostileApi) -> None:
        token_id = long_api.tokens[list(HOSTILE).index("plus")]["_id"]
        table = run_cli(*long_api.args("get", "--", token_id))
        assert table.code == 0
        assert self.CUT in table.out
        got = run_cli(*long_api.args("--json", "get", "--", token_id))
        assert json.loads(got.out)["name"] == self.BIG
