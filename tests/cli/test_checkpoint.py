"""``cellcast-tokens audit --checkpoint FILE``: an audit that survives being stopped, and
killed with SIGKILL at any moment, and ends with every token exactly once (issue 11).

The first audit of a round trip is stopped by a scripted server error (``--max-retries 0``,
exit 1) after a known number of pages; the key test kills a real ``python -m
cellcast_async`` process with SIGKILL at random moments and starts the same command again.
What the output must hold is read from the sandbox over plain HTTP (``live.items()``) and
from an uninterrupted audit of the same list.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellcast_async.sandbox import Faults

from .._checkpoint_seal import reseal_audit
from ._support import (
    AS_OF,
    AS_OF_TIME,
    PAGE,
    LiveSandbox,
    audit_argv,
    checkpoint_body,
    cli_env,
    expected_summary,
    ids,
    interrupted,
    refused,
    report_of,
    stopped_audit,
)

NEEDS_OUTPUT = (
    "--checkpoint needs --output FILE: a resumed audit rebuilds its report from the"
    " records already written there"
)
READS = "this cellcast-tokens reads version 2"


# --- helpers ---------------------------------------------------------------------------


def assert_unreadable(live: LiveSandbox, out: Path, ck: Path, fmt: str) -> None:
    """The resumed audit refuses its output's records: a usage error, nothing sent, the
    output left as it is."""
    message = (
        f"{out}: a record the checkpoint counted is not readable: delete the checkpoint"
        " to start over"
    )
    refused(live, audit_argv(out, ck, fmt), message, out)


def reference(live: LiveSandbox, tmp_path: Path, fmt: str, *extra: str) -> bytes:
    """The output of one uninterrupted audit (no checkpoint) of the same list."""
    target = tmp_path / f"reference.{fmt}"
    argv = ["audit", "--format", fmt, "--output", str(target), "--page-size", str(PAGE)]
    result = live.cli(*argv, "--concurrency", "1", "--quiet", "--as-of", AS_OF, *extra)
    assert (result.code, result.err) == (0, "")
    return target.read_bytes()


def pages_read(live: LiveSandbox) -> list[int]:
    return [int(query["page"]) for _, _, query, _ in live.cli_requests()]


# --- usage errors ----------------------------------------------------------------------


class TestUsageErrors:
    """What cannot work is exit code 2, one line on stderr, nothing sent, nothing written."""

    @pytest.mark.parametrize(
        "extra",
        [
            [],
            ["--output", "-"],
            ["--format", "jsonl"],
            ["--format", "jsonl", "--output", "-"],
        ],
        ids=["no-output", "output-stdout", "format-only", "jsonl-to-stdout"],
    )
    def test_checkpoint_needs_an_output_file(
        self, live: LiveSandbox, tmp_path: Path, extra: list[str]
    ) -> None:
        ck = tmp_path / "audit.ckpt"
        result = live.cli("audit", "--checkpoint", str(ck), *extra)
        assert (result.code, result.out, result.err) == (2, "", f"usage error: {NEEDS_OUTPUT}\n")
        assert live.cli_requests() == []
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("", "{ck}: not an audit checkpoint (not JSON)"),
            ('{"format": "cellcast-audit-', "{ck}: not an audit checkpoint (not JSON)"),
            ("[1, 2]", "{ck}: not an audit checkpoint"),
            ('{"format": "something-else", "version": 1}', "{ck}: not an audit checkpoint"),
            ("VERSION 1", "{ck}: an audit checkpoint of version 1; " + READS),
            ("VERSION null", "{ck}: an audit checkpoint of version None; " + READS),
            ("NO pager", "{ck}: 'pager' is missing or not a string"),
            ("NO options", "{ck}: 'options' is missing or not an object"),
            ("NO as_of", "{ck}: 'as_of' is missing or not a string"),
            ("NO output", "{ck}: 'output' is missing or not a string"),
            ("NEGATIVE", "{ck}: 'output_bytes' is negative"),
            (
                "EDITED",
                "{ck}: not authentic: it was changed after it was written; delete it to start over",
            ),
            (
                "FOREIGN",
                "{ck}: written by an audit under another API key: resume it with that key,"
                " or delete it to start over",
            ),
        ],
    )
    def test_a_mangled_checkpoint(
        self, live: LiveSandbox, paths: tuple[Path, Path], content: str, message: str
    ) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, "jsonl", "--as-of", AS_OF)
        good = {
            "format": "cellcast-audit-checkpoint",
            "version": 2,
            "pager": "{}",
            "options": {},
            "as_of": AS_OF_TIME.isoformat(),
            "output": str(out),
            "output_bytes": 0,
        }
        # Sealed with the key, as only its holder can: the checks behind the seal.
        if content.startswith("VERSION "):
            content = json.dumps({**good, "version": json.loads(content.split()[1])})
        elif content == "NEGATIVE":
            content = reseal_audit({**good, "output_bytes": -1}, live.api_key)
        elif content.startswith("NO "):
            missing = content.split()[1]
            content = reseal_audit({k: v for k, v in good.items() if k != missing}, live.api_key)
        elif content == "EDITED":  # sealed, then edited by someone without the key
            content = reseal_audit(good, live.api_key).replace(
                '"output_bytes": 0', '"output_bytes": 9'
            )
        elif content == "FOREIGN":
            content = reseal_audit(good, "another account's key")
        ck.write_text(content, encoding="utf-8")
        out.write_text('{"id": "kept"}\n', encoding="utf-8")
        result = live.cli(*argv)
        expected = message.format(ck=ck)
        assert (result.code, result.out, result.err) == (2, "", f"usage error: {expected}\n")
        assert live.cli_requests() == []
        # Neither file is touched: the checkpoint is read before the output is.
        assert ck.read_text(encoding="utf-8") == content
        assert out.read_text(encoding="utf-8") == '{"id": "kept"}\n'

    @pytest.mark.parametrize(
        "other",
        [
            ["--page-size", "25"],
            ["--stale-days", "90"],
            ["--status", "active"],
            ["--sub-account", "6497c7fbf72f3b78aeb35fae"],
            ["--format", "csv"],
        ],
        ids=["page-size", "stale-days", "status", "sub-account", "format"],
    )
    def test_resuming_with_other_options(
        self, live: LiveSandbox, paths: tuple[Path, Path], other: list[str]
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        message = (
            f"{ck} was written by an audit with other options (output={out},"
            f" page_size={PAGE}, record_format=jsonl, stale_days=365): run it with those,"
            f" or delete {ck} to start over"
        )
        # The later option wins in click: "--format csv" after "--format jsonl", etc.
        refused(live, [*audit_argv(out, ck, "jsonl"), *other], message, out, ck)

    def test_resuming_into_another_output(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path
    ) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 2)
        other = tmp_path / "other.jsonl"
        live.script({})
        result = live.cli(*audit_argv(other, ck, "jsonl"))
        assert (result.code, result.out) == (2, "")
        assert result.err.startswith(
            f"usage error: {ck} was written by an audit with other options (output={out},"
        )
        assert live.cli_requests() == []
        assert not other.exists()

    def test_resuming_with_another_as_of(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 2)
        argv = audit_argv(out, ck, "jsonl", "--as-of", "2025-01-01")
        message = f"{ck} judged ages as of 2025-07-16T00:00:00+00:00: drop --as-of to resume"
        refused(live, argv, message, out, ck)

    def test_the_output_is_gone(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 2)
        out.unlink()
        message = f"the checkpoint's output {out} is missing: delete the checkpoint to start over"
        refused(live, audit_argv(out, ck, "jsonl"), message, out, ck)
        assert not out.exists()

    def test_the_output_is_shorter(self, live: LiveSandbox, paths: tuple[Path, Path]) -> None:
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        cut = out.read_bytes()[:-10]
        out.write_bytes(cut)
        message = (
            f"{out} is shorter than when the checkpoint was written: delete the checkpoint"
            " to start over"
        )
        refused(live, audit_argv(out, ck, "jsonl"), message, out, ck)
        assert out.read_bytes() == cut

    def test_a_pager_checkpoint_that_does_not_read(
        self, live: LiveSandbox, paths: tuple[Path, Path]
    ) -> None:
        """The audit's file is fine, the pager's text in it is not: refused before the
        output is cut back, with the file named."""
        out, ck = stopped_audit(live, paths, "jsonl", 3)
        body = checkpoint_body(ck)
        ck.write_text(reseal_audit({**body, "pager": "garbage"}, live.api_key), encoding="utf-8")
        with out.open("ab") as handle:
            handle.write(b'{"half": ')  # would be cut by a resume that went ahead
        before = out.read_bytes()
        live.script({})
        result = live.cli(*audit_argv(out, ck, "jsonl"))
        assert (result.code, result.out) == (2, "")
        assert result.err.startswith(f"usage error: {ck}: checkpoint is not")
        assert live.cli_requests() == []
        assert out.read_bytes() == before

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    @pytest.mark.parametrize("cut", [1, 7, "row"], ids=["newline", "tail", "mid-row"])
    def test_the_checkpoint_counts_part_of_a_record(
        self, live: LiveSandbox, paths: tuple[Path, Path], fmt: str, cut: int | str
    ) -> None:
        # Never written by a kill (a checkpoint counts whole records): an edited checkpoint.
        out, ck = stopped_audit(live, paths, fmt, 3)
        body = checkpoint_body(ck)
        last = out.read_bytes().splitlines()[-1]
        back = len(last) - last.index(b",") - 3 if cut == "row" else int(cut)
        # Sealed again, as only the key's holder can.
        edited = {**body, "output_bytes": body["output_bytes"] - back}
        ck.write_text(reseal_audit(edited, live.api_key))
        assert_unreadable(live, out, ck, fmt)

    @pytest.mark.parametrize(
        ("fmt", "written", "edited"),
        [
            ("jsonl", b'"stale": false', b'"stale": "fal"'),
            ("jsonl", b'"age_days": ', b'"age_dayz": '),
            ("jsonl", b'"status": "active"', b'"status": 12345678'),
            ("csv", b",false,", b",maybe,"),
            ("csv", b"+00:00,", b"+99:00,"),
        ],
        ids=["json-stale", "json-missing", "json-status", "csv-stale", "csv-time"],
    )
    def test_a_counted_record_the_audit_would_not_write(
        self, live: LiveSandbox, paths: tuple[Path, Path], fmt: str, written: bytes, edited: bytes
    ) -> None:
        """Every field is read back as the audit wrote it: the same number of bytes with
        a field of another type, or missing, is refused, not fed to the report."""
        out, ck = stopped_audit(live, paths, fmt, 3)
        text = out.read_bytes()
        assert written in text
        at = text.index(written)
        assert len(edited) == len(written)  # the length the checkpoint counted
        out.write_bytes(text[:at] + edited + text[at + len(written) :])
        assert_unreadable(live, out, ck, fmt)

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    def test_another_file_under_the_outputs_name(
        self, live: LiveSandbox, paths: tuple[Path, Path], fmt: str
    ) -> None:
        out, ck = stopped_audit(live, paths, fmt, 2)
        out.write_text("a line that is no record\n" * 1000, encoding="utf-8")
        assert_unreadable(live, out, ck, fmt)


# --- round trips in one process ---------------------------------------------------------


class TestRoundTrip:
    """Stopped after some pages, the same command again finishes the audit: each token once."""

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    @pytest.mark.parametrize("page", [1, 2, 4, 6])
    def test_stopped_then_resumed(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path, fmt: str, page: int
    ) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, fmt, "--as-of", AS_OF)
        interrupted(live, argv, page)
        items = live.items()
        expected_ids = [item["_id"] for item in items]
        if page == 1:
            # Stopped before its first page: nothing to resume from, the output is empty.
            assert not ck.exists()
        else:
            body = checkpoint_body(ck)
            assert body["output_bytes"] == out.stat().st_size
            assert body["as_of"] == AS_OF_TIME.isoformat()
            assert body["output"] == str(out)
            assert ids(out, fmt) == expected_ids[: (page - 1) * PAGE]
        live.script({})
        result = live.cli(*argv)
        # --quiet: the records are the output; no report, no "resuming" line.
        assert (result.code, result.out, result.err) == (0, "", "")
        # The resumed walk reads only what the first one did not.
        assert pages_read(live) == list(range(max(page, 1), 7))
        assert ids(out, fmt) == expected_ids
        assert out.read_bytes() == reference(live, tmp_path, fmt)
        assert not ck.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, f"reference.{fmt}"])

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    def test_stopped_three_times(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path, fmt: str
    ) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, fmt, "--as-of", AS_OF)
        interrupted(live, argv, 2)  # page 1, then page 2 fails
        assert len(ids(out, fmt)) == 1 * PAGE
        interrupted(live, argv, 3)  # pages 2 and 3, then page 4 (the 3rd request) fails
        assert len(ids(out, fmt)) == 3 * PAGE
        interrupted(live, argv, 1)  # page 4 fails at once: nothing changes
        assert len(ids(out, fmt)) == 3 * PAGE
        live.script({})
        assert live.cli(*argv).code == 0
        assert ids(out, fmt) == [item["_id"] for item in live.items()]
        assert out.read_bytes() == reference(live, tmp_path, fmt)
        assert not ck.exists()

    def test_the_same_command_after_it_finished_starts_anew(
        self, live: LiveSandbox, paths: tuple[Path, Path]
    ) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, "jsonl", "--as-of", AS_OF)
        interrupted(live, argv, 3)
        live.script({})
        assert live.cli(*argv).code == 0
        first = out.read_bytes()
        live.script({})
        assert live.cli(*argv).code == 0
        assert pages_read(live) == [1, 2, 3, 4, 5, 6]
        assert out.read_bytes() == first
        assert not ck.exists()

    def test_killed_after_the_last_page_before_the_checkpoint_was_removed(
        self, live: LiveSandbox, paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, "jsonl", "--as-of", AS_OF)
        with monkeypatch.context() as patch:
            patch.setattr("cellcast_async._cli._audit_run._finished", lambda path: None)
            assert live.cli(*argv).code == 0
        assert ck.exists()
        whole = out.read_bytes()
        live.script({})
        result = live.cli("--json", *argv)
        assert (result.code, result.err) == (0, "")
        assert live.cli_requests() == []  # the walk was over: nothing to read again
        assert json.loads(result.out)["total"] == 300
        assert json.loads(result.out)["walk"]["items"] == 300
        assert out.read_bytes() == whole
        assert not ck.exists()

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    def test_names_that_split_lines_elsewhere(
        self, live: LiveSandbox, paths: tuple[Path, Path], tmp_path: Path, fmt: str
    ) -> None:
        # Newest first: these land on page 1, which the resumed audit reads back.
        for name in ["sep\u2028line", "nel\x85x", "cr\rlf\nname", 'quote "and, comma', "é ✓"]:
            live.create(name)
        out, ck = paths
        argv = audit_argv(out, ck, fmt, "--as-of", AS_OF)
        interrupted(live, argv, 3)
        live.script({})
        result = live.cli("--json", *argv)
        assert (result.code, result.err) == (0, "")
        assert json.loads(result.out)["total"] == 305
        assert out.read_bytes() == reference(live, tmp_path, fmt)
        assert ids(out, fmt) == [item["_id"] for item in live.items()]

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    def test_json_summary_after_a_resume(
        self, live: LiveSandbox, paths: tuple[Path, Path], fmt: str
    ) -> None:
        out, ck = stopped_audit(live, paths, fmt, 4)
        live.script({})
        # Without --as-of: the resumed audit judges ages as of the checkpoint's time.
        result = live.cli("--json", *audit_argv(out, ck, fmt))
        assert (result.code, result.err) == (0, "")
        summary = json.loads(result.out)
        walk = summary["walk"]
        # The report, rebuilt from the records already written, is the whole audit's.
        assert report_of(summary) == expected_summary(
            live.items(), as_of=AS_OF_TIME, stale_days=365
        )
        assert summary["total"] == 300
        # The walk's stats go on from the checkpoint's: all 6 pages, all 300 tokens.
        assert (walk["pages"], walk["items"], walk["complete"]) == (6, 300, True)
        assert (walk["duplicates_dropped"], walk["refetched_pages"]) == (0, 0)
        assert (walk["first_total"], walk["last_total"]) == (300, 300)
        assert walk["requests"] == 6  # the failed attempt was never checkpointed
        assert not ck.exists()


class TestTornOutput:
    """What reached the output after the last checkpoint is cut off and written again."""

    @pytest.mark.parametrize("fmt", ["csv", "jsonl"])
    @pytest.mark.parametrize(
        "tail", ["half-record", "whole-records", "records-and-half", "garbage"]
    )
    def test_cut_off_and_rewritten(
        self,
        live: LiveSandbox,
        paths: tuple[Path, Path],
        tmp_path: Path,
        fmt: str,
        tail: str,
    ) -> None:
        out, ck = paths
        argv = audit_argv(out, ck, fmt, "--as-of", AS_OF)
        whole = reference(live, tmp_path, fmt)
        interrupted(live, argv, 3)
        written = out.read_bytes()
        assert whole.startswith(written)
        following = whole[len(written) :]  # page 3's records onwards, as they would be written
        newline = b"\r\n" if fmt == "csv" else b"\n"
        lines = following.split(newline)
        extra = {
            "half-record": lines[0][: len(lines[0]) // 2],
            "whole-records": newline.join(lines[:30]) + newline,
            "records-and-half": newline.join(lines[:30]) + newline + lines[30][:17],
            "garbage": b"\x00\xff not a record at all\n\n",
        }[tail]
        with out.open("ab") as handle:
            handle.write(extra)
        live.script({})
        result = live.cli(*argv)
        assert (result.code, result.err) == (0, "")
        assert out.read_bytes() == whole
        assert ids(out, fmt) == [item["_id"] for item in live.items()]
        assert not ck.exists()


# --- SIGKILL, for real ------------------------------------------------------------------

KILL_TOKENS = 3000
KILL_PAGE = 50
KILLS = 5


@pytest.fixture(scope="module")
def big() -> Iterator[LiveSandbox]:
    """3000 tokens, 20 ms per answer: a walk of 60 pages lasts about a second."""
    with LiveSandbox(seed=1, tokens=KILL_TOKENS, faults=Faults(latency=0.02)) as sandbox:
        yield sandbox


def _wait_for_writes(out: Path, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the audit changes its output (it truncates or writes), or exits."""
    try:
        start = out.stat()
        before: tuple[int, int] | None = (start.st_size, start.st_mtime_ns)
    except FileNotFoundError:
        before = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            now = out.stat()
            if (now.st_size, now.st_mtime_ns) != before:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)


