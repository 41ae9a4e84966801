"""What each page shows: a function of the project and the request returning the
template's context. No HTML here (that is the templates'), no HTTP (that is the app's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidal.store.events import event_kinds, list_events, search_events
from tidal.ui.formats import when

if TYPE_CHECKING:
    from starlette.requests import Request

    from tidal.project import Project

#: events listed on the overview
LATEST_EVENTS = 15
#: events per page of the event timeline
EVENTS_PER_PAGE = 200
#: the latest windows listed per schedule
SCHEDULE_RUNS = 10


def overview(project: Project, request: Request) -> dict[str, Any]:
    """Deployments with what they serve and how traffic is split, their open alerts,
    and the latest events."""
    states = project.monitoring.states()
    deployments = []
    for deployment in project.list_deployments():
        open_alerts = [s for s in states
                       if s.deployment == deployment.name and s.state != "ok"]
        deployments.append({
            "record": deployment, "split": _split(deployment),
            "alerts": [s for s in open_alerts if s.state == "alert"],
            "warnings": [s for s in open_alerts if s.state == "warn"],
        })
    latest = list_events(project.db, limit=LATEST_EVENTS, newest_first=True)
    return {"title": "Overview", "deployments": deployments, "events": latest}


def events(project: Project, request: Request) -> dict[str, Any]:
    """The timeline, newest first, filtered by kind (a prefix: ``rollout`` matches
    ``rollout.promoted``) and by what it concerns."""
    kind = request.query_params.get("kind", "").strip()
    entity = request.query_params.get("entity", "").strip()
    found, total = search_events(project.db, kind=kind, entity_id=entity,
                                 limit=EVENTS_PER_PAGE)
    return {"title": "Events", "events": found, "total": total, "kind": kind,
            "entity": entity, "kinds": event_kinds(project.db), "shown": len(found)}


def schedules(project: Project, request: Request) -> dict[str, Any]:
    """Each ``[[schedules]]`` entry: its cron, next firing, the windows due and the
    latest windows run, with why a window failed (what ``tidal schedules`` lists)."""
    from tidal.batch.schedules import Schedules

    return {"title": "Schedules",
            "schedules": Schedules(project).overview(limit=SCHEDULE_RUNS)}


def _split(deployment: Any) -> list[dict[str, Any]]:
    """The traffic split as rows of (route, version, share), the stable one first."""
    canary = deployment.canary_weight if deployment.canary_version is not None else 0.0
    rows = [{"route": "stable", "version": deployment.stable_version, "share": 1 - canary}]
    if deployment.canary_version is not None:
        rows.append({"route": "canary", "version": deployment.canary_version,
                     "share": canary})
    if deployment.shadow_version is not None:
        rows.append({"route": "shadow", "version": deployment.shadow_version,
                     "share": None})
    return rows


def deployment(project: Project, request: Request) -> dict[str, Any]:
    """One deployment: what it serves and why, the rollout in progress with each
    comparison of its last analysis, earlier rollouts, and the changes of what it
    served."""
    from tidal.control.why import explain
    from tidal.core.errors import NotFoundError

    name = request.path_params["name"]
    try:
        record = project.get_deployment(name)
    except NotFoundError as error:
        return {"title": "Deployment not found", "status": 404, "message": str(error)}
    active = project.rollouts.active(name)
    steps = []
    if active is not None:
        plan = active.plan or {}
        for number, weight in enumerate(plan.get("steps") or []):
            reached = active.phase == "canary" and number <= active.step
            steps.append({"weight": weight, "reached": reached,
                          "current": active.phase == "canary" and number == active.step})
    decisions = []
    if active is not None:  # each step's analysis so far, from the rollout's events
        for event in reversed(list_events(project.db, entity_type="deployment",
                                          entity_id=name, limit=1000, newest_first=True)):
            payload = event.payload or {}
            if payload.get("rollout") == active.id and event.kind.startswith("rollout."):
                decisions.append({"event": event, "verdict": (payload.get("analysis") or {})
                                  .get("verdict")})
    return {
        "title": f"Deployment {name}", "deployment": record, "split": _split(record),
        "decisions": decisions,
        "why": explain(project, name), "active": active, "steps": steps,
        "analysis": (active.last_analysis or {}) if active is not None else {},
        "history": project.rollouts.history(name, limit=50),
        "changes": list(reversed(project.deployments.history(name, limit=50))),
        "states": [s for s in project.monitoring.states(name) if s.state != "ok"],
    }


def models(project: Project, request: Request) -> dict[str, Any]:
    """Every registered model with its latest version and aliases."""
    return {"title": "Models", "models": project.list_models()}


def model(project: Project, request: Request) -> dict[str, Any]:
    """One model's versions, newest first, with status, aliases and gate metric."""
    from tidal.core.errors import NotFoundError

    name = request.path_params["name"]
    try:
        versions = list(reversed(project.registry.list_versions(name)))
    except NotFoundError as error:
        return {"title": "Model not found", "status": 404, "message": str(error)}
    aliases = [e for e in project.model_history(name) if e.kind == "alias_set"]
    return {"title": f"Model {name}", "name": name, "versions": versions,
            "alias_history": list(reversed(aliases))}


