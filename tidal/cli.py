"""The ``tidal`` command.

Every command prints a Rich table or panel by default and JSON with ``--json``. Errors a
user can cause (a bad filter, an unknown model...) print one line and exit non-zero;
they never show a traceback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from tidal import display
from tidal.cli_data import data_app
from tidal.cli_deploy import deployments_app
from tidal.cli_monitor import label, monitor_app
from tidal.cli_options import command_group
from tidal.cli_review import review_app
from tidal.cli_rollout import controller, deploy, rollback, rollout_app, why
from tidal.cli_schedules import schedules_app
from tidal.cli_score import score
from tidal.cli_serve import predictions_app, serve
from tidal.cli_ui import ui
from tidal.core.errors import ConflictError, NotFoundError, TidalError, ValidationError
from tidal.core.ids import short_id

app = command_group(
    name="tidal", no_args_is_help=True, add_completion=False,
    help="Take a tabular ML model from a notebook into production and keep it healthy.",
)
runs_app = command_group(no_args_is_help=True, help="Experiment runs: list, show, compare.")
models_app = command_group(no_args_is_help=True, help="The model registry.")
db_app = command_group(no_args_is_help=True, help="The metadata store's schema.")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.command("serve")(serve)
app.command("ui")(ui)
app.command("score")(score)
app.add_typer(schedules_app, name="schedules")
app.add_typer(predictions_app, name="predictions")
app.add_typer(deployments_app, name="deployments")
app.add_typer(monitor_app, name="monitor")
app.command("label")(label)
app.add_typer(review_app, name="review")
app.command("deploy")(deploy)
app.add_typer(rollout_app, name="rollout")
app.command("rollback")(rollback)
app.command("controller")(controller)
app.command("why")(why)
pipelines_app = command_group(no_args_is_help=True,
                            help="Pipeline runs: their steps, cache hits and lineage.")
app.add_typer(pipelines_app, name="pipelines")

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project folder (default: nearest with tidal.toml).",
                 envvar="TIDAL_PROJECT_DIR", show_envvar=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _project(path: Path | None, create: bool = False):  # -> Project
    """Open the project; commands that only read refuse to create a store out of nothing
    (a mistyped --project would otherwise get an empty store and report "0 runs")."""
    from tidal.project import Project

    handle = Project(path)
    if not create and not handle.store_exists():
        raise NotFoundError(
            f"no Tidal store for {handle.settings.project_dir} (looked for "
            f"{handle.settings.store_url}); run `tidal init` there, or pass --project"
        )
    return handle


# -- project and store -------------------------------------------------------------------
@app.command()
def init(
    data: Annotated[Path | None, typer.Argument(
        help="A CSV or Parquet file to build the project around (optional).")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="The column to predict (with DATA).")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create tidal.toml and the store; with DATA, also its schema and a pipeline."""
    from tidal.core.config import CONFIG_FILE
    from tidal.store.database import redact
    from tidal.store.migrate import upgrade

    folder = (project or Path.cwd()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / CONFIG_FILE
    created = not config.exists()
    if data is not None and target is None:
        raise ValidationError("with DATA, name the column to predict: --target COLUMN")
    if created:
        config.write_text(_config_text(folder, data, target))
    elif data is not None:
        raise ConflictError(f"{config} exists already; add the [data] and [pipeline] sections "
                         "there, or init a new folder")
    try:
        handle = _project(folder, create=True)
        before, after = upgrade(handle.db)
        result = {"project_dir": str(folder), "config": str(config), "created": created,
                  "store_url": redact(handle.settings.store_url), "schema": after}
        if data is not None:
            from tidal.data import infer_schema, save_schema

            schema = infer_schema(data, target=target, overrides=handle.settings.data)
            result["schema_file"] = str(save_schema(schema, folder / "schema.yaml"))
    except BaseException:
        if created:  # a failed init leaves no tidal.toml behind to block the next try
            config.unlink(missing_ok=True)
        raise
    if as_json:
        display.print_json(result)
    else:
        verb = "Created" if created else "Found"
        display.console.print(f"{verb} {config}\nStore: {result['store_url']} "
                              f"(schema {after})")
        if data is not None:
            display.console.print(f"Schema: {result['schema_file']} (review it), then "
                                  "`tidal run`")


def model_name_from(stem: str) -> str:
    """A valid model name from a file's name: "my données" → "my_donnees"."""
    import re
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_text).strip("_.-")[:128]
    return name or "model"


