"""Reading ``audit --html``'s page back, as written or as a browser's DOM (``--dump-dom``),
and the hostile audit the page must show as inert text.

:class:`Page` parses with the standard library's ``html.parser`` (no other parser is
needed to count elements, attributes and cell texts); :func:`hostile_audit` builds a report
whose every server text (names, ids, sub-accounts, statuses) is one of :data:`HOSTILE`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final

import attrs
import pytest
from attrs import field as attrs_field  # `attrs` is also a field name below

from cellcast_async import ApiToken, make_converter
from cellcast_async._cli._audit_charts import AuditFigures
from cellcast_async._cli._audit_report import AuditReport
from cellcast_async._cli._records import token_record
from cellcast_async._walk import WalkStats

AS_OF: Final = datetime(2025, 7, 16, tzinfo=timezone.utc)

HOSTILE: Final[dict[str, str]] = {
    "script": "<script>alert(1)</script>",
    "img": '"><img src=x onerror=alert(2)>',
    "style_close": "</style><script>alert(3)</script>",
    "svg_onload": "<svg onload=alert(4)><circle r=9 /></svg>",
    "closers": "</td></tr></table></title></textarea><b id=bold>bold</b>",
    "entities": "&lt;script&gt; &amp; &#60;i&#62;",
    "comment": "<!-- open comment",
    "cdata": "]]><![CDATA[<x>]]>",
    "js_url": "javascript:alert(5)",
    "quotes": "a'b\"c`d",
    "rlo": "invoice\u202egpj.exe",
    "isolate": "a\u2066b\u2069c",
    "controls": "bel\x07 esc\x1b[2J nul\x00 nel\x85 ls\u2028",
    "zero_width": "zero\u200bwidth\ufeff",
    "long": "L" * 100_000,
}
"""label -> a text the server sends: a token's name, and (cut) an id and a sub-account."""

RAW_CONTROLS: Final = ("\x07", "\x1b", "\x00", "\x85", "\u2028", "\u202e", "\u2066", "\u200b")
"""Characters that must never reach the page raw (they are shown as escapes)."""

HTML_TAGS: Final = frozenset(
    {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "h3",
        "p",
        "section",
        "ul",
        "li",
        "b",
        "i",
        "br",
        "div",
        "span",
        "input",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "button",
        "footer",
        "script",
    }
)
"""Every HTML element the page is made of (outside the charts' SVG)."""
SVG_TAGS: Final = frozenset(
    {"svg", "defs", "style", "title", "desc", "g", "rect", "path", "line", "circle", "text"}
    | {"tspan", "clippath", "polyline", "polygon"}
)


@attrs.define(eq=False)  # found by identity (list.index), never by value
class Element:
    tag: str
    attrs: dict[str, str | None]
    in_svg: bool
    parts: list[str] = attrs_field(factory=list)

    @property
    def text(self) -> str:
        """Its text, its children's included."""
        return "".join(self.parts)


class Page(HTMLParser):
    """Every element of a page with its attributes and its own text (children's included)."""

    VOID = frozenset({"meta", "br", "input"})

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        in_svg = tag == "svg" or any(e.tag == "svg" for e in self._open)
        element = Element(tag, dict(attrs), in_svg)
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        in_svg = any(e.tag == "svg" for e in self._open)
        self.elements.append(Element(tag, dict(attrs), in_svg))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)

    # --- queries ----------------------------------------------------------------------

    def tags(self, *, in_svg: bool) -> set[str]:
        return {e.tag for e in self.elements if e.in_svg == in_svg}

    def all(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]

    def by_id(self, ident: str) -> Element:
        (found,) = [e for e in self.elements if e.attrs.get("id") == ident]
        return found

    def card(self, ident: str) -> str:
        """A headline number's text (``<div class="card" id="n-...">``)."""
        card = self.by_id(f"n-{ident}")
        index = self.elements.index(card)
        return self.elements[index + 1].text

    def rows(self, table_id: str) -> list[list[str]]:
        """A table's body rows, each a list of its cells' texts."""
        table = self.by_id(table_id)
        start = self.elements.index(table)
        rows: list[list[str]] = []
        for element in self.elements[start + 1 :]:
            if element.tag == "table":
                break
            if element.tag == "tr" and rows is not None:
                rows.append([])
            elif element.tag == "td":
                rows[-1].append(element.text)
        return [row for row in rows if row]  # the header row has th cells only

    def attribute_names(self) -> set[str]:
        return {name for e in self.elements for name in e.attrs}


def inert_checks(page: Page, script: str) -> None:
    """What no server text may change: the elements, the one script, no handler or link."""
    assert page.tags(in_svg=False) <= HTML_TAGS
    assert page.tags(in_svg=True) <= SVG_TAGS
    scripts = page.all("script")
    assert len(scripts) == 1
    assert scripts[0].attrs == {}
    assert scripts[0].text.strip() == script.strip()
    names = page.attribute_names()
    assert not [n for n in names if n.startswith("on")]
    assert not names & {"src", "href", "xlink:href", "action", "formaction", "srcdoc"}
    assert page.all("img") == page.all("iframe") == page.all("object") == []
    assert [e for e in page.elements if e.attrs.get("id") == "bold"] == []


def hostile_audit() -> tuple[AuditReport, AuditFigures, WalkStats]:
    """A report whose names, ids, sub-accounts and statuses are all hostile texts: one
    stale active, one inactive and two same-named tokens per text."""
    report = AuditReport(as_of=AS_OF, stale_days=365)
    figures = AuditFigures()
    converter = make_converter()
    texts = list(HOSTILE.values())
    for index, (label, text) in enumerate(HOSTILE.items()):
        sub = {"_id": f"sub-{text[:60]}", "name": texts[-1 - index][:300]}
        for n, (days, status) in enumerate(
            [(400, "active"), (30, "inactive"), (10, "active"), (20, "active")]
        ):
            raw: dict[str, Any] = {
                "_id": f"{label}-{n}-{text[:80]}",
                "name": text if n != 3 else texts[(index + 1) % len(texts)],
                "token": "ccst_" + "x" * 40,
                "status": status if label != "closers" or n != 2 else text[:40],
                "subAccountId": sub["_id"],
                "subAccount": sub,
                "createdAt": (AS_OF - timedelta(days=days)).isoformat(),
            }
            token = converter.structure(raw, ApiToken)
            record = token_record(token, AS_OF, 365)
            report.add(record, token.created_at)
            figures.add(record, token.created_at)
    stats = WalkStats(requests=3, pages=2, items=report.total, complete=True)
    return report, figures, stats


# --- the browser -----------------------------------------------------------------------

CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
)


def chromium() -> str:
    """Debian's chromium, or a skip off CI (with CI set, a failure: .ci/run installs it)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def run_chromium(page: Path, profile: Path, *args: str, timeout: float = 60) -> str:
    """Chromium headless on ``page`` with a fresh profile; its stdout (``--dump-dom``)."""
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "HOME": str(profile)},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


def dump_dom(page: Path, profile: Path) -> Page:
    return Page(run_chromium(page, profile, "--dump-dom"))


def screenshot(page: Path, profile: Path, png: Path, size: str = "1280,2000") -> bytes:
    run_chromium(page, profile, f"--screenshot={png}", f"--window-size={size}")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return data


def shown_cells(page: Page, table_id: str, column: int) -> Iterator[str]:
    for row in page.rows(table_id):
        yield row[column]
