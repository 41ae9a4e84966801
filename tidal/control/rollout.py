"""Rollouts: bring a candidate version to a deployment's traffic, safely.

Strategies (``[rollout] strategy``, or per rollout):

- ``blue_green`` — switch all traffic at once; ``tidal rollback`` switches it back at once;
- ``shadow`` — mirror every request to the candidate (its answers are logged, never
  returned) until ``shadow_requests`` or ``shadow_time``; if the analysis passes, switch;
- ``canary`` — send the candidate a growing share (``steps``, default 5 → 25 → 50 →
  100 %), each step lasting at least ``step_time`` and passing its analysis before the
  next; reaching 100 % is the promotion;
- ``shadow_then_canary`` — the shadow phase, then the canary steps (the default).

:meth:`Rollouts.reconcile` moves a running rollout on: it reads the period's traffic
(:mod:`tidal.control.traffic`), compares the candidate with the stable version over that
same period (:mod:`tidal.control.analysis`) and then

- on a failed analysis, rolls back at once (the candidate gets no traffic), also while
  the rollout is paused or holding: only moving forward waits for a person;
- on a passed one at the end of a phase or step, goes to the next (or promotes);
- while inconclusive, waits; after ``inconclusive_limit`` it *holds* for a person
  (Argo Rollouts pauses an inconclusive analysis the same way).

Every move is one transaction holding the rollout's state, the deployment's traffic and
an event with the analysis and the reason (:class:`tidal.store.rollouts.RolloutRepository`),
so a controller killed at any point leaves a consistent store, and reconciling again
repeats nothing: the decisions depend only on the stored state and the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tidal.control.analysis import FAIL, INCONCLUSIVE, PASS, Analysis, analyse
from tidal.control.traffic import read_traffic
from tidal.core.config import STRATEGIES, RolloutSection
from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.store.deployments import check_settings, hold_unchanged, write_settings
from tidal.store.events import list_events
from tidal.store.records import DeploymentRecord, VersionRecord
from tidal.store.registry import refuse_unservable
from tidal.store.rollouts import RolloutRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tidal.project import Project

log = logging.getLogger("tidal.control")
CHAMPION = "champion"
SHADOW_PHASE, CANARY_PHASE, SWITCHED = "shadow", "canary", "switched"
RUNNING, PAUSED, HOLDING = "running", "paused", "holding"
PROMOTED, ROLLED_BACK, ABORTED = "promoted", "rolled_back", "aborted"


class Rollouts:
    """Start, move on, and steer the rollouts of a project's deployments."""

    def __init__(self, project: Project, *, actor: str | None = None) -> None:
        self.project = project
        self.actor = actor or project.settings.actor
        #: rollouts whose reconcile failed (reconcile_all carries on past them)
        self.failures: list[str] = []

    # -- starting ------------------------------------------------------------------------
    def start(self, deployment: str, candidate: VersionRecord, *,
              strategy: str | None = None, plan: RolloutSection | None = None,
              reason: str | None = None, force: bool = False) -> RolloutRecord:
        """Begin bringing ``candidate`` to ``deployment``'s traffic (see the module
        docstring); ``plan`` defaults to ``[rollout]`` of ``tidal.toml``. A vetoed or
        archived version is refused unless ``force`` (as an alias would be)."""
        refuse_unservable(candidate, force, "rolling it out")
        plan = plan or self.project.settings.rollout
        strategy = strategy or plan.strategy
        if strategy not in STRATEGIES:
            raise ValidationError(f"unknown strategy {strategy!r}: use one of "
                                  f"{', '.join(STRATEGIES)}")
        current = self.project.get_deployment(deployment)
        if candidate.model != current.model:
            raise ValidationError(f"deployment {deployment!r} serves model {current.model!r}, "
                                  f"not {candidate.model!r}")
        if candidate.version == current.stable_version:
            raise ConflictError(f"{candidate.ref} is already the stable version of "
                                f"{deployment!r}")
        now = self.project.clock.now()
        fields: dict[str, Any] = {
            "deployment": deployment, "model": current.model,
            "candidate_version": candidate.version, "baseline_version": current.stable_version,
            "strategy": strategy, "plan": plan.model_dump(), "step": 0,
            "step_started_at": now}
        why = reason or f"roll out {candidate.ref} ({strategy.replace('_', ' ')})"
        if strategy == "blue_green":
            fields |= {"phase": SWITCHED, "status": PROMOTED, "finished_at": now}
            settings = _traffic(current, stable=candidate.version)
        elif strategy == "canary" and plan.steps[0] >= 1.0:
            raise ValidationError("a canary at 100 % has nothing to compare with: give a "
                                  "first step under 100, or use --strategy blue_green")
        elif strategy == "canary":
            fields |= {"phase": CANARY_PHASE}
            settings = _traffic(current, stable=current.stable_version,
                                canary=candidate.version, weight=plan.steps[0])
        else:
            fields |= {"phase": SHADOW_PHASE}
            settings = _traffic(current, stable=current.stable_version,
                                shadow=candidate.version)
        return self.project.rollouts.create(  # blue-green: switched, and crowned, at once
            fields, settings, now=now, actor=self.actor, reason=why,
            read_revision=current.revision,
            also=self._crowning(now) if fields.get("status") == PROMOTED else None)

    # -- moving on -----------------------------------------------------------------------
    def reconcile(self, deployment: str) -> RolloutRecord | None:
        """Look at the deployment's running rollout once and take the decision that is
        due (none, a step, a promotion, a rollback, a hold). Returns the rollout as it
        stands afterwards (None: there is none)."""
        rollout = self.project.rollouts.active(deployment)
        if rollout is None:
            return rollout
        now = self.project.clock.now()
        analysis = self.analyse(rollout, now)
        if analysis.verdict == FAIL:  # paused or holding too: a failing candidate's
            return self._finish(      # traffic never waits for a person
                rollout, ROLLED_BACK, now, analysis, f"analysis failed: {analysis.reasons()}",
                expect=(rollout.status,))
        if rollout.status != RUNNING:
            return rollout  # moving forward waits for the person who paused or must decide
        plan = RolloutSection.model_validate(rollout.plan)
        elapsed = now - rollout.step_started_at
        if rollout.phase == SHADOW_PHASE:
            done = analysis.candidate_requests >= plan.shadow_requests or \
                elapsed >= plan.shadow_time
        else:
            done = elapsed >= plan.step_time
        if done and analysis.verdict == PASS:
            return self._advance(rollout, plan, now, analysis)
        if done and analysis.verdict == INCONCLUSIVE:
            since = rollout.inconclusive_since if rollout.inconclusive_since is not None \
                else now
            if now - since >= plan.inconclusive_limit:
                return self.project.rollouts.transition(
                    rollout.id, expect=(RUNNING,), read_at=rollout.updated_at,
                    changes={"status": HOLDING, "last_analysis": analysis.to_dict()},
                    settings=None, kind="rollout.holding", now=now, actor=self.actor,
                    reason=f"inconclusive for {now - since:.0f} s, holding for a person: "
                           f"{analysis.reasons()}",
                    payload={"analysis": analysis.to_dict()})
            self.project.rollouts.note(rollout.id, {
                "inconclusive_since": since, "last_analysis": analysis.to_dict()}, now=now,
                read_at=rollout.updated_at)
        else:
            self.project.rollouts.note(rollout.id, {"last_analysis": analysis.to_dict()},
                                       now=now, read_at=rollout.updated_at)
        return self.project.rollouts.get(rollout.id)

    def reconcile_all(self) -> list[RolloutRecord]:
        """Reconcile every deployment's running rollout; one's failure stops no other."""
        moved = []
        for rollout in self.project.rollouts.all_active():
            try:
                result = self.reconcile(rollout.deployment)
            except ConflictError:  # moved by someone else meanwhile: theirs stands
                continue
            except Exception:  # noqa: BLE001 - logged; the other rollouts go on
                log.exception("rollout %s of %s: reconcile failed", rollout.id,
                              rollout.deployment)
                self.failures.append(f"rollout {rollout.id} of {rollout.deployment}")
                continue
            if result is not None:
                moved.append(result)
        return moved

    def analyse(self, rollout: RolloutRecord, now: float) -> Analysis:
        """The candidate against the stable version since the step began."""
        start = rollout.step_started_at
        traffic = read_traffic(self.project, rollout.deployment, start, now + 1e-6)
        route = "shadow" if rollout.phase == SHADOW_PHASE else "canary"
        candidate = traffic.version(route, rollout.candidate_version)
        stable = traffic.version("stable", rollout.baseline_version)
        version = self.project.model_version(f"{rollout.model}:{rollout.candidate_version}")
        signature = version.signature or {}
        labels = None
        if self.project.feedback.latest_id(rollout.deployment):
            ids: set[str] = set()
            keys: set[str] = set()
            for table in (candidate, stable):
                if table.num_rows and "request_id" in table.column_names:
                    ids.update(table.column("request_id").drop_null().to_pylist())
                if table.num_rows and "key" in table.column_names:
                    keys.update(table.column("key").drop_null().to_pylist())
            labels = self.project.feedback.labels_for(
                rollout.deployment, sorted(ids), sorted(keys), start=start, end=now + 1e-6)
        plan = RolloutSection.model_validate(rollout.plan)
        return analyse(candidate, stable, plan.analysis, task=signature.get("task"),
                       classes=signature.get("classes"), paired=route == "shadow",
                       labels=labels, metric=(version.metrics or {}).get("metric"),
                       start=start, end=now)

    def _advance(self, rollout: RolloutRecord, plan: RolloutSection, now: float,
                 analysis: Analysis) -> RolloutRecord:
        current = self.project.get_deployment(rollout.deployment)
        if rollout.phase == SHADOW_PHASE and rollout.strategy == "shadow_then_canary":
            step, weight = 0, plan.steps[0]
        elif rollout.phase == CANARY_PHASE and rollout.step + 1 < len(plan.steps):
            step, weight = rollout.step + 1, plan.steps[rollout.step + 1]
        else:
            weight, step = 1.0, rollout.step
        if weight >= 1.0:
            return self._finish(rollout, PROMOTED, now, analysis,
                                f"analysis passed: {analysis.reasons()}")
        settings = _traffic(current, stable=rollout.baseline_version,
                            canary=rollout.candidate_version, weight=weight)
        return self.project.rollouts.transition(
            rollout.id, expect=(RUNNING,), read_at=rollout.updated_at,
            changes={"phase": CANARY_PHASE, "step": step, "step_started_at": now,
                     "inconclusive_since": None, "last_analysis": analysis.to_dict()},
            settings=settings, kind="rollout.step", now=now, actor=self.actor,
            reason=f"canary at {weight:.0%}: the {_phase_name(rollout)} passed "
                   f"({analysis.reasons()})",
            payload={"analysis": analysis.to_dict(), "weight": weight})

    def _finish(self, rollout: RolloutRecord, status: str, now: float,
                analysis: Analysis | None, reason: str,
                expect: tuple[str, ...] = (RUNNING,)) -> RolloutRecord:
        current = self.project.get_deployment(rollout.deployment)
        stable = rollout.candidate_version if status == PROMOTED else rollout.baseline_version
        finished = self.project.rollouts.transition(
            rollout.id, expect=expect, read_at=rollout.updated_at,
            changes={"status": status, "last_analysis": analysis.to_dict() if analysis
                     else rollout.last_analysis},
            settings=_traffic(current, stable=stable), kind=f"rollout.{status}", now=now,
            actor=self.actor, reason=reason,
            payload={"analysis": analysis.to_dict()} if analysis else None,
            also=self._crowning(now) if status == PROMOTED else None)
        return finished

    def _crowning(self, now: float) -> Callable[[Session, RolloutRecord], None]:
        """The promoted version becomes ``@champion`` (what the next gate compares
        with) in the promotion's own transaction, so a controller dying between the two
        cannot leave the old champion in place; unless the version may not carry an
        alias (a vetoed version promoted by hand)."""
        registry = self.project.registry

        def crown(session: Session, rollout: RolloutRecord) -> None:
            if not registry.is_servable(session, rollout.model, rollout.candidate_version):
                log.warning("rollout %s: %s stays where it is: %s:%s is not servable",
                            rollout.id, CHAMPION, rollout.model, rollout.candidate_version)
                return
            registry.write_alias(session, rollout.model, CHAMPION, rollout.candidate_version,
                                 now=now, actor=self.actor,
                                 reason=f"promoted by rollout {rollout.id} of "
                                        f"{rollout.deployment}")
        return crown

    # -- a person's hand -----------------------------------------------------------------
    def pause(self, deployment: str, reason: str | None = None) -> RolloutRecord:
        """Stop the rollout where it is (its traffic stays) until resumed."""
        rollout = self._active(deployment)
        return self.project.rollouts.transition(
            rollout.id, expect=(RUNNING,), read_at=rollout.updated_at,
            changes={"status": PAUSED}, settings=None,
            kind="rollout.paused", now=self.project.clock.now(), actor=self.actor,
            reason=reason or "paused by hand")

    def resume(self, deployment: str, reason: str | None = None) -> RolloutRecord:
        """Let a paused or holding rollout go on (a holding one waits afresh)."""
        rollout = self._active(deployment)
        return self.project.rollouts.transition(
            rollout.id, expect=(PAUSED, HOLDING), read_at=rollout.updated_at,
            changes={"status": RUNNING, "inconclusive_since": None}, settings=None,
            kind="rollout.resumed", now=self.project.clock.now(), actor=self.actor,
            reason=reason or "resumed by hand")

    def promote(self, deployment: str, reason: str | None = None) -> RolloutRecord:
        """Give the candidate all the traffic now, whatever the analysis says."""
        rollout = self._active(deployment)
        return self._finish(rollout, PROMOTED, self.project.clock.now(), None,
                            reason or "promoted by hand", expect=(RUNNING, PAUSED, HOLDING))

    def abort(self, deployment: str, reason: str | None = None) -> RolloutRecord:
        """End the rollout and give the stable version all the traffic back."""
        rollout = self._active(deployment)
        return self._finish(rollout, ABORTED, self.project.clock.now(), None,
                            reason or "aborted by hand", expect=(RUNNING, PAUSED, HOLDING))

    def rollback(self, deployment: str, reason: str | None = None) -> DeploymentRecord:
        """Back to the previous stable version: a rollout in progress is rolled back to
        its baseline; otherwise the stable version before the last change of it
        returns (one write; the model servers follow within their poll interval)."""
        rollout = self.project.rollouts.active(deployment)
        if rollout is not None:
            self._finish(rollout, ROLLED_BACK, self.project.clock.now(), None,
                         reason or "rolled back by hand", expect=(RUNNING, PAUSED, HOLDING))
            return self.project.get_deployment(deployment)
        current = self.project.get_deployment(deployment)
        previous = previous_stable(self.project, deployment, current.stable_version)
        if previous is None:
            raise NotFoundError(f"deployment {deployment!r} has served only "
                                f"{current.model}:{current.stable_version}: nothing to roll "
                                "back to")
        now = self.project.clock.now()
        settings = _traffic(current, stable=previous)
        registry = self.project.registry

        def write(session: Session) -> Any:
            hold_unchanged(session, deployment, current.revision, "rolling back")
            restored = write_settings(
                session, deployment, settings, now=now, actor=self.actor,
                reason=reason or f"rollback from {current.model}:{current.stable_version} "
                                 f"to {current.model}:{previous}", payload={"rollback": True})
            # @champion leaves the version rolled back (for the one restored), in the
            # same transaction, so the next gate does not measure candidates against it
            if registry.alias_target(session, current.model, CHAMPION) != \
                    current.stable_version:
                return restored
            if not registry.is_servable(session, current.model, previous):
                log.warning("rollback: %s of %s stays on %s: version %s is not servable",
                            CHAMPION, current.model, current.stable_version, previous)
                return restored
            registry.write_alias(session, current.model, CHAMPION, previous, now=now,
                                 actor=self.actor,
                                 reason=f"version {current.stable_version} was rolled back")
            return restored

        return self.project.db.transact(write)

    def _active(self, deployment: str) -> RolloutRecord:
        rollout = self.project.rollouts.active(deployment)
        if rollout is None:
            self.project.get_deployment(deployment)  # NotFoundError for a wrong name
            raise NotFoundError(f"deployment {deployment!r} has no rollout in progress")
        return rollout