def _config_text(folder: Path, data: Path | None, target: str | None) -> str:
    from tidal.core.config import DEFAULT_ARTIFACT_ROOT, DEFAULT_STORE_URL

    text = (
        "# Tidal project settings; TIDAL_STORE_URL and TIDAL_ARTIFACT_ROOT override them.\n"
        "[store]\n"
        f'url = "{DEFAULT_STORE_URL}"  # or "postgresql+psycopg://user@host/db"\n\n'
        "[artifacts]\n"
        f'root = "{DEFAULT_ARTIFACT_ROOT}"  # or any fsspec URL, e.g. "s3://bucket/tidal"\n'
    )
    if data is None:
        return text
    try:
        source = data.resolve().relative_to(folder)
    except ValueError:
        source = data.resolve()
    model = model_name_from(data.name.split(".")[0])
    return text + (
        "\n# The columns' roles; the reviewed schema is in schema.yaml.\n[data]\n"
        f"target = {_toml_string(target or '')}\n"
        "# timestamp = \"time\"   # split by time when the data has a time column\n"
        "# segments = [\"region\"]\n\n"
        "# The standard pipeline `tidal run` runs.\n[pipeline]\n"
        f"source = {_toml_string(str(source))}\n"
        f"model = {_toml_string(model)}\n"
        "# candidates = [\"linear\", \"random_forest\", \"hist_gradient_boosting\"]\n"
        "# search_budget = 20\n"
        "# slices = [{column = \"region\"}, {column = \"age\", bins = [0, 30, 60, 120]}]\n"
        "# allow_anomalies = [\"out_of_range\"]\n\n"
        "[pipeline.gate]\n"
        "champion_tolerance = 0.01   # how much worse than the champion a new model may be\n"
    )


