"""``tidal data``: schema, validate, profile and drift on CSV or Parquet files.

Kept apart from ``cli.py`` because these commands need no project or store: they work
on files alone, so a user can try them on two CSVs before adopting anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tidal import display
from tidal.core.errors import TidalError

data_app = typer.Typer(no_args_is_help=True,
                       help="Data: infer a schema, validate a batch, profile, detect drift.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
FileArgument = Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz) or Parquet file.",
                                              show_default=False)]


@data_app.command("drift")
def drift(
    reference: FileArgument,
    current: FileArgument,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Also write a self-contained HTML report here.")] = None,
    column: Annotated[list[str] | None, typer.Option(
        "--column", "-c", help="Only these columns (repeatable).")] = None,
    categorical: Annotated[list[str] | None, typer.Option(
        "--categorical", help="Treat this numeric column as categories (repeatable).")] = None,
    test: Annotated[list[str] | None, typer.Option(
        "--test", help="COLUMN=TEST to override the default test (repeatable).")] = None,
    threshold: Annotated[list[str] | None, typer.Option(
        "--threshold", help="COLUMN=VALUE to override a threshold (repeatable).")] = None,
    drift_share: Annotated[float, typer.Option(
        "--drift-share", help="Share of drifted columns that makes the dataset drift.")] = 0.5,
    bonferroni: Annotated[bool, typer.Option(
        "--bonferroni", help="Divide p-value thresholds by the number of such tests.")] = False,
    fail_on_drift: Annotated[bool, typer.Option(
        "--fail-on-drift", help="Exit with status 1 when the dataset drifted.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare CURRENT with REFERENCE column by column (Evidently's default tests)."""
    from tidal.data.drift import compare

    result = compare(
        reference, current, columns=column,
        kinds={name: "categorical" for name in categorical or []},
        tests=_pairs(test, "--test", str), thresholds=_pairs(threshold, "--threshold", float),
        drift_share=drift_share, correction="bonferroni" if bonferroni else None,
    )
    if html is not None:
        from tidal.data.report_html import write_drift_html

        write_drift_html(result, html)
    if as_json:
        display.print_json(result)
    else:
        _show_drift(result, html)
    if fail_on_drift and result["dataset_drift"]:
        raise typer.Exit(1)


def _show_drift(result: dict[str, Any], html: Path | None) -> None:
    with_missing = any(c["missing"]["reference"] or c["missing"]["current"]
                       for c in result["columns"])
    rows = []
    for c in result["columns"]:
        row = [c["column"], c["test"], display.number(c["statistic"]),
               "—" if c["p_value"] is None else display.number(c["p_value"]),
               display.number(c["threshold"]),
               display.styled("drift", "red") if c["drifted"] else display.styled("ok", "green")]
        if with_missing:
            missing = c["missing"]
            row.append(f"{missing['reference']:.1%}→{missing['current']:.1%}")
        rows.append(row)
    headers = ["column", "test", "statistic", "p-value", "limit", "verdict"]
    display.console.print(display.table(
        f"{result['current']['name']} ({result['current']['rows']:,} rows) against "
        f"{result['reference']['name']} ({result['reference']['rows']:,} rows)",
        headers + (["missing"] if with_missing else []), rows,
        no_wrap=("test", "statistic", "p-value", "limit", "verdict", "missing")))
    verdict = "DRIFT" if result["dataset_drift"] else "no dataset drift"
    display.console.print(
        f"{verdict}: {result['number_of_drifted_columns']} of {len(result['columns'])} columns "
        f"drifted ({result['drift_share']:.0%}; the dataset drifts at "
        f"{result['threshold']:.0%})")
    for skipped in result["skipped"]:
        display.console.print(f"skipped {skipped['column']}: {skipped['reason']}")
    if html is not None:
        display.console.print(f"HTML report: {html}")


def _pairs(items: list[str] | None, option: str, convert: Any) -> dict[str, Any]:
    """``["col=value", ...]`` → ``{"col": value}``, with a clear error for a bad item."""
    pairs: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value:
            raise TidalError(f"{option} takes COLUMN=VALUE, got {item!r}")
        try:
            pairs[name] = convert(value)
        except ValueError:
            raise TidalError(f"{option} {item!r}: {value!r} is not a valid value") from None
    return pairs
