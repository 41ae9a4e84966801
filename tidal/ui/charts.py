"""Charts as inline SVG, drawn on the server: a page needs no script to show them and
works offline. Written by hand rather than with a plotting library because each chart is
a few lines and marks; series differ by dash pattern as well as colour (readable without
colour), and every chart carries a text description for screen readers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#0b5fa5", "#b3261e", "#1e7a3c", "#8a5a00", "#6b3fa0", "#3a3a3a")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")
Point = tuple[float, float]


def line_chart(series: Sequence[tuple[str, Sequence[Point]]], *, title: str,
               width: int = 640, height: int = 220, x_label: str = "",
               y_label: str = "", thresholds: Sequence[tuple[str, float]] = (),
               x_format: Callable[[float], str] = "{:g}".format) -> Markup:
    """Lines of ``(x, y)`` points on shared axes, with horizontal threshold lines."""
    points = [p for _, values in series for p in values
              if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not points:
        return Markup(f'<p class="empty">{escape(title)}: no points yet.</p>')
    left, right, top, bottom = 56, 12, 14, 34
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + [value for _, value in thresholds]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
             f'y2="{height - bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>']
    for value in (y0 + pad, (y0 + y1) / 2, y1 - pad):
        parts.append(f'<text x="{left - 4}" y="{sy(value) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{value:.4g}</text>')
    for value, anchor in ((x0, "start"), (x1, "end")):
        parts.append(f'<text x="{sx(value):.1f}" y="{height - bottom + 14}" '
                     f'text-anchor="{anchor}" font-size="11">'
                     f'{escape(x_format(value))}</text>')
    if x_label:
        parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 4}" '
                     f'text-anchor="middle" font-size="11">{escape(x_label)}</text>')
    if y_label:
        parts.append(f'<text x="12" y="{top + 4}" font-size="11">{escape(y_label)}</text>')
    for label, value in thresholds:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(value):.1f}" '
                     f'y2="{sy(value):.1f}" stroke="#b3261e" stroke-dasharray="3 3"/>'
                     f'<text x="{width - right}" y="{sy(value) - 3:.1f}" text-anchor="end" '
                     f'font-size="11">{escape(label)} {value:.4g}</text>')
    for index, (name, values) in enumerate(series):
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        finite = [p for p in values if math.isfinite(p[0]) and math.isfinite(p[1])]
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}"
                        for i, (x, y) in enumerate(finite))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"'
                     + (f' stroke-dasharray="{dash}"' if dash else "")
                     + f'><title>{escape(name)}</title></path>')
        if len(finite) == 1:
            x, y = finite[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="28" height="8" aria-hidden="true"><line x1="0" y1="4" x2="28" '
        f'y2="4" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="2"'
        + (f' stroke-dasharray="{DASHES[i % len(DASHES)]}"' if DASHES[i % len(DASHES)] else "")
        + f'/></svg> {escape(name)}</li>' for i, (name, _) in enumerate(series))
    return Markup(f'<figure class="chart">{"".join(parts)}'
                  f'<figcaption><ul class="legend">{legend}</ul></figcaption></figure>')


def heat_map(rows: Sequence[tuple[str, Sequence[float | None]]], columns: Sequence[str], *,
             title: str, high: float, cell: int = 14, label_width: int = 140) -> Markup:
    """A grid of values (a row per subject, a column per time bucket) shaded from white
    (0) to dark (``high`` or more); each cell's value is in its tooltip, and the values
    over ``high`` are also marked with a dot, so the picture reads without colour."""
    if not rows or not columns:
        return Markup(f'<p class="empty">{escape(title)}: no points yet.</p>')
    wide = max(cell, min(40, 600 // len(columns)))  # short spans get wider cells
    width = label_width + wide * len(columns) + 4
    height = cell * len(rows) + 30
    parts = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for r, (name, values) in enumerate(rows):
        y = r * cell
        parts.append(f'<text x="{label_width - 4}" y="{y + cell - 1}" text-anchor="end" '
                     f'font-size="{cell}">{escape(name)}</text>')
        for c, value in enumerate(values):
            x = label_width + c * wide
            if value is None or not math.isfinite(value):
                shade, text = "#f4f4f4", "no value"
            else:
                level = max(0.0, min(1.0, value / high)) if high > 0 else 0.0
                tone = int(255 - level * 200)
                shade, text = f"rgb({tone},{tone},255)", f"{value:.4g}"
            parts.append(f'<rect x="{x}" y="{y}" width="{wide - 1}" height="{cell - 1}" '
                         f'fill="{shade}"><title>{escape(name)} {escape(columns[c])}: '
                         f'{text}</title></rect>')
            if value is not None and math.isfinite(value) and value >= high:
                parts.append(f'<circle cx="{x + wide / 2 - 0.5}" cy="{y + cell / 2 - 0.5}" '
                             f'r="{cell / 5}" fill="#fff"/>')
    bottom = len(rows) * cell + 14
    parts.append(f'<text x="{label_width}" y="{bottom}" font-size="11">'
                 f'{escape(columns[0])}</text><text x="{width - 4}" y="{bottom}" '
                 f'text-anchor="end" font-size="11">{escape(columns[-1])}</text>')
    parts.append("</svg>")
    return Markup(f'<figure class="chart">{"".join(parts)}<figcaption>darker: higher; a '
                  f'white dot: at or over {high:.4g}</figcaption></figure>')


def distributions(reference: Sequence[float], window: Sequence[float],
                  labels: Sequence[str], *, title: str, width: int = 640,
                  height: int = 200) -> Markup:
    """Two distributions over the same bins as paired bars: the reference's (solid)
    beside the window's (hatched), each a share of its rows."""
    if not labels:
        return Markup(f'<p class="empty">{escape(title)}: nothing to draw.</p>')
    left, bottom, top = 44, 40, 10
    top_share = max([*reference, *window, 1e-9])
    slot = (width - left - 8) / len(labels)
    bar = max(1.0, slot / 2 - 1)

    def sy(share: float) -> float:
        return top + (1 - share / top_share) * (height - top - bottom)

    parts = [f'<svg role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" aria-label="{escape(title)}"><title>{escape(title)}</title>',
             '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse">'
             '<path d="M0,4 L4,0" stroke="#b3261e" stroke-width="1"/></pattern></defs>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" font-size="11">'
             f'{top_share:.0%}</text>']
    for i, label in enumerate(labels):
        x = left + i * slot
        for offset, values, fill, name in ((0, reference, "#0b5fa5", "reference"),
                                           (bar + 1, window, "url(#hatch)", "window")):
            share = values[i] if i < len(values) else 0.0
            parts.append(f'<rect x="{x + offset:.1f}" y="{sy(share):.1f}" width="{bar:.1f}" '
                         f'height="{height - bottom - sy(share):.1f}" fill="{fill}" '
                         f'stroke="{"#b3261e" if name == "window" else "none"}">'
                         f'<title>{escape(name)} {escape(label)}: {share:.1%}</title></rect>')
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        parts.append(f'<text x="{left + i * slot:.1f}" y="{height - bottom + 14}" '
                     f'font-size="10">{escape(labels[i])}</text>')
    parts.append("</svg>")
    legend = ('<ul class="legend"><li><svg width="12" height="10" aria-hidden="true"><rect '
              'width="12" height="10" fill="#0b5fa5"/></svg> reference (training data)</li>'
              '<li><svg width="12" height="10" aria-hidden="true"><rect width="12" '
              'height="10" fill="none" stroke="#b3261e"/></svg> window (hatched)</li></ul>')
    return Markup(f'<figure class="chart">{"".join(parts)}<figcaption>{legend}'
                  f'</figcaption></figure>')
