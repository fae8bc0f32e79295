"""Issue 20's rough edges, as a new user hit them: --quiet, the nightly recipe's first
night, ``audit | head``, a long ``list``, piped and narrow tables, the standalone
sandbox's dates, the records' format from the file name, ``delete``'s confirmation,
Ctrl-C and resuming, a busy port, "1 retry", and README's ``create`` example.

The terminal itself (a prompt, a narrow window) is tested in tmux: ``test_first_use_tmux``.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cellcast_async import CellcastSession
from cellcast_async._cli import _audit_run
from cellcast_async._cli._audit_render import render_walk
from cellcast_async._walk import WalkStats
from cellcast_async.sandbox import Sandbox

from ._support import AS_OF, ROOT, LiveSandbox, TtyStringIO, run_cli

ID = re.compile(r"[0-9a-f]{24}")


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


class TestQuiet:
    """--quiet: the records are the output; a report only when nothing else is asked."""

    def test_records_to_a_file_print_nothing(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "today.jsonl"
        result = live.cli("audit", "--output", str(target), "--quiet")
        assert (result.code, result.out, result.err) == (0, "", "")
        assert len(ids_of(target)) == 300

    def test_json_report_still_printed(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "today.jsonl"
        result = live.cli("--json", "audit", "--output", str(target), "--as-of", AS_OF, "-q")
        assert (result.code, result.err) == (0, "")
        assert json.loads(result.out)["total"] == 300

    def test_report_alone_is_still_printed(self, live: LiveSandbox) -> None:
        result = live.cli("audit", "--as-of", AS_OF, "-q")
        assert (result.code, result.err) == (0, "")
        assert result.out.startswith("Audit of 300 token(s) as of 2025-07-16 00:00 UTC")


class TestNightlyRecipe:
    """README's recipe: quiet, and the first night (no yesterday) is no alarm."""

    def test_first_and_second_night(self, live: LiveSandbox, tmp_path: Path) -> None:
        yesterday, today = tmp_path / "yesterday.jsonl", tmp_path / "today.jsonl"
        audit = live.cli("audit", "--output", str(today), "--quiet")
        first = run_cli("diff", "--missing-ok", str(yesterday), str(today))
        assert (audit.code, audit.out, audit.err) == (0, "", "")
        assert (first.code, first.out) == (0, "")
        assert first.err == f"{yesterday} does not exist: first run, nothing compared\n"
        today.rename(yesterday)
        live.cli("audit", "--output", str(today), "--quiet")
        second = run_cli("diff", "--missing-ok", str(yesterday), str(today))
        assert (second.code, second.err) == (0, "")
        assert second.out.startswith("No changes")

    def test_missing_ok_json_is_an_empty_diff(self, live: LiveSandbox, tmp_path: Path) -> None:
        today = tmp_path / "today.jsonl"
        live.cli("audit", "--output", str(today), "--quiet")
        result = run_cli("--json", "diff", "--missing-ok", str(tmp_path / "none"), str(today))
        assert result.code == 0
        assert json.loads(result.out)["changed"] is False
        assert json.loads(result.out)["sub_accounts"] == []

    def test_without_missing_ok_a_missing_old_is_an_error(self, tmp_path: Path) -> None:
        today = tmp_path / "today.jsonl"
        today.write_text("", encoding="utf-8")
        result = run_cli("diff", str(tmp_path / "none"), str(today))
        assert result.code == 2
        assert "none" in result.err

    def test_missing_ok_still_reads_new(self, tmp_path: Path) -> None:
        """A broken NEW is an error on the first night too."""
        result = run_cli("diff", "--missing-ok", str(tmp_path / "a"), str(tmp_path / "b"))
        assert result.code == 2
        assert result.err.startswith("usage error: ")
        assert "first run" not in result.err


class TestHead:
    """``audit | head -3``: rich's own broken-pipe exit (1) is not ours; README says 0."""

    @pytest.mark.parametrize(
        "argv", [["audit"], pytest.param(["list"], marks=pytest.mark.soak)]
    )  # list into head: also tests/cli/test_rough_edges.py, in the default run
    def test_report_into_head(self, argv: list[str]) -> None:
        script = (
            f"{sys.executable} -m cellcast_async --sandbox -q {' '.join(argv)} | head -3; "
            'echo "exit=${PIPESTATUS[0]}" >&2'
        )
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert done.stderr == "exit=0\n"
        assert len(done.stdout.splitlines()) == 3


class _Watched(io.StringIO):
    """A stdout that notes how many requests the sandbox had answered at its first row."""

    def __init__(self, live: LiveSandbox) -> None:
        super().__init__()
        self.live = live
        self.requests_at_first_row: int | None = None

    def write(self, text: str) -> int:
        if self.requests_at_first_row is None and ID.search(text):
            self.requests_at_first_row = len(self.live.cli_requests())
        return super().write(text)


