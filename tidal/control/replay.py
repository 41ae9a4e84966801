"""The replay: a time-ordered table played through the whole system at simulated speed.

What a team would see in production, compressed into minutes: the rows before
``train_until`` train the first model; every later row is a request to the real model
server on 127.0.0.1 (with its event time), its label comes back ``label_delay`` later
through ``POST /v1/feedback``, and after each ``tick`` of simulated time the real
controller runs on the project's injected clock (monitors, rollouts, policies). The
training source is what a data pipeline would keep up to date: the labelled rows of the
last ``training_window``, rewritten as labels arrive, so a retrain learns from recent
data.

Beside the loop, on the same rows: the *static* model (the first one, never replaced)
and a reference online learner (River's Adaptive Random Forest for classification, its
Adaptive Random Forest regressor otherwise) fed the same labels with the same delay.
The summary compares the three per week and overall, and counts retrains, promotions and
rollbacks from the events.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tidal.core.clock import ManualClock
from tidal.core.errors import ConflictError, TidalError, ValidationError

DAY = 86_400.0
DEPLOYMENT = "live"


@dataclass
class ReplaySpec:
    """What to replay and how (see the module docstring)."""

    frame: Any  # a pandas DataFrame, sorted by time
    time: str
    target: str
    dataset: str = "data"
    features: list[str] | None = None
    task: str | None = None
    train_until: float | None = None  # epoch seconds; default: the first 40 % of rows
    label_delay: float = DAY
    tick: float = DAY
    training_window: float = 60 * DAY
    candidates: list[str] = field(default_factory=lambda: ["linear", "random_forest"])
    #: ``[[policies]]`` text for tidal.toml (``{deployment}`` is filled in); None:
    #: DEFAULT_POLICY, "": no policy (rollouts only as ``on_tick`` starts them)
    policy: str | None = None
    #: ``[rollout]`` and ``[rollout.analysis]`` text; None: ROLLOUT
    rollout: str | None = None
    reference_online: bool = True
    #: export models to ONNX (off: every version is served natively, like a wrapper)
    export_onnx: bool = True
    #: requests are routed by ``row % users`` (a user's requests stick to one side of a
    #: canary); 0: every row its own key
    users: int = 0
    #: called after each simulated day's controller tick with the day's number and the
    #: project (the fault benchmark starts rollouts from here)
    on_tick: Callable[[int, Any], None] | None = None


# retrain on evidence that quality fell (drift alone is for people to look at: on
# Elec2 it alerts nearly every day), at the latest every two weeks, at most weekly
DEFAULT_POLICY = """
[[policies]]
name = "quality"
deployment = "{deployment}"
on_alert = ["quality_drop"]
every = "14d"
cooldown = "7d"
max_per_day = 1
"""

CONFIG = """# written by `tidal replay`: the whole loop on {dataset}, at simulated speed
[data]
target = "{target}"
timestamp = "{time}"

[pipeline]
source = "train.parquet"
model = "{model}"
executor = "inline"
candidates = {candidates}
export_onnx = {export_onnx}


[monitor]
window = "1d"
lateness = 0
min_rows = 20
label_delay = "{label_delay}s"
label_horizon = "7d"

[monitor.review]
max_per_window = 0

"""

# 48 requests a simulated day: steps and samples sized for that
ROLLOUT = """
[rollout]
strategy = "shadow_then_canary"
shadow_requests = 24
shadow_time = "1d"
steps = [0.5, 1.0]
step_time = "1d"
inconclusive_limit = "3d"

