"""Fault injection: broken candidates during a replay, and whether the rollout stops them.

Why: a rollout is only as safe as what it catches. The closed-loop issue asks that five
kinds of broken candidate are each rolled back automatically, that none serves more than
its canary share of users before the decision, and that a genuinely better candidate is
promoted through the same analysis.

Setup: Elec2 replayed through the real server, monitors and controller
(:func:`tidal.control.replay.run_replay`), from production day ``--start-day`` (default
185, where the first model has aged) for ``--days`` simulated days, 48 requests a day
from ``--users`` (500) simulated users (a request's route key; a canary is sticky per
user), labels 24 h late. No policy runs: this script starts the rollouts, one after the
other, from the replay's ``on_tick`` hook, each with the deployment's default strategy
``shadow_then_canary`` and the analysis at its **default thresholds** (latency p99 at most
2x the stable's and 5 ms more; errors, invalid outputs, collapsed outputs, prediction
shift, agreement with the stable in shadow, labelled quality where labels have come).
Every version is served natively (no ONNX), so a wrapper and the model it wraps are
served alike and latency compares like with like.

The candidates, wrapping the model being served (:mod:`tidal.runtime.faults`):

- constant: always the majority class;
- inverted: the classes swapped (labels flipped in training);
- crashing: raises on the inputs whose price (``feat_2``) is above its 80th percentile;
- slow: sleeps nine times the stable's median latency before answering (10x slower);
- non-finite: NaN probabilities on a tenth of the rows;
- better: the standard pipeline retrained on the last 60 labelled days (its accuracy and
  the stable's, on the same rows after it started, are reported to show it is better).

Reported per candidate: the decision (and the failed checks), the phase it was decided
in, the requests it answered for users before the decision (shadow copies are never
returned, so they do not count), and the share of users who got at least one of its
answers, out of the users who sent requests meanwhile.

Usage:  python benchmarks/rollout_faults.py             # about three minutes
Results go to benchmarks/results/rollout_faults.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tidal.control.replay import DAY, DEPLOYMENT, ReplaySpec, run_replay  # noqa: E402
from tidal.demo import TRAIN_DAYS, elec2_frame  # noqa: E402
from tidal.runtime import faults  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
FEATURES = [f"feat_{i}" for i in range(1, 7)]
START = pd.Timestamp("1996-05-07")

ROLLOUT = """
[rollout]
strategy = "shadow_then_canary"
shadow_requests = 48
shadow_time = "1d"
steps = [0.1, 0.25, 0.5, 1.0]
step_time = "1d"
inconclusive_limit = "14d"

[rollout.analysis]
# a day has 48 requests: a 10 % canary reaches 20 of them in about four days
min_requests = 20
min_labelled = 20
"""


class Injector:
    """Starts the next candidate's rollout once the previous one is decided."""

    def __init__(self, kinds: list[str], frame: pd.DataFrame) -> None:
        self.kinds = list(kinds)
        self.threshold = float(frame["feat_2"].quantile(0.8))
        self.started: list[dict[str, Any]] = []

    def __call__(self, day: int, project: Any) -> None:
        from tidal.control.rollout import Rollouts
        from tidal.store.rollouts import RolloutRepository

        if day < 1 or not self.kinds or RolloutRepository(project.db).active(DEPLOYMENT):
            return
        kind = self.kinds.pop(0)
        version = self._candidate(kind, project)
        if version is None:
            self.started.append({"candidate": kind, "version": None, "started": None})
            return
        rollout = Rollouts(project, actor="rollout_faults").start(
            DEPLOYMENT, version, reason=f"fault injection: {kind}")
        self.started.append({"candidate": kind, "version": version.version,
                             "rollout": rollout.id, "started": project.clock.now()})
        print(f"  day {day}: {kind} candidate as version {version.version}", flush=True)

    def _candidate(self, kind: str, project: Any) -> Any:
        stable = project.model_version(
            f"{DEPLOYMENT}:{project.get_deployment(DEPLOYMENT).stable_version}")
        if kind == "better":
            from tidal.train.standard import run_standard

            summary = run_standard(project, progress=False)
            print(f"  better: {summary['model']} {summary['status']}: "
                  f"{'; '.join(summary['reasons'])}", flush=True)
            return project.model_version(summary["model"]) \
                if summary["status"] == "blessed" else None
        model = project.load_model(stable.ref)
        wrapped = {
            "constant": lambda: faults.Constant(model, int(np.asarray(model.classes_)[0])),
            "inverted": lambda: faults.Inverted(model),
            "crashing": lambda: faults.Crashing(model, "feat_2", self.threshold),
            "slow": lambda: faults.Slow(model, 9 * _median_latency_ms(project) / 1000),
            "non-finite": lambda: faults.NonFinite(model, 0.1),
        }[kind]()
        return project.register_model(DEPLOYMENT, wrapped, signature=stable.signature,
                                      description=f"fault injection: {kind}")


def _median_latency_ms(project: Any) -> float:
    from tidal.control.traffic import read_traffic

    now = project.clock.now()
    stable = read_traffic(project, DEPLOYMENT, now - DAY, now).stable
    return float(np.median(stable.column("latency_ms").to_numpy(zero_copy_only=False)))