def version(project: Project, request: Request) -> dict[str, Any]:
    """One version: metrics overall and per slice, the gate's verdict and each check,
    the candidates it beat, its signature, and its lineage back to the data."""
    from tidal.core.errors import NotFoundError

    name, number = request.path_params["name"], request.path_params["version"]
    try:
        record = project.model_version(f"{name}:{number}")
    except NotFoundError as error:
        return {"title": "Version not found", "status": 404, "message": str(error)}
    metrics = record.metrics or {}
    lineage = project.lineage.lineage(record.artifact_sha256)
    return {"title": f"Model version {record.ref}", "version": record,
            "metric": metrics.get("metric"), "overall": metrics.get("overall") or {},
            "gate": metrics.get("gate") or {}, "slices": metrics.get("slices") or [],
            "candidates": metrics.get("candidates") or {},
            "chosen": metrics.get("chosen") or {}, "onnx": metrics.get("onnx") or {},
            "trained_until": metrics.get("trained_until"),
            "inputs": ((record.signature or {}).get("inputs") or []), "lineage": lineage}


#: runs per page of the runs table
RUNS_PER_PAGE = 100
#: parameter and metric columns shown at most (the rest are on each run's page)
MAX_COLUMNS = 8


def runs(project: Project, request: Request) -> dict[str, Any]:
    """The runs table: the tracking filter language (as ``tidal runs search``), sorting
    by any column, a page of runs at a time; tick runs to compare them."""
    from tidal.core.errors import ValidationError

    query = request.query_params
    text, order = query.get("filter", "").strip(), query.get("order", "").strip()
    experiment = query.get("experiment", "").strip()
    page = max(1, _int(query.get("page"), 1))
    try:
        found = project.search_runs(text or None, order_by=[order] if order else None,
                                    experiments=[experiment] if experiment else None,
                                    max_results=RUNS_PER_PAGE + 1,
                                    offset=(page - 1) * RUNS_PER_PAGE)
        error = None
    except ValidationError as exc:
        found, error = [], str(exc)
    more = len(found) > RUNS_PER_PAGE
    found = found[:RUNS_PER_PAGE]
    params = _columns(run.params for run in found)
    metrics = _columns(run.metrics for run in found)
    experiments = [e.name for e in project.tracking.list_experiments()]
    return {"title": "Runs", "runs": found, "filter": text, "order": order,
            "experiment": experiment, "experiments": experiments, "error": error,
            "status": 400 if error else 200, "params": params, "metrics": metrics,
            "page": page, "more": more}


def run(project: Project, request: Request) -> dict[str, Any]:
    """One run: its parameters, each metric's curve over steps, tags and artifacts."""
    from tidal.core.errors import NotFoundError
    from tidal.ui.charts import line_chart

    try:
        record = project.get_run(request.path_params["run_id"])
    except NotFoundError as error:
        return {"title": "Run not found", "status": 404, "message": str(error)}
    curves = {}
    for key in sorted(record.metrics):
        history = project.tracking.metric_history(record.id, key)
        if len(history) > 1:
            curves[key] = line_chart([(key, [(p.step, p.value) for p in history])],
                                     title=f"{key} per step", x_label="step")
    return {"title": f"Run {record.name or record.id[:12]}", "run": record,
            "curves": curves}