def _toml_string(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a valid TOML basic string


@app.command()
def run(
    executor: Annotated[str | None, typer.Option(
        "--executor", help="inline, process (default) or ray.")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the standard pipeline: snapshot, validate, split, train, evaluate, gate, register."""
    from tidal.train.standard import run_standard

    handle = _project(project, create=True)
    summary = run_standard(handle, executor=executor, progress=None if not as_json else False)
    if as_json:
        display.print_json(summary)
        return
    from tidal.train.run_report import print_summary

    print_summary(display.console, summary,
                  handle.model_version(summary["model"]).metrics.get("slices"))


@db_app.command("upgrade")
def db_upgrade(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Create or migrate the metadata store's schema to the newest revision."""
    from tidal.store.database import redact
    from tidal.store.migrate import upgrade

    handle = _project(project, create=True)
    before, after = upgrade(handle.db)
    result = {"store_url": redact(handle.settings.store_url), "from": before, "to": after}
    if as_json:
        display.print_json(result)
    elif before == after:
        display.console.print(f"Schema already at {after} ({result['store_url']})")
    else:
        display.console.print(f"Upgraded schema {before or '(empty)'} → {after} "
                              f"({result['store_url']})")


@db_app.command("current")
def db_current(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """Show the schema revision of the store and the newest one this Tidal knows."""
    from tidal.store.database import redact
    from tidal.store.migrate import current_revision, head_revision

    handle = _project(project)
    result = {"store_url": redact(handle.settings.store_url),
              "current": current_revision(handle.db), "head": head_revision()}
    if as_json:
        display.print_json(result)
    else:
        state = "up to date" if result["current"] == result["head"] else "needs `tidal db upgrade`"
        display.console.print(f"{result['current'] or '(empty)'} — head {result['head']}, {state}")


# -- runs ----------------------------------------------------------------------------------
@runs_app.command("list")
def runs_list(
    experiment: Annotated[list[str] | None, typer.Option(
        "--experiment", "-e", help="Only these experiments (repeatable).")] = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", "-f", help="e.g. \"metrics.auc > 0.8 and params.model = 'hgb'\"")] = None,
    order_by: Annotated[list[str] | None, typer.Option(
        "--order-by", "-o", help="e.g. 'metrics.auc desc' (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=50_000)] = 50,
    columns: Annotated[list[str] | None, typer.Option(
        "--column", "-c", help="Extra column: metrics.KEY, params.KEY or tags.KEY.")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, optionally filtered and ordered."""
    handle = _project(project)
    runs = handle.search_runs(filter, experiments=experiment, order_by=order_by,
                              max_results=limit)
    if as_json:
        display.print_json([run.to_dict() for run in runs])
        return
    extra = columns or _default_columns(runs)
    rows = [
        [short_id(run.id), run.experiment, run.name or "", _status(run.status),
         display.when(run.start_time, short=True), display.duration(run.duration),
         *(_cell(run, c) for c in extra)]
        for run in runs
    ]
    # extra columns are headed by the bare key, to leave room for the values
    headers = ["run", "experiment", "name", "status", "started", "took",
               *(column.partition(".")[2] for column in extra)]
    display.console.print(display.table(f"{len(runs)} runs", headers, rows,
                                        no_wrap=("run", "started")))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    history: Annotated[str | None, typer.Option(
        "--history", help="Also print every point of this metric.")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: code, params, latest metrics, tags and artifacts."""
    handle = _project(project)
    run = handle.get_run(run_id)
    points = handle.tracking.metric_history(run.id, history) if history else None
    if as_json:
        data = run.to_dict()
        if points is not None:
            data["history"] = {history: [p.to_dict() for p in points]}
        display.print_json(data)
        return
    code = run.git_commit or "not a git checkout"
    if run.git_dirty_hash:
        code += f" + uncommitted changes (sha256 {run.git_dirty_hash[:12]})"
    summary = [
        ["id", run.id], ["experiment", run.experiment], ["name", run.name or ""],
        ["status", _status(run.status)], ["started", display.when(run.start_time)],
        ["ended", display.when(run.end_time)], ["took", display.duration(run.duration)],
        ["by", run.actor or ""], ["source", run.source or ""], ["code", code],
        ["python", run.python_version or ""],
        ["packages", ", ".join(f"{k} {v}" for k, v in sorted(run.packages.items()))],
    ]
    display.console.print(display.table("run", ["field", "value"], summary))
    if run.params:
        display.console.print(display.table(
            "params", ["key", "value"], [[k, v] for k, v in sorted(run.params.items())]))
    if run.metrics:
        display.console.print(display.table(
            "metrics (latest)", ["key", "value", "step"],
            [[k, display.number(p.value), str(p.step)] for k, p in sorted(run.metrics.items())]))
    if run.tags:
        display.console.print(display.table(
            "tags", ["key", "value"], [[k, v] for k, v in sorted(run.tags.items())]))
    if run.artifacts:
        display.console.print(display.table(
            "artifacts", ["name", "size", "sha256"],
            [[a.name, f"{a.size:,}", a.sha256] for a in run.artifacts]))
    if points is not None:
        display.console.print(display.table(
            f"history of {history}", ["step", "value", "time"],
            [[str(p.step), display.number(p.value), display.when(p.timestamp)] for p in points]))


@runs_app.command("compare")
def runs_compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side: params that differ are marked, metrics in full."""
    if len(run_ids) < 2:
        raise ValidationError("give at least two runs to compare")
    handle = _project(project)
    runs = [handle.get_run(run_id) for run_id in run_ids]
    params = sorted({k for run in runs for k in run.params})
    metrics = sorted({k for run in runs for k in run.metrics})
    differing = [k for k in params if len({run.params.get(k) for run in runs}) > 1]
    if as_json:
        display.print_json({
            "runs": [run.id for run in runs],
            "params": {k: [run.params.get(k) for run in runs] for k in params},
            "metrics": {k: [run.metric(k) for run in runs] for k in metrics},
            "differing_params": differing,
        })
        return
    headers = ["", *(f"{short_id(run.id)}\n{run.name or ''}" for run in runs)]
    rows = [[display.styled(f"params.{k} *", "yellow") if k in differing else f"params.{k}",
             *(run.params.get(k, "") for run in runs)] for k in params]
    for key in metrics:
        values = [run.metric(key) for run in runs]
        rows.append([f"metrics.{key}", *(_best(v, values) for v in values)])
    display.console.print(display.table("comparison (* = differs)", headers, rows))


# -- models ------------------------------------------------------------------------------
@models_app.command("list")
def models_list(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List registered models with their latest version and aliases."""
    models = _project(project).list_models()
    if as_json:
        display.print_json([model.to_dict() for model in models])
        return
    rows = [[m.name, str(m.latest_version or ""),
             ", ".join(f"{a} → {v}" for a, v in m.aliases.items()), display.when(m.created_at)]
            for m in models]
    display.console.print(display.table(f"{len(models)} models",
                                        ["model", "latest", "aliases", "created"], rows))


@models_app.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME (all versions), NAME:3, NAME@champion.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model's versions, or one version in full with its lineage."""
    handle = _project(project)
    if ":" not in ref and "@" not in ref:
        versions = handle.registry.list_versions(ref)
        if as_json:
            display.print_json([v.to_dict() for v in versions])
            return
        rows = [[str(v.version), v.status, ", ".join(v.aliases), v.flavor,
                 short_id(v.run_id or ""), _metrics_summary(v.metrics), display.when(v.created_at)]
                for v in versions]
        display.console.print(display.table(
            ref, ["version", "status", "aliases", "flavor", "run", "metrics", "registered"],
            rows))
        return
    version = handle.model_version(ref)
    if as_json:
        display.print_json(version.to_dict())
        return
    inputs = (version.signature or {}).get("inputs", [])
    rows = [
        ["model", version.model], ["version", str(version.version)], ["status", version.status],
        ["aliases", ", ".join(version.aliases)], ["flavor", version.flavor],
        ["artifact", f"sha256 {version.artifact_sha256} ({version.artifact_size:,} bytes)"],
        ["run", version.run_id or ""], ["dataset", version.dataset_hash or ""],
        ["code", version.code_commit or ""],
        ["inputs", ", ".join(f"{i['name']}:{i.get('datatype', '?')}" for i in inputs)],
        ["metrics", _metrics_summary(version.metrics)], ["registered by", version.actor or ""],
        ["registered", display.when(version.created_at)],
        ["description", version.description or ""],
    ]
    display.console.print(display.table(version.ref, ["field", "value"], rows))


@models_app.command("alias")
def models_alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. champion.")],
    version: Annotated[int | None, typer.Argument(help="Version to point at.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (recorded).")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Allow pointing at a vetoed or archived version.")] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version (or remove it with --delete); the move is recorded."""
    handle = _project(project)
    if delete == (version is not None):
        raise ValidationError("give a VERSION to point the alias at, or --delete to remove it")
    if delete:
        handle.remove_alias(name, alias, reason=reason)
        result: dict[str, Any] = {"model": name, "alias": alias, "version": None}
    else:
        assert version is not None
        record = handle.set_alias(name, alias, version, reason=reason, force=force)
        result = {"model": name, "alias": alias, "version": record.version}
    if as_json:
        display.print_json(result)
    elif delete:
        display.console.print(f"Removed {name}@{alias}")
    else:
        display.console.print(f"{name}@{alias} → version {version}")


@models_app.command("status")
def models_status(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    status: Annotated[str, typer.Argument(help="registered, blessed, vetoed or archived.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why (recorded).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Veto or archive even while an alias points at the version.")] = False,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a version's status; the change is recorded in the model's history."""
    record = _project(project).set_status(name, version, status, reason=reason, force=force)
    if as_json:
        display.print_json(record.to_dict())
    else:
        display.console.print(f"{record.ref} is now {record.status}")


@models_app.command("history")
def models_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every registration, alias move and status change of a model, with who and why."""
    events = _project(project).model_history(name)
    if as_json:
        display.print_json([event.to_dict() for event in events])
        return
    rows = [[display.when(e.at), e.kind, _event_summary(e.kind, e.payload or {}), e.actor or "",
             e.reason or ""] for e in events]
    display.console.print(display.table(f"history of {name}",
                                        ["when", "event", "what", "who", "why"], rows))


# -- pipelines ---------------------------------------------------------------------------
@pipelines_app.command("list")
def pipelines_list(
    name: Annotated[str | None, typer.Option("--name", help="Only this pipeline.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pipeline runs, newest first, with how many steps ran and how many were cached."""
    runs = _project(project).lineage.list_pipeline_runs(name=name, limit=limit)
    if as_json:
        display.print_json([run.to_dict() for run in runs])
        return
    with_errors = any(run.error for run in runs)
    rows = []
    for run in runs:
        row = [short_id(run.id), run.name, _status(run.status),
               display.when(run.started_at, short=True), display.duration(run.duration),
               str(sum(not s.cached for s in run.steps)), str(sum(s.cached for s in run.steps))]
        if with_errors:
            row.append((run.error or "").split("\n")[0])
        rows.append(row)
    headers = ["run", "pipeline", "status", "started", "took", "ran", "cached"]
    display.console.print(display.table(
        f"{len(runs)} pipeline runs", headers + (["error"] if with_errors else []), rows,
        no_wrap=("run", "status", "started", "took", "ran", "cached")))


@pipelines_app.command("show")
def pipelines_show(
    run_id: Annotated[str, typer.Argument(help="Pipeline run id or a unique prefix.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """One pipeline run: every step with its cache key, inputs, output and time."""
    run = _project(project).lineage.get_pipeline_run(run_id)
    if as_json:
        display.print_json(run.to_dict())
        return
    display.console.print(
        f"{run.name} {run.id} — {run.status}, {display.duration(run.duration)}, "
        f"code {run.code_commit or 'unknown'}{' (dirty)' if run.code_dirty_hash else ''}")
    rows = [[s.step, "cached" if s.cached else s.status.lower(), display.duration(s.duration),
             ", ".join(f"{i['name']}={i['sha256'][:10]}" for i in s.inputs),
             (s.output_sha256 or "")[:12], s.cache_key[:12]] for s in run.steps]
    display.console.print(display.table(
        "steps", ["step", "status", "took", "inputs", "output", "cache key"], rows))
    if run.error:
        display.console.print(f"error: {run.error}")


@app.command()
def lineage(
    ref: Annotated[str, typer.Argument(help="A model version (NAME:3, NAME@champion) or an "
                                            "artifact sha256.")],
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Walk back from a model version to the steps, parameters, data and code behind it."""
    from tidal.core.hashing import is_sha256

    handle = _project(project)
    version = None if is_sha256(ref) else handle.model_version(ref)
    sha = ref if version is None else version.artifact_sha256
    chain = handle.lineage.lineage(sha)
    runs = {step.pipeline_run_id for step in chain}
    pipeline_runs = {run_id: handle.lineage.get_pipeline_run(run_id) for run_id in runs}
    result = {
        "artifact_sha256": sha,
        "model": version.ref if version else None,
        "dataset_hash": version.dataset_hash if version else None,
        "pipeline_runs": [{"id": run.id, "name": run.name, "code_commit": run.code_commit,
                           "code_dirty_hash": run.code_dirty_hash, "actor": run.actor}
                          for run in pipeline_runs.values()],
        "steps": [step.to_dict() for step in chain],
    }
    if as_json:
        display.print_json(result)
        return
    if not chain:
        display.console.print(f"no pipeline step produced {sha[:12]}: it was registered "
                              "directly, so there is no recorded lineage")
        return
    display.console.print(f"{result['model'] or sha}: data snapshot "
                          f"{(result['dataset_hash'] or 'unknown')[:16]}")
    for run in pipeline_runs.values():
        dirty = " + uncommitted changes" if run.code_dirty_hash else ""
        display.console.print(f"pipeline {run.name} run {run.id}: code "
                              f"{run.code_commit or 'not a git checkout'}{dirty}, by "
                              f"{run.actor or 'unknown'}")
    rows = [[step.step, step.code_hash[:12], _params_summary(step.params),
             ", ".join(f"{i['name']}={i['sha256'][:10]}" for i in step.inputs),
             (step.output_sha256 or "")[:12]] for step in chain]
    display.console.print(display.table("steps, data first",
                                        ["step", "code", "parameters", "inputs", "output"],
                                        rows))


def _params_summary(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        if isinstance(value, dict) and "__file__" in value:
            text = f"{value['__file__']} (sha256 {value['sha256'][:10]})"
        elif isinstance(value, str) and len(value) > 40:
            text = f"<{len(value):,} characters>"
        else:
            text = str(value)
        shown.append(f"{key}={text}")
    return ", ".join(shown)


# -- the main job ----------------------------------------------------------------------------
@app.command()
def demo(
    data: Annotated[Path | None, typer.Option(
        "--data", help="Folder with the shared data (default: $TIDAL_DATA_DIR or "
        "../shared/data).", envvar="TIDAL_DATA_DIR", show_envvar=False)] = None,
    into: Annotated[Path | None, typer.Option(
        "--into", help="The replay's project folder (default: ./DATASET-loop).")] = None,
    dataset: Annotated[str, typer.Option(
        "--dataset", "-d", help="elec2 (accuracy) or bike (regression, MAE).")] = "elec2",
    weeks: Annotated[int | None, typer.Option(
        "--weeks", min=1, help="Replay only this many production weeks.")] = None,
    pipeline_only: Annotated[bool, typer.Option(
        "--pipeline-only", help="Only the standard pipeline on Elec2's first year.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The main job: replay real production data through the whole loop (server,
    monitors, controller, rollouts) at simulated speed, beside a static model and an
    online learner, and write an HTML report."""
    from tidal.demo import run_demo, run_loop_demo

    if pipeline_only:
        result = run_demo(into, data, quiet=as_json)
    else:
        result = run_loop_demo(dataset, into, data, quiet=as_json, weeks=weeks)
    if as_json:
        display.print_json(result)


@app.command()
def replay(
    data: Annotated[Path, typer.Argument(help="A time-ordered table: CSV or Parquet.")],
    time_column: Annotated[str, typer.Option("--time", help="Its event-time column.")],
    target: Annotated[str, typer.Option("--target", help="The column to predict.")],
    train_until: Annotated[str | None, typer.Option(
        "--train-until", help="Rows before this time train the first model (ISO 8601 or "
        "epoch seconds; default: the first 40 %).")] = None,
    label_delay: Annotated[str, typer.Option(
        "--label-delay", help="How late labels come back, e.g. 1d.")] = "1d",
    into: Annotated[Path | None, typer.Option(
        "--into", help="The replay's project folder (default: ./replay-NAME).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay any time-ordered table through the whole loop, with the demo's summary and
    report."""
    import pandas as pd
    import pyarrow as pa

    from tidal.control.replay import ReplaySpec, run_replay
    from tidal.control.replay_report import render
    from tidal.core.config import parse_duration
    from tidal.data.sources import open_source
    from tidal.demo import print_loop_summary

    try:
        delay = parse_duration(label_delay)
    except ValueError as exc:
        raise ValidationError(f"--label-delay: {exc}") from None
    until = None
    if train_until is not None:
        try:
            until = float(train_until)
        except ValueError:
            try:
                until = pd.Timestamp(train_until, tz="UTC").timestamp()
            except (ValueError, TypeError):
                raise ValidationError(f"--train-until {train_until!r} is neither epoch "
                                      "seconds nor an ISO 8601 time") from None
        if not math.isfinite(until):
            raise ValidationError("--train-until must be a finite time")
    source = open_source(data)  # a DataReadError names a file that cannot be read
    frame = pa.table({name: source.column(name) for name in source.names}).to_pandas()
    spec = ReplaySpec(frame, time=time_column, target=target, dataset=data.name,
                      label_delay=delay)
    spec.train_until = until
    folder = (into or Path(f"replay-{data.stem.split('.')[0]}")).resolve()
    console = display.errors if as_json else display.console
    summary = run_replay(spec, folder, progress=console.print)
    report = folder / "report.html"
    first = float(summary["timeline"][0]["at"]) if summary["timeline"] else 0.0
    report.write_text(render(summary, start=spec.train_until or first))
    summary = {**summary, "report": str(report), "project": str(folder)}
    if as_json:
        display.print_json(summary)
    else:
        print_loop_summary(display.console, summary)


# -- helpers ------------------------------------------------------------------------------------
def _status(status: str) -> Text:
    colour = {"FINISHED": "green", "FAILED": "red", "KILLED": "red", "RUNNING": "cyan"}
    return display.styled(status, colour.get(status, "white"))


def _default_columns(runs: list[Any]) -> list[str]:
    """Up to three metric keys present in the listed runs, as extra columns."""
    keys: list[str] = []
    for run in runs:
        for key in sorted(run.metrics):
            if key not in keys:
                keys.append(key)
    return [f"metrics.{k}" for k in keys[:3]]


def _cell(run: Any, column: str) -> str:
    kind, _, key = column.partition(".")
    if kind in ("metrics", "metric"):
        return display.number(run.metric(key))
    if kind in ("params", "param"):
        return run.params.get(key, "")
    if kind in ("tags", "tag"):
        return run.tags.get(key, "")
    raise ValidationError(f"unknown column {column!r}: use metrics.KEY, params.KEY or tags.KEY")


def _best(value: float | None, values: list[float | None]) -> str | Text:
    present = [v for v in values if v is not None and v == v]
    text = display.number(value)
    if value is not None and len(present) > 1 and value in (max(present),):
        return display.styled(text, "bold")
    return text


def _metrics_summary(metrics: dict[str, Any] | None) -> str:
    """Numeric metrics as ``k=v``; a pipeline's model keeps them under ``overall``."""
    metrics = metrics or {}
    overall = metrics.get("overall")
    shown = overall if isinstance(overall, dict) else metrics
    return ", ".join(f"{k}={display.number(v)}" for k, v in sorted(shown.items())
                     if isinstance(v, int | float) and not isinstance(v, bool))


def _event_summary(kind: str, payload: dict[str, Any]) -> str:
    if kind == "version_registered":
        run = short_id(str(payload.get("run_id") or ""))
        return f"version {payload.get('version')} (run {run})"
    if kind == "alias_set":
        previous = payload.get("previous_version")
        moved = f"{previous} → " if previous is not None else ""
        return f"@{payload.get('alias')}: {moved}{payload.get('version')}"
    if kind == "alias_removed":
        return f"@{payload.get('alias')} removed (was {payload.get('previous_version')})"
    if kind == "status_changed":
        return f"version {payload.get('version')}: {payload.get('from')} → {payload.get('to')}"
    return str(payload)


def main() -> None:
    """Entry point: run the app, turning Tidal errors into one-line messages."""
    try:
        app()  # Typer handles --help, usage errors and Ctrl-C itself, then exits
    except TidalError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:  # a path of the wrong kind, a full disk, no permission...
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 1)


def _fail(message: str, code: int) -> None:
    from rich.markup import escape

    display.errors.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    raise SystemExit(code) from None
