"""``tidal score``: batch scoring with the version a deployment serves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tidal import display
from tidal.cli_options import JsonOption, ProjectOption, open_project

#: the exit status of a job that scored what it could but rejected some rows (or could
#: not deliver its triage to the webhook)
SOME_REJECTED = 1


def score(
    deployment: Annotated[str, typer.Argument(help="Deployment whose versions score.")],
    source: Annotated[str, typer.Option(
        "--input", "-i", help="CSV, Parquet, a folder of Parquet files, or a database "
        "URL (with --query).")],
    output: Annotated[str, typer.Option(
        "--output", "-o", help="The Parquet file to write (atomically), or a database "
        "URL (with --table).")],
    query: Annotated[str | None, typer.Option(
        "--query", "-q", help="The SELECT whose rows a database input scores.")] = None,
    table: Annotated[str | None, typer.Option(
        "--table", help="The table a database output writes.")] = None,
    if_exists: Annotated[str, typer.Option(
        "--if-exists", help="When the table exists: fail, replace or append.")] = "fail",
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
    webhook: Annotated[str | None, typer.Option(
        "--webhook", help="Also POST the triaged rows there as JSON.")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", help="process (default) or ray.")] = "process",
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", min=1, help="Partitions scored at once (default: one per "
        "core; 1: in this process).")] = None,
    stable_only: Annotated[bool, typer.Option(
        "--stable-only", help="Score with the stable version alone, even while a canary "
        "or shadow runs.")] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a table: keys, prediction (and class probabilities), model version and the
    request id and row of each prediction, which also goes to the prediction log (route
    batch). While the deployment runs a canary, a share of the partitions is answered by
    it; a shadow scores every row too. Rows that fail the model's input checks go to the
    rejects file with the reason; the exit status is 1 when there are any, or when the
    triage webhook could not be reached."""
    from rich.progress import Progress

    from tidal.batch.job import Triage
    from tidal.batch.job import score as run
    from tidal.core.errors import ValidationError

    triage = None
    if by is not None:
        default = (Path(f"{table}.triage.parquet") if table else
                   Path(output).with_name(Path(output).stem + ".triage.parquet"))
        triage = Triage(by=by, top=top, above=above, review=review, webhook=webhook,
                        output=triage_output or default)
    elif top is not None or above is not None or review or webhook:
        raise ValidationError("--top, --above, --review and --webhook triage by a column: "
                              "add --by")
    handle = open_project(project)
    quiet = as_json or not display.console.is_terminal
    with Progress(console=display.console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"scoring with {deployment}", total=None)
        result = run(handle, deployment, source, output, query=query, table=table,
                     if_exists=if_exists, keys=keys, rejects=rejects,
                     partition_rows=partition_rows, triage=triage, executor=executor,
                     workers=workers, candidates=not stable_only,
                     progress=lambda rows: progress.advance(task, rows))
    if as_json:
        display.print_json(result.to_dict())
    else:
        versions = ", ".join(f"{route} {result.model}:{number}"
                             for route, number in result.versions.items())
        display.console.print(
            f"scored {result.scored:,} of {result.rows:,} rows ({versions}; "
            f"{result.runtime}) in {result.seconds:.1f}s → {result.output}", highlight=False)
    if result.triage and not as_json:
        display.console.print(f"{result.triaged:,} row(s) for people → {result.triage}",
                              highlight=False)
    if result.shadow_failures:
        display.errors.print(f"the shadow failed on {result.shadow_failures} partition(s) "
                             "(logged for the rollout's analysis)", highlight=False)
    if result.webhook_error:
        display.errors.print(f"the triage webhook failed: {result.webhook_error}",
                             highlight=False)
    if result.rejected:
        display.errors.print(f"{result.rejected:,} row(s) rejected: see {result.rejects}",
                             highlight=False)
    if result.rejected or result.webhook_error:
        raise typer.Exit(SOME_REJECTED)
