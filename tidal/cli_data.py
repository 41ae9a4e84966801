"""``tidal data``: schema, validate, profile and drift on CSV or Parquet files.

Kept apart from ``cli.py`` because these commands need no project or store: they work
on files alone, so a user can try them on two CSVs before adopting anything else.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from tidal import display
from tidal.cli_options import command_group
from tidal.core.errors import ValidationError

data_app = command_group(no_args_is_help=True,
                       help="Data: infer a schema, validate a batch, profile, detect drift.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
FileArgument = Annotated[Path, typer.Argument(help="CSV (.csv, .csv.gz) or Parquet file.",
                                              show_default=False)]


ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project folder whose tidal.toml [data] section "
                 "sets roles and constraints (default: nearest with tidal.toml).",
                 envvar="TIDAL_PROJECT_DIR", show_envvar=False),
]


@data_app.command("schema")
def schema(
    source: FileArgument,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the YAML schema here (default: print it).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="The label column.")] = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", help="COLUMN=ROLE (feature, target, id, timestamp, segment, metadata).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Infer a schema (types, roles, missing values, ranges, domains) from a file."""
    from tidal.core.config import load_settings
    from tidal.data import infer_schema, save_schema

    settings = load_settings(project)
    inferred = infer_schema(source, target=target, roles=_pairs(role, "--role", str),
                            overrides=settings.data)
    if out is not None:
        _writing(out, lambda: save_schema(inferred, out))
    if as_json:
        display.print_json(inferred.to_dict() | ({"written_to": str(out)} if out else {}))
    elif out is None:
        display.console.print(inferred.to_yaml(), end="")
    else:
        display.console.print(f"Wrote the schema of {len(inferred.columns)} columns to {out}; "
                              "review it and commit it.")