def compare(project: Project, request: Request) -> dict[str, Any]:
    """Runs side by side: every parameter and metric, the rows that differ marked."""
    from tidal.core.errors import NotFoundError

    chosen = []
    for run_id in request.query_params.getlist("id")[:10]:
        try:
            chosen.append(project.get_run(run_id))
        except NotFoundError as error:
            return {"title": "Run not found", "status": 404, "message": str(error)}
    params = sorted({k for r in chosen for k in r.params})
    metrics = sorted({k for r in chosen for k in r.metrics})
    rows = [{"kind": "parameter", "key": k, "values": [r.params.get(k) for r in chosen]}
            for k in params]
    rows += [{"kind": "metric", "key": k,
              "values": [r.metrics[k].value if k in r.metrics else None for r in chosen]}
             for k in metrics]
    for row in rows:
        row["differs"] = len({repr(v) for v in row["values"]}) > 1
    return {"title": "Compare runs", "runs": chosen, "rows": rows}


def _columns(dicts: Any) -> list[str]:
    """The keys that most of the rows have, most common first, at most MAX_COLUMNS."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for values in dicts:
        counts.update(values.keys())
    return [key for key, _ in counts.most_common(MAX_COLUMNS)]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


DAY = 86_400.0
#: the monitoring page's time spans, in days
SPANS = {"1d": 1, "7d": 7, "30d": 30, "365d": 365}
#: heat map columns at most (longer spans are bucketed, each bucket showing its maximum)
HEAT_COLUMNS = 120


def monitoring(project: Project, request: Request) -> dict[str, Any]:
    """A deployment's checks over a span: alert states; each single-valued check as a
    line with its warn and alert thresholds; each per-feature check (drift, missing
    values, schema, slices) as a heat map of features over time."""
    from tidal.core.errors import NotFoundError
    from tidal.monitor.alerts import Rules
    from tidal.ui.charts import heat_map, line_chart

    name = request.path_params["name"]
    try:
        deployment = project.get_deployment(name)
    except NotFoundError as error:
        return {"title": "Deployment not found", "status": 404, "message": str(error)}
    span = request.query_params.get("span", "7d")
    span = span if span in SPANS else "7d"
    latest = project.monitoring.latest_window(name)
    context: dict[str, Any] = {"title": f"Monitoring {name}", "name": name, "span": span,
                               "spans": list(SPANS), "lines": [], "maps": [],
                               "states": project.monitoring.states(name),
                               "latest": latest}
    if latest is None:
        return context
    version = project.model_version(f"{deployment.model}:{latest.version}") \
        if latest.version is not None else None
    features = [f["name"] for f in ((version.signature or {}).get("inputs") or [])] \
        if version is not None else []
    chosen = request.query_params.get("feature") or (features[0] if features else "")
    context["features"] = features
    if chosen in features:
        context["distribution"] = feature_distribution(project, latest, version, chosen)
    since = latest.end - SPANS[span] * DAY
    rules = Rules(project.settings.monitor.alerts)
    # (low, high, mean, end) per bucket of time, per check and subject, from the database
    by_check: dict[str, dict[str, dict[int, tuple[float, float, float, float]]]] = {}
    for check, subject, bucket, low, high, mean, end in project.monitoring.bucketed(
            name, since, latest.end, HEAT_COLUMNS):
        by_check.setdefault(check, {}).setdefault(subject, {})[bucket] = (low, high, mean,
                                                                          end)

    def worst(rule: Any, values: tuple[float, float, float, float]) -> float:
        """A bucket's value as its worst window (a spike stays visible), or its mean."""
        low, high, mean, _ = values
        direction = getattr(rule, "direction", None)
        return high if direction == "above" else low if direction == "below" else mean

    width = (latest.end - since) / HEAT_COLUMNS
    for check, subjects in sorted(by_check.items()):
        if list(subjects) == [""]:
            rule = rules.rule_for(check, "")
            marks = [(label, value) for label, value in
                     (("warn", getattr(rule, "warn", None)),
                      ("alert", getattr(rule, "alert", None))) if value is not None]
            context["lines"].append({"check": check, "chart": line_chart(
                [(check, [(values[3], worst(rule, values))
                          for _, values in sorted(subjects[""].items())])],
                title=f"{check} per window", thresholds=marks, x_format=when)})
            continue
        used = sorted({b for buckets in subjects.values() for b in buckets})
        rows = []
        for subject, buckets in sorted(subjects.items()):
            rule = rules.rule_for(check, subject)
            rows.append((subject or "(all)", [worst(rule, buckets[b]) if b in buckets
                                              else None for b in used]))
        rule = rules.rule_for(check, "*") or rules.rule_for(check, "")
        high = getattr(rule, "alert", None) or max(
            (v for _, values in rows for v in values if v is not None), default=1.0) or 1.0
        context["maps"].append({"check": check, "chart": heat_map(
            rows, [when(since + (b + 1) * width) for b in used],
            title=f"{check} per feature over time", high=float(high))})
    return context


