"""The replay's report: one self-contained HTML page (inline SVG, no script, no network).

Two pictures and a table: the metric per week of the static model, of Tidal's loop and
of the reference online learner; under it the timeline of what the loop did (alerts,
retrains, rollout steps, promotions, rollbacks), on the same time axis; then the
summary and every event with its reason. Written by hand rather than with a plotting
library: a few lines and marks, and the page must open anywhere, offline.
"""

from __future__ import annotations

from html import escape
from typing import Any

DAY = 86_400.0
WIDTH, HEIGHT, PAD = 900, 260, 90
COLOURS = {"static": "#888888", "tidal": "#1f6feb", "reference_online": "#d97706"}
NAMES = {"static": "static model", "tidal": "Tidal's loop",
         "reference_online": "adaptive random forest (River)"}
MARKS = {"monitor.alert": ("#b91c1c", "alert"), "policy.done": ("#7c3aed", "retrain"),
         "rollout.step": ("#0891b2", "canary step"),
         "rollout.promoted": ("#15803d", "promotion"),
         "rollout.rolled_back": ("#dc2626", "rollback"),
         "rollout.holding": ("#ca8a04", "held")}


def render(summary: dict[str, Any], *, start: float) -> str:
    """The page for a replay summary (``start``: the first production event time)."""
    metric = summary["metric"]
    title = f"Tidal replay: {summary['dataset']} ({metric} per week)"
    rows = "".join(
        f"<tr><td>{escape(NAMES.get(name, name))}</td><td>{_number(summary.get(name))}</td></tr>"
        for name in ("static", "tidal", "reference_online") if summary.get(name) is not None)
    events = "".join(
        f"<tr><td>{(e['at'] - start) / DAY:.1f}</td><td>{escape(e['kind'])}</td>"
        f"<td>{escape(str(e.get('reason') or ''))}</td></tr>" for e in summary["timeline"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 960px;
       padding: 0 1em; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border-bottom: 1px solid #d0d7de; padding: .25em .6em; text-align: left;
          vertical-align: top; }}
svg {{ max-width: 100%; height: auto; }}
.legend span {{ margin-right: 1.2em; white-space: nowrap; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{summary['rows']:,} production rows replayed through the model server, the monitors
and the controller at simulated speed, labels arriving late. {summary['retrains']}
retrain(s), {summary['promotions']} promotion(s), {summary['rollbacks']} rollback(s).</p>
<table><tr><th>model</th><th>{escape(metric)} overall</th></tr>{rows}</table>
{_lines(summary, metric)}
{_timeline(summary, start)}
<h2>Every decision</h2>
<table><tr><th>day</th><th>event</th><th>reason</th></tr>{events}</table>
</body></html>
"""


def _lines(summary: dict[str, Any], metric: str) -> str:
    series = {name: values for name, values in summary["weeks"].items() if values}
    weeks = max((len(v) for v in series.values()), default=0)
    numbers = [v for values in series.values() for v in values if v is not None]
    if weeks < 2 or not numbers:
        return "<p>(too few weeks to draw)</p>"
    low, high = min(numbers), max(numbers)
    if high - low < 1e-9:
        high = low + 1.0

    def x(week: int) -> float:
        return PAD + (WIDTH - 2 * PAD) * week / (weeks - 1)

    def y(value: float) -> float:
        return HEIGHT - PAD + (2 * PAD - HEIGHT) * (value - low) / (high - low)

    paths = []
    for name, values in series.items():
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values)
                          if v is not None)
        paths.append(f'<polyline fill="none" stroke="{COLOURS.get(name, "#000")}" '
                     f'stroke-width="2" points="{points}"><title>{escape(NAMES.get(name, name))}'
                     f'</title></polyline>')
    axis = (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
            f'stroke="#999"/><text x="{PAD}" y="{HEIGHT - PAD + 18}" font-size="12">week 0'
            f'</text><text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 18}" font-size="12" '
            f'text-anchor="end">week {weeks - 1}</text>'
            f'<text x="{PAD - 6}" y="{y(high) + 4:.1f}" font-size="12" text-anchor="end">'
            f'{high:.3g}</text><text x="{PAD - 6}" y="{y(low) + 4:.1f}" font-size="12" '
            f'text-anchor="end">{low:.3g}</text>')
    legend = "".join(f'<span style="color:{COLOURS.get(n, "#000")}">■ {escape(NAMES.get(n, n))}'
                     f'</span>' for n in series)
    return (f'<h2>{escape(metric)} per week</h2><p class="legend">{legend}</p>'
            f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(metric)} per '
            f'week of each model">{axis}{"".join(paths)}</svg>')


def _timeline(summary: dict[str, Any], start: float) -> str:
    events = [e for e in summary["timeline"] if e["kind"] in MARKS]
    weeks = max((len(v) for v in summary["weeks"].values()), default=1)
    span = max(1.0, (weeks - 1) * 7 * DAY)
    lanes = list(MARKS)
    height = 24 * len(lanes) + 30
    marks = []
    for event in events:
        colour, _ = MARKS[event["kind"]]
        lane = lanes.index(event["kind"])
        left = PAD + (WIDTH - 2 * PAD) * min(1.0, max(0.0, (event["at"] - start) / span))
        marks.append(f'<rect x="{left - 2:.1f}" y="{10 + 24 * lane}" width="4" height="16" '
                     f'fill="{colour}"><title>day {(event["at"] - start) / DAY:.1f}: '
                     f'{escape(str(event.get("reason") or event["kind"]))}</title></rect>')
    labels = "".join(f'<text x="{PAD - 6}" y="{22 + 24 * i}" font-size="12" '
                     f'text-anchor="end">{escape(MARKS[k][1])}</text>'
                     for i, k in enumerate(lanes))
    return (f'<h2>What the loop did</h2><svg viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="timeline of alerts, retrains and rollouts">{labels}'
            f'{"".join(marks)}</svg>')


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"
