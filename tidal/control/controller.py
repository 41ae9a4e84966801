"""The controller: the reconcile loop that closes the loop, one leader at a time.

Each tick, the leader

1. runs the monitors (compacts the prediction log, computes the closed windows, joins
   labels, moves alert states);
2. moves every running rollout on (:class:`tidal.control.rollout.Rollouts`);
3. fires the policies that are due (:class:`tidal.control.policies.Policies`).

Leadership is a lease in the store (:mod:`tidal.store.leases`), renewed every tick: a
second controller waits, and takes over within ``lease_ttl`` seconds when the leader
dies. Everything a tick does is idempotent and stored as it happens, so a controller
killed at any point and started again carries on where the store says things stand.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.control.policies import Outcome, Policies
from tidal.control.rollout import Rollouts
from tidal.store.leases import LeaseRepository
from tidal.store.rollouts import RolloutRecord

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
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"leader": self.leader, "windows": self.windows, "alerts": self.alerts,
                "rollouts": [{"id": r.id, "deployment": r.deployment, "status": r.status,
                              "phase": r.phase, "step": r.step} for r in self.rollouts],
                "policies": [o.to_dict() for o in self.policies], "errors": self.errors}


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
        self.monitor_sinks = monitor_sinks

    def tick(self) -> Tick:
        """One round, if this controller holds (or takes) the lease."""
        if not self.leases.acquire(LEASE, self.holder, ttl=self.lease_ttl, now=time.time()):
            return Tick(leader=False)
        tick = Tick(leader=True)
        self._step(tick, "monitor", lambda: self._monitor(tick))
        self._step(tick, "rollouts",
                   lambda: tick.rollouts.extend(self.rollouts.reconcile_all()))
        self._step(tick, "policies", lambda: tick.policies.extend(
            self.policies.run(self.project.clock.now())))
        return tick

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