def _checked_prefix(out: Path, ck: Path, fmt: str, expected: list[str]) -> int:
    """After a kill: what the checkpoint counts is whole records, a prefix of the listing."""
    if not ck.exists():
        # Not written yet (0), or already removed: the walk finished and the kill landed
        # while the report was printed. Then the output holds every token.
        # (Before the first checkpoint the output may be empty or hold a cut record.)
        text = out.read_bytes().decode(errors="replace") if out.exists() else ""
        last_line = text.rstrip("\r\n").rsplit("\n", 1)[-1]
        if expected[-1] not in last_line:
            return 0
        assert ids(out, fmt) == expected
        return out.stat().st_size
    body = checkpoint_body(ck)
    length: int = body["output_bytes"]
    data = out.read_bytes()
    assert len(data) >= length
    counted = out.with_suffix(".counted")
    counted.write_bytes(data[:length])
    found = ids(counted, fmt)
    counted.unlink()
    assert found == expected[: len(found)]
    assert len(found) % KILL_PAGE == 0
    return length


@pytest.mark.parametrize(
    ("fmt", "seed"),
    [
        ("jsonl", 1),
        pytest.param("jsonl", 2, marks=pytest.mark.soak),
        pytest.param("csv", 3, marks=pytest.mark.soak),
    ],
    ids=["jsonl-1", "jsonl-2", "csv-3"],
)
def test_sigkill_at_random_moments_then_the_same_command(
    big: LiveSandbox, tmp_path: Path, fmt: str, seed: int
) -> None:
    rng = random.Random(seed)
    out, ck = tmp_path / f"tokens.{fmt}", tmp_path / "audit.ckpt"
    command = [
        sys.executable,
        "-m",
        "cellcast_async",
        *big.args(
            *audit_argv(out, ck, fmt, "--as-of", "2025-07-16", page=KILL_PAGE, concurrency=2)
        ),
    ]
    expected = [item["_id"] for item in big.items()]
    assert len(expected) == KILL_TOKENS
    env = cli_env()
    killed = 0
    progress: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        """The same command again, as an operator would run it after a crash."""
        proc = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        return proc

    try:
        for _ in range(KILLS):
            proc = start()
            started = time.monotonic()
            if rng.random() < 0.25:
                # Anywhere from start-up (imports, truncation) into the walk.
                time.sleep(rng.uniform(0.05, 0.6))
            else:
                # Somewhere in the walk, once the audit writes.
                _wait_for_writes(out, proc, started + 10)
                time.sleep(rng.uniform(0.0, 0.35))
            if proc.poll() is not None:
                break  # it finished first
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == -signal.SIGKILL, err
            killed += 1
            progress.append(_checked_prefix(out, ck, fmt, expected))
            if not ck.exists() and progress[-1]:
                # Killed after the walk had finished: the same command starts anew.
                proc = start()
                break
        else:
            proc = start()
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (0, b"")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # Killed several times, mid-walk at least twice; a checkpoint never went backwards.
    assert killed >= 3, progress
    assert sum(1 for length in progress if length) >= 2, progress
    assert progress == sorted(progress)
    found = ids(out, fmt)
    assert len(found) == len(set(found)) == KILL_TOKENS
    assert found == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