@data_app.command("validate")
def validate(
    source: FileArgument,
    schema_file: Annotated[Path, typer.Option(
        "--schema", "-s", help="Schema YAML written by `tidal data schema`.")],
    exclude_role: Annotated[list[str] | None, typer.Option(
        "--exclude-role", help="Skip columns of this role, e.g. target (repeatable).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a batch against a schema; exit status 1 when it has anomalies."""
    from tidal.data import load_schema
    from tidal.data import validate as check

    result = check(source, load_schema(schema_file), exclude_roles=tuple(exclude_role or ()))
    if as_json:
        display.print_json(result.to_dict())
    elif result.ok:
        display.console.print(display.styled(result.summary(), "green"))
    else:
        rows = [[a.kind, a.column or "", f"{a.count:,}",
                 a.message.removeprefix(f"{a.column}: "), ", ".join(map(repr, a.examples))]
                for a in result.anomalies]
        display.console.print(display.table(
            f"{result.source}: {result.num_rows:,} rows, {len(rows)} anomalies",
            ["anomaly", "column", "rows", "what", "examples"], rows, no_wrap=("anomaly",)))
    if not result.ok:
        raise typer.Exit(1)


@data_app.command("profile")
def profile(
    source: FileArgument,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Save the mergeable profile here (binary).")] = None,
    reference: Annotated[Path | None, typer.Option(
        "--reference", "-r", help="A saved reference profile whose histogram bins to use.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Summarise every column: counts, missing, moments, quantiles, histogram, top values."""
    from tidal.data.profiles import load_profile, save_profile
    from tidal.data.profiles import profile as build

    base = load_profile(reference) if reference is not None else None
    made = build(source, reference=base)
    if out is not None:
        _writing(out, lambda: save_profile(made, out))
    if as_json:
        display.print_json(made.to_dict() | ({"written_to": str(out)} if out else {}))
        return
    columns = made.to_dict()["columns"]
    numeric = [[name, f"{c['count']:,}", f"{c['missing']:,}", display.number(c["min"]),
                display.number((c["quantiles"] or {}).get("p50")), display.number(c["max"]),
                display.number(c["mean"]), display.number(c["std"])]
               for name, c in columns.items() if c["kind"] == "numeric"]
    categorical = [[name, f"{c['count']:,}", f"{c['missing']:,}",
                    "" if c["distinct"] is None else f"{c['distinct']:,}",
                    ", ".join(f"{t['value']} ({t['count']:,})" for t in c["top"][:3])]
                   for name, c in columns.items() if c["kind"] != "numeric"]
    display.console.print(f"{source}: {made.rows:,} rows, {len(columns)} columns")
    if numeric:
        headers = ["column", "count", "missing", "min", "median", "max", "mean", "std"]
        display.console.print(display.table("numeric columns", headers, numeric,
                                            no_wrap=tuple(headers[1:])))
    if categorical:
        display.console.print(display.table(
            "categorical columns", ["column", "count", "missing", "distinct", "most frequent"],
            categorical, no_wrap=("count", "missing", "distinct")))
    if out is not None:
        display.console.print(f"Profile saved to {out}")


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
    """Compare CURRENT with REFERENCE column by column (Evidently's default tests).

    Both may also be profiles saved by `tidal data profile --out`: then no raw data is
    read, and KS and Wasserstein come from the quantile sketches (approximate, with the
    error bound in the result).
    """
    from tidal.data.profiles import is_profile_file

    if is_profile_file(reference) or is_profile_file(current):
        if column or categorical:
            raise ValidationError("--column and --categorical need data files: a profile "
                                  "holds the columns and kinds it was made with")
        result = _drift_from_profiles(reference, current, tests=_pairs(test, "--test", str),
                                      thresholds=_pairs(threshold, "--threshold", float),
                                      drift_share=drift_share, bonferroni=bonferroni)
    else:
        from tidal.data.drift import compare

        result = compare(
            reference, current, columns=column,
            kinds={name: "categorical" for name in categorical or []},
            tests=_pairs(test, "--test", str),
            thresholds=_pairs(threshold, "--threshold", float),
            drift_share=drift_share, correction="bonferroni" if bonferroni else None,
        )
    if html is not None:
        from tidal.data.report_html import write_drift_html

        _writing(html, lambda: write_drift_html(result, html))
    if as_json:
        display.print_json(result)
    else:
        _show_drift(result, html)
    if fail_on_drift and result["dataset_drift"]:
        raise typer.Exit(1)


def _drift_from_profiles(reference: Path, current: Path, *, tests: dict[str, str],
                         thresholds: dict[str, float], drift_share: float,
                         bonferroni: bool) -> dict[str, Any]:
    from tidal.data.profile_drift import drift_from_profiles
    from tidal.data.profiles import is_profile_file, load_profile

    for path in (reference, current):
        if not is_profile_file(path):
            raise ValidationError(f"{path} is not a saved profile: give two profiles "
                             "(`tidal data profile FILE --out P`) or two data files")
    ref, cur = load_profile(reference), load_profile(current)
    unknown = sorted((set(tests) | set(thresholds)) - set(ref.columns))
    if unknown:
        raise ValidationError(f"the profiles have no column {', '.join(map(repr, unknown))} "
                              f"(they have {', '.join(ref.columns)})")
    result = drift_from_profiles(ref, cur, tests=tests, thresholds=thresholds,
                                 drift_share=drift_share,
                                 correction="bonferroni" if bonferroni else None)
    return result | {"reference": {"name": str(reference), "rows": ref.rows},
                     "current": {"name": str(current), "rows": cur.rows}}


def _show_drift(result: dict[str, Any], html: Path | None) -> None:
    with_missing = any(c["missing"]["reference"] or c["missing"]["current"]
                       for c in result["columns"])
    rows = []
    for c in result["columns"]:
        row = [c["column"], c["test"], display.number(c["statistic"]),
               "—" if c["p_value"] is None else display.number(c["p_value"]),
               display.number(c["threshold"]),
               _verdict(c)]
        if with_missing:
            missing = c["missing"]
            row.append(f"{missing['reference']:.1%}→{missing['current']:.1%}")
        rows.append(row)
    headers = ["column", "test", "statistic", "p-value", "limit", "verdict"]
    display.console.print(display.table(
        f"{result['current']['name']} ({result['current']['rows']:,} rows) against "
        f"{result['reference']['name']} ({result['reference']['rows']:,} rows)",
        headers + (["missing"] if with_missing else []), rows,
        no_wrap=("test", "statistic", "p-value", "limit", "missing")))
    verdict = "DRIFT" if result["dataset_drift"] else "no dataset drift"
    display.console.print(
        f"{verdict}: {result['number_of_drifted_columns']} of {len(result['columns'])} columns "
        f"drifted ({result['drift_share']:.0%}; the dataset drifts at "
        f"{result['threshold']:.0%})")
    for skipped in result["skipped"]:
        display.console.print(f"skipped {skipped['column']}: {skipped['reason']}")
    if html is not None:
        display.console.print(f"HTML report: {html}")


def _verdict(column: dict[str, Any]) -> Any:
    """"drift", with the reason when it is not the distribution test (missing values, a
    changed type), or "ok"."""
    if not column["drifted"]:
        return display.styled("ok", "green")
    reason = column.get("reason")
    shown = "drift" if reason in (None, "distribution") else f"drift: {reason}"
    return display.styled(shown, "red")


def _writing(path: Path, write: Any) -> None:
    """Run ``write``; a path that cannot be written is a one-line error naming it."""
    try:
        write()
    except IsADirectoryError:
        raise ValidationError(f"{path}: is a folder; give a file name") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot write it ({exc.strerror or exc})") from None


def _pairs(items: list[str] | None, option: str, convert: Any) -> dict[str, Any]:
    """``["col=value", ...]`` → ``{"col": value}``, with a clear error for a bad item."""
    pairs: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value:
            raise ValidationError(f"{option} takes COLUMN=VALUE, got {item!r}")
        try:
            pairs[name] = convert(value)
        except ValueError:
            raise ValidationError(f"{option} {item!r}: {value!r} is not a valid value") from None
        if isinstance(pairs[name], float) and not (math.isfinite(pairs[name])
                                                   and pairs[name] > 0):
            raise ValidationError(f"{option} {item!r}: the value must be a finite number "
                                  "above 0 (a p-value or a distance)")
    return pairs
