"""Policies: when a deployment's model is retrained, and what then happens.

A policy (``[[policies]]`` in ``tidal.toml``) fires on the first of its triggers that
holds: an alert on a named check that began after the policy last fired; ``every``
(time since it last fired, or since the served version was registered); ``new_labels``
labels since it last fired; the served version older than ``model_age``; a new code
commit. It never fires within ``cooldown`` of its last firing, more than
``max_per_day`` times a day, or while the deployment has a rollout in progress.

Firing is recorded as a ``policy.fired`` event, then the action runs (the standard
pipeline; if the gate blesses its model and it differs from the served one, a rollout
with the policy's strategy) and a ``policy.done`` event records the outcome, naming the
fired event. A controller that dies between the two finds the fired event without its
outcome on restart and finishes it (:meth:`Policies.resume_unfinished`): the pipeline's
cache makes the rerun cheap, and a rollout already started is not started twice.

Times are the project clock's, so a replay at accelerated time fires policies on its
simulated schedule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidal.control.rollout import Rollouts
from tidal.core.codeinfo import code_info
from tidal.core.config import PolicySection
from tidal.core.errors import ConflictError, NotFoundError
from tidal.store.events import list_events, record_event

if TYPE_CHECKING:
    from tidal.project import Project

log = logging.getLogger("tidal.control")
DAY = 86_400.0
#: restarts during one firing's action after which it is given up (recorded as done)
MAX_RESUMES = 2


@dataclass(frozen=True)
class Outcome:
    policy: str
    trigger: str
    model: str | None
    status: str | None
    rollout: int | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "trigger": self.trigger, "model": self.model,
                "status": self.status, "rollout": self.rollout, "note": self.note}


class Policies:
    def __init__(self, project: Project, *, train: Any = None,
                 actor: str = "controller") -> None:
        """``train(project)`` runs the pipeline and returns its summary (default: the
        standard pipeline, as ``tidal run``)."""
        self.project = project
        self.actor = actor
        self.train = train or _run_standard

    # -- deciding ------------------------------------------------------------------------
    def due(self, policy: PolicySection, now: float) -> str | None:
        """Why ``policy`` should fire now, or None."""
        fired = self._fired(policy.name)
        last = fired[0] if fired else None
        if last is not None and now - last.at < policy.cooldown:
            return None
        if sum(1 for e in fired if now - e.at < DAY) >= policy.max_per_day:
            return None
        if self.project.rollouts.active(policy.deployment) is not None:
            return None
        try:
            deployment = self.project.get_deployment(policy.deployment)
        except NotFoundError:
            return None
        version = self.project.model_version(f"{deployment.model}:{deployment.stable_version}")
        since = last.at if last is not None else None
        # what new labels and commits are counted from: the last firing, else what the
        # policy saw the first time it looked
        baseline = (last.payload or {}) if last is not None else self._baseline(policy)
        for state in self.project.monitoring.states(policy.deployment):
            named = {state.check, f"{state.check}:{state.subject}"}
            if state.state == "alert" and named & set(policy.on_alert) and \
                    (since is None or state.since > since):
                subject = f" of {state.subject}" if state.subject else ""
                return f"alert on {state.check}{subject} since {state.since:.0f}"
        if policy.every is not None:
            start = since if since is not None else version.created_at
            if now - start >= policy.every:
                return f"schedule: {policy.every / 3600:g} h since {start:.0f}"
        if policy.new_labels is not None:
            labels = self.project.feedback.count(policy.deployment)
            before = int(baseline.get("labels") or 0)
            if labels - before >= policy.new_labels:
                return f"{labels - before} new labels"
        if policy.model_age is not None:
            # counted from the later of the version's birth and the last firing: a retrain
            # that was vetoed or rolled back waits a whole age again, not a cooldown
            born = max(version.created_at, since or 0.0)
            if now - born >= policy.model_age:
                return f"model age {(now - version.created_at) / DAY:.1f} days"
        if policy.on_code_change:
            commit = code_info(str(self.project.settings.project_dir)).git_commit
            seen = baseline.get("commit")
            if commit is not None and seen is not None and commit != seen:
                return f"code commit {commit[:12]} (was {str(seen)[:12]})"
        return None

    def _baseline(self, policy: PolicySection) -> dict[str, Any]:
        """The labels count and code commit the policy saw when it first looked (recorded
        then, as ``policy.watching``), until it fires once."""
        seen = list_events(self.project.db, entity_type="policy", entity_id=policy.name,
                           kind="policy.watching", limit=1, newest_first=True)
        if seen:
            return seen[0].payload or {}
        payload = {"labels": self.project.feedback.count(policy.deployment),
                   "commit": code_info(str(self.project.settings.project_dir)).git_commit}
        self._record(policy.name, "policy.watching", "started watching", payload)
        return payload

    # -- acting --------------------------------------------------------------------------
    def run(self, now: float) -> list[Outcome]:
        """Fire every policy that is due (and finish any fired one left unfinished)."""
        outcomes = self.resume_unfinished()
        for policy in self.project.settings.policies:
            trigger = self.due(policy, now)
            if trigger is not None:
                outcomes.append(self.fire(policy, trigger, now))
        return outcomes

    def fire(self, policy: PolicySection, trigger: str, now: float) -> Outcome:
        payload = {"deployment": policy.deployment, "trigger": trigger,
                   "labels": self.project.feedback.count(policy.deployment),
                   "commit": code_info(str(self.project.settings.project_dir)).git_commit}
        self._record(policy.name, "policy.fired", trigger, payload)
        fired = self._fired(policy.name)[0]
        return self._act(policy, fired.id, fired.at, trigger)

    def resume_unfinished(self) -> list[Outcome]:
        """Finish the actions of fired events that have no outcome (a controller died)."""
        outcomes = []
        for policy in self.project.settings.policies:
            fired = self._fired(policy.name)
            if not fired:
                continue
            done = {int((e.payload or {}).get("fired", -1)) for e in list_events(
                self.project.db, entity_type="policy", entity_id=policy.name,
                kind="policy.done", limit=100, newest_first=True)}
            if fired[0].id in done:
                continue
            resumed = self._events(policy.name, "policy.resumed", fired[0].id)
            if len(resumed) >= MAX_RESUMES:  # it keeps taking the controller down
                outcomes.append(self._record_done(policy, fired[0].id, Outcome(
                    policy.name, fired[0].reason or "", None, None, None,
                    f"given up after {len(resumed)} restarts during its action")))
                continue
            self._record(policy.name, "policy.resumed", "resumed after a restart",
                         {"fired": fired[0].id})
            outcomes.append(self._act(policy, fired[0].id, fired[0].at,
                                      fired[0].reason or "", resumed=True))
        return outcomes

    def _act(self, policy: PolicySection, fired_id: int, fired_at: float, trigger: str, *,
             resumed: bool = False) -> Outcome:
        model = status = None
        rollout_id = None
        try:
            trained = self._events(policy.name, "policy.trained", fired_id)
            if trained:  # trained before a restart: that model, not another run's
                summary = trained[0].payload or {}
            else:
                summary = self.train(self.project)
                summary = {k: summary.get(k) for k in ("model", "status", "pipeline_run")}
                self._record(policy.name, "policy.trained",
                             f"{summary['model']} {summary['status']}",
                             {"fired": fired_id, **summary})
            model, status = summary.get("model"), summary.get("status")
            note = f"pipeline run {summary.get('pipeline_run')}: {model} {status}"
            if status == "blessed" and model:
                rollout_id, why = self._roll_out(policy, model, trigger, summary, fired_at)
                note += f"; {why}"
            else:
                note += "; not rolled out (the gate did not bless it)"
        except Exception as exc:  # noqa: BLE001 - recorded; the controller carries on
            log.exception("policy %s failed", policy.name)
            note = f"failed: {exc}"
        return self._record_done(policy, fired_id, Outcome(
            policy.name, trigger, model, status, rollout_id,
            ("resumed after a restart; " if resumed else "") + note))

    def _record_done(self, policy: PolicySection, fired_id: int, outcome: Outcome) -> Outcome:
        self._record(policy.name, "policy.done", outcome.note,
                     {"fired": fired_id, **outcome.to_dict()})
        return outcome

    def _record(self, name: str, kind: str, reason: str, payload: dict[str, Any]) -> None:
        """An event about policy ``name``, at the project clock's now."""
        now = self.project.clock.now()
        self.project.db.transact(lambda session: record_event(
            session, at=now, kind=kind, entity_type="policy", entity_id=name,
            actor=self.actor, reason=reason, payload=payload))

    def _events(self, name: str, kind: str, fired_id: int) -> list[Any]:
        """The policy's ``kind`` events about one firing, newest first."""
        return [e for e in list_events(self.project.db, entity_type="policy",
                                       entity_id=name, kind=kind, limit=1000,
                                       newest_first=True)
                if (e.payload or {}).get("fired") == fired_id]

    def _roll_out(self, policy: PolicySection, model: str, trigger: str,
                  summary: dict[str, Any], fired_at: float) -> tuple[int | None, str]:
        version = self.project.model_version(model)
        deployment = self.project.get_deployment(policy.deployment)
        stable = self.project.model_version(f"{deployment.model}:{deployment.stable_version}")
        if stable.artifact_sha256 == version.artifact_sha256:  # the same bytes
            return None, f"{model} is what {policy.deployment} serves already"
        # a restart after this firing's rollout began: it stands, whatever became of it
        for rollout in self.project.rollouts.history(policy.deployment, limit=100):
            if rollout.created_at < fired_at:
                break
            candidate = self.project.model_version(
                f"{rollout.model}:{rollout.candidate_version}")
            if candidate.artifact_sha256 == version.artifact_sha256:
                return rollout.id, f"rollout {rollout.id} already started ({rollout.status})"
        active = self.project.rollouts.active(policy.deployment)
        if active is not None:
            return None, f"rollout {active.id} of another version is under way"
        try:
            rollout = Rollouts(self.project, actor=self.actor).start(
                policy.deployment, version, strategy=policy.strategy,
                reason=f"policy {policy.name}: {trigger}; pipeline run "
                       f"{summary.get('pipeline_run')} blessed {model}")
        except ConflictError as exc:
            return None, f"not rolled out: {exc}"
        return rollout.id, f"rollout {rollout.id} ({rollout.strategy}) started"

    def _fired(self, name: str) -> list[Any]:
        """The policy's fired events, newest first."""
        return list_events(self.project.db, entity_type="policy", entity_id=name,
                           kind="policy.fired", limit=1000, newest_first=True)


def _run_standard(project: Project) -> dict[str, Any]:
    from tidal.train.standard import run_standard

    return run_standard(project, progress=False)