class TestList:
    def test_rows_stream_as_pages_arrive(self, live: LiveSandbox) -> None:
        """The first rows are written after the first page, not after the last."""
        out = _Watched(live)
        live.script({})
        argv = live.args("list", "--page-size", "50", "--concurrency", "1")
        from cellcast_async.cli import main

        assert main(argv, stdout=out, stderr=io.StringIO()) == 0
        rows = [line for line in out.getvalue().splitlines() if ID.match(line)]
        assert len(rows) == 300
        assert len(live.cli_requests()) == 6
        assert out.requests_at_first_row == 1
        # Every page in the first page's columns: the ids, names and statuses line up.
        assert len({line.index(" active") for line in rows if " active " in line}) == 1

    def test_piped_one_row_a_line(self, live: LiveSandbox) -> None:
        """No terminal and no $COLUMNS: a long name never wraps its row (``list | grep``)."""
        long_name = "A token name long enough to wrap at eighty columns " + "x" * 40
        made = live.create(long_name)["_id"]
        result = live.cli("list")
        (row,) = [line for line in result.out.splitlines() if long_name in line]
        assert row.startswith(made)
        assert "Eucalypt Software" in row or "Acme SMS" in row or "(" in row
        header = result.out.splitlines()[0].split()
        assert header == ["ID", "NAME", "STATUS", "SUB-ACCOUNT", "CREATED", "TOKEN"]
        assert all(ID.match(line) for line in result.out.splitlines()[2:-1])

    @pytest.mark.parametrize(
        ("columns", "header"),
        [
            (60, ["ID", "NAME", "SUB-ACCOUNT"]),
            (72, ["ID", "NAME", "STATUS", "SUB-ACCOUNT"]),
            (84, ["ID", "NAME", "STATUS", "SUB-ACCOUNT", "CREATED"]),
            (100, ["ID", "NAME", "STATUS", "SUB-ACCOUNT", "CREATED", "TOKEN"]),
        ],
    )
    def test_narrow_keeps_what_identifies_a_token(
        self, monkeypatch: pytest.MonkeyPatch, live: LiveSandbox, columns: int, header: list[str]
    ) -> None:
        monkeypatch.setenv("COLUMNS", str(columns))
        result = live.cli("list", "--max-items", "30")
        lines = result.out.splitlines()
        assert lines[0].split() == header
        assert max(len(line) for line in lines) <= columns
        assert len([line for line in lines if ID.match(line)]) == 30


class TestStandaloneSandbox:
    def test_readme_mentions_as_of_in_the_command_line_section(self) -> None:
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
        assert "--as-of 2025-07-16T00:00:00Z" in section
        assert "every token looks stale" in section


class TestFormatFromExtension:
    """``--output x.jsonl`` without ``--format`` writes JSON Lines; ``--format`` wins."""

    @pytest.mark.parametrize(
        ("name", "first"),
        [
            ("t.jsonl", '{"id": '),
            ("t.NDJSON", '{"id": '),
            ("t.csv", "id,name,status,"),
            ("t.txt", "id,name,status,"),  # any other name: CSV, as before
            ("t.ocsf.jsonl", '{"activity_id": 1'),
        ],
    )
    def test_inferred(self, live: LiveSandbox, tmp_path: Path, name: str, first: str) -> None:
        target = tmp_path / name
        result = live.cli("audit", "--output", str(target), "--as-of", AS_OF, "-q")
        assert (result.code, result.err) == (0, "")
        assert target.read_text(encoding="utf-8").startswith(first)

    def test_explicit_format_wins(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "t.jsonl"
        result = live.cli("audit", "--format", "csv", "--output", str(target), "-q")
        assert result.code == 0
        assert target.read_text(encoding="utf-8").startswith("id,name,status,")

    def test_json_is_a_usage_error_before_anything_is_sent(
        self, live: LiveSandbox, tmp_path: Path
    ) -> None:
        target = tmp_path / "t.json"
        live.script({})
        result = live.cli("audit", "--output", str(target))
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            f"usage error: --output {target}: the records are JSON Lines, not one JSON"
            " document; name it .jsonl (or pass --format jsonl, or --format csv)\n"
        )
        assert live.cli_requests() == []
        assert not target.exists()


class _TtyStdin(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestDelete:
    def test_not_on_a_terminal_needs_yes(self, live: LiveSandbox) -> None:
        token_id = live.items()[0]["_id"]
        live.script({})
        result = live.cli("delete", token_id)
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            "usage error: delete needs --yes when not run on a terminal (nothing was deleted)\n"
        )
        assert live.cli_requests() == []
        assert live.token(token_id)[0] == 200

    def test_json_usage_error(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "delete", live.items()[0]["_id"])
        assert result.code == 2
        assert json.loads(result.err)["class"] == "UsageError"

    @pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("\n", False), ("", False)])
    def test_on_a_terminal_asks(
        self, monkeypatch: pytest.MonkeyPatch, live: LiveSandbox, answer: str, deleted: bool
    ) -> None:
        token_id = live.items()[0]["_id"]
        monkeypatch.setattr(sys, "stdin", _TtyStdin(answer))
        result = live.cli("delete", token_id, stderr=TtyStringIO())
        prompt = f"Delete token {token_id} for good? [y/N] "
        if deleted:
            assert (result.code, result.err) == (0, prompt)
            assert result.out == f"Deleted token {token_id}\n"
            assert live.token(token_id)[0] == 404
        else:
            assert (result.code, result.out, result.err) == (1, "", prompt + "Not deleted.\n")
            assert live.token(token_id)[0] == 200


