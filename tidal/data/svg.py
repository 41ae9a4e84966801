"""Small inline SVG charts for the HTML reports: reference vs current distributions.

Drawn by hand on purpose. A plotting library would be a heavy dependency for a few
rectangles (matplotlib), or would put megabytes of JavaScript into every report
(plotly, bokeh); a report must also open with no network, so nothing can come from a
CDN. An SVG string is tiny, scales with the page, prints sharply and can carry its own
accessible title and description.

Every chart plots *shares* (percent of rows), never raw counts: the reference and the
current sample rarely have the same number of rows, and counts would make the larger
one look different when it is only bigger. Every piece of text from the data (column
names, category labels) goes through :func:`html.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise
from typing import Any

#: Blue and orange: distinguishable with the common colour-vision deficiencies.
REFERENCE_COLOUR = "#4c78a8"
CURRENT_COLOUR = "#e4750f"
#: A categorical chart keeps this many categories; the rest become one "other" bar.
TOP_CATEGORIES = 20

WIDTH, HEIGHT = 300, 132
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 22, 20
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
#: Extra height under a categorical chart whose labels only fit slanted, and their length.
SLANTED_EXTRA, SLANTED_CHARS = 40, 9


@dataclass(frozen=True)
class Chart:
    """What a chart shows, once counts are turned into shares and long domains are cut."""

    kind: str  # "numeric" or "categorical"
    labels: list[str]  # one per bar/bin, for tooltips and the text description
    reference: list[float]  # percent of reference rows per bar/bin
    current: list[float]  # percent of current rows per bar/bin
    edges: list[float] | None = None  # numeric only: len(labels) + 1 bin edges


def distribution_svg(distribution: Mapping[str, Any], column: str, uid: str) -> str | None:
    """The chart for one column's ``distribution`` entry, or None if it cannot be drawn.

    ``uid`` makes the ids that tie the SVG to its title/description unique in the page.
    A malformed entry (lengths that do not match, no bins) gives None rather than an
    exception, so that one bad column does not cost the user the whole report.
    """
    chart = prepare_chart(distribution)
    if chart is None:
        return None
    body = _numeric_marks(chart) if chart.kind == "numeric" else _categorical_marks(chart)
    title = f"{column}: reference vs current distribution"
    height = HEIGHT + (SLANTED_EXTRA if _slanted(chart) else 0)
    return (
        f'<svg class="dist" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{uid}-t">{escape(title)}</title>'
        f'<desc id="{uid}-d">{escape(describe(chart))}</desc>'
        f"{_axes(chart)}{body}{_legend(chart.kind)}</svg>"
    )


def prepare_chart(distribution: Mapping[str, Any]) -> Chart | None:
    """Validate a distribution entry and turn it into shares (None if unusable)."""
    kind = distribution.get("kind")
    try:
        ref = [float(c) for c in distribution.get("reference") or []]
        cur = [float(c) for c in distribution.get("current") or []]
    except (TypeError, ValueError):
        return None
    if not ref or len(ref) != len(cur):
        return None
    if kind == "numeric":
        try:
            edges = [float(e) for e in distribution.get("edges") or []]
        except (TypeError, ValueError):
            return None
        if len(edges) != len(ref) + 1:
            return None
        labels = [f"{fmt_number(lo)} – {fmt_number(hi)}" for lo, hi in pairwise(edges)]
        return Chart("numeric", labels, shares(ref), shares(cur), edges)
    if kind == "categorical":
        labels = [str(label) for label in distribution.get("labels") or []]
        if len(labels) != len(ref):
            return None
        labels, ref, cur = top_categories(labels, ref, cur)
        return Chart("categorical", labels, shares(ref), shares(cur))
    return None


def shares(counts: Sequence[float]) -> list[float]:
    """Counts as percent of their total (all zero when the total is zero or not finite)."""
    clean = [c if math.isfinite(c) and c > 0 else 0.0 for c in counts]
    total = sum(clean)
    return [100.0 * c / total for c in clean] if total > 0 else [0.0] * len(clean)


def top_categories(
    labels: list[str], reference: list[float], current: list[float], limit: int = TOP_CATEGORIES
) -> tuple[list[str], list[float], list[float]]:
    """Keep the ``limit`` categories with the largest combined share, fold the rest.

    Ranking by reference share plus current share keeps a category that is new (or gone)
    in the current data, which is often the drift the user is looking for. A domain that
    already fits keeps its given order (often a natural one: 1, 2, 3).
    """
    if len(labels) <= limit:
        return labels, reference, current
    ref_s, cur_s = shares(reference), shares(current)
    order = sorted(range(len(labels)), key=lambda i: -(ref_s[i] + cur_s[i]))
    keep, rest = order[:limit], order[limit:]
    return (
        [labels[i] for i in keep] + [f"other ({len(rest)} values)"],
        [reference[i] for i in keep] + [sum(reference[i] for i in rest)],
        [current[i] for i in keep] + [sum(current[i] for i in rest)],
    )


def describe(chart: Chart) -> str:
    """One sentence for screen readers: where reference and current differ most."""
    gaps = [abs(r - c) for r, c in zip(chart.reference, chart.current, strict=True)]
    i = max(range(len(gaps)), key=gaps.__getitem__)
    unit = "bins" if chart.kind == "numeric" else "categories"
    return (f"{len(chart.labels)} {unit}, percent of rows. Largest difference at "
            f"{chart.labels[i]}: reference {chart.reference[i]:.1f}%, "
            f"current {chart.current[i]:.1f}%.")


def fmt_number(value: float, digits: int = 3) -> str:
    """Compact number for labels and tooltips ("—" for NaN, "∞" for infinity)."""
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def _y_max(chart: Chart) -> float:
    """A round top for the y axis (5, 10, 20, 25, 50, 100 %...) above the tallest bar."""
    top = max(chart.reference + chart.current + [1.0])
    for step in (1, 2, 5, 10, 20, 25, 50, 100):
        if top <= step:
            return float(step)
    return 100.0


def _y(value: float, y_max: float) -> float:
    return TOP + PLOT_H * (1 - value / y_max)


def _bin_x(chart: Chart) -> list[float]:
    """x of every bin edge: proportional to the edge values when they are finite and
    increasing, evenly spaced otherwise (open-ended or degenerate bins)."""
    edges, n = chart.edges or [], len(chart.labels)
    usable = all(math.isfinite(e) for e in edges) and all(a < b for a, b in pairwise(edges))
    if not usable:
        return [LEFT + PLOT_W * i / n for i in range(n + 1)]
    lo, span = edges[0], edges[-1] - edges[0]
    return [LEFT + PLOT_W * (e - lo) / span for e in edges]


def _tooltip(chart: Chart, i: int) -> str:
    return escape(f"{chart.labels[i]}: reference {chart.reference[i]:.1f}%, "
                  f"current {chart.current[i]:.1f}%")


def _numeric_marks(chart: Chart) -> str:
    """Reference as filled bars, current as a step line over the same bins.

    Two different marks (area vs line) keep the series apart without relying on colour
    and without one hiding the other, which overlaid filled bars do.
    """
    y_max, xs, base = _y_max(chart), _bin_x(chart), TOP + PLOT_H
    parts, step = [], []
    for i, (ref, cur) in enumerate(zip(chart.reference, chart.current, strict=True)):
        x0, x1 = xs[i], xs[i + 1]
        y_ref, y_cur = _y(ref, y_max), _y(cur, y_max)
        parts.append(
            f'<g><title>{_tooltip(chart, i)}</title>'
            f'<rect x="{x0:.1f}" y="{TOP}" width="{x1 - x0:.1f}" height="{PLOT_H}" '
            f'fill="#000" fill-opacity="0"/>'
            f'<rect x="{x0:.1f}" y="{y_ref:.1f}" width="{x1 - x0:.1f}" height="{base - y_ref:.1f}" '
            f'fill="{REFERENCE_COLOUR}" fill-opacity="0.55"/></g>'
        )
        step.append(f"{'M' if i == 0 else 'L'}{x0:.1f},{y_cur:.1f} L{x1:.1f},{y_cur:.1f}")
    parts.append(f'<path d="{" ".join(step)}" fill="none" stroke="{CURRENT_COLOUR}" '
                 f'stroke-width="2" stroke-linejoin="round" pointer-events="none"/>')
    return "".join(parts)


def _label_room(chart: Chart) -> int:
    """How many characters of a category label fit under its group, written level
    (about 6 units a character, and a little gap so neighbours do not run together)."""
    return int((PLOT_W / len(chart.labels) - 4) / 6.2)


def _slanted(chart: Chart) -> bool:
    """Slant the category labels when they would not fit level (long or many labels)."""
    if chart.kind != "categorical":
        return False
    room = _label_room(chart)
    return room < 4 and any(len(label) > room for label in chart.labels)


def _category_label(chart: Chart, i: int, x: float) -> str:
    base, label = TOP + PLOT_H, chart.labels[i]
    room = SLANTED_CHARS if _slanted(chart) else _label_room(chart)
    label = label if len(label) <= room else label[: room - 1] + "…"
    if _slanted(chart):
        return (f'<text transform="translate({x:.1f},{base + 9}) rotate(-50)" '
                f'text-anchor="end">{escape(label)}</text>')
    return f'<text x="{x:.1f}" y="{base + 12}" text-anchor="middle">{escape(label)}</text>'


def _categorical_marks(chart: Chart) -> str:
    """Side-by-side bars per category (reference left, current right) and their labels."""
    y_max, n, base = _y_max(chart), len(chart.labels), TOP + PLOT_H
    group = PLOT_W / n
    bar = group * 0.38
    parts = []
    for i, (ref, cur) in enumerate(zip(chart.reference, chart.current, strict=True)):
        x = LEFT + group * i + group * 0.12
        y_ref, y_cur = _y(ref, y_max), _y(cur, y_max)
        parts.append(
            f'<g><title>{_tooltip(chart, i)}</title>'
            f'<rect x="{LEFT + group * i:.1f}" y="{TOP}" width="{group:.1f}" height="{PLOT_H}" '
            f'fill="#000" fill-opacity="0"/>'
            f'<rect x="{x:.1f}" y="{y_ref:.1f}" width="{bar:.1f}" height="{base - y_ref:.1f}" '
            f'fill="{REFERENCE_COLOUR}"/>'
            f'<rect x="{x + bar:.1f}" y="{y_cur:.1f}" width="{bar:.1f}" '
            f'height="{base - y_cur:.1f}" fill="{CURRENT_COLOUR}"/></g>'
            f"{_category_label(chart, i, LEFT + group * (i + 0.5))}"
        )
    return "".join(parts)


def _axes(chart: Chart) -> str:
    """Baseline, a gridline at the top and middle of the y axis, and numeric x extremes."""
    y_max, base, right = _y_max(chart), TOP + PLOT_H, LEFT + PLOT_W
    parts = []
    for value in (y_max / 2, y_max):
        y = _y(value, y_max)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{value:g}%</text>')
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>'
                 f'<text x="{LEFT - 4}" y="{base + 3}" text-anchor="end">0</text>')
    if chart.kind == "numeric" and chart.edges:
        lo, hi = fmt_number(chart.edges[0]), fmt_number(chart.edges[-1])
        parts.append(f'<text x="{LEFT}" y="{base + 12}" text-anchor="start">{escape(lo)}</text>'
                     f'<text x="{right}" y="{base + 12}" text-anchor="end">{escape(hi)}</text>')
    return "".join(parts)


def _legend(kind: str) -> str:
    """Reference swatch and current swatch (a line for numeric charts, a bar otherwise)."""
    current_mark = (
        f'<line x1="118" y1="8" x2="130" y2="8" stroke="{CURRENT_COLOUR}" stroke-width="2"/>'
        if kind == "numeric"
        else f'<rect x="118" y="3" width="10" height="10" fill="{CURRENT_COLOUR}"/>'
    )
    ref_opacity = ' fill-opacity="0.55"' if kind == "numeric" else ""
    return (
        f'<g class="legend" aria-hidden="true">'
        f'<rect x="{LEFT}" y="3" width="10" height="10" fill="{REFERENCE_COLOUR}"{ref_opacity}/>'
        f'<text x="{LEFT + 14}" y="12">reference</text>'
        f'{current_mark}<text x="134" y="12">current</text></g>'
    )