[rollout.analysis]
min_requests = 20
min_labelled = 20
# the server shares this process (and its GIL) with the controller's training: latency
# here is noise, not the model's (benchmarks/rollout_faults.py judges it at the defaults)
max_latency_ratio = 20.0
latency_slack_ms = 50.0
"""


def run_replay(spec: ReplaySpec, folder: Path, *,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Play ``spec`` through a fresh project in ``folder``; returns the summary (and
    the per-week series under ``"weeks"``, the events under ``"timeline"``)."""
    import pandas as pd

    say = progress or (lambda _: None)
    _refuse_other_projects(folder)
    frame = _prepared(spec)
    if len(frame) < 100:
        raise ValidationError(f"the replay needs at least 100 labelled rows; the data has "
                              f"{len(frame)}")
    times = frame["_t"].to_numpy()
    train_until = spec.train_until if spec.train_until is not None else \
        float(times[int(len(times) * 0.4)])
    task = spec.task or ("classification" if frame[spec.target].nunique() <= 20
                         and not pd.api.types.is_float_dtype(frame[spec.target])
                         else "regression")
    features = spec.features or [c for c in frame.columns
                                 if c not in (spec.time, spec.target, "_t")]
    production = frame[frame["_t"] >= train_until].reset_index(drop=True)
    if production.empty or (frame["_t"] < train_until).sum() < 50:
        raise ValidationError("the replay needs at least 50 rows before --train-until and "
                              "some after it")
    clock = ManualClock(train_until)
    folder.mkdir(parents=True, exist_ok=True)
    _write_source(folder, frame[frame["_t"] < train_until], spec, train_until)
    (folder / "tidal.toml").write_text(CONFIG.format(
        dataset=spec.dataset, target=spec.target, time=spec.time, model=DEPLOYMENT,
        candidates=json.dumps(spec.candidates), label_delay=int(spec.label_delay),
        export_onnx=json.dumps(spec.export_onnx))
        + (ROLLOUT if spec.rollout is None else spec.rollout)
        + (DEFAULT_POLICY if spec.policy is None else spec.policy).format(
            deployment=DEPLOYMENT))
    token = secrets.token_hex(16)
    os.environ["TIDAL_ADMIN_TOKEN"] = os.environ["TIDAL_FEEDBACK_TOKEN"] = token
    from tidal.control.controller import Controller
    from tidal.project import Project
    from tidal.train.standard import run_standard

    online = _start_reference_online(spec, frame, features, train_until, task, say) \
        if spec.reference_online else None
    project = None
    try:
        project = Project(folder, clock=clock, actor="replay")
        say("training the first model …")
        first = run_standard(project, progress=False)
        if first["status"] != "blessed":
            raise TidalError(f"the first model was not blessed: {first['reasons']}")
        project.set_deployment(DEPLOYMENT, first["model"], reason="replay: the first model")
        static = _static_predictions(project, first["model"], production, features)
        server = _Server(project, token)
        try:
            controller = Controller(project, holder="replay", monitor_sinks=[])
            served = _play(spec, production, features, server, controller, clock, folder,
                           frame, say)
        finally:
            server.stop()
        timeline = _timeline(project)
    except BaseException:
        if online is not None:
            online.cancel()
        raise
    finally:
        if project is not None:
            project.close()
    online_predictions = None if online is None else online.result()
    return _summary(spec, production, task, static, served, online_predictions, timeline)


# -- the loop ------------------------------------------------------------------------------