class TestInterrupted:
    """Ctrl-C mid-audit says how to go on; the next run says it is resuming."""

    def test_hint_then_resuming(
        self, monkeypatch: pytest.MonkeyPatch, live: LiveSandbox, tmp_path: Path
    ) -> None:
        out, ck = tmp_path / "all.jsonl", tmp_path / "audit.ckpt"
        argv = ["audit", "--output", str(out), "--checkpoint", str(ck), "--page-size", "50"]
        argv += ["--concurrency", "1", "--as-of", AS_OF]
        real_save = _audit_run._save
        saves = []

        def save_then_ctrl_c(*args: Any) -> None:
            real_save(*args)
            saves.append(1)
            if len(saves) == 2:
                raise KeyboardInterrupt

        monkeypatch.setattr(_audit_run, "_save", save_then_ctrl_c)
        stopped = live.cli(*argv)
        assert stopped.code == 130
        assert stopped.err.endswith(
            f"to resume, run the same command again: it goes on from {ck}\ninterrupted\n"
        )
        monkeypatch.setattr(_audit_run, "_save", real_save)
        resumed = live.cli(*argv)
        assert resumed.code == 0
        assert resumed.err.startswith(f"resuming from {ck}: 100 tokens already in {out}\n")
        assert len(ids_of(out)) == 300

    def test_hint_without_a_checkpoint(
        self, monkeypatch: pytest.MonkeyPatch, live: LiveSandbox, tmp_path: Path
    ) -> None:
        def ctrl_c(*args: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(_audit_run, "token_record", ctrl_c)
        result = live.cli("audit", "--output", str(tmp_path / "a.csv"), "-q")
        assert result.code == 130
        assert result.err == (
            "to make an audit resumable, run it with --checkpoint FILE --output FILE:"
            " run again, it goes on where it stopped\ninterrupted\n"
        )


class TestHints:
    def test_busy_port(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run_cli("sandbox", "--port", str(port))
        assert (result.code, result.out) == (1, "")
        assert result.err == (
            f"error: port {port} is already in use: pick another --port, or --port 0 for a"
            " free one\n"
        )

    def test_unknown_key_hints_at_the_key(self, live: LiveSandbox) -> None:
        result = live.cli("get", live.items()[0]["_id"], key="cc_not_a_real_key")
        assert result.code == 1
        assert result.err.endswith("(check the API key: --api-key or $CELLCAST_API_KEY)\n")
        assert "cc_not_a_real_key" not in result.err

    @pytest.mark.parametrize(
        ("count", "words"),
        [
            (1, ["1 token", "1 page;", "1 request,", "1 retry,", "1 duplicate ", "1 page read"]),
            (2, ["2 tokens", "2 pages;", "2 requests,", "2 retries,", "2 duplicates", "2 pages"]),
        ],
    )
    def test_plurals(self, count: int, words: list[str]) -> None:
        counted = ("requests", "retries", "pages", "items", "duplicates_dropped", "refetched_pages")
        stats = WalkStats(**dict.fromkeys(counted, count), complete=True)
        buffer = io.StringIO()
        render_walk(stats, Console(file=buffer, width=200))
        text = buffer.getvalue()
        assert all(word in text for word in words), text


def _readme_tokens_example() -> str:
    """The README's ``cc.tokens`` example, from ``created = ...`` to the delete."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("### Tokens: `cc.tokens`", 1)[1].split("```python", 1)[1]
    block = block.split("```", 1)[0]
    start = block.index("created = await cc.tokens.create(")
    end = block.index("await cc.tokens.delete(created.id)")
    return block[start:end] + "await cc.tokens.delete(created.id)\n"


class TestReadmeCreate:
    def test_the_example_runs_against_the_sandbox(self) -> None:
        """Its name is free in the demo data ("Production API" is taken there)."""
        example = _readme_tokens_example()
        assert 'name="Production API"' not in example

        async def run() -> None:
            async with (
                Sandbox(seed=0) as sb,
                CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc,
            ):
                code = example.replace("6877a383d68781beb3b14110", sb.sub_account_ids[0])
                body = "async def _example(cc):\n" + "".join(
                    f"    {line}\n" for line in code.splitlines()
                )
                scope: dict[str, Any] = {}
                exec(body, {"TokenStatus": __import__("cellcast_async").TokenStatus}, scope)
                await scope["_example"](cc)

        asyncio.run(run())
