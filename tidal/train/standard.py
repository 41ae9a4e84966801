"""The standard tabular pipeline a project gets from ``tidal.toml`` alone (``tidal run``).

snapshot → validate → split → train every candidate (in parallel on the executor) →
evaluate each overall and per slice → choose (a simpler model wins a near tie) → gate
against the baseline, the champion and the slice rules → register the chosen model with
its metrics, slice table, verdict and lineage (the snapshot hash, the pipeline run).

Settings: ``[data]`` names the target, time and segment columns; ``[pipeline]`` the
source, the model name, slices, candidates, search budget, gate tolerances and executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidal.core.errors import ValidationError
from tidal.pipeline.graph import Pipeline
from tidal.pipeline.keys import File
from tidal.pipeline.runner import run_pipeline
from tidal.train import steps

if TYPE_CHECKING:
    from tidal.project import Project

NUMERIC_TYPES = ("integer", "float")
FEATURE_ROLES = ("feature", "segment")
CHAMPION = "champion"


def run_standard(project: Project, *, executor: str | None = None,
                 progress: bool | None = None) -> dict[str, Any]:
    """Run the standard pipeline of ``project``; returns the summary ``tidal run`` prints."""
    from tidal.data.infer import infer_schema
    from tidal.data.schema import Schema
    from tidal.train.evaluate import higher_is_better
    from tidal.train.gate import choose, decide

    config, data = project.settings.pipeline, project.settings.data
    if config.source is None or data.target is None:
        raise ValidationError("tidal.toml needs [pipeline] source and [data] target to run "
                              "the standard pipeline (`tidal init DATA` writes both)")
    source = _source(project, config.source)
    schema_path = project.settings.project_dir / config.schema_file
    schema_yaml = schema_path.read_text() if schema_path.is_file() else None
    schema = (Schema.from_yaml(schema_yaml, name=str(schema_path)) if schema_yaml else
              infer_schema(source.path if isinstance(source, File) else _sql_frame(source),
                           overrides=data))
    target = data.target
    if target not in schema:
        raise ValidationError(f"the target {target!r} is not a column of the data")
    task = config.task or _task(schema.column(target))
    features = [c for c in schema.columns if c.name != target and c.role in FEATURE_ROLES]
    numeric = [c.name for c in features if c.type in NUMERIC_TYPES]
    categorical = [c.name for c in features if c.type not in NUMERIC_TYPES]
    metric = config.gate.metric or ("accuracy" if task == "classification" else "rmse")
    families = config.candidates or _default_families()
    if "baseline" not in families:
        families = ["baseline", *families]
    root = project.settings.artifact_root
    slices = [s.model_dump(exclude_none=True) for s in config.slices]

    def define() -> None:
        snap = steps.snapshot_data(source, root)
        checked = steps.validate_data(snap, schema_yaml, list(config.allow_anomalies), [],
                                      root)
        rows = steps.split_data(snap, checked, target, data.timestamp, config.test_size,
                                config.seed, task, root)
        models = {family: steps.train_candidate(snap, rows, family, task, target, numeric,
                                                categorical, config.seed, config.search_budget,
                                                root) for family in families}
        for model in models.values():
            steps.evaluate_candidate(model, models["baseline"], snap, rows, task, target,
                                     numeric + categorical, slices, metric, root)

    name = config.model or project.settings.project_dir.name
    result = run_pipeline(Pipeline.build(define, name=name), project=project,
                          executor=executor or config.executor,
                          ray_address=config.ray_address, progress=progress)
    evaluations = {family: result.output(f"evaluate_candidate#{i + 1}" if i else
                                         "evaluate_candidate")
                   for i, family in enumerate(families)}
    better = higher_is_better(metric)
    chosen, why = choose({f: e["metrics"] for f, e in evaluations.items()}, metric, better,
                         config.gate.simpler_tolerance)
    champion = _champion(project, name)
    verdict = decide(
        evaluations[chosen]["metrics"], evaluations["baseline"]["metrics"],
        champion.metrics.get("overall") if champion else None, evaluations[chosen]["slices"],
        metric=metric, higher_is_better=better,
        champion_tolerance=config.gate.champion_tolerance,
        slice_rules={s.column: {"min": s.min, "max_regression": s.max_regression}
                     for s in config.slices if s.min is not None or s.max_regression is not None},
        champion_slice_rows=champion.metrics.get("slices") if champion else None,
        candidate_name=chosen)
    snapshot = result.output("snapshot_data")
    onnx = _export(project, result, chosen, families, task, target, numeric + categorical,
                   progress)
    trained = result.steps[f"train_candidate#{families.index(chosen) + 1}"
                           if families.index(chosen) else "train_candidate"]
    version = _register_output(
        project, name, trained.output_sha256,
        metrics={"overall": evaluations[chosen]["metrics"], "metric": metric,
                 "slices": evaluations[chosen]["slices"],
                 "candidates": {f: e["metrics"] for f, e in evaluations.items()},
                 "gate": verdict.to_dict(), "chosen": {"family": chosen, "why": why},
                 "onnx": onnx},
        dataset_hash=snapshot["sha256"],
        description=f"{chosen} from pipeline run {result.run_id}",
        reason=f"standard pipeline run {result.run_id}")
    status = "blessed" if verdict.blessed else "vetoed"
    version = project.set_status(name, version.version, status,
                                 reason="; ".join(verdict.reasons) or why)
    if verdict.blessed and champion is None:
        version = project.set_alias(name, CHAMPION, version.version,
                                    reason="first blessed version")
    return {"model": version.ref, "status": status, "chosen": chosen, "why": why,
            "reasons": verdict.reasons, "metric": metric,
            "score": evaluations[chosen]["metrics"].get(metric),
            "baseline": evaluations["baseline"]["metrics"].get(metric),
            "pipeline_run": result.run_id, "snapshot": snapshot["sha256"], "onnx": onnx,
            "ran": result.executed, "cached": result.cached}


def _export(project: Project, result: Any, chosen: str, families: list[str], task: str,
            target: str, features: list[str], progress: bool | None) -> dict[str, Any]:
    """ONNX export of the chosen model, as a one-step pipeline of its own taking the first
    run's outputs by hash (cached and traced like any step): exporting every candidate
    would cost minutes for large forests."""
    from tidal.pipeline.keys import Stored

    label = (f"train_candidate#{families.index(chosen) + 1}" if families.index(chosen)
             else "train_candidate")
    model, snapshot, rows = (Stored(result.steps[name].output_sha256)  # type: ignore[arg-type]
                             for name in (label, "snapshot_data", "split_data"))

    def define() -> None:
        steps.export_model(model, snapshot, rows, task, target, features,
                           project.settings.artifact_root)

    export = run_pipeline(Pipeline.build(define, name=f"{result.pipeline}-export"),
                          project=project, executor="inline", progress=progress)
    return export.output("export_model")


def _register_output(project: Project, name: str, sha256: str, **details: Any) -> Any:
    """Register the training step's output bytes as they are (not a re-pickled copy), so
    the version's artifact hash is the step's output hash and lineage walks back from it."""
    import tempfile

    from tidal.runtime.native import FLAVOR

    data = project.artifacts.get_bytes(sha256)  # verified
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pkl"
        path.write_bytes(data)
        return project.register_model(name, path=path, flavor=FLAVOR, **details)


def _source(project: Project, source: Any) -> Any:
    if isinstance(source, str):
        path = Path(source)
        return File(path if path.is_absolute() else project.settings.project_dir / path)
    return {"url": source.url, "query": source.query}


def _sql_frame(source: dict[str, str]) -> Any:
    from tidal.data.snapshots import read_sql

    return read_sql(source["url"], source["query"])[0]


def _task(column: Any) -> str:
    """Classification for text, booleans and integer codes with a domain or few values."""
    if column.type not in NUMERIC_TYPES:
        return "classification"
    if column.type == "integer" and column.min is not None and column.max is not None \
            and column.max - column.min <= 20:
        return "classification"
    return "regression"


def _default_families() -> list[str]:
    from tidal.train.candidates import available_families

    return available_families()


def _champion(project: Project, name: str) -> Any:
    from tidal.core.errors import NotFoundError

    try:
        return project.model_version(f"{name}@{CHAMPION}")
    except NotFoundError:
        return None
