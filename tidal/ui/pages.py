"""What each page shows: a function of the project and the request returning the
template's context. No HTML here (that is the templates'), no HTTP (that is the app's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidal.store.events import list_events

if TYPE_CHECKING:
    from starlette.requests import Request

    from tidal.project import Project

#: events listed on the overview
LATEST_EVENTS = 15
#: events per page of the event timeline
EVENTS_PER_PAGE = 200


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
    found = list_events(project.db, entity_id=entity or None, limit=100_000,
                        newest_first=True)
    if kind:
        found = [e for e in found if e.kind == kind or e.kind.startswith(kind + ".")
                 or e.kind.startswith(kind + "_")]
    kinds = sorted({e.kind for e in list_events(project.db, limit=100_000)})
    return {"title": "Events", "events": found[:EVENTS_PER_PAGE], "total": len(found),
            "kind": kind, "entity": entity, "kinds": kinds,
            "shown": min(len(found), EVENTS_PER_PAGE)}


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
    return {
        "title": f"Deployment {name}", "deployment": record, "split": _split(record),
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