def previous_stable(project: Project, deployment: str, stable: int) -> int | None:
    """The stable version the deployment served before ``stable`` was brought in by a
    change that was not itself a rollback (so a second rollback does not undo the first),
    from its events (None: it never served another)."""
    for event in list_events(project.db, entity_type="deployment", entity_id=deployment,
                             kind="deployment_set", limit=10_000, newest_first=True):
        before, after = (event.payload or {}).get("before"), (event.payload or {}).get("after")
        if not before or not after or (event.payload or {}).get("rollback"):
            continue
        if after.get("stable_version") == stable and before.get("stable_version") != stable \
                and after.get("model") == before.get("model"):
            return int(before["stable_version"])
    return None


def _traffic(current: DeploymentRecord, *, stable: int, canary: int | None = None,
             weight: float = 0.0, shadow: int | None = None) -> dict[str, Any]:
    """The deployment's settings with this traffic, its batching kept."""
    return check_settings(current.name, model=current.model, stable_version=stable,
                          canary_version=canary, canary_weight=weight if canary else 0.0,
                          shadow_version=shadow, max_batch_size=current.max_batch_size,
                          max_batch_wait_ms=current.max_batch_wait_ms)


def _phase_name(rollout: RolloutRecord) -> str:
    if rollout.phase == SHADOW_PHASE:
        return "shadow phase"
    steps = rollout.plan.get("steps") or []
    weight = steps[rollout.step] if rollout.step < len(steps) else 0.0
    return f"{weight:.0%} step"
