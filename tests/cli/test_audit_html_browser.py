"""``audit --html``'s page in a real headless Chromium (Debian's ``chromium``; ``.ci/run``
installs it): the DOM after the page's script ran holds the numbers and the charts, hostile
server texts stay text, the tables sort and filter, and a screenshot is taken.

One fast test runs in the default set; the others are ``soak`` (``nox -s soak``). Without
chromium they skip, except with ``CI`` set, where they fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellcast_async._cli._audit_html import SCRIPT, render_html

from ._html_page import (
    HOSTILE,
    Page,
    dump_dom,
    hostile_audit,
    inert_checks,
    screenshot,
)
from ._support import AS_OF, LiveSandbox


def test_hostile_page_in_the_browser(tmp_path: Path) -> None:
    """The DOM Chromium builds: the numbers, the charts, and every hostile text as text."""
    report, figures, stats = hostile_audit()
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report, figures, stats), encoding="utf-8")
    dom = dump_dom(page_file, tmp_path / "profile")
    inert_checks(dom, SCRIPT)
    assert dom.card("tokens") == "60"
    assert dom.card("stale-active") == "15"
    assert dom.card("inactive") == "15"
    assert dom.card("duplicates") == "45"
    assert len(dom.all("svg")) == 1 + 12 + 2
    assert "stale: older than 365 days" in dom.by_id("chart-age").text
    names = {cell for row in dom.rows("inactive") for cell in row}
    for key in ("script", "img", "style_close", "svg_onload", "closers", "comment", "cdata"):
        assert HOSTILE[key] in names, key
    assert "invoice\\u202egpj.exe" in names


@pytest.mark.soak
def test_the_tables_sort_and_filter(tmp_path: Path) -> None:
    """The page's own script, driven by a test script appended to a copy of the page (its
    Content-Security-Policy, which would refuse that script, removed from the copy)."""
    report, figures, stats = hostile_audit()
    text = render_html(report, figures, stats)
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    driver = """<script>
    var table = document.getElementById("inactive");
    var ages = table.tHead.rows[0].cells[4].querySelector("button");
    ages.click(); ages.click();
    var order = Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[4].getAttribute("data-v"); });
    var box = document.getElementById("inactive-filter");
    box.value = "<SCRIPT>"; box.dispatchEvent(new Event("input"));
    var shown = Array.prototype.filter.call(table.tBodies[0].rows, function (r) {
      return !r.hidden; }).length;
    var out = document.createElement("pre"); out.id = "result";
    out.textContent = [table.tHead.rows[0].cells[4].getAttribute("aria-sort"), order.join(","),
      shown, document.getElementById("inactive-count").textContent].join("|");
    document.body.appendChild(out);
    </script>"""
    page_file = tmp_path / "report.html"
    page_file.write_text(text.replace("</body>", driver + "</body>"), encoding="utf-8")
    dom = dump_dom(page_file, tmp_path / "profile")
    sort, order, shown, count = dom.by_id("result").text.split("|")
    assert sort == "descending"
    ages = [int(v) for v in order.split(",")]
    assert ages == sorted(ages, reverse=True)
    assert len(ages) == 15
    # Rows whose text holds "<script>" in any case, as the page parsed here sees them.
    hits = [r for r in Page(text).rows("inactive") if "<script>" in "".join(r).lower()]
    assert 0 < len(hits) < 15
    assert (shown, count) == (str(len(hits)), f"{len(hits)} of 15 rows")


@pytest.mark.soak
def test_the_policy_blocks_a_script_that_got_in(tmp_path: Path) -> None:
    """Were markup ever to get in, the page's Content-Security-Policy would run none of it."""
    report, figures, stats = hostile_audit()
    text = render_html(report, figures, stats)
    planted = '<script>document.title = "ran";</script><img src=x onerror="document.title=1">'
    page_file = tmp_path / "report.html"
    page_file.write_text(text.replace("</body>", planted + "</body>"), encoding="utf-8")
    dom = dump_dom(page_file, tmp_path / "profile")
    assert dom.all("title")[0].text == "Token audit as of 2025-07-16 00:00 UTC"


@pytest.mark.soak
def test_a_sandbox_audit_in_the_browser(live: LiveSandbox, tmp_path: Path) -> None:
    """The whole command against the sandbox, loaded and photographed."""
    page_file = tmp_path / "report.html"
    result = live.cli("audit", "--html", str(page_file), "--as-of", AS_OF, "--quiet")
    assert (result.code, result.err) == (0, "")
    written = Page(page_file.read_text(encoding="utf-8"))
    dom = dump_dom(page_file, tmp_path / "profile")
    for ident in ("tokens", "active", "inactive", "stale-active", "duplicates"):
        assert dom.card(ident) == written.card(ident)
    assert dom.card("tokens") == "300"
    assert len(dom.all("svg")) == 6
    assert len(dom.rows("stale-active")) == int(dom.card("stale-active"))
    png = screenshot(page_file, tmp_path / "profile2", tmp_path / "report.png")
    assert len(png) > 50_000  # charts and tables, not a blank page


@pytest.mark.soak
def test_a_20000_token_audit_in_the_browser(tmp_path: Path) -> None:
    """docs/guide/audit-html.png's audit: 20,000 tokens in 6 sub-accounts, every row in
    the DOM, the charts drawn, a screenshot of the page."""
    with LiveSandbox(seed=0, tokens=20_000, sub_accounts=6) as big:
        page_file = tmp_path / "report.html"
        result = big.cli("audit", "--html", str(page_file), "--as-of", AS_OF, "--quiet")
        assert (result.code, result.err) == (0, "")
        items = big.items()
    dom = dump_dom(page_file, tmp_path / "profile")
    stale_active = [
        item for item in items
        if item["status"] == "active" and item["createdAt"] < "2024-07-16T00:00:00"
    ]  # fmt: skip
    assert dom.card("tokens") == "20,000"
    assert dom.card("stale-active") == f"{len(stale_active):,}"
    assert len(dom.rows("stale-active")) == len(stale_active)
    assert len(dom.rows("inactive")) == sum(item["status"] == "inactive" for item in items)
    assert len(dom.all("svg")) == 1 + 6 + 2
    png = screenshot(page_file, tmp_path / "profile2", tmp_path / "report.png", "1280,3000")
    assert 100_000 < len(png) < 1_000_000
