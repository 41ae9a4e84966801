"""``tidal monitor``: compute the closed windows of the prediction log and show every check.

    tidal monitor                      # run pending windows, then the state of every check
    tidal monitor -d elec2 --no-run    # one deployment, only what is stored
    tidal monitor reference elec2:1 data/train.parquet --target target
    tidal monitor unmatched elec2      # labels that named no logged prediction
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tidal import display
from tidal.cli_options import JsonOption, ProjectOption, command_group, open_project
from tidal.core.errors import NotFoundError

monitor_app = command_group(
    help="Monitoring: window checks over the prediction log, and their alert states.",
    invoke_without_command=True)

_STYLES = {"alert": "bold red", "warn": "yellow", "ok": "green", "none": "dim"}



@monitor_app.callback()
def monitor(
    context: typer.Context,
    deployment: Annotated[str | None, typer.Option(
        "--deployment", "-d", help="One deployment (default: all).")] = None,
    run: Annotated[bool, typer.Option(
        "--run/--no-run", help="Compute the windows that closed since the last run first.")
    ] = True,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute the windows that closed since the last run, then print the current state
    of every check of every deployment (or of one)."""
    if context.invoked_subcommand is not None:
        return
    from tidal.monitor.job import Monitor

    handle = open_project(project)
    names = [deployment] if deployment else None
    summary: dict[str, Any] | None = None
    with Monitor(handle) as job:
        if deployment and deployment not in job.deployment_names():
            raise NotFoundError(f"no deployment named {deployment!r}, and nothing logged "
                                "for one")
        if run:
            if names is None:
                names = job.deployment_names()
            summary = _run_with_progress(job, names, quiet=as_json).to_dict()
        elif names is None:
            names = sorted(d.name for d in handle.list_deployments())
    report = [_deployment_report(handle, name) for name in names]
    if not report and not as_json:
        display.console.print("no deployments and no prediction log yet: nothing to "
                              "monitor (tidal deployments set …, then tidal serve)",
                              highlight=False)
        return
    if as_json:
        display.print_json({"run": summary, "deployments": report})
        return
    if summary is not None:
        for entry in summary["deployments"]:
            display.console.print(
                f"{entry['deployment']}: {entry['windows']} new window(s), "
                f"{entry['rows']:,} rows, {len(entry['state_changes'])} state change(s)",
                highlight=False)
    for entry in report:
        _print_report(entry)


