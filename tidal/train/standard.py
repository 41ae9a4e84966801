"""The standard tabular pipeline a project gets from ``tidal.toml`` alone (``tidal run``).

snapshot → validate → split → train every candidate (in parallel on the executor) →
evaluate each overall and per slice → choose (a simpler model wins a near tie) → with
``[data] segments``, train the chosen family per segment and keep the segmented model
only if it beats the global one by more than the tolerance → gate against the baseline,
the champion (both scored on the test rows it never saw) and the slice rules → register
the chosen model with its signature, metrics, slice table, verdict and lineage (the
snapshot hash, the pipeline runs, a tracked run holding every candidate's scores).

Settings: ``[data]`` names the target, time and segment columns; ``[pipeline]`` the
source, the model name, slices, candidates, search budget, gate tolerances and executor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidal.core.errors import ConfigError, TidalError, ValidationError
from tidal.pipeline.graph import Pipeline, node_label
from tidal.pipeline.keys import File, Location, Stored
from tidal.pipeline.runner import PipelineResult, run_pipeline
from tidal.train import segment_steps, steps
from tidal.train.registration import CHAMPION, register_chosen

if TYPE_CHECKING:
    from tidal.project import Project

NUMERIC_TYPES = ("integer", "float")
FEATURE_ROLES = ("feature", "segment")
SEGMENTED = "segmented"
log = logging.getLogger("tidal.train")
#: fewer unseen test rows than this: the champion is not re-scored (too noisy)
MIN_RESCORE_ROWS = 30


@dataclass
class Setup:
    """What the pipeline needs, resolved from ``tidal.toml`` and the schema."""

    name: str
    source: Any
    schema_file: File | None
    schema: Any
    target: str
    #: the time column the split orders by, if any
    timestamp: str | None
    task: str
    numeric: list[str]
    categorical: list[str]
    metric: str
    families: list[str]
    slices: list[dict[str, Any]]
    segments: list[str]
    root: Location

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical


@dataclass
class Candidate:
    """A trained candidate: its name, the step output holding it, its evaluation."""

    name: str
    sha256: str
    evaluation: dict[str, Any]


def _check_allowed_anomalies(kinds: list[str]) -> None:
    """Before any training: a misspelt kind would otherwise allow nothing, silently."""
    from tidal.data.validation import ANOMALY_KINDS

    unknown = sorted(set(kinds) - set(ANOMALY_KINDS))
    if unknown:
        raise ConfigError(f"[pipeline] allow_anomalies: unknown kind(s) "
                          f"{', '.join(map(repr, unknown))}; known: {', '.join(ANOMALY_KINDS)}")


def run_standard(project: Project, *, executor: str | None = None,
                 progress: bool | None = None, source: str | None = None) -> dict[str, Any]:
    """Run the standard pipeline of ``project`` (on ``source`` instead of ``[pipeline]
    source`` when given); returns the summary ``tidal run`` prints."""
    from tidal.train.gate import choose, decide, higher_is_better

    config = project.settings.pipeline
    _check_allowed_anomalies(config.allow_anomalies)
    setup = resolve_setup(project, source=source)
    _check_comparable_champion(_champion(project, setup.name), setup)
    executor = executor or config.executor
    result = run_pipeline(Pipeline.build(lambda: _define(setup, config), name=setup.name),
                          project=project, executor=executor,
                          ray_address=config.ray_address, progress=progress)
    candidates = {family: Candidate(family, result.steps[node_label("train_candidate", i)]
                                    .output_sha256 or "",
                                    result.output(node_label("evaluate_candidate", i)))
                  for i, family in enumerate(setup.families)}
    better = higher_is_better(setup.metric)
    scores = {name: c.evaluation["metrics"] for name, c in candidates.items()}
    chosen, why = choose(scores, setup.metric, better, config.gate.simpler_tolerance)
    segmented_info = None
    later: list[PipelineResult] = []  # the follow-up stages, for the summary
    if setup.segments:
        family = config.segment_family or chosen
        segmented, segmented_info, stage = _train_segmented(
            project, setup, result, family, candidates["baseline"].sha256, executor, progress)
        later.append(stage)
        candidates[SEGMENTED] = segmented
        scores[SEGMENTED] = segmented.evaluation["metrics"]
        pick, pick_why = choose({chosen: scores[chosen], SEGMENTED: scores[SEGMENTED]},
                                setup.metric, better, config.gate.simpler_tolerance,
                                prefer=(chosen,), exclude=())
        if pick == SEGMENTED:
            chosen, why = SEGMENTED, f"per-segment {family} models: {pick_why}"
        else:
            why = f"{why} Per-segment {family} models do not beat it: {pick_why}"
    champion = _champion(project, setup.name)
    winner = candidates[chosen]
    rescored = None
    if champion is not None:
        rescored, stage = _rescore_champion(project, setup, result, champion, winner)
        if stage is not None:
            later.append(stage)
    verdict = decide(
        winner.evaluation["metrics"], scores["baseline"],
        (rescored["champion"] if rescored else champion.metrics.get("overall"))
        if champion else None,
        winner.evaluation["slices"],
        metric=setup.metric, higher_is_better=better,
        champion_tolerance=config.gate.champion_tolerance,
        slice_rules={s.column: {"min": s.min, "max_regression": s.max_regression}
                     for s in config.slices if s.min is not None or s.max_regression is not None},
        champion_slice_rows=champion.metrics.get("slices") if champion else None,
        candidate_name=chosen,
        candidate_vs_champion=rescored["candidate"] if rescored else None,
        champion_basis=_champion_basis(champion, rescored, result))
    snapshot = result.output("snapshot_data")
    if chosen == SEGMENTED:
        onnx = {"exported": False, "max_difference": None, "reason": "a segmented model is "
                "served natively (ONNX export covers one model, not a router over many)"}
    elif not config.export_onnx:
        onnx = {"exported": False, "max_difference": None,
                "reason": "export_onnx = false in [pipeline]: served natively"}
    elif not verdict.blessed:
        onnx = {"exported": False, "max_difference": None,
                "reason": "not exported: the gate vetoed the model"}
    else:
        onnx, stage = _export(project, setup, result, winner, progress)
        later.append(stage)
    version = register_chosen(
        project, setup, winner, verdict, scores=scores, why=why, onnx=onnx,
        snapshot=snapshot, pipeline_run=result.run_id, segments=segmented_info,
        first_champion=champion is None,
        trained_until=result.output("split_data").details.get("train_last_time"))
    return {"model": version.ref, "status": version.status, "chosen": chosen, "why": why,
            "reasons": verdict.reasons, "metric": setup.metric,
            "score": winner.evaluation["metrics"].get(setup.metric),
            "baseline": scores["baseline"].get(setup.metric),
            "candidates": {name: s.get(setup.metric) for name, s in scores.items()},
            "segments": segmented_info, "pipeline_run": result.run_id,
            "snapshot": snapshot["sha256"], "onnx": onnx, "tracking_run": version.run_id,
            "ran": _steps(result, later, "executed"), "cached": _steps(result, later, "cached")}


def _steps(first: PipelineResult, later: list[PipelineResult], which: str) -> list[str]:
    """Step labels of every stage; a later stage's are prefixed with its pipeline name."""
    return [*getattr(first, which),
            *(f"{stage.pipeline}:{label}" for stage in later for label in getattr(stage, which))]


