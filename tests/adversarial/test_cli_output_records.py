"""Record files are data too: CSV formula injection, and ``diff`` on hostile files
(README "What the command line prints").

The audit's CSV must never hand a spreadsheet a formula, and what it wrote must read
back exactly (``diff``, a resumed ``audit --checkpoint``). ``diff`` reads files written by
anyone: every malformed one is a one-line usage error naming the file and the line,
read in bounded time and memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcast_async._cli import _diff
from cellcast_async._cli._checkpoint import read_records
from cellcast_async._cli._records import FIELDS, csv_writer, decode_cell, encode_cell

from ..cli._support import cli_env, run_cli
from ._cli_output_server import AS_OF, HOSTILE, HostileApi, items

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def record(token_id: str, name: str = "n", status: str = "active") -> dict[str, Any]:
    return {
        "id": token_id,
        "name": name,
        "status": status,
        "sub_account_id": "s" * 24,
        "sub_account_name": "Acme",
        "created_at": "2025-01-01T00:00:00+00:00",
        "age_days": 3,
        "stale": False,
        "token": "****abcd",
    }


class TestCellQuoting:
    """encode_cell/decode_cell: OWASP's rule, and an exact way back."""

    @pytest.mark.parametrize(
        ("value", "cell"),
        [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("'=1", "''=1"),  # a real leading quote before a formula character
            ("''", "'''"),
            ("'plain", "'plain"),  # harmless: left as it is
            ("'", "'"),
            ("plain = 1", "plain = 1"),
            ("", ""),
        ],
    )
    def test_examples(self, value: str, cell: str) -> None:
        assert (encode_cell(value), decode_cell(cell)) == (cell, value)

    @given(st.text())
    def test_every_value_round_trips_and_no_cell_is_a_formula(self, value: str) -> None:
        cell = encode_cell(value)
        assert decode_cell(cell) == value
        assert not cell.startswith(FORMULA_STARTS)

    @pytest.mark.parametrize("old_cell", ["=1+1", "-2", "'abc", "plain"])
    def test_a_cell_written_before_the_rule_reads_as_itself(self, old_cell: str) -> None:
        assert decode_cell(old_cell) == old_cell


