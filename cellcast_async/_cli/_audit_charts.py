"""The audit page's charts: pygal (the ``report`` extra) drawn to SVG at report time.

pygal builds each chart as an element tree; :func:`svg_markup` keeps only the drawing
(every ``<script>`` it adds, its comments and any element or attribute outside
:data:`_SVG_TAGS` are dropped), so the page runs no code of pygal's and loads nothing.
Every label that comes from the server passes :func:`label` first: escaped as the
terminal shows it (README "What the command line prints") and cut to a length a chart
can hold; the tree's serialisation escapes it as XML text.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._models import TokenStatus
from ._audit_report import NO_SUB_ACCOUNT
from ._context import CliUsageError
from ._output import shown

if TYPE_CHECKING:
    import pygal

__all__ = [
    "EXTRA_HINT",
    "MAX_LABEL",
    "SMALL_MULTIPLES",
    "AuditFigures",
    "age_bins",
    "age_histogram",
    "created_chart",
    "label",
    "largest_sub_accounts",
    "require_charts",
    "status_chart",
]

EXTRA_HINT: Final = 'pip install "cellcast-async[report]"'

MAX_LABEL: Final = 32
"""The longest label a chart shows (a sub-account's name), in characters; then an ellipsis."""

SMALL_MULTIPLES: Final = 12
"""Sub-accounts with an age histogram of their own (the ones with most tokens)."""

STATUS_BARS: Final = 20
"""Sub-accounts with a bar of their own in the status chart; the rest share one."""

BINS: Final = 24
"""About this many bins span the oldest token's age in a histogram."""

FRESH_COLOUR: Final = "#3b6fb6"
STALE_COLOUR: Final = "#c0392b"
STATUS_COLOURS: Final = {"active": "#2e8b57", "inactive": "#9e9e9e"}
OTHER_COLOURS: Final = ("#e6a23c", "#8e44ad", "#16a085", "#d35400", "#7f8c8d")

# What pygal draws with; anything else in its tree (its <script>s above all) is dropped.
_SVG_TAGS: Final = frozenset(
    {
        "svg",
        "defs",
        "style",
        "title",
        "desc",
        "g",
        "rect",
        "path",
        "line",
        "circle",
        "text",
        "tspan",
        "clipPath",
        "polyline",
        "polygon",
    }
)


def require_charts() -> None:
    """pygal is importable, or a usage error that names the extra (before the walk)."""
    try:
        import pygal  # noqa: F401
    except ImportError:
        raise CliUsageError(
            f"--html draws its charts with pygal, which comes with the report extra: {EXTRA_HINT}"
        ) from None


def label(text: str, limit: int = MAX_LABEL) -> str:
    """A server's text as a chart shows it: controls escaped, at most ``limit`` characters."""
    text = shown(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@attrs.define
class AuditFigures:
    """What the charts need of every token (the report keeps only those needing action):
    counts by (sub-account, stale, age in days) and by month of creation."""

    ages: Counter[tuple[str, bool, int]] = attrs.field(factory=Counter)
    created: Counter[str] = attrs.field(factory=Counter)

    def add(self, record: Mapping[str, Any], created_at: datetime) -> None:
        sub = record["sub_account_id"] or NO_SUB_ACCOUNT
        self.ages[(sub, bool(record["stale"]), int(record["age_days"]))] += 1
        self.created[created_at.astimezone(timezone.utc).strftime("%Y-%m")] += 1


def age_bins(max_age: int, stale_days: int) -> tuple[list[float], list[float]]:
    """Bin edges in days for the tokens younger than the threshold and for the stale ones.

    The threshold is an edge, and the bins on either side have one width, so the colour
    changes exactly where a token turns stale.
    """
    # About BINS bins over the whole axis, which reaches the threshold when every token
    # is younger: a threshold far past the oldest age must not make millions of bins.
    width = max(1.0, max(max_age, stale_days) / BINS)
    if stale_days > 0:
        width = stale_days / max(1, round(stale_days / width))
        fresh = [i * width for i in range(round(stale_days / width) + 1)]
    else:
        fresh = [0.0, 1.0]
    stale = [float(stale_days)]
    # At least one bin, empty when every token is younger than the threshold.
    while len(stale) < 2 or stale[-1] <= max_age:
        stale.append(stale[-1] + width)
    return fresh, stale


TICK_STEPS: Final = (30, 60, 90, 180, 365, 730, 1461, 3652)
"""Candidate spacings of an age axis's labels, in days."""


def age_ticks(max_age: int, stale_days: int) -> list[int]:
    """Labels for an age axis: round steps (at most about 8 of them) and the threshold."""
    span = max(max_age, stale_days)
    longest = TICK_STEPS[-1]
    # Past the longest round step, whole multiples of it: still about 8 ticks.
    step = next((s for s in TICK_STEPS if span / s <= 8), longest * math.ceil(span / 8 / longest))
    ticks = set(range(0, max(max_age, stale_days) + 1, step)) | {stale_days}
    # A round tick right beside the threshold would print over its label.
    return sorted(t for t in ticks if t in (0, stale_days) or abs(t - stale_days) >= step / 2)


def _binned(
    ages: Iterable[tuple[int, int]], edges: Sequence[float]
) -> list[tuple[int, float, float]]:
    """(count, start, end) per bin, for pygal's Histogram; an age past the edges counts
    in the last bin, one before them in the first."""
    counts = [0] * (len(edges) - 1)
    width = edges[1] - edges[0]
    for age, n in ages:
        index = math.floor((age - edges[0]) / width) if width else 0
        counts[min(max(index, 0), len(counts) - 1)] += n
    return [(c, edges[i], edges[i + 1]) for i, c in enumerate(counts)]


def _style(colours: Sequence[str]) -> Any:
    from pygal.style import Style

    return Style(
        background="white",
        plot_background="white",
        foreground="#333",
        foreground_strong="#111",
        foreground_subtle="#777",
        font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
        title_font_size=15,
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        opacity=".85",
        opacity_hover="1",
        colors=tuple(colours),
    )


def _config(colours: Sequence[str], **overrides: Any) -> dict[str, Any]:
    """What every chart shares: no script of pygal's, no XML declaration, our style with
    ``colours`` for its series, in order."""
    return {
        "js": [],
        "disable_xml_declaration": True,
        "style": _style(colours),
        "truncate_legend": MAX_LABEL,
        "truncate_label": MAX_LABEL,
        "legend_at_bottom": True,
        "print_zeroes": False,
        **overrides,
    }


def svg_markup(chart: pygal.graph.graph.Graph) -> str:
    """The chart's SVG, keeping only the drawing (:data:`_SVG_TAGS`, no ``on*`` or link
    attribute); its text is escaped by the serialisation."""
    root = chart.render_tree()
    for parent in root.iter():
        for child in list(parent):
            tag = child.tag
            if not isinstance(tag, str) or tag.rsplit("}", 1)[-1] not in _SVG_TAGS:
                parent.remove(child)  # pygal's <script>s, its comments
                continue
            for name in list(child.attrib):
                if name.lower().startswith("on") or name.rsplit("}", 1)[-1] == "href":
                    del child.attrib[name]
    from xml.etree import ElementTree

    if not isinstance(root, ElementTree.Element):  # pygal built it with lxml
        from lxml import etree

        return str(etree.tostring(root, encoding="unicode"))
    return ElementTree.tostring(root, encoding="unicode")


def age_histogram(
    figures: AuditFigures, stale_days: int, *, sub: str | None, title: str, small: bool
) -> str:
    """Token ages (all sub-accounts, or ``sub``'s) as a histogram, stale ones in red."""
    import pygal

    max_age = max((age for (_, _, age) in figures.ages), default=0)
    fresh_edges, stale_edges = age_bins(max_age, stale_days)
    fresh: Counter[int] = Counter()
    stale: Counter[int] = Counter()
    for (owner, is_stale, age), n in figures.ages.items():
        if sub is None or owner == sub:
            (stale if is_stale else fresh)[age] += n
    ticks = [
        {
            "label": f"{day:,}" + (" (stale)" if day == stale_days and not small else ""),
            "value": day,
        }
        for day in age_ticks(max_age, stale_days)
    ]
    chart = pygal.Histogram(
        **_config(
            (FRESH_COLOUR, STALE_COLOUR),
            width=420 if small else 900,
            height=260 if small else 340,
            show_legend=not small,
            max_scale=5 if small else 10,  # y labels a small chart has room for
            x_labels=ticks,
            x_title=None if small else "age in days (time since creation)",
            y_title=None if small else "tokens",
            title=title,
        )
    )
    chart.add(f"younger than {stale_days:,} days", _binned(fresh.items(), fresh_edges))
    chart.add(f"stale: older than {stale_days:,} days", _binned(stale.items(), stale_edges))
    return svg_markup(chart)


def largest_sub_accounts(figures: AuditFigures, count: int) -> list[str]:
    """The ``count`` sub-accounts with most tokens, most first (ties by id)."""
    totals: Counter[str] = Counter()
    for (sub, _, _), n in figures.ages.items():
        totals[sub] += n
    return [sub for sub, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def status_chart(
    by_sub_account: Mapping[str, Counter[str]],
    names: Mapping[str, str],
    statuses: Sequence[str],
) -> str:
    """Tokens per status for each sub-account (the :data:`STATUS_BARS` largest; the rest
    summed in one bar), stacked horizontally."""
    import pygal

    ranked = sorted(by_sub_account.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    shown_subs, rest = ranked[:STATUS_BARS], ranked[STATUS_BARS:]
    rows: list[tuple[str, Mapping[str, int]]] = [
        (label(names.get(sub) or sub), counts) for sub, counts in shown_subs
    ]
    if rest:
        summed: Counter[str] = Counter()
        for _, counts in rest:
            summed.update(counts)
        rows.append((f"{len(rest):,} other sub-accounts", summed))
    known = [s for s in statuses if s in (TokenStatus.ACTIVE, TokenStatus.INACTIVE)]
    others = [s for s in statuses if s not in known]
    colours = [STATUS_COLOURS[s] for s in known] + [OTHER_COLOURS[0]]
    chart = pygal.HorizontalStackedBar(
        **_config(
            colours,
            width=900,
            height=max(220, 90 + 28 * len(rows)),
            title="Tokens per status, per sub-account",
            x_labels=[name for name, _ in rows],
        )
    )
    for status in known:
        chart.add(status, [counts.get(status, 0) for _, counts in rows])
    if others:
        chart.add(
            f"{len(others):,} other status(es)",
            [sum(counts.get(s, 0) for s in others) for _, counts in rows],
        )
    return svg_markup(chart)


CREATED_MONTHS: Final = 240
"""The most bars of the created-per-month chart: 20 years; older months are summed in
the first bar (a createdAt in year 1 must not draw 24,000 bars)."""


def _months(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` ("YYYY-MM"), so a gap shows as a gap."""
    year, month = map(int, first.split("-"))
    end = tuple(map(int, last.split("-")))
    months = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def created_chart(figures: AuditFigures) -> str:
    """Tokens created per month, from the first month to the last."""
    import pygal

    months = _months(min(figures.created), max(figures.created)) if figures.created else []
    values = [figures.created.get(m, 0) for m in months]
    if len(months) > CREATED_MONTHS:
        shown = months[-(CREATED_MONTHS - 1) :]
        earlier = sum(n for m, n in figures.created.items() if m < shown[0])
        months, values = [f"before {shown[0]}", *shown], [earlier, *values[-len(shown) :]]
    chart = pygal.Bar(
        **_config(
            (FRESH_COLOUR,),
            width=900,
            height=320,
            title="Tokens created per month",
            x_labels=months,
            x_label_rotation=-45,
            show_legend=False,
            show_minor_x_labels=len(months) <= 24,
            x_labels_major_every=max(1, math.ceil(len(months) / 24)),
            y_title="tokens",
        )
    )
    chart.add("created", values)
    return svg_markup(chart)