def require_training_extras() -> None:
    """Fail early, with the fix, when the training libraries are not installed (the
    steps would otherwise fail one by one in the workers)."""
    import importlib.util

    missing = [name for name in ("pandas", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        raise TidalError(f"training needs {' and '.join(missing)}, which are not installed: "
                         "pip install 'tidal-ml[train]'")


def resolve_setup(project: Project, *, source: str | None = None) -> Setup:
    """Check ``tidal.toml`` and the schema, and work out features, task and metric."""
    require_training_extras()
    from tidal.data.schema import Schema
    from tidal.train.families import available_families

    config, data = project.settings.pipeline, project.settings.data
    if (source or config.source) is None or data.target is None:
        raise ValidationError("tidal.toml needs [pipeline] source and [data] target to run "
                              "the standard pipeline (`tidal init DATA` writes both)")
    resolved = _source(project, source or config.source)
    schema_path = project.settings.project_dir / config.schema_file
    if schema_path.is_file():
        schema = Schema.from_yaml(schema_path.read_text(), name=str(schema_path))
        schema_file: File | None = File(schema_path)
    else:
        from tidal.data.infer import infer_schema

        schema = infer_schema(
            resolved.path if isinstance(resolved, File) else _sql_frame(resolved),
            overrides=data)
        schema_file = None
    target = data.target
    if target not in schema:
        raise ValidationError(f"the target {target!r} is not a column of the data")
    missing = [c for c in data.segments if c not in schema]
    if missing:
        raise ValidationError(f"[data] segments names column(s) the data does not have: "
                              f"{', '.join(missing)}")
    task = config.task or _task(schema.column(target))
    features = [c for c in schema.columns if c.name != target and c.role in FEATURE_ROLES]
    families = list(config.candidates or available_families())
    known = available_families()
    unknown = [f for f in [*families, config.segment_family or "baseline"] if f not in known]
    if unknown:
        raise ValidationError(f"unknown or unavailable model family {', '.join(unknown)}; "
                              f"available here: {', '.join(known)}")
    if "baseline" not in families:
        families = ["baseline", *families]
    return Setup(
        name=config.model or project.settings.project_dir.name, source=resolved,
        schema_file=schema_file, schema=schema, target=target, task=task,
        timestamp=data.timestamp or next((c.name for c in schema.columns
                                          if c.role == "timestamp"), None),
        numeric=[c.name for c in features if c.type in NUMERIC_TYPES],
        categorical=[c.name for c in features if c.type not in NUMERIC_TYPES],
        metric=config.gate.metric or ("accuracy" if task == "classification" else "rmse"),
        families=families, slices=[s.model_dump(exclude_none=True) for s in config.slices],
        segments=list(data.segments), root=Location(project.settings.artifact_root))


def _define(setup: Setup, config: Any) -> None:
    """The first stage: data, split, every candidate trained and evaluated."""
    snap = steps.snapshot_data(setup.source, setup.root)
    checked = steps.validate_data(snap, setup.schema_file, list(config.allow_anomalies), [],
                                  setup.root)
    rows = steps.split_data(snap, checked, setup.target, setup.timestamp,
                            config.test_size, config.seed, setup.task, setup.root)
    models = {family: steps.train_candidate(snap, rows, family, setup.task, setup.target,
                                            setup.numeric, setup.categorical, config.seed,
                                            # the baseline has nothing to search
                                            config.search_budget if family != "baseline"
                                            else 0, setup.root)
              for family in setup.families}
    for model in models.values():
        steps.evaluate_candidate(model, models["baseline"], snap, rows, setup.task,
                                 setup.target, setup.features, setup.slices, setup.metric,
                                 setup.root)


def _train_segmented(project: Project, setup: Setup, first: PipelineResult, family: str,
                     baseline_sha256: str, executor: str, progress: bool | None,
                     ) -> tuple[Candidate, dict[str, Any], PipelineResult]:
    """The second stage: ``family`` trained per segment, in parallel, then evaluated on
    the same test rows. It takes the first stage's outputs by hash, so it is cached and
    the segmented model's lineage reaches the snapshot."""
    config = project.settings.pipeline
    snapshot, split = (Stored(first.steps[label].output_sha256 or "")
                       for label in ("snapshot_data", "split_data"))
    baseline = Stored(baseline_sha256)

    def define() -> None:
        planned = segment_steps.plan_segment_training(
            snapshot, split, family, setup.task, setup.target, setup.numeric,
            setup.categorical, setup.segments, config.segment_min_rows, config.seed,
            setup.root)
        parts = [segment_steps.fit_segment_part(planned, part, segment_steps.SEGMENT_PARTS)
                 for part in range(segment_steps.SEGMENT_PARTS)]
        model = segment_steps.assemble_segments(planned, parts)
        segment_steps.describe_segments(model)
        steps.evaluate_candidate(model, baseline, snapshot, split, setup.task, setup.target,
                                 setup.features, setup.slices, setup.metric, setup.root)

    result = run_pipeline(Pipeline.build(define, name=f"{setup.name}-segments"),
                          project=project, executor=executor,
                          ray_address=config.ray_address, progress=progress)
    info = {"family": family, "columns": setup.segments,
            "min_rows": config.segment_min_rows, **result.output("describe_segments"),
            "pipeline_run": result.run_id}
    return Candidate(SEGMENTED, result.steps["assemble_segments"].output_sha256 or "",
                     result.output("evaluate_candidate")), info, result


def _export(project: Project, setup: Setup, first: PipelineResult, winner: Candidate,
            progress: bool | None) -> tuple[dict[str, Any], PipelineResult]:
    """ONNX export of the chosen model, as a one-step pipeline of its own taking the first
    run's outputs by hash (cached and traced like any step): exporting every candidate
    would cost minutes for large forests."""
    model = Stored(winner.sha256)
    snapshot, split = (Stored(first.steps[label].output_sha256 or "")
                       for label in ("snapshot_data", "split_data"))

    def define() -> None:
        steps.export_model(model, snapshot, split, setup.task, setup.target, setup.features,
                           setup.root)

    export = run_pipeline(Pipeline.build(define, name=f"{setup.name}-export"),
                          project=project, executor="inline", progress=progress)
    return export.output("export_model"), export


def _rescore_champion(project: Project, setup: Setup, first: PipelineResult, champion: Any,
                      winner: Candidate) -> tuple[dict[str, Any] | None, PipelineResult | None]:
    """Champion and candidate scored on the candidate's test rows the champion never saw
    (after its ``trained_until``): under drift the champion's own test score comes from
    older data and says little about how it does now. ``(None, None)`` when it need not
    (the same data: the recorded scores are on the same rows) or cannot be done
    (``rescore_champion = false``, no time column, an older champion without
    ``trained_until``, another flavour, too few such rows); the gate then compares with
    the champion's recorded score and says so."""
    from tidal.runtime.native import FLAVOR

    trained_until = champion.metrics.get("trained_until")
    same_data = champion.dataset_hash == first.output("snapshot_data")["sha256"]
    if same_data or not project.settings.pipeline.gate.rescore_champion \
            or setup.timestamp is None \
            or trained_until is None or champion.flavor != FLAVOR \
            or not project.artifacts.exists(champion.artifact_sha256):
        return None, None
    models = Stored(champion.artifact_sha256), Stored(winner.sha256)
    snapshot, split = (Stored(first.steps[label].output_sha256 or "")
                       for label in ("snapshot_data", "split_data"))

    def define() -> None:
        steps.score_on_unseen_rows(*models, snapshot, split, setup.task, setup.target,
                                   setup.features, setup.timestamp, str(trained_until),
                                   setup.root)

    try:
        stage = run_pipeline(Pipeline.build(define, name=f"{setup.name}-champion"),
                             project=project, executor="inline", progress=False)
    except TidalError as error:  # e.g. the champion needs a column the data lost
        log.warning("the champion %s could not be scored on the new test rows: %s",
                    champion.ref, error)
        return None, None
    scores = stage.output("score_on_unseen_rows")
    if scores["rows"] < MIN_RESCORE_ROWS:
        return None, stage
    return scores, stage


def _champion_basis(champion: Any, rescored: dict[str, Any] | None,
                    first: PipelineResult) -> str | None:
    """Where the gate's champion figures come from, for its message."""
    if champion is None:
        return None
    if rescored:
        return f"both on the {rescored['rows']} test rows the champion never saw"
    if champion.dataset_hash == first.output("snapshot_data")["sha256"]:
        return "both on the same test rows"
    return "the champion's own test score, on older data"


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


def _check_comparable_champion(champion: Any, setup: Setup) -> None:
    """Before any training: a champion measured without this run's metric (the target
    or the task changed) cannot be compared with, and the gate would fail at the end."""
    overall = (champion.metrics or {}).get("overall") if champion is not None else None
    if isinstance(overall, dict) and setup.metric not in overall:
        raise ValidationError(
            f"{champion.ref} (@{CHAMPION}) was measured without {setup.metric!r} (it has "
            f"{', '.join(sorted(overall)) or 'no metrics'}): the target or the task "
            f"changed. Give the new model its own name ([pipeline] model), or move "
            f"@{CHAMPION} away from {champion.ref}")


def _champion(project: Project, name: str) -> Any:
    from tidal.core.errors import NotFoundError

    try:
        return project.model_version(f"{name}@{CHAMPION}")
    except NotFoundError:
        return None
