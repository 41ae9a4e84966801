"""``tidal score``: batch scoring with the version a deployment serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidal import display
from tidal.cli_options import JsonOption, ProjectOption, open_project

#: the exit status of a job that scored what it could but rejected some rows
SOME_REJECTED = 1


def score(
    deployment: Annotated[str, typer.Argument(help="Deployment whose version scores.")],
    source: Annotated[Path, typer.Option("--input", "-i", help="CSV, Parquet, or a folder "
                                         "of Parquet files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The Parquet file to "
                                         "write (atomically).")],
    keys: Annotated[list[str] | None, typer.Option(
        "--key", "-k", help="An input column to copy to the output (repeat it; default: "
        "every column that is not a model input).")] = None,
    rejects: Annotated[Path | None, typer.Option(
        "--rejects", help="Where rejected rows go (default: OUTPUT.rejects.csv).")] = None,
    partition_rows: Annotated[int, typer.Option(
        "--partition-rows", min=1, help="Rows read, checked and scored at a time.")
    ] = 100_000,
    by: Annotated[str | None, typer.Option(
        "--by", help="Triage: the output column that says who needs people "
        "(e.g. proba_1).")] = None,
    top: Annotated[int | None, typer.Option("--top", help="Triage the K highest rows.")
                   ] = None,
    above: Annotated[float | None, typer.Option(
        "--above", help="Triage every row at or above this value.")] = None,
    triage_output: Annotated[Path | None, typer.Option(
        "--triage", help="Where triaged rows go (default: OUTPUT.triage.parquet).")] = None,
    review: Annotated[bool, typer.Option(
        "--review", help="Also queue the triaged rows for human review.")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Processes scoring partitions in parallel.")] = 1,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a table: keys, prediction (and class probabilities), model version and the
    request id and row of each prediction, which also goes to the prediction log (route
    batch). Rows that fail the model's input checks go to the rejects file with the
    reason; the exit status is 1 when there are any."""
    from rich.progress import Progress

    from tidal.batch.job import Triage
    from tidal.batch.job import score as run
    from tidal.core.errors import ValidationError

    triage = None
    if by is not None:
        triage = Triage(by=by, top=top, above=above, review=review, output=triage_output or
                        output.with_name(output.stem + ".triage.parquet"))
    elif top is not None or above is not None or review:
        raise ValidationError("--top, --above and --review triage by a column: add --by")
    handle = open_project(project)
    quiet = as_json or not display.console.is_terminal
    with Progress(console=display.console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"scoring with {deployment}", total=None)
        result = run(handle, deployment, source, output, keys=keys, rejects=rejects,
                     partition_rows=partition_rows, triage=triage, workers=workers,
                     progress=lambda rows: progress.advance(task, rows))
    if as_json:
        display.print_json(result.to_dict())
    else:
        display.console.print(
            f"scored {result.scored:,} of {result.rows:,} rows with {result.model}:"
            f"{result.version} ({result.runtime}) in {result.seconds:.1f}s → {result.output}",
            highlight=False)
    if result.triage and not as_json:
        display.console.print(f"{result.triaged:,} row(s) for people → {result.triage}",
                              highlight=False)
    if result.rejected:
        display.errors.print(f"{result.rejected:,} row(s) rejected: see {result.rejects}",
                                  highlight=False)
        raise typer.Exit(SOME_REJECTED)
