"""What ``tidal run`` and ``tidal demo`` print after the standard pipeline: the verdict,
every candidate's score, the gate's reasons, the slices that carry the most errors, and
what was reused from the cache."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

#: slices listed under the candidates: the ones whose share of errors exceeds their
#: share of data the most (the error-analysis table's "look here first")
WORST_SLICES = 5
#: an ONNX converter's error can run to a screenful; the summary shows its start
REASON_CHARS = 160


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}"


def print_summary(console: Console, summary: dict[str, Any],
                  slices: list[dict[str, Any]] | None = None) -> None:
    """Print a run summary (the dict ``run_standard`` returns) and, given the chosen
    model's slice table, the slices that need attention."""
    from rich.text import Text

    colour = "green" if summary["status"] == "blessed" else "red"
    console.print(Text.assemble(  # user text (the model's name) is never read as markup
        (f"{summary['model']} {summary['status']}", colour),
        f": {summary['chosen']} {summary['metric']} {_number(summary['score'])} (trivial "
        f"baseline {_number(summary['baseline'])})"), highlight=False)
    table = Table(title=f"candidates on the test rows ({summary['metric']})",
                  title_justify="left")
    table.add_column("candidate")
    table.add_column(summary["metric"], justify="right")
    for name, score in summary.get("candidates", {}).items():
        marker = " ← chosen" if name == summary["chosen"] else ""
        table.add_row(f"{name}{marker}", _number(score))
    console.print(table)
    console.print(summary["why"], highlight=False)
    for reason in summary["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    if slices:
        _print_slices(console, slices)
    onnx = summary.get("onnx") or {}
    reason = onnx.get("reason") or ""
    if len(reason) > REASON_CHARS:  # the whole text is in `tidal models show`
        reason = reason[:REASON_CHARS].rstrip() + "…"
    console.print(f"ONNX: {'exported' if onnx.get('exported') else 'not exported'}"
                  f"{' — ' + reason if reason else ''}", highlight=False)
    console.print(f"pipeline run {summary['pipeline_run']}: {len(summary['ran'])} steps ran, "
                  f"{len(summary['cached'])} reused from the cache", highlight=False)


def _print_slices(console: Console, slices: list[dict[str, Any]]) -> None:
    rows = [row for row in slices if row["slice"] != "(all)" and row["rows"]]
    rows.sort(key=lambda row: row["share_of_errors"] - row["share_of_data"], reverse=True)
    table = Table(title="slices with more than their share of the errors",
                  title_justify="left")
    for column, justify in (("slice", "left"), ("value", "left"), ("rows", "right"),
                            ("score", "right"), ("vs baseline", "right"),
                            ("share of data", "right"), ("share of errors", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows[:WORST_SLICES]:
        if row["share_of_errors"] <= row["share_of_data"]:
            break
        table.add_row(row["slice"], str(row["value"]), f"{row['rows']:,}",
                      _number(row["score"]), f"{row['gap_to_baseline']:+.3g}",
                      f"{row['share_of_data']:.1%}", f"{row['share_of_errors']:.1%}")
    if table.row_count:
        console.print(table)