@monitor_app.command("reference")
def monitor_reference(
    model_ref: Annotated[str, typer.Argument(help="Model version: NAME:3 or NAME@champion.")],
    data: Annotated[Path, typer.Argument(help="CSV or Parquet with the version's inputs.")],
    target: Annotated[str | None, typer.Option(
        "--target", help="The target column, if the data has it (the training prior).")
    ] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the data a model version is monitored against (its training data, usually)."""
    from tidal.monitor.reference import set_reference

    reference = set_reference(open_project(project), model_ref, data, target=target)
    info = {"version": reference.version.ref, "rows": reference.profile.rows,
            "columns": list(reference.profile.columns)}
    if as_json:
        display.print_json(info)
        return
    display.console.print(f"reference of {info['version']}: {info['rows']:,} rows, "
                          f"{len(info['columns'])} profiled columns", highlight=False)


@monitor_app.command("labelled")
def monitor_labelled(
    deployment: Annotated[str, typer.Argument(help="The deployment.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write.")],
    since: Annotated[str | None, typer.Option(
        "--since", help="Event times from (ISO 8601 or epoch seconds).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Event times before (ISO 8601 or epoch seconds).")] = None,
    target: Annotated[str, typer.Option(
        "--target", help="The label column's name (the pipeline's target).")] = "target",
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the labelled predictions of a deployment as a training table (features, the
    label as the target, event time), stored as a dataset snapshot for the next run."""
    from tidal.monitor.labelled import export_labelled

    handle = open_project(project)
    handle.get_deployment(deployment)
    summary = export_labelled(handle, deployment, out, start=_when(since, "--since"),
                              end=_when(until, "--until"), target=target)
    if as_json:
        display.print_json(summary)
        return
    display.console.print(f"{summary['rows']:,} labelled rows of {deployment} written to "
                          f"{summary['path']} (dataset {summary['dataset'][:12]})",
                          highlight=False)


@monitor_app.command("skew")
def monitor_skew(
    deployment: Annotated[str, typer.Argument(help="The deployment.")],
    sample: Annotated[int, typer.Option("--sample", "-n", min=1, max=1_000_000,
                                        help="How many recent keyed predictions.")] = 1000,
    source: Annotated[Path | None, typer.Option(
        "--source", help="The data to compare with (default: [pipeline] source).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Training/serving skew: compare the features served to recent keyed predictions with
    the source rows of the same entity and time ([data] id and timestamp)."""
    from tidal.monitor.skew import skew_check

    handle = open_project(project)
    handle.get_deployment(deployment)
    report = skew_check(handle, deployment, sample=sample, source=source)
    if as_json:
        display.print_json(report)
        return
    rows = [[feature, str(entry.get("compared", 0)), str(entry.get("mismatched", "")),
             display.number(entry.get("share")), entry.get("note", "") or "; ".join(
                 f"{e['served']!r} vs {e['source']!r}" for e in entry.get("examples", []))]
            for feature, entry in report["features"].items()]
    display.console.print(display.table(
        f"{deployment}: {report['matched']:,} of {report['sampled']:,} sampled predictions "
        f"found in {report['source']}", ["feature", "compared", "mismatched", "share",
                                         "examples"], rows))


@monitor_app.command("unmatched")
def monitor_unmatched(
    deployment: Annotated[str, typer.Argument(help="The deployment.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000,
                                       help="How many to list, oldest first.")] = 100,
    run: Annotated[bool, typer.Option(
        "--run/--no-run", help="Compute the pending windows (and join the labels) first.")
    ] = True,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Labels that matched no logged prediction although every window they could belong
    to has been judged: a wrong request id, a key or time no request had, or a
    prediction older than the label horizon. They stay stored; this lists them."""
    from tidal.monitor.job import Monitor
    from tidal.monitor.quality import label_report

    handle = open_project(project)
    handle.get_deployment(deployment)
    if run:  # the report is only as current as the last join of the labels
        with Monitor(handle) as job:
            _run_with_progress(job, [deployment], quiet=as_json)
    report = label_report(handle, deployment, now=handle.clock.now(), examples=limit)
    if as_json:
        display.print_json(report)
        return
    rows = [[str(e["id"]), e["request_id"] or "", str(e["row"]), e["entity_key"] or "",
             display.when(e["event_time"], short=True) if e["event_time"] else "",
             str(e["label"]), e["source"], display.when(e["received_at"], short=True)]
            for e in report["unmatched_examples"]]
    display.console.print(display.table(
        f"{deployment}: {_labels_line(report)}",
        ["id", "request id", "row", "key", "event time", "label", "source", "received"],
        rows))


def _labels_line(labels: dict[str, Any]) -> str:
    return (f"{labels['stored']:,} label(s): {labels['matched']:,} matched a prediction, "
            f"{labels['waiting']:,} waiting, {labels['unmatched']:,} matched none")


def _when(text: str | None, option: str) -> float | None:
    from datetime import UTC, datetime

    from tidal.core.errors import ValidationError

    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{option} {text!r} is neither epoch seconds nor an ISO 8601 "
                              "time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _run_with_progress(job: Any, names: list[str], *, quiet: bool) -> Any:
    import time

    from rich.progress import Progress

    now = job.clock.now()
    pending = {name: len(job.pending_windows(name, now)) for name in names}
    if quiet or not display.console.is_terminal or sum(pending.values()) < 2:
        return job.run(names)
    with Progress(console=display.console, transient=True) as progress:
        task = progress.add_task("monitoring windows", total=sum(pending.values()))
        started = time.perf_counter()
        result = job.run(names, on_window=lambda *_: progress.advance(task))
        progress.update(task, completed=sum(pending.values()),
                        description=f"done in {time.perf_counter() - started:.1f}s")
    return result


def _deployment_report(handle: Any, name: str) -> dict[str, Any]:
    states = {(s.check, s.subject): s for s in handle.monitoring.states(name)}
    points = handle.monitoring.latest_points(name)
    checks = []
    for point in points:
        state = states.get((point.check, point.subject))
        checks.append({"check": point.check, "subject": point.subject, "value": point.value,
                       "level": point.level, "window_end": point.window_end,
                       "state": state.state if state else None,
                       "since": state.since if state else None, "details": point.details})
    from tidal.monitor.quality import label_report

    windows = handle.monitoring.windows(name, limit=1_000_000)
    return {"deployment": name, "windows": len(windows),
            "labels": label_report(handle, name, now=handle.clock.now(), examples=5),
            "last_window_end": windows[-1].end if windows else None,
            "alerts": sum(1 for s in states.values() if s.state == "alert"),
            "warnings": sum(1 for s in states.values() if s.state == "warn"),
            "checks": checks}


def _print_report(entry: dict[str, Any]) -> None:
    if not entry["checks"]:
        display.console.print(f"{entry['deployment']}: no window computed yet",
                              highlight=False)
        return
    order = {"alert": 0, "warn": 1, "ok": 2, None: 3}
    rows = []
    for check in sorted(entry["checks"], key=lambda c: (order.get(c["state"], 3),
                                                        c["check"], c["subject"])):
        state = check["state"] or "-"
        rows.append([check["check"], check["subject"], display.number(check["value"]),
                     display.styled(check["level"], _STYLES.get(check["level"], "")),
                     display.styled(state, _STYLES.get(state, "")),
                     display.when(check["since"], short=True) if check["since"] else "",
                     display.when(check["window_end"], short=True)])
    title = (f"{entry['deployment']}: {entry['alerts']} alert(s), {entry['warnings']} "
             f"warning(s), {entry['windows']} window(s)")
    display.console.print(display.table(title, ["check", "subject", "latest", "level",
                                                 "state", "since", "window end"], rows,
                                        no_wrap=("latest", "since", "window end")))
    labels = entry["labels"]
    if labels["stored"]:
        hint = f" (tidal monitor unmatched {entry['deployment']})" \
            if labels["unmatched"] else ""
        display.console.print(_labels_line(labels) + hint, highlight=False)


def label(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet of labels.")],
    deployment: Annotated[str, typer.Option(
        "--deployment", "-d", help="The deployment whose predictions these label.")],
    label_column: Annotated[str, typer.Option("--label-column", help="The label.")] = "label",
    id_column: Annotated[str, typer.Option(
        "--id-column", help="Request ids (labels by request).")] = "request_id",
    row_column: Annotated[str, typer.Option(
        "--row-column", help="Row within the request (default 0).")] = "row",
    key_column: Annotated[str, typer.Option(
        "--key-column", help="Entity keys (labels by key and event time).")] = "key",
    time_column: Annotated[str, typer.Option(
        "--time-column", help="Event times: epoch seconds or ISO 8601 (UTC unless "
        "marked).")] = "event_time",
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add ground-truth labels from a file, matched to predictions by request id (and
    row) or by entity key and event time. Every row is checked first: one bad row and
    nothing is added."""
    from tidal.data.labels_file import read_labels

    handle = open_project(project)
    handle.get_deployment(deployment)  # a NotFoundError names the deployments there are
    items = read_labels(data, deployment, label_column=label_column, id_column=id_column,
                        row_column=row_column, key_column=key_column,
                        time_column=time_column)
    added = handle.feedback.add(items, source="file", actor=handle.settings.actor,
                                now=handle.clock.now())
    summary = {"file": str(data), "deployment": deployment, **added}
    if as_json:
        display.print_json(summary)
        return
    display.console.print(f"{added['added']:,} labels added to {deployment} "
                          f"({added['superseded']:,} replace earlier labels)",
                          highlight=False)
