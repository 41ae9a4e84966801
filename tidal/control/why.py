"""``tidal why DEPLOYMENT``: why is this version serving? Answered from the store alone.

The answer walks back from what is served: the change that made the stable version what
it is; the rollout that promoted it (its strategy, each step's analysis, the decision);
the policy that started it and its trigger; the pipeline run, data and gate verdict
behind the model version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidal.store.events import list_events

if TYPE_CHECKING:
    from tidal.project import Project


def explain(project: Project, deployment: str) -> dict[str, Any]:
    """The story of the deployment's stable version, as a JSON-able document."""
    current = project.get_deployment(deployment)
    version = project.model_version(f"{current.model}:{current.stable_version}")
    became = next((e for e in list_events(
        project.db, entity_type="deployment", entity_id=deployment, kind="deployment_set",
        limit=100_000, newest_first=True)
        if ((e.payload or {}).get("after") or {}).get("stable_version") == current.stable_version
        and ((e.payload or {}).get("before") or {}).get("stable_version")
        != current.stable_version), None)
    # the rollout that made the change, if one did (a rollback or a change by hand: none)
    rollout_id = (became.payload or {}).get("rollout") if became is not None else None
    rollout = project.rollouts.get(int(rollout_id)) if rollout_id is not None else None
    steps = []
    policy = None
    if rollout is not None:
        events = list_events(project.db, entity_type="deployment", entity_id=deployment,
                             limit=100_000, newest_first=True)
        for event in reversed(events):
            if (event.payload or {}).get("rollout") == rollout.id and \
                    event.kind.startswith("rollout."):
                analysis = (event.payload or {}).get("analysis") or {}
                steps.append({"at": event.at, "kind": event.kind, "reason": event.reason,
                              "verdict": analysis.get("verdict"), "actor": event.actor})
        policy = _policy_for(project, rollout.id)
    gate = (version.metrics or {}).get("gate") or {}
    return {
        "deployment": deployment,
        "serving": {"model": current.model, "stable": current.stable_version,
                    "canary": current.canary_version, "canary_weight": current.canary_weight,
                    "shadow": current.shadow_version},
        "since": None if became is None else {"at": became.at, "actor": became.actor,
                                              "reason": became.reason},
        "rollout": None if rollout is None else {
            "id": rollout.id, "strategy": rollout.strategy, "from": rollout.baseline_version,
            "started": rollout.created_at, "finished": rollout.finished_at,
            "steps": steps},
        "policy": policy,
        "model": {"ref": version.ref, "status": version.status, "aliases": version.aliases,
                  "created": version.created_at, "run": version.run_id,
                  "dataset": version.dataset_hash, "commit": version.code_commit,
                  "description": version.description,
                  "metric": (version.metrics or {}).get("metric"),
                  "score": ((version.metrics or {}).get("overall") or {}).get(
                      (version.metrics or {}).get("metric")),
                  "gate": gate.get("reasons") or gate.get("blessed")},
    }


def _policy_for(project: Project, rollout_id: int) -> dict[str, Any] | None:
    for policy in project.settings.policies:
        for event in list_events(project.db, entity_type="policy", entity_id=policy.name,
                                 kind="policy.done", limit=1000, newest_first=True):
            payload = event.payload or {}
            if payload.get("rollout") == rollout_id:
                return {"name": policy.name, "trigger": payload.get("trigger"),
                        "at": event.at, "outcome": event.reason}
    return None


def story(document: dict[str, Any]) -> list[str]:
    """The explanation as lines a person reads top to bottom."""
    from tidal.display import when

    serving = document["serving"]
    model = document["model"]
    lines = [f"{document['deployment']} serves {serving['model']}:{serving['stable']}"
             + (f" (canary {serving['model']}:{serving['canary']} at "
                f"{serving['canary_weight']:.0%})" if serving["canary"] else "")
             + (f" (shadow {serving['model']}:{serving['shadow']})" if serving["shadow"]
                else "")]
    since = document["since"]
    if since:
        lines.append(f"  since {when(since['at'])}, set by {since['actor']}: "
                     f"{since['reason'] or 'no reason given'}")
    policy = document["policy"]
    if policy:
        lines.append(f"  because policy {policy['name']} fired ({policy['trigger']})")
    rollout = document["rollout"]
    if rollout:
        lines.append(f"  through rollout {rollout['id']} ({rollout['strategy']}) from version "
                     f"{rollout['from']}:")
        for step in rollout["steps"]:
            verdict = f" [{step['verdict']}]" if step["verdict"] else ""
            lines.append(f"    {when(step['at'], short=True)} {step['kind']}{verdict}: "
                         f"{step['reason'] or ''}")
    lines.append(f"  the model {model['ref']} is {model['status']}"
                 + (f" ({', '.join(model['aliases'])})" if model["aliases"] else "")
                 + (f"; {model['metric']} {model['score']:.4g} on its test set"
                    if isinstance(model["score"], int | float) else ""))
    if model["description"]:
        lines.append(f"    {model['description']}")
    gate = model["gate"]
    if isinstance(gate, list) and gate:
        lines.append(f"    gate: {'; '.join(gate)}")
    if model["dataset"] or model["commit"]:
        lines.append(f"    data {str(model['dataset'])[:12]}, code "
                     f"{str(model['commit'] or 'unknown')[:12]}, run {model['run']}")
    return lines
