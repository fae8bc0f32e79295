"""``audit --html FILE``: the audit as one self-contained page (README "Command line").

What needs action first, then the headline numbers, the walk's verdict and cost, the
charts (:mod:`._audit_charts`, inline SVG) and every row of the tables, which a small
inline script sorts and filters. Nothing is loaded when the page is viewed: its one
``<script>`` and its styles are inline, and its Content-Security-Policy allows nothing
else (no other script, no request of any kind), so even markup that got in could run
nothing and fetch nothing.

Every text from the server (names, ids, sub-accounts, statuses) is data: escaped as the
terminal shows it (:func:`~._output.shown`: controls and bidi overrides as visible
escapes), then HTML-escaped (:func:`html.escape`, quotes too), and cut at
:data:`MAX_CELL` characters; the records hold the exact values.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

import attrs

from .._models import TokenStatus
from .._version import __version__
from .._walk import WalkStats
from ._audit_charts import (
    SMALL_MULTIPLES,
    AuditFigures,
    age_histogram,
    created_chart,
    label,
    largest_sub_accounts,
    status_chart,
)
from ._audit_render import _status_columns as status_columns  # one rule for both views
from ._audit_report import AuditReport, Flagged
from ._checkpoint import write_atomically
from ._output import MAX_CELL, shown

__all__ = ["MAX_CELL", "SCRIPT", "Findings", "render_html", "write_html"]

AGE_NOTE: Final = (
    "Age is the time since a token was created: the Cellcast API reports no last use,"
    " so an old token may still be in daily use. Check before you deactivate one."
)

CHART_NOTE: Final = (
    "Age = time since creation (the API reports no last use). Red: stale, older than the"
    " threshold. The tables below hold every number."
)

SCRIPT: Final = """
"use strict";
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.toLowerCase() : parseFloat(v);
  }
  function sortBy(table, th, index) {
    var body = table.tBodies[0];
    var up = th.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) { return [key(row.cells[index]), i, row]; });
    keyed.sort(function (a, b) {
      var x = a[0], y = b[0];
      var c = x < y ? -1 : x > y ? 1 : a[1] - b[1];
      return up ? c : -c;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[2]); });
    body.appendChild(frag);
  }
  function filter(table, input, count) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase(), n = 0;
      rows.forEach(function (row, i) {
        var hit = !q || texts[i].indexOf(q) !== -1;
        row.hidden = !hit;
        if (hit) { n += 1; }
      });
      count.textContent = q ? n.toLocaleString("en") + " of " +
        rows.length.toLocaleString("en") + " rows" : "";
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.data"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      button.addEventListener("click", function () { sortBy(table, th, index); });
    });
    var box = document.getElementById(table.id + "-filter");
    var count = document.getElementById(table.id + "-count");
    if (box && count) { filter(table, box, count); }
  });
})();
"""

STYLE: Final = """
:root { color-scheme: light; --fg: #1d2329; --muted: #5b6670; --line: #d9dee3;
  --stale: #c0392b; --ok: #2e8b57; --warn: #b7791f; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px 28px 60px; color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.note { background: #f4f6f8; border-left: 4px solid var(--muted); padding: 8px 12px; }
.action { border: 2px solid var(--stale); border-radius: 6px; padding: 10px 16px;
  background: #fdf3f2; }
.action.clear { border-color: var(--ok); background: #f0f8f3; }
.action li { margin: 4px 0; }
.action h2 { margin-top: 6px; border: 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
  gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .n { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 13px; }
.card.bad .n { color: var(--stale); }
.card.warn .n { color: var(--warn); }
.verdict.complete { color: var(--ok); font-weight: 600; }
.verdict.incomplete { color: var(--warn); font-weight: 600; }
.chart svg { width: 100%; height: auto; display: block; }
.chart { margin: 10px 0 18px; }
.multiples { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr));
  gap: 8px; }
.tools { display: flex; gap: 12px; align-items: center; margin: 6px 0; }
.tools input { font: inherit; padding: 4px 8px; width: 320px; max-width: 100%; }
.tools .count { color: var(--muted); }
.scroll { max-height: 640px; overflow: auto; border: 1px solid var(--line); }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; }
table.data th { position: sticky; top: 0; background: #eef1f4; text-align: left;
  padding: 0; white-space: nowrap; }
table.data th button { all: unset; cursor: pointer; display: block; padding: 6px 8px;
  font-weight: 600; }
table.data th[aria-sort=ascending] button::after { content: " \\25B2"; }
table.data th[aria-sort=descending] button::after { content: " \\25BC"; }
table.data td { padding: 4px 8px; border-top: 1px solid var(--line); vertical-align: top;
  overflow-wrap: anywhere; unicode-bidi: isolate; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
table.data td.id { font-family: ui-monospace, Menlo, Consolas, monospace;
  min-width: 25ch; max-width: 28ch; }
.none { color: var(--ok); }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""


def _e(text: object) -> str:
    """Server text (or ours) for an HTML text node or a quoted attribute."""
    return html.escape(str(text), quote=True)


def _cell_text(text: str) -> str:
    """A server text for a table cell: shown as the terminal shows it, then escaped, and
    cut at :data:`MAX_CELL` characters."""
    seen = shown(text)
    if len(seen) > MAX_CELL:
        more = len(seen) - MAX_CELL
        return _e(seen[:MAX_CELL]) + f"\u2026 <i>({more:,} more characters)</i>"
    return _e(seen)


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _csp(script: str) -> str:
    """Nothing but our one script and inline styles; no request of any kind."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline';"
        f" script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


# --- tables ---------------------------------------------------------------------------


def _td(value: str, cls: str = "") -> str:
    """A cell holding a server text (:func:`_cell_text`); sorted by its text."""
    return f'<td class="{cls}">{_cell_text(value)}</td>' if cls else f"<td>{_cell_text(value)}</td>"


def _num(value: int) -> str:
    """A cell holding a count, sorted by its value."""
    return f'<td class="num" data-v="{value}">{value:,}</td>'


def _table(
    table_id: str,
    caption: str,
    headers: Sequence[str],
    rows: Iterable[str],
    *,
    count: int,
    empty: str,
) -> str:
    """A sortable, filterable table with every row (``<tr>`` each), or ``empty``."""
    if count == 0:
        return f'<h3>{_e(caption)}</h3>\n<p class="none">{_e(empty)}</p>\n'
    head = "".join(f'<th scope="col"><button type="button">{_e(h)}</button></th>' for h in headers)
    body = "\n".join(rows)
    return (
        f"<h3>{_e(caption)}: {count:,}</h3>\n"
        f'<div class="tools"><input type="search" id="{table_id}-filter"'
        f' placeholder="Filter these {count:,} rows" aria-label="Filter {_e(caption)}">'
        f' <span class="count" id="{table_id}-count"></span></div>\n'
        f'<div class="scroll"><table class="data" id="{table_id}">'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>\n"
    )


def _flagged_table(table_id: str, caption: str, tokens: Sequence[Flagged], empty: str) -> str:
    """A table of flagged tokens: id, name, sub-account, day of creation (sorted by the
    instant), age in days."""
    return _table(
        table_id,
        caption,
        ["ID", "Name", "Sub-account", "Created", "Age (days)"],
        map(_flagged_row, tokens),
        count=len(tokens),
        empty=empty,
    )


def _flagged_row(token: Flagged) -> str:
    created = token.created_at.astimezone(timezone.utc)
    return (
        f"<tr>{_td(token.id, 'id')}{_td(token.name)}"
        f"{_td(token.sub_account_name or token.sub_account_id)}"
        f'<td class="num" data-v="{created.timestamp():.0f}">{created:%Y-%m-%d}</td>'
        f"{_num(token.age_days)}</tr>"
    )


def _oldest_first(token: Flagged) -> tuple[datetime, str]:
    # Flagged's own order, by its first two fields (ids are unique): a plain tuple key
    # sorts 100,000 tokens in a fraction of the time the class's comparisons take.
    return (token.created_at, token.id)


@attrs.frozen
class Findings:
    """What the page lists, worked out once from the report."""

    urgent: list[Flagged]
    """Stale and still active, oldest first: the tokens to act on first."""
    inactive: list[Flagged]
    duplicates: list[dict[str, Any]]

    @classmethod
    def of(cls, report: AuditReport) -> Findings:
        urgent = [t for t in report.stale if t.status == TokenStatus.ACTIVE]
        return cls(
            urgent=sorted(urgent, key=_oldest_first),
            inactive=sorted(report.inactive, key=_oldest_first),
            duplicates=report.duplicate_names(),
        )


def _tables(report: AuditReport, found: Findings) -> str:
    urgent, inactive, duplicates = found.urgent, found.inactive, found.duplicates
    parts = [
        _flagged_table(
            "stale-active",
            f"Stale (older than {report.stale_days:,} days) and still active",
            urgent,
            empty="None: no active token is older than the threshold.",
        ),
        _flagged_table("inactive", "Inactive", inactive, empty="None."),
        _table(
            "duplicates",
            "Names used by more than one token within one sub-account",
            ["Sub-account", "Name", "Tokens", "IDs"],
            (
                f"<tr>{_td(d['sub_account_name'] or d['sub_account_id'])}{_td(d['name'])}"
                f"{_num(len(d['ids']))}"
                f'<td class="id">{"<br>".join(_cell_text(i) for i in d["ids"])}</td></tr>'
                for d in duplicates
            ),
            count=len(duplicates),
            empty="None.",
        ),
        _sub_account_table(report, urgent),
    ]
    return "<h2>Tables</h2>\n" + "".join(parts)


def _sub_account_table(report: AuditReport, urgent: Sequence[Flagged]) -> str:
    columns, rest = status_columns(report)
    urgent_by_sub = Counter(t.sub_account_id for t in urgent)
    headers = [
        "Sub-account ID",
        "Name",
        "Tokens",
        *(label(s, 24) for s in columns),
        *([f"{len(rest):,} other statuses"] if rest else []),
        "Stale and active",
    ]

    def row(sub: str, counts: Mapping[str, int]) -> str:
        cells = [
            _td(sub, "id"),
            _td(report.sub_account_names.get(sub, "")),
            _num(sum(counts.values())),
            *(_num(counts.get(s, 0)) for s in columns),
            *([_num(sum(counts.get(s, 0) for s in rest))] if rest else []),
            _num(urgent_by_sub[sub]),
        ]
        return f"<tr>{''.join(cells)}</tr>"

    subs = sorted(report.by_sub_account.items())
    return _table(
        "sub-accounts",
        "Per sub-account",
        headers,
        (row(sub, counts) for sub, counts in subs),
        count=len(subs),
        empty="No tokens.",
    )


# --- the top of the page ----------------------------------------------------------------


def _needs_action(report: AuditReport, found: Findings, stats: WalkStats) -> str:
    urgent = len(found.urgent)
    duplicates = found.duplicates
    items: list[str] = []
    if urgent:
        items.append(
            f"<li><b>{urgent:,} token(s) older than {report.stale_days:,} days are still"
            " active</b>: rotate or deactivate them (table <i>Stale and still active</i>).</li>"
        )
    if report.inactive:
        items.append(
            f"<li>{len(report.inactive):,} inactive token(s): delete the ones no longer"
            " needed (table <i>Inactive</i>).</li>"
        )
    if duplicates:
        tokens = sum(len(d["ids"]) for d in duplicates)
        items.append(
            f"<li>{len(duplicates):,} name(s) carried by {tokens:,} tokens within one"
            " sub-account: tell them apart before acting on one.</li>"
        )
    if not stats.complete:
        items.append(
            "<li>The walk is <b>not proven complete</b>: the list changed under it in a way"
            " it could not rule out. Audit again to be sure.</li>"
        )
    if not items:
        return (
            '<section class="action clear" id="needs-action"><h2>Needs action</h2>'
            "<p>Nothing: no stale active token, no inactive token, no duplicate name,"
            " and the walk is complete.</p></section>\n"
        )
    return (
        '<section class="action" id="needs-action"><h2>Needs action</h2><ul>'
        + "".join(items)
        + "</ul></section>\n"
    )


def _card(key: str, value: int | str, cls: str = "", ident: str = "") -> str:
    shown_value = f"{value:,}" if isinstance(value, int) else _e(value)
    ident_attr = f' id="n-{ident}"' if ident else ""
    return (
        f'<div class="card {cls}"{ident_attr}><div class="n">{shown_value}</div>'
        f'<div class="k">{_e(key)}</div></div>'
    )


def _headline(report: AuditReport, found: Findings) -> str:
    urgent = len(found.urgent)
    duplicates = found.duplicates
    dup_tokens = sum(len(d["ids"]) for d in duplicates)
    cards = [
        _card("tokens", report.total, ident="tokens"),
        _card("active", report.by_status.get(TokenStatus.ACTIVE, 0), ident="active"),
        _card("inactive", report.by_status.get(TokenStatus.INACTIVE, 0), ident="inactive"),
        _card(
            f"stale (> {report.stale_days:,} days) and still active",
            urgent,
            "bad" if urgent else "",
            "stale-active",
        ),
        _card(f"stale in all (> {report.stale_days:,} days)", len(report.stale), ident="stale"),
        _card(
            "tokens sharing a name within a sub-account",
            dup_tokens,
            "warn" if dup_tokens else "",
            "duplicates",
        ),
        _card("sub-accounts", len(report.by_sub_account), ident="sub-accounts"),
    ]
    other = report.total - sum(
        report.by_status.get(s, 0) for s in (TokenStatus.ACTIVE, TokenStatus.INACTIVE)
    )
    if other:
        cards.insert(3, _card("other statuses", other, "warn", "other-status"))
    return '<h2>The numbers</h2>\n<div class="cards">' + "".join(cards) + "</div>\n"


def _walk(stats: WalkStats) -> str:
    if stats.complete:
        verdict = (
            '<span class="verdict complete">complete</span>: every token that existed for'
            " the whole walk is listed"
        )
    else:
        verdict = (
            '<span class="verdict incomplete">not proven complete</span>: the list changed'
            " under the walk in a way it could not rule out; walk again to be sure"
        )
    totals = (
        f"{stats.first_total:,} \u2192 {stats.last_total:,}"
        if stats.first_total is not None and stats.last_total is not None
        else "unknown"
    )
    return (
        f'<p id="walk">Walk: {verdict}.<br>\n'
        f"Cost: {stats.items:,} tokens in {stats.pages:,} pages; {stats.requests:,}"
        f" requests, {stats.retries:,} retried, {stats.rate_limited:,} answered 429;"
        f" waited {stats.waited:.1f} s of {stats.elapsed:.1f} s;"
        f" {stats.duplicates_dropped:,} duplicates dropped, {stats.refetched_pages:,} pages"
        f" read again; server total {totals}.</p>\n"
    )


def _charts(report: AuditReport, figures: AuditFigures) -> str:
    if report.total == 0:
        return "<h2>Charts</h2>\n<p>No tokens: nothing to draw.</p>\n"
    parts = [
        "<h2>Charts</h2>\n",
        f'<p class="note">{_e(CHART_NOTE)}</p>\n',
        '<div class="chart" id="chart-age">',
        age_histogram(
            figures,
            report.stale_days,
            sub=None,
            title=f"Token age, all sub-accounts (stale after {report.stale_days:,} days)",
            small=False,
        ),
        "</div>\n",
    ]
    subs = largest_sub_accounts(figures, SMALL_MULTIPLES)
    if len(subs) > 1 or len(report.by_sub_account) > 1:
        more = len(report.by_sub_account) - len(subs)
        heading = "Token age per sub-account"
        if more > 0:
            heading += f" (the {len(subs):,} with most tokens; {more:,} more in the table)"
        parts.append(f'<h3>{_e(heading)}</h3>\n<div class="multiples" id="chart-age-subs">')
        for sub in subs:
            name = report.sub_account_names.get(sub) or sub
            parts += [
                '<div class="chart">',
                age_histogram(figures, report.stale_days, sub=sub, title=label(name), small=True),
                "</div>",
            ]
        parts.append("</div>\n")
    parts += [
        '<div class="chart" id="chart-status">',
        status_chart(report.by_sub_account, report.sub_account_names, report.statuses()),
        "</div>\n",
        '<div class="chart" id="chart-created">',
        created_chart(figures),
        "</div>\n",
    ]
    return "".join(parts)


def render_html(report: AuditReport, figures: AuditFigures, stats: WalkStats) -> str:
    """The whole page, one string: nothing in it is fetched when it is viewed."""
    title = f"Token audit as of {_when(report.as_of)}"
    found = Findings.of(report)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(SCRIPT)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="sub">{report.total:,} token(s) in {len(report.by_sub_account):,}'
        f" sub-account(s); stale means older than {report.stale_days:,} days."
        f" {_e(AGE_NOTE)}</p>\n"
        + _needs_action(report, found, stats)
        + _headline(report, found)
        + _walk(stats)
        + _charts(report, figures)
        + _tables(report, found)
        + f"<footer>Written by cellcast-tokens {_e(__version__)} (cellcast_async) at"
        f" {_e(_when(datetime.now(timezone.utc)))}. The records (--format, --output) hold"
        " every value exactly; this page escapes control characters and shortens long"
        " texts.</footer>\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write_html(path: str, report: AuditReport, figures: AuditFigures, stats: WalkStats) -> None:
    """The page to ``path``, whole or not at all (a private temporary, then a rename)."""
    write_atomically(path, render_html(report, figures, stats))
