"""``cellcast-tokens audit --html FILE``: one self-contained page, its numbers checked
against the sandbox's data, hostile server texts inert in it, and what cannot work refused
before anything is sent (README "Command line").

The page is read back with ``html.parser`` here; ``test_audit_html_browser.py`` loads it
in a real headless Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from cellcast_async._cli._audit_charts import (
    AuditFigures,
    age_bins,
    age_ticks,
    label,
    svg_markup,
)
from cellcast_async._cli._audit_html import AGE_NOTE, MAX_CELL, SCRIPT, render_html
from cellcast_async._cli._audit_report import AuditReport
from cellcast_async._cli._output import shown
from cellcast_async._walk import WalkStats

from ._html_page import HOSTILE, RAW_CONTROLS, Page, hostile_audit, inert_checks
from ._support import AS_OF, AS_OF_TIME, TOKENS_PATH, LiveSandbox, expected_summary

MISSING = (
    "usage error: --html draws its charts with pygal, which comes with the report extra:"
    ' pip install "cellcast-async[report]"\n'
)


def audit_page(live: LiveSandbox, tmp_path: Path, *extra: str) -> tuple[Page, str]:
    target = tmp_path / "report.html"
    result = live.cli("audit", "--html", str(target), "--as-of", AS_OF, "--quiet", *extra)
    assert (result.code, result.err) == (0, ""), result.err
    assert result.out.startswith("Audit of ")  # the text report is still printed
    text = target.read_text(encoding="utf-8")
    return Page(text), text


class TestPage:
    """Against the sandbox: the numbers, every row, the charts, nothing fetched."""

    def test_the_numbers_and_every_row(self, live: LiveSandbox, tmp_path: Path) -> None:
        page, text = audit_page(live, tmp_path)
        items = live.items()
        summary = expected_summary(items, as_of=AS_OF_TIME, stale_days=365)
        stale_active = [t for t in summary["stale"]["tokens"] if t["status"] == "active"]
        assert page.card("tokens") == "300"
        assert page.card("active") == f"{summary['by_status']['active']:,}"
        assert page.card("inactive") == f"{summary['by_status']['inactive']:,}"
        assert page.card("stale-active") == f"{len(stale_active):,}" != "0"
        assert page.card("stale") == f"{summary['stale']['count']:,}"
        assert page.card("duplicates") == "0"
        assert page.card("sub-accounts") == "3"
        # Every row, oldest first: id, name, sub-account, created, age.
        rows = page.rows("stale-active")
        assert [row[0] for row in rows] == [t["id"] for t in stale_active]
        assert [row[1] for row in rows] == [t["name"] for t in stale_active]
        assert [int(row[4]) for row in rows] == [t["age_days"] for t in stale_active]
        assert [row[0] for row in page.rows("inactive")] == [
            t["id"] for t in summary["inactive"]["tokens"]
        ]
        subs = page.rows("sub-accounts")
        assert [(row[0], row[1], row[2]) for row in subs] == [
            (s["id"], s["name"], f"{s['tokens']:,}") for s in summary["by_sub_account"]
        ]
        assert "Nothing:" not in page.by_id("needs-action").text
        assert f"{len(stale_active):,} token(s) older than 365 days are still active" in (
            page.by_id("needs-action").text
        )
        assert "Walk: complete" in page.by_id("walk").text
        assert "300 tokens in 3 pages" in page.by_id("walk").text
        assert AGE_NOTE in text
        assert "2025-07-16 00:00 UTC" in page.all("title")[0].text

    def test_the_charts_are_inline_svg(self, live: LiveSandbox, tmp_path: Path) -> None:
        page, text = audit_page(live, tmp_path)
        svgs = page.all("svg")
        # All tokens, one per sub-account (3), the statuses, the months.
        assert len(svgs) == 6
        for ident in ("chart-age", "chart-age-subs", "chart-status", "chart-created"):
            assert page.by_id(ident).tag == "div"
        assert "365 (stale)" in page.by_id("chart-age").text
        assert "stale: older than 365 days" in page.by_id("chart-age").text
        assert "Tokens created per month" in page.by_id("chart-created").text
        assert "Acme SMS" in page.by_id("chart-status").text
        # No script of pygal's, no reference to anything outside the page.
        assert len(page.all("script")) == 1
        assert not re.search(r"(?i)\b(src|href)\s*=|url\(|@import|https?://(?!www\.w3\.org)", text)

    def test_the_content_security_policy_allows_our_script_only(
        self, live: LiveSandbox, tmp_path: Path
    ) -> None:
        page, _ = audit_page(live, tmp_path)
        (meta,) = [m for m in page.all("meta") if m.attrs.get("http-equiv")]
        digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
        assert meta.attrs["content"] == (
            "default-src 'none'; style-src 'unsafe-inline';"
            f" script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
        )
        assert page.all("script")[0].text == SCRIPT
        assert page.elements.index(meta) < page.elements.index(page.all("style")[0])

    def test_the_file_is_replaced_whole(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "report.html"
        target.write_text("old")
        audit_page(live, tmp_path)
        assert target.read_text().startswith("<!DOCTYPE html>")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]

    def test_with_records_and_json(self, live: LiveSandbox, tmp_path: Path) -> None:
        target, records = tmp_path / "report.html", tmp_path / "tokens.jsonl"
        result = live.cli(
            "--json",
            "audit",
            "--html",
            str(target),
            "--format",
            "jsonl",
            "--output",
            str(records),
            "--as-of",
            AS_OF,
            "--quiet",
        )
        assert (result.code, result.err) == (0, "")
        assert result.out.startswith("{")
        assert len(records.read_text().splitlines()) == 300
        assert Page(target.read_text()).card("tokens") == "300"

    def test_hostile_names_from_the_server(self, live: LiveSandbox, tmp_path: Path) -> None:
        made = [live.create(HOSTILE[k])["_id"] for k in ("script", "img", "style_close")]
        for token_id in made:
            status, _ = live.http("PUT", f"{TOKENS_PATH}/{token_id}", {"status": "inactive"})
            assert status == 200
        page, text = audit_page(live, tmp_path)
        inert_checks(page, SCRIPT)
        names = {row[0]: row[1] for row in page.rows("inactive")}
        assert [names[i] for i in made] == [HOSTILE[k] for k in ("script", "img", "style_close")]
        assert "<script>alert(1)</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


class TestResumed:
    def test_a_resumed_audit_draws_every_token(self, live: LiveSandbox, tmp_path: Path) -> None:
        """Stopped at page 4, resumed: the charts count the tokens read back from the
        records too, as an uninterrupted audit's do; no page is written by the first run."""
        out, ck, target = tmp_path / "tokens.csv", tmp_path / "audit.ckpt", tmp_path / "r.html"
        argv = [
            "audit", "--output", str(out), "--checkpoint", str(ck), "--html", str(target),
            "--page-size", "50", "--concurrency", "1", "--quiet", "--as-of", AS_OF,
        ]  # fmt: skip
        live.script({4: "500"})
        assert live.cli("--max-retries", "0", *argv).code == 1
        assert not target.exists()
        live.script({})
        assert live.cli(*argv).code == 0
        reference = tmp_path / "reference"
        reference.mkdir()
        whole, _ = audit_page(live, reference)
        resumed = Page(target.read_text(encoding="utf-8"))

        def charts(page: Page) -> list[str]:
            # pygal names each chart with a random uuid: the drawing is what must match.
            return [
                re.sub(r"chart-[0-9a-f-]{36}", "chart", page.by_id(ident).text)
                + str([(e.tag, sorted(e.attrs.items())) for e in page.elements
                       if e.tag == "rect" and "height" in e.attrs])
                for ident in ("chart-age", "chart-age-subs", "chart-status", "chart-created")
            ]  # fmt: skip

        assert charts(resumed) == charts(whole)
        for ident in ("tokens", "active", "inactive", "stale-active", "stale"):
            assert resumed.card(ident) == whole.card(ident)
        assert resumed.rows("stale-active") == whole.rows("stale-active")