@pytest.fixture(scope="module")
def audits(api: HostileApi, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One audit of the hostile account, as CSV and as JSON Lines."""
    folder = tmp_path_factory.mktemp("records")
    as_csv, as_jsonl = folder / "audit.csv", folder / "audit.jsonl"
    for path, fmt in ((as_csv, "csv"), (as_jsonl, "jsonl")):
        argv = ["audit", "--format", fmt, "--output", str(path), "--as-of", AS_OF, "-q"]
        assert run_cli(*api.args(*argv)).code == 0
    return as_csv, as_jsonl


class TestAuditCsv:
    """The audit's CSV: no formula for a spreadsheet; every value reads back exactly."""

    def test_no_cell_is_a_formula(self, audits: tuple[Path, Path], api: HostileApi) -> None:
        with open(audits[0], encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [decode_cell(row["id"]) for row in rows] == [t["_id"] for t in api.tokens]
        cells = [cell for row in rows for cell in row.values()]
        assert [c for c in cells if c.startswith(FORMULA_STARTS)] == []
        names = {row["name"] for row in rows}
        assert {'\'=HYPERLINK("http://evil.example/","x")', "'+1+1", "'-2+3"} <= names
        assert {"'@SUM(A1:A9)", "'\t=1+1", "'\r@cmd", "''=1+1", "'plain"} <= names

    def test_diff_reads_it_back_exactly(self, audits: tuple[Path, Path]) -> None:
        as_csv, as_jsonl = audits
        for old, new in ((as_csv, as_jsonl), (as_jsonl, as_csv), (as_csv, as_csv)):
            result = run_cli("diff", str(old), str(new))
            assert (result.code, result.out) == (0, f"No changes between {old} and {new}.\n")

    def test_diff_names_the_exact_values(self, audits: tuple[Path, Path], tmp_path: Path) -> None:
        empty = tmp_path / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        body = json.loads(run_cli("--json", "diff", str(empty), str(audits[0])).out)
        created = {e["name"] for g in body["sub_accounts"] for e in g["created"]}
        assert created == {*HOSTILE.values(), "odd status"}

    def test_the_checkpoint_reader_reads_it_back_exactly(self, tmp_path: Path) -> None:
        """A resumed audit rebuilds its report from the CSV: the values it wrote."""
        path = tmp_path / "out.csv"
        records = [record(f"{n:024d}", name) for n, name in enumerate(HOSTILE.values())]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            write = csv_writer(handle, FIELDS)
            for item in records:
                write(item)
        with open(path, encoding="utf-8", newline="") as handle:
            cells = [row["name"] for row in csv.DictReader(handle)]
        assert cells == [encode_cell(name) for name in HOSTILE.values()]
        assert [c for c in cells if c.startswith(FORMULA_STARTS)] == []
        read = [item for item, _ in read_records(str(path), "csv")]
        assert [r["name"] for r in read] == list(HOSTILE.values())
        assert read == records


def _jsonl(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


HEADER = ",".join(FIELDS) + "\n"


def _csv_row(**fields: str) -> str:
    values = {**{k: str(v) for k, v in record("x" * 24).items()}, **fields}
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([values[k] for k in FIELDS])
    return buffer.getvalue()


GOOD = record("1" * 24, "kept")
NEST = 100_000


class TestDiffReadsHostileFiles:
    """diff: bad files are one-line usage errors naming file and line; good ones work."""

    def test_line_separators_in_names(self, tmp_path: Path) -> None:
        """JSON Lines split on "\\n" only: U+2028, U+2029 and U+0085 are in names."""
        names = ["a\u2028b", "c\u2029d", "e\x85f", "g\rh"]
        old = tmp_path / "old.jsonl"
        new = tmp_path / "new.jsonl"
        old.write_text(_jsonl(*(record(f"{n}" * 24, x) for n, x in enumerate(names))), "utf-8")
        new.write_text(
            _jsonl(*(record(f"{n}" * 24, x + "!") for n, x in enumerate(names))), "utf-8"
        )
        assert "\u2028" in old.read_text(encoding="utf-8")  # raw, as another tool may write
        result = run_cli("--json", "diff", str(old), str(new))
        assert result.code == 1, result.err
        renamed = [e for g in json.loads(result.out)["sub_accounts"] for e in g["renamed"]]
        assert sorted((e["old_name"], e["new_name"]) for e in renamed) == sorted(
            (x, x + "!") for x in names
        )

    @pytest.mark.parametrize("fmt", ["jsonl", pytest.param("csv", marks=pytest.mark.soak)])
    def test_blank_lines_are_not_one_long_record(self, tmp_path: Path, fmt: str) -> None:
        """Two MiB of blank lines, before and between records: each line is bounded, not
        their sum."""
        blank = "\n" * (2 << 20)
        path = tmp_path / f"blank.{fmt}"
        if fmt == "jsonl":
            path.write_text(blank + _jsonl(GOOD) + blank + _jsonl(record("2" * 24)), "utf-8")
        else:
            path.write_text(blank + HEADER + _csv_row() + blank + _csv_row(id="y"), "utf-8")
        result = run_cli("diff", str(path), str(path))
        assert (result.code, result.err) == (0, "")

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (
                HEADER + _csv_row(name="x" * (128 * 1024 + 1)),
                "line 2: not valid CSV (field larger than field limit (131072))",
            ),
            (
                '{"id": "' + "x" * (1 << 20) + '"}\n',
                "line 1: a line longer than 1024 KiB",
            ),
            (
                '{"id": ' + "[" * NEST + "]" * NEST + "}\n",
                "line 1: not valid JSON (nested deeper than 32)",
            ),
            (
                _jsonl(GOOD) + '{"id": "a", "x": {"y": ' * 40 + "1" + "}" * 80 + "\n",
                "line 2: not valid JSON (nested deeper than 32)",
            ),
            (
                HEADER + _csv_row(id="1") + '2,"unclosed,active\n3,n,active\n',
                "line 3: not valid CSV (unexpected end of data)",
            ),
            (
                HEADER + '2,"' + ("x" * 1000 + "\n") * 1100,
                "line 2: not valid CSV (field larger than field limit (131072))",
            ),
            (
                HEADER + ('"' + ("x" * 999 + "\n") * 100 + '",') * 11 + "\n",
                "line 2: a record longer than 1024 KiB",
            ),
            (HEADER + "1,n,active\n", "line 2: 3 field(s) where the header names 9"),
            (
                HEADER + _csv_row().rstrip("\n") + ",extra\n",
                "line 2: 10 field(s) where the header names 9",
            ),
            (_jsonl(GOOD, {**GOOD, "id": {"$gt": ""}}), "line 2: 'id' is not a string"),
            (_jsonl({**GOOD, "id": 7}), "line 1: 'id' is not a string"),
            (_jsonl({**GOOD, "name": None}), "line 1: 'name' is not a string"),
            (
                '{"id": NaN, "name": "n", "status": "a", "sub_account_id": "s"}\n',
                "line 1: not valid JSON (NaN is not a JSON number)",
            ),
            (
                '{"id": "a", "id": "b", "name": "n", "status": "a", "sub_account_id": "s"}\n',
                "line 1: not valid JSON (a key appears twice in one object)",
            ),
            (_jsonl(GOOD, GOOD), f"line 2: a second record for id {'1' * 24!r}"),
            (
                HEADER + _csv_row(id="d") + _csv_row(id="e") + _csv_row(id="d"),
                "line 4: a second record for id 'd'",
            ),
            (_jsonl(GOOD)[:-2].encode() + b'\xff"}\n', "line 1: not UTF-8 text"),
        ],
        ids=[
            "csv-field-over-128k",
            "line-over-1m",
            "nested-100000",
            "nested-in-a-field",
            "unclosed-quote",
            "unclosed-quote-runs-on",
            "record-over-1m",
            "short-row",
            "long-row",
            "object-id",
            "number-id",
            "null-name",
            "nan-id",
            "repeated-key",
            "duplicate-id-jsonl",
            "duplicate-id-csv",
            "not-utf8",
        ],
    )
    @pytest.mark.parametrize("side", ["old", "new"])
    def test_bad_file(self, tmp_path: Path, content: str | bytes, message: str, side: str) -> None:
        good = tmp_path / "good.jsonl"
        good.write_text(_jsonl(GOOD), encoding="utf-8")
        bad = tmp_path / "bad.txt"
        if isinstance(content, bytes):
            bad.write_bytes(content)
        else:
            bad.write_text(content, encoding="utf-8", newline="")
        old, new = (bad, good) if side == "old" else (good, bad)
        result = run_cli("diff", str(old), str(new))
        assert (result.code, result.out, result.err) == (2, "", f"usage error: {bad} {message}\n")

    @pytest.mark.parametrize("side", ["old", "new"])
    def test_dev_zero(self, tmp_path: Path, side: str) -> None:
        """An endless file: in a child capped at 1 GiB of address space and 60 s, so a
        reader that tried to hold it whole would fail here rather than take the machine."""
        good = tmp_path / "good.jsonl"
        good.write_text(_jsonl(GOOD), encoding="utf-8")
        old, new = ("/dev/zero", str(good)) if side == "old" else (str(good), "/dev/zero")

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

        done = subprocess.run(
            [sys.executable, "-m", "cellcast_async", "diff", old, new],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=cap,  # the child starts no thread before exec
            env=cli_env(),
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (
            2,
            "",
            "usage error: /dev/zero line 1: a line longer than 1024 KiB\n",
        )

    def test_a_duplicate_in_new_of_an_old_id(self, tmp_path: Path) -> None:
        old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
        old.write_text(_jsonl(GOOD), encoding="utf-8")
        new.write_text(_jsonl(GOOD, {**GOOD, "name": "other"}), encoding="utf-8")
        result = run_cli("diff", str(old), str(new))
        assert (result.code, result.err) == (
            2,
            f"usage error: {new} line 2: a second record for id {'1' * 24!r}\n",
        )

    def test_old_from_a_pipe(self, tmp_path: Path) -> None:
        """OLD read from a FIFO (``<(...)``): copied while read, for the second pass."""
        fifo, new = tmp_path / "old.fifo", tmp_path / "new.jsonl"
        os.mkfifo(fifo)
        old_text = _jsonl(GOOD, record("2" * 24, "going"), record("3" * 24, "before"))
        new.write_text(_jsonl(GOOD, record("3" * 24, "after")), encoding="utf-8")

        def feed() -> None:
            with open(fifo, "w", encoding="utf-8") as handle:
                handle.write(old_text)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        result = run_cli("--json", "diff", str(fifo), str(new))
        writer.join(timeout=10)
        assert result.code == 1, result.err
        (group,) = json.loads(result.out)["sub_accounts"]
        assert group["deleted"] == [{"id": "2" * 24, "name": "going", "status": "active"}]
        assert [(e["old_name"], e["new_name"]) for e in group["renamed"]] == [("before", "after")]

    def test_old_changed_between_its_reads(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
        old.write_text(_jsonl(record("3" * 24, "before")), encoding="utf-8")
        new.write_text(_jsonl(record("3" * 24, "after")), encoding="utf-8")
        real_open = _diff._open
        opened: list[str] = []

        def open_and_edit(path: str) -> Any:
            opened.append(path)
            if path == str(old) and opened.count(path) == 2:
                old.write_text(_jsonl(record("3" * 24, "edited")), encoding="utf-8")
            return real_open(path)

        monkeypatch.setattr(_diff, "_open", open_and_edit)
        result = run_cli("diff", str(old), str(new))
        assert (result.code, result.err) == (
            2,
            f"usage error: {old} changed while diff was reading it\n",
        )


class TestDiffMemory:
    """diff keeps an id and a digest per old record, not whole records or the text."""

    def test_peak_is_bounded(self, tmp_path: Path) -> None:
        count = 20_000
        path = tmp_path / "big.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for n in range(count):
                handle.write(json.dumps(record(f"{n:024x}", f"Token name number {n}")) + "\n")
        run_cli("diff", str(path), str(path))  # imports and caches warmed up
        tracemalloc.start()
        try:
            result = run_cli("diff", str(path), str(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.code == 0
        # An id (24 characters) and a 16-byte digest in a dict: about 150 bytes a record.
        # Reading the file whole and holding every record took about 1,450.
        assert peak < 200 * count, peak


class TestLoneSurrogate:
    """A name the server sent as ``"\\ud800"`` (valid JSON, not valid Unicode text): CSV,
    which is UTF-8, writes U+FFFD in its place (every other row and cell exact, the audit
    finishes); JSON Lines keeps the exact text as an escape; the terminal shows it escaped."""

    NAME = "lone\ud800half"

    @pytest.fixture
    def surrogate_api(self) -> Iterator[HostileApi]:
        with HostileApi() as server:
            server.tokens = items({"plus": self.NAME, "at": "tail\udfff"})
            yield server

    def test_csv_writer(self, tmp_path: Path) -> None:
        path = tmp_path / "out.csv"
        records = [record("a1", "before"), record("b2", self.NAME), record("c3", "=after")]
        records[1]["sub_account_name"] = "\udc80Acme"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            write = csv_writer(handle, FIELDS)
            for item in records:
                write(item)
        read = [item for item, _ in read_records(str(path), "csv")]
        assert [(r["id"], r["name"], r["sub_account_name"]) for r in read] == [
            ("a1", "before", "Acme"),
            ("b2", "lone\ufffdhalf", "\ufffdAcme"),
            ("c3", "=after", "Acme"),
        ]

    def test_audit_csv_jsonl_and_terminal(self, surrogate_api: HostileApi, tmp_path: Path) -> None:
        as_csv, as_jsonl = tmp_path / "audit.csv", tmp_path / "audit.jsonl"
        for path in (as_csv, as_jsonl):
            argv = ["audit", "--output", str(path), "--as-of", AS_OF, "-q"]
            result = run_cli(*surrogate_api.args(*argv))
            assert (result.code, result.err) == (0, "")
        with open(as_csv, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(surrogate_api.tokens)
        names = {decode_cell(row["name"]) for row in rows}
        assert {"lone\ufffdhalf", "tail\ufffd"} <= names
        jsonl = as_jsonl.read_text(encoding="ascii", errors="strict")  # escapes only
        assert '"lone\\ud800half"' in jsonl
        assert '"tail\\udfff"' in jsonl
        exact = {json.loads(line)["name"] for line in jsonl.splitlines()}
        assert {self.NAME, "tail\udfff"} <= exact
        table = run_cli(*surrogate_api.args("audit", "--as-of", AS_OF))
        assert table.code == 0
        assert "\ud800" not in table.out
        assert "\\ud800" in table.out