def _play(spec: ReplaySpec, production: Any, features: list[str], server: _Server,
          controller: Any, clock: ManualClock, folder: Path, frame: Any,
          say: Callable[[str], None]) -> dict[str, Any]:
    times = production["_t"].to_numpy()
    start, end = float(times[0]), float(times[-1])
    answers: dict[int, Any] = {}
    versions: dict[int, int] = {}
    ids: dict[int, str] = {}
    labelled_until = 0  # production rows whose label has been sent
    tick_start, row = start, 0
    ticks = int((end - start) // spec.tick) + 1
    for number in range(ticks):
        tick_end = tick_start + spec.tick
        while row < len(production) and times[row] < tick_end:
            answer = server.predict(production.iloc[row], features, float(times[row]),
                                    row % spec.users if spec.users else row)
            ids[row], answers[row], versions[row] = answer
            row += 1
        due = int(np.searchsorted(times, tick_end - spec.label_delay, side="right"))
        due = min(due, row)
        if due > labelled_until:
            server.feedback([(ids[i], _plain(production[spec.target].iloc[i]))
                             for i in range(labelled_until, due)])
            labelled_until = due
            # the labels known now: up to the due-th production row's event time
            _write_source(folder, frame, spec, float(production["_t"].iloc[due - 1]) + 1e-3)
        clock.set(tick_end)
        tick = controller.tick()
        for error in tick.errors:
            say(f"controller: {error}")
        if spec.on_tick is not None:
            spec.on_tick(number, controller.project)
        if controller.project.deployments.latest_revision() != server.loaded_revision:
            server.reload()
        if number % 30 == 0 or number == ticks - 1:
            say(f"day {(tick_end - start) / DAY:.0f} of {(end - start) / DAY:.0f}: "
                f"{row:,} requests, serving version {server.stable()}")
        tick_start = tick_end
    return {"answers": answers, "versions": versions}


def _write_source(folder: Path, frame: Any, spec: ReplaySpec, limit: float) -> None:
    """The training source a data pipeline would keep: the rows labelled before
    ``limit``, of the last ``training_window`` (atomically replaced)."""
    window = frame[(frame["_t"] < limit) & (frame["_t"] >= limit - spec.training_window)]
    if len(window) < 50:  # early on: the initial training rows
        window = frame[frame["_t"] < limit]
    partial = folder / "train.parquet.partial"
    window.drop(columns=["_t"]).to_parquet(partial, index=False)
    partial.replace(folder / "train.parquet")


class _Server:
    """The replay's client of the real model server (:class:`LocalServer`)."""

    def __init__(self, project: Any, token: str) -> None:
        from tidal.serve.local import LocalServer

        self.local = LocalServer(project, token)
        self._status = self.local.call("GET", "/admin/status")

    def predict(self, row: Any, features: list[str], when: float,
                key: int) -> tuple[str, Any, int]:
        record = {f: _plain(row[f]) for f in features}
        answer = self.local.call("POST", f"/v1/predict/{DEPLOYMENT}", [record], headers={
            "x-event-time": str(when), "x-tidal-route-key": str(key)})
        prediction = answer["predictions"][0]
        value = prediction.get("label", prediction.get("prediction"))
        return answer["request_id"], value, int(answer["version"])

    def feedback(self, labels: list[tuple[str, Any]]) -> None:
        for start in range(0, len(labels), 5000):
            self.local.call("POST", "/v1/feedback", {"deployment": DEPLOYMENT, "labels": [
                {"request_id": i, "label": y} for i, y in labels[start:start + 5000]]})

    @property
    def loaded_revision(self) -> int:
        """The deployments' revision the server serves (it polls, or is told to reload)."""
        return int(self._status["revision"])

    def reload(self) -> None:
        """Load what the store says now (a simulated day is shorter than a poll)."""
        self._status = self.local.call("POST", "/admin/reload")

    def stable(self) -> int | None:
        deployments = self._status.get("deployments") or []
        return deployments[0]["stable"] if deployments else None

    def stop(self) -> None:
        self.local.stop()


# -- the two references ----------------------------------------------------------------------

def _static_predictions(project: Any, ref: str, production: Any,
                        features: list[str]) -> list[Any]:
    from tidal.runtime.inputs import check_columns
    from tidal.runtime.loaded import load_version

    model = load_version(project.artifacts, project.model_version(ref))
    columns = check_columns(model.signature, {f: production[f].to_numpy() for f in features},
                            max_rows=len(production) + 1)
    outputs = model.predict(columns)
    values = outputs.get("label", outputs.get("prediction"))
    return [_plain(v) for v in np.asarray(values)]


class _Background:
    """The reference learner in another process: it needs none of the replay's state,
    and on two cores it finishes while the loop runs instead of after it."""

    def __init__(self, *args: Any) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self.future = self.pool.submit(_reference_online, *args)

    def result(self) -> list[Any]:
        try:
            return self.future.result()
        finally:
            self.pool.shutdown()

    def cancel(self) -> None:
        """Stop the learner (the replay failed): its process is ended, not awaited."""
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _start_reference_online(spec: ReplaySpec, frame: Any, features: list[str],
                            train_until: float, task: str,
                            say: Callable[[str], None]) -> _Background | None:
    import importlib.util

    if importlib.util.find_spec("river") is None:
        say("(no reference online learner: pip install 'tidal-ml[demo]' for River)")
        return None
    say("River's adaptive random forest on the same stream, in the background …")
    return _Background(frame[[*features, spec.target, "_t"]], features, spec.target,
                       train_until, task, spec.label_delay)


def _reference_online(frame: Any, features: list[str], target: str, train_until: float,
                      task: str, label_delay: float) -> list[Any]:
    """River's adaptive random forest, trained on the training rows, then predicting
    each production row and learning it once its label is due (``label_delay`` later)."""
    from river import forest

    model = forest.ARFClassifier(seed=0) if task == "classification" else \
        forest.ARFRegressor(seed=0)
    rows = [{f: _plain(v) for f, v in zip(features, values, strict=True)}
            for values in frame[features].itertuples(index=False, name=None)]
    targets = [_plain(v) for v in frame[target]]
    times = frame["_t"].to_numpy()
    predictions: list[Any] = []
    waiting: list[int] = []  # production rows whose label is not due yet
    for i, when in enumerate(times):
        if when < train_until:
            model.learn_one(_finite(rows[i]), targets[i])
            continue
        while waiting and times[waiting[0]] + label_delay <= when:
            j = waiting.pop(0)
            model.learn_one(_finite(rows[j]), targets[j])
        predictions.append(model.predict_one(_finite(rows[i])))
        waiting.append(i)
    return predictions


# -- the summary -----------------------------------------------------------------------------

def _summary(spec: ReplaySpec, production: Any, task: str, static: list[Any],
             served: dict[str, Any], online: list[Any] | None,
             timeline: list[dict[str, Any]]) -> dict[str, Any]:
    truth = [_plain(v) for v in production[spec.target]]
    weeks = ((production["_t"].to_numpy() - production["_t"].iloc[0]) // (7 * DAY)).astype(int)
    loop = [served["answers"].get(i) for i in range(len(production))]
    metric = "accuracy" if task == "classification" else "mae"
    series = {"static": static, "tidal": loop}
    if online is not None:
        series["reference_online"] = online
    per_week = {name: [_score(metric, [t for t, w in zip(truth, weeks, strict=True) if w == k],
                              [p for p, w in zip(values, weeks, strict=True) if w == k])
                       for k in range(int(weeks.max()) + 1)]
                for name, values in series.items()}
    kinds = [event["kind"] for event in timeline]
    return {
        "dataset": spec.dataset, "metric": metric,
        "static": _score(metric, truth, static), "tidal": _score(metric, truth, loop),
        "reference_online": None if online is None else _score(metric, truth, online),
        "retrains": sum(1 for e in timeline if e["kind"] == "policy.done"
                        and e.get("model")),
        "promotions": kinds.count("rollout.promoted"),
        "rollbacks": kinds.count("rollout.rolled_back"),
        "rows": len(production), "weeks": per_week, "timeline": timeline,
        "versions_served": sorted(set(served["versions"].values())),
    }


def _score(metric: str, truth: list[Any], predicted: list[Any]) -> float | None:
    pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if p is not None]
    if not pairs:
        return None
    if metric == "accuracy":
        return float(np.mean([str(t) == str(p) for t, p in pairs]))
    return float(np.mean([abs(float(t) - float(p)) for t, p in pairs]))


def _timeline(project: Any) -> list[dict[str, Any]]:
    from tidal.store.events import list_events

    wanted = ("monitor.alert", "policy.done", "rollout.started", "rollout.step",
              "rollout.promoted", "rollout.rolled_back", "rollout.holding")
    events = [e for e in list_events(project.db, limit=1_000_000) if e.kind in wanted]
    return [{"at": e.at, "kind": e.kind, "reason": e.reason,
             "model": (e.payload or {}).get("model") if e.kind == "policy.done" else None,
             "check": (e.payload or {}).get("check") if e.kind == "monitor.alert" else None}
            for e in events]


# -- helpers ---------------------------------------------------------------------------------

def _refuse_other_projects(folder: Path) -> None:
    """A replay writes its own tidal.toml: never over a project that is not a replay's."""
    config = folder / "tidal.toml"
    if config.is_file() and not config.read_text(errors="replace").startswith(
            CONFIG.split(":", 1)[0]):
        raise ConflictError(f"{folder} holds a Tidal project of its own; replay into "
                            "another folder (--into)")


def _prepared(spec: ReplaySpec) -> Any:
    import pandas as pd

    frame = spec.frame.copy()
    if spec.time not in frame.columns or spec.target not in frame.columns:
        missing = [c for c in (spec.time, spec.target) if c not in frame.columns]
        raise ValidationError(f"the data has no column {', '.join(map(repr, missing))}")
    column = frame[spec.time]
    if pd.api.types.is_numeric_dtype(column):
        frame["_t"] = column.astype(float)
    else:
        try:
            stamps = pd.to_datetime(column, utc=True)
        except (ValueError, TypeError) as error:
            raise ValidationError(f"the time column {spec.time!r} is neither numbers nor "
                                  f"dates: {error}") from None
        frame[spec.time] = stamps.dt.tz_localize(None)
        # seconds whatever the resolution (pandas 3 keeps microseconds, 2 nanoseconds)
        frame["_t"] = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    frame = frame.dropna(subset=[spec.target]).sort_values("_t", kind="stable")
    return frame.reset_index(drop=True)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """A row as River's forests take it: numbers as they are, a text value one-hot
    (``"season=winter": 1``), missing values left out."""
    return {(k if not isinstance(v, str) else f"{k}={v}"): (v if not isinstance(v, str)
                                                           else 1.0)
            for k, v in row.items() if v is not None}