def review(project: Project, request: Request) -> dict[str, Any]:
    """A deployment's review queue (open and claimed items), the answered ones, and
    how often reviewers agree, per reviewer pair and per class."""
    from tidal.core.errors import NotFoundError

    name = request.path_params["name"]
    try:
        project.get_deployment(name)
    except NotFoundError as error:
        return {"title": "Deployment not found", "status": 404, "message": str(error)}
    waiting = [*project.review.items(name, status="claimed"),
               *project.review.items(name, status="open")]
    return {"title": f"Review {name}", "name": name, "waiting": waiting,
            "agreement": project.review.agreement(name)}


def review_item(project: Project, request: Request) -> dict[str, Any]:
    """One item: its inputs, the served model's output and the shadow's, and the
    answers to give (a class button each, with keys 1-9; unsure; a note)."""
    name, number = request.path_params["name"], request.path_params["item"]
    item = project.review.get(number, name) if number < 2**62 else None  # ids are 64-bit
    if item is None:
        return {"title": "Item not found", "status": 404,
                "message": f"no review item {number} in deployment {name!r}"}
    classes: list[Any] = []
    try:
        deployment = project.get_deployment(name)
        version = project.model_version(f"{deployment.model}:{deployment.stable_version}")
        classes = list((version.signature or {}).get("classes") or [])
    except Exception:  # noqa: BLE001 - the item stays reviewable without its classes
        classes = []
    return {"title": f"Review item {item.id}", "name": name, "item": item,
            "classes": classes}


def feature_distribution(project: Project, window: Any, version: Any,
                         feature: str) -> dict[str, Any]:
    """The reference's and the window's distribution of one input (``version``: the
    one that served the window), on the reference's bins (numbers) or categories (the
    20 most frequent), as shares of rows."""
    from tidal.data.profiles import DatasetProfile
    from tidal.ui.charts import distributions

    if window.profile_sha256 is None or version is None:
        return {"feature": feature, "chart": None, "note": "no window profile yet"}
    reference = project.monitoring.get_reference(version.id)
    if reference is None:
        return {"feature": feature, "chart": None,
                "note": f"{version.ref} has no reference profile"}
    ours = DatasetProfile.from_bytes(project.artifacts.get_bytes(window.profile_sha256))
    theirs = DatasetProfile.from_bytes(project.artifacts.get_bytes(reference.artifact_sha256))
    column = f"in.{feature}"
    if column not in ours.columns or column not in theirs.columns:
        return {"feature": feature, "chart": None, "note": f"no profile of {feature}"}
    mine, base = ours.columns[column], theirs.columns[column]
    few = set(base.values or {}) | set(mine.values or {})
    if base.values is not None and mine.values is not None and 0 < len(few) <= 20:
        # few distinct values on both sides (a code, a constant): compare them exactly
        top = sorted(few, key=lambda k: (-(base.values or {}).get(k, 0), str(k)))
        labels = [f"{k:.4g}" if isinstance(k, float) else str(k) for k in top]
        ref_counts = [(base.values or {}).get(k, 0) for k in top]
        win_counts = [(mine.values or {}).get(k, 0) for k in top]
    elif base.histogram is not None and mine.histogram is not None and \
            base.edges is not None:
        edges = list(base.edges)
        labels = ["below", *[f"{edge:.3g}" for edge in edges[:-1]], "above"]
        ref_counts, win_counts = list(base.histogram), list(mine.histogram)
    else:
        counts = dict(base.values or {})
        top = sorted(counts, key=lambda k: -counts[k])[:20]
        labels = [str(k) for k in top]
        ref_counts = [counts[k] for k in top]
        win_counts = [(mine.values or {}).get(k, 0) for k in top]
    ref_total, win_total = max(1, sum(ref_counts)), max(1, sum(win_counts))
    chart = distributions([c / ref_total for c in ref_counts],
                          [c / win_total for c in win_counts], labels,
                          title=f"{feature}: reference vs the window ending "
                                f"{when(window.end)}")
    return {"feature": feature, "chart": chart, "note": None}
