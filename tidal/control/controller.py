"""The controller: the reconcile loop that closes the loop, one leader at a time.

Each tick, the leader

1. runs the monitors (compacts the prediction log, computes the closed windows, joins
   labels, moves alert states);
2. moves every running rollout on (:class:`tidal.control.rollout.Rollouts`);
3. fires the policies that are due (:class:`tidal.control.policies.Policies`);
4. runs the scheduled batch scoring windows that are due
   (:class:`tidal.batch.schedules.Schedules`, at most one window per schedule).

Schedules come last because they are the longest and the least urgent part: a scoring
job can take minutes, and a rollout that must be rolled back, or an alert, should not
wait behind it. Coming after the rollouts, a window is scored by the version that the
tick's rollout decisions left serving; its predictions reach the monitors next tick.

Leadership is a lease in the store (:mod:`tidal.store.leases`), renewed every tick: a
second controller waits, and takes over within ``lease_ttl`` seconds when the leader
dies. Everything a tick does is idempotent and stored as it happens, so a controller
killed at any point and started again carries on where the store says things stand.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.batch.schedules import Schedules
from tidal.control.policies import Outcome, Policies
from tidal.control.rollout import Rollouts
from tidal.core.errors import TidalError
from tidal.store.leases import LeaseRepository
from tidal.store.rollouts import RolloutRecord
from tidal.store.schedules import ScheduleRunRecord

if TYPE_CHECKING:
    from tidal.project import Project

log = logging.getLogger("tidal.control")
LEASE = "controller"


@dataclass
class Tick:
    """What one tick did."""

    leader: bool
    windows: int = 0
    alerts: list[str] = field(default_factory=list)
    rollouts: list[RolloutRecord] = field(default_factory=list)
    policies: list[Outcome] = field(default_factory=list)
    #: the schedule windows this tick ran, skipped or found interrupted
    schedules: list[ScheduleRunRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"leader": self.leader, "windows": self.windows, "alerts": self.alerts,
                "rollouts": [{"id": r.id, "deployment": r.deployment, "status": r.status,
                              "phase": r.phase, "step": r.step} for r in self.rollouts],
                "policies": [o.to_dict() for o in self.policies],
                "schedules": [{"schedule": r.schedule, "window_start": r.window_start,
                               "window_end": r.window_end, "status": r.status,
                               "job": r.job, "rows": r.rows, "scored": r.scored,
                               "rejected": r.rejected, "output": r.output,
                               "error": r.error} for r in self.schedules],
                "errors": self.errors}


class Controller:
    def __init__(self, project: Project, *, lease_ttl: float = 10.0,
                 holder: str | None = None, train: Any = None,
                 monitor_sinks: list[Any] | None = None) -> None:
        self.project = project
        self.lease_ttl = lease_ttl
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.leases = LeaseRepository(project.db)
        self.rollouts = Rollouts(project, actor="controller")
        self.policies = Policies(project, train=train)
        self.schedules = Schedules(project, runner=self.holder)
        self.monitor_sinks = monitor_sinks

    def tick(self) -> Tick:
        """One round, if this controller holds (or takes) the lease. While the round runs
        (a retrain can outlast the lease) a heartbeat keeps renewing it; if the lease is
        lost all the same, the round stops before its next part."""
        try:
            leader = self.leases.acquire(LEASE, self.holder, ttl=self.lease_ttl,
                                         now=time.time())
        except TidalError as exc:  # the store is away: try again next tick
            return Tick(leader=False, errors=[f"lease: {exc}"])
        if not leader:
            return Tick(leader=False)
        tick = Tick(leader=True)
        self.rollouts.failures.clear()
        with self._heartbeat() as lost:
            parts = [("monitor", lambda: self._monitor(tick)),
                     ("rollouts", lambda: tick.rollouts.extend(self.rollouts.reconcile_all())),
                     ("policies", lambda: tick.policies.extend(
                         self.policies.run(self.project.clock.now()))),
                     ("schedules", lambda: tick.schedules.extend(
                         self.schedules.run_due(stop=lost.is_set)))]
            for name, work in parts:
                if lost.is_set():
                    tick.errors.append(f"lost the lease before {name}: stopped this tick")
                    break
                self._step(tick, name, work)
        tick.errors += [f"reconcile failed: {f}" for f in self.rollouts.failures]
        return tick

    @contextlib.contextmanager
    def _heartbeat(self) -> Iterator[threading.Event]:
        """Renew the lease every third of its time-to-live until the block ends; the
        event is set if another holder took it."""
        lost, done = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_ttl / 3):
                try:
                    if not self.leases.acquire(LEASE, self.holder, ttl=self.lease_ttl,
                                               now=time.time()):
                        lost.set()
                        return
                except TidalError:
                    log.warning("controller: could not renew the lease (will retry)")

        thread = threading.Thread(target=beat, name="controller-lease", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def run(self, *, interval: float = 2.0, stop: threading.Event | None = None,
            ticks: int | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set (or ``ticks`` ran);
        the lease is given up on the way out."""
        stop = stop or threading.Event()
        done = 0
        try:
            while not stop.is_set() and (ticks is None or done < ticks):
                began = time.monotonic()
                tick = self.tick()
                done += 1
                for error in tick.errors:
                    log.error("controller: %s", error)
                stop.wait(max(0.0, interval - (time.monotonic() - began)))
        finally:
            self.leases.release(LEASE, self.holder)

    def _monitor(self, tick: Tick) -> None:
        from tidal.monitor.job import Monitor

        with Monitor(self.project, sinks=self.monitor_sinks) as monitor:
            run = monitor.run()
        for deployment in run.deployments:
            tick.windows += len(deployment.windows)
            tick.alerts += [f"{deployment.deployment}: {c.state.check} {c.previous} → "
                            f"{c.state.state}" for c in deployment.changes]

    def _step(self, tick: Tick, name: str, work: Any) -> None:
        """Run one part of the tick; a failure is reported and the others still run."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.exception("controller: %s failed", name)
            tick.errors.append(f"{name}: {exc}")