def shown_cell(text: str) -> str:
    """A server text as a table cell shows it: escaped, and cut at MAX_CELL characters."""
    seen = shown(text)
    if len(seen) <= MAX_CELL:
        return seen
    return seen[:MAX_CELL] + f"\u2026 ({len(seen) - MAX_CELL:,} more characters)"


class TestHostileTexts:
    """Every server text (name, id, sub-account, status) is inert text in the page."""

    def test_no_markup_gets_in(self) -> None:
        report, figures, stats = hostile_audit()
        text = render_html(report, figures, stats)
        page = Page(text)
        inert_checks(page, SCRIPT)
        assert [c for c in RAW_CONTROLS if c in text] == []
        assert "\\u202e" in text
        assert "\\x1b[2J" in text

    def test_each_text_shows_as_the_terminal_shows_it(self) -> None:
        report, figures, stats = hostile_audit()
        page = Page(render_html(report, figures, stats))
        cells = {
            cell
            for table in ("stale-active", "inactive")
            for row in page.rows(table)
            for cell in row
        }
        for key, value in HOSTILE.items():
            assert shown_cell(value) in cells, key
        # The long name is cut in the page (the records hold it whole).
        assert len(render_html(report, figures, stats)) < 1_000_000

    def test_a_status_from_the_server_heads_no_markup(self) -> None:
        report, figures, stats = hostile_audit()
        page = Page(render_html(report, figures, stats))
        headers = [e.text for e in page.elements if e.tag == "th"]
        assert shown(HOSTILE["closers"])[: 24 - 1] + "\u2026" in headers
        assert page.card("other-status") == "1"

    def test_every_duplicate_name(self) -> None:
        report, figures, stats = hostile_audit()
        rows = Page(render_html(report, figures, stats)).rows("duplicates")
        # Each hostile text names 3 tokens in its sub-account (the 4th there has another).
        assert sorted(row[1] for row in rows) == sorted(map(shown_cell, HOSTILE.values()))
        assert {row[2] for row in rows} == {"3"}

    def test_chart_labels_are_escaped_and_cut(self) -> None:
        assert label("<b>\u202e" + "x" * 100) == "<b>\\u202e" + "x" * 22 + "\u2026"
        import pygal

        chart = pygal.Bar(js=[])
        chart.add("<script>alert(1)</script>", [1])
        chart.x_labels = ['"><img src=x onerror=alert(2)>']
        svg = svg_markup(chart)
        page = Page(svg)
        assert page.tags(in_svg=True) <= {
            "svg",
            "defs",
            "style",
            "title",
            "desc",
            "g",
            "rect",
            "path",
            "text",
        }
        for absent in ("<script", "<img", "<!--", "href"):
            assert absent not in svg
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg


class TestCharts:
    def test_age_bins_have_the_threshold_as_an_edge(self) -> None:
        fresh, stale = age_bins(800, 365)
        assert fresh[0] == 0
        assert fresh[-1] == stale[0] == 365
        widths = {round(b - a, 9) for edges in (fresh, stale) for a, b in pairwise(edges)}
        assert len(widths) == 1
        assert stale[-1] > 800 >= stale[-2]
        assert age_bins(10, 0) == (
            [0.0, 1.0],
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
        )

    def test_age_ticks(self) -> None:
        # Round steps, at most about 8 of them; the threshold, and nothing printed over it.
        assert age_ticks(720, 365) == [0, 90, 180, 270, 365, 450, 540, 630, 720]
        assert age_ticks(3000, 180) == [0, 180, 730, 1460, 2190, 2920]
        assert age_ticks(0, 0) == [0]

    def test_an_empty_audit(self) -> None:
        report = AuditReport(as_of=AS_OF_TIME, stale_days=365)
        page = Page(render_html(report, AuditFigures(), WalkStats(complete=True)))
        assert page.card("tokens") == "0"
        assert "Nothing:" in page.by_id("needs-action").text
        assert page.all("svg") == []

    def test_an_incomplete_walk_needs_action(self) -> None:
        report = AuditReport(as_of=AS_OF_TIME, stale_days=365)
        page = Page(render_html(report, AuditFigures(), WalkStats(complete=False)))
        assert "not proven complete" in page.by_id("needs-action").text


class TestRefused:
    """Exit 2, one line, nothing sent, nothing written."""

    def test_without_the_report_extra(
        self, live: LiveSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in [m for m in sys.modules if m == "pygal" or m.startswith("pygal.")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, "pygal", None)  # import -> ImportError
        target = tmp_path / "report.html"
        result = live.cli("audit", "--html", str(target))
        assert (result.code, result.out, result.err) == (2, "", MISSING)
        assert live.cli_requests() == []
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize(
        ("where", "message"),
        [
            ("", "--html needs a file name, got ''"),
            ("-", "--html needs a file name, got '-'"),
            ("dir/", "--html needs a file name, got '{tmp}/dir/'"),
            ("dir", "--html needs a file name, got '{tmp}/dir'"),
            ("tokens.csv", "--html and --output name the same file ({tmp}/tokens.csv)"),
        ],
    )
    def test_a_path_it_cannot_use(
        self, live: LiveSandbox, tmp_path: Path, where: str, message: str
    ) -> None:
        (tmp_path / "dir").mkdir()
        path = f"{tmp_path}/{where}" if where not in ("", "-") else where
        result = live.cli("audit", "--html", path, "--output", str(tmp_path / "tokens.csv"))
        expected = "usage error: " + message.format(tmp=tmp_path) + "\n"
        assert (result.code, result.out, result.err) == (2, "", expected)
        assert live.cli_requests() == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]

    def test_the_same_file_as_the_checkpoint(self, live: LiveSandbox, tmp_path: Path) -> None:
        ck = tmp_path / "audit.ckpt"
        result = live.cli(
            "audit",
            "--html",
            str(ck),
            "--checkpoint",
            str(ck),
            "--output",
            str(tmp_path / "tokens.csv"),
        )
        assert (result.code, result.out) == (2, "")
        assert result.err == f"usage error: --html and --checkpoint name the same file ({ck})\n"
        assert live.cli_requests() == []

    def test_a_folder_that_does_not_exist(self, live: LiveSandbox, tmp_path: Path) -> None:
        path = tmp_path / "missing" / "report.html"
        result = live.cli("audit", "--html", str(path))
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            f"usage error: cannot write {path} (through a temporary beside it):"
            " No such file or directory\n"
        )
        assert live.cli_requests() == []