def outcomes(folder: Path, started: list[dict[str, Any]], frame: pd.DataFrame,
             replay_end: float) -> list[dict[str, Any]]:
    """Per candidate: decision, phase, requests answered for users, users affected
    (up to the decision, or to ``replay_end`` for a rollout still running)."""
    from tidal.control.traffic import read_traffic
    from tidal.project import Project
    from tidal.store.rollouts import RolloutRepository

    rows: list[dict[str, Any]] = []
    with Project(folder) as project:
        for entry in started:
            if entry["version"] is None:
                rows.append({"candidate": entry["candidate"], "decision": "not blessed"})
                continue
            rollout = RolloutRepository(project.db).get(entry["rollout"])
            end = rollout.finished_at or replay_end
            traffic = read_traffic(project, DEPLOYMENT, entry["started"], end + 1)
            answered = [traffic.version(route, rollout.candidate_version)
                        for route in ("stable", "canary")]
            users = {str(k) for route in ("stable", "canary")
                     for k in getattr(traffic, route).column("key").to_pylist()}
            affected = {str(k) for table in answered for k in table.column("key").to_pylist()}
            analysis = rollout.last_analysis or {}
            failed = [f"{c['name']} ({_figure(c['candidate'])} vs stable "
                      f"{_figure(c['stable'])}, limit {_figure(c['limit'])})"
                      for c in analysis.get("comparisons", []) if c["verdict"] == "fail"]
            row = {"candidate": entry["candidate"], "version": rollout.candidate_version,
                   "decision": rollout.status, "phase": rollout.phase,
                   "failed_checks": failed, "days_to_decision": (end - entry["started"]) / DAY,
                   "requests_answered": sum(t.num_rows for t in answered),
                   "shadow_copies": traffic.version("shadow", rollout.candidate_version)
                   .num_rows,
                   "users": len(users), "users_affected": len(affected),
                   "share_affected": len(affected) / len(users) if users else 0.0,
                   "largest_canary_share": max([s for s in rollout.plan.get("steps", [])
                                                if s < 1.0], default=0.0)}
            if entry["candidate"] == "better":
                row.update(_better_accuracy(project, rollout, entry["started"], frame))
            rows.append(row)
    return rows


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def _better_accuracy(project: Any, rollout: Any, since: float, frame: pd.DataFrame
                     ) -> dict[str, float]:
    """The candidate's and the old stable's accuracy on the same rows: those from its
    start to the end of the replay (scored offline, both models on every row)."""
    from tidal.runtime.inputs import check_columns
    from tidal.runtime.loaded import load_version

    times = (frame["time"] - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    later = frame[times >= since]
    scores = {}
    for name, version in (("candidate_accuracy", rollout.candidate_version),
                          ("stable_accuracy", rollout.baseline_version)):
        model = load_version(project.artifacts, project.model_version(f"{DEPLOYMENT}:{version}"))
        columns = check_columns(model.signature, {f: later[f].to_numpy() for f in FEATURES},
                                max_rows=len(later) + 1)
        predicted = np.asarray(model.predict(columns)["label"])
        scores[name] = float((predicted.astype(int) == later["target"].to_numpy()).mean())
    scores["rows_scored"] = len(later)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-day", type=int, default=185,
                        help="production day (after Elec2's first 365) the replay starts")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS / "rollout_faults.json")
    args = parser.parse_args(argv)

    frame = elec2_frame(DATA)
    begin = START + pd.Timedelta(days=TRAIN_DAYS + args.start_day)
    frame = frame[frame["time"] < begin + pd.Timedelta(days=args.days)].reset_index(drop=True)
    kinds = ["constant", "inverted", "crashing", "slow", "non-finite", "better"]
    injector = Injector(kinds, frame[frame["time"] < begin])
    spec = ReplaySpec(frame, time="time", target="target", dataset="elec2",
                      candidates=["random_forest"], policy="", rollout=ROLLOUT,
                      reference_online=False, export_onnx=False, users=args.users,
                      on_tick=injector)
    spec.train_until = begin.tz_localize("UTC").timestamp()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tidal-faults-") as tmp:
        folder = Path(tmp) / "replay"
        summary = run_replay(spec, folder, progress=lambda line: print(line, flush=True))
        replay_end = (frame["time"].iloc[-1] - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
        rows = outcomes(folder, injector.started, frame, float(replay_end) + 1800)
    seconds = time.perf_counter() - wall
    _print(rows, args.days, seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "rollout_faults", "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(), "start_day": args.start_day, "days": args.days,
        "users": args.users, "seconds": seconds, "candidates": rows,
        "replay": {k: summary[k] for k in ("static", "tidal", "promotions", "rollbacks")},
    }, indent=2))
    broken = [r for r in rows if r["candidate"] != "better"]
    ok = all(r["decision"] == "rolled_back" and r["share_affected"] <= r.get(
        "largest_canary_share", 0) + 1e-9 for r in broken) and any(
        r["candidate"] == "better" and r["decision"] == "promoted" for r in rows)
    print("target met" if ok else "TARGET NOT MET", flush=True)
    return 0


def _print(rows: list[dict[str, Any]], days: int, seconds: float) -> None:
    def fmt(value: Any, pattern: str = "{}") -> str:
        return "-" if value is None else pattern.format(value)

    print(f"\n{days} simulated days in {seconds:.0f} s")
    print(f"{'candidate':<11} {'decision':<12} {'phase':<8} {'days':>5} {'answered':>9} "
          f"{'users':>11} {'share':>6}  failed checks")
    for r in rows:
        print(f"{r['candidate']:<11} {r['decision']:<12} {fmt(r.get('phase')):<8} "
              f"{fmt(r.get('days_to_decision'), '{:.1f}'):>5} "
              f"{fmt(r.get('requests_answered')):>9} "
              f"{fmt(r.get('users_affected')):>5}/{fmt(r.get('users')):<5} "
              f"{fmt(r.get('share_affected'), '{:.1%}'):>6}  "
              f"{', '.join(r.get('failed_checks') or [])}")
        if r["candidate"] == "better" and "candidate_accuracy" in r:
            print(f"{'':<11} accuracy on the {r['rows_scored']} rows since it started: "
                  f"candidate {r['candidate_accuracy']:.3f}, stable "
                  f"{r['stable_accuracy']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())

