"""The main job (``make demo``, ``tidal demo``): the whole loop replayed on real data.

:func:`run_loop_demo` replays Elec2's production period (or, with ``dataset="bike"``,
2012's bike demand) through the real server, monitors and controller at simulated speed
(:mod:`tidal.control.replay`) and writes a self-contained HTML report.

:func:`run_demo`, the first step it grew from, is kept for the pipeline on its own: the
standard pipeline on the first year of Elec2.

It sets up a project folder for the real Elec2 data (see ``shared/data``): the first 365
days as a Parquet file with the nominal timestamp and the weekday derived as the data's
README describes, the schema inferred and written to ``schema.yaml``, and a commented
``tidal.toml`` naming the target, the time column and two slices (the time of day, binned,
and the weekday). Then it runs the standard pipeline exactly as ``tidal run`` would:
snapshot, validate, split by time, train every candidate on the process pool, evaluate
per slice, gate, register the winner (and make it ``@champion`` the first time), export to
ONNX when the model allows. Run it twice: the second run is served from the cache.
Then it deploys the champion, starts the model server on 127.0.0.1 and sends it the
first production day (day 365), one request per half-hour, as a client would.

"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tidal.core.errors import NotFoundError, ValidationError
from tidal.project import Project

MODEL_NAME = "elec2"
ROWS_PER_DAY = 48
TRAIN_DAYS = 365
DATA_FILE = "elec2_year1.parquet"
DEFAULT_FOLDER = "elec2-demo"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FEATURES = [f"feat_{i}" for i in range(1, 7)]

CONFIG = f"""\
# The Tidal demo project: Elec2 (New South Wales electricity prices), days 0-364.
# `tidal run` in this folder runs the same pipeline as `make demo`.

[data]
target = "target"        # 1 = the price went UP against its 24-hour average
timestamp = "time"       # the split holds out the latest rows, as production would see
metadata = ["weekday"]   # derived from the time: a slice, not a feature

[pipeline]
source = "{DATA_FILE}"
model = "{MODEL_NAME}"
executor = "process"
# the error analysis per time of day (feat_1 is the half-hour slot, scaled to 0-1) and
# per weekday; the gate refuses a model whose worst weekday falls under 0.6 accuracy
slices = [
  {{column = "feat_1", bins = [0, 0.25, 0.5, 0.75, 1.0]}},
  {{column = "weekday", min = 0.6}},
]
"""


def find_data_dir(given: Path | None, name: str = "elec2.csv.gz") -> Path:
    """Where the shared data (``name``) is: --data, $TIDAL_DATA_DIR, or ../shared/data
    from here up."""
    candidates = [given] if given else []
    if os.environ.get("TIDAL_DATA_DIR"):
        candidates.append(Path(os.environ["TIDAL_DATA_DIR"]))
    here = Path.cwd().resolve()
    candidates += [folder / "shared" / "data" for folder in (here, *here.parents)]
    for folder in candidates:
        if folder is not None and (folder / name).is_file():
            return folder
    raise NotFoundError(f"cannot find {name}: pass --data FOLDER or set TIDAL_DATA_DIR")


def prepare_project(folder: Path, data_dir: Path | None = None) -> Path:
    """Write the demo's data, schema and ``tidal.toml`` into ``folder`` (kept if there)."""
    from tidal.core.config import load_settings
    from tidal.data import infer_schema, save_schema
    from tidal.train.standard import require_training_extras

    require_training_extras()
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / DATA_FILE
    if not data_path.is_file():
        frame = pd.read_csv(find_data_dir(data_dir) / "elec2.csv.gz")
        frame = frame.iloc[: TRAIN_DAYS * ROWS_PER_DAY].reset_index(drop=True)
        frame["target"] = frame["target"].astype("int64")
        frame["time"] = pd.Timestamp("1996-05-07") + pd.to_timedelta(
            30 * frame.index.to_numpy(), unit="min")
        frame["weekday"] = [WEEKDAYS[day] for day in frame["time"].dt.day_of_week]
        partial = data_path.with_suffix(".partial")
        frame.to_parquet(partial, index=False)
        partial.replace(data_path)
    if not (folder / "tidal.toml").is_file():
        (folder / "tidal.toml").write_text(CONFIG)
    if not (folder / "schema.yaml").is_file():
        settings = load_settings(folder)
        save_schema(infer_schema(data_path, overrides=settings.data), folder / "schema.yaml")
    return folder


def run_demo(folder: Path | None = None, data_dir: Path | None = None, *,
             quiet: bool = False, serve: bool = True) -> dict[str, Any]:
    """Prepare the demo project in ``folder``, run its pipeline and (with ``serve``, when
    the serve extra is installed) serve the champion one production day; returns the
    summary (printed unless ``quiet``) with the project folder under ``"project"``."""
    from rich.console import Console

    from tidal.train.run_report import print_summary
    from tidal.train.standard import run_standard

    console = Console(quiet=quiet, highlight=False)
    folder = prepare_project((folder or Path(DEFAULT_FOLDER)).resolve(), data_dir)
    console.print(f"Elec2 days 0–{TRAIN_DAYS - 1} ({TRAIN_DAYS * ROWS_PER_DAY:,} half-hours) "
                  f"in {folder}")
    with Project(folder) as project:
        summary = run_standard(project, progress=False if quiet else None)
        version = project.model_version(summary["model"])
        champion = project.model_version(f"{MODEL_NAME}@champion") if summary[
            "status"] == "blessed" else None
        print_summary(console, summary, version.metrics.get("slices"))
    served = None
    if champion is not None:
        console.print(f"[green]✓[/] {MODEL_NAME}@champion is version {champion.version}")
        if serve:
            served = serve_champion(folder, data_dir, console)
    console.print(f"Next, in {folder}: tidal lineage {MODEL_NAME}@champion · "
                  f"tidal models show {summary['model']} · tidal serve · "
                  f"tidal run (again: all cached)")
    return {**summary, "project": str(folder), "served": served}


def serve_champion(folder: Path, data_dir: Path | None, console: Any) -> dict[str, Any] | None:
    """Deploy ``@champion`` as the deployment ``elec2``, start the model server on a free
    port of 127.0.0.1, send it the first production day (day 365: 48 half-hours) as JSON
    records, one request per half-hour, and check the prediction log holds every one."""
    import importlib.util

    import pandas as pd

    if importlib.util.find_spec("uvicorn") is None:
        console.print("(not serving: pip install 'tidal-ml[serve]' for the model server)")
        return None
    from tidal.serve.local import LocalServer
    from tidal.serve.predlog import read_log

    day = pd.read_csv(find_data_dir(data_dir) / "elec2.csv.gz").iloc[
        TRAIN_DAYS * ROWS_PER_DAY:(TRAIN_DAYS + 1) * ROWS_PER_DAY].reset_index(drop=True)
    start = pd.Timestamp("1996-05-07") + pd.Timedelta(days=TRAIN_DAYS)
    with Project(folder) as project:
        project.set_deployment(MODEL_NAME, f"{MODEL_NAME}@champion",
                               reason="demo: serve the champion")
        labels, ids = [], []
        with LocalServer(project) as server:
            port = server.port
            for i, row in day.iterrows():
                when = (start + pd.Timedelta(minutes=30 * int(i))).isoformat()
                reply = server.call("POST", f"/v1/predict/{MODEL_NAME}",
                                    [{f: float(row[f]) for f in FEATURES}],
                                    headers={"x-event-time": when})
                labels.append(reply["predictions"][0]["label"])
                ids.append(reply["request_id"])
        logged = {r.request_id for r in read_log(
            project.settings.serve.log_path(project.settings.project_dir))}
    accuracy = float((pd.Series(labels) == day["target"]).mean())
    console.print(f"[green]✓[/] served day {TRAIN_DAYS} ({len(ids)} half-hours) from "
                  f"{MODEL_NAME}@champion at http://127.0.0.1:{port}: accuracy {accuracy:.3f}; "
                  f"{sum(i in logged for i in ids)}/{len(ids)} predictions in the log")
    return {"requests": len(ids), "accuracy": accuracy,
            "logged": sum(i in logged for i in ids)}


# -- the replay demo -----------------------------------------------------------------------

def elec2_frame(data_dir: Path | None = None) -> Any:
    """Elec2 with its nominal time (half-hours from 7 May 1996) as a column."""
    import pandas as pd

    frame = pd.read_csv(find_data_dir(data_dir) / "elec2.csv.gz")
    frame["target"] = frame["target"].astype("int64")
    frame["time"] = pd.Timestamp("1996-05-07") + pd.to_timedelta(
        30 * frame.index.to_numpy(), unit="min")
    return frame


def bike_frame(data_dir: Path | None = None) -> Any:
    """Hourly bike demand, in time order, with a timestamp from ``dteday`` and ``hr``;
    ``casual`` and ``registered`` (which add up to the target) are left out."""
    import pandas as pd

    frame = pd.read_csv(find_data_dir(data_dir, "bike_sharing_hourly.csv.gz")
                        / "bike_sharing_hourly.csv.gz")
    hours = frame["hr"].str.strip().str.lower().map(_hour)
    frame["time"] = pd.to_datetime(frame["dteday"]) + pd.to_timedelta(hours, unit="h")
    frame["hour"] = hours.astype("int64")
    frame["cnt"] = frame["cnt"].astype("float64")
    keep = ["time", "season", "hour", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed", "cnt"]
    return frame[keep].sort_values("time", kind="stable").reset_index(drop=True)


def _hour(text: str) -> int:
    number, half = int(text[:-2]), text[-2:]
    return number % 12 + (12 if half == "pm" else 0)


def run_loop_demo(dataset: str = "elec2", folder: Path | None = None,
                  data_dir: Path | None = None, *, quiet: bool = False,
                  weeks: int | None = None) -> dict[str, Any]:
    """Replay ``dataset`` (``elec2`` or ``bike``) through the whole loop into ``folder``;
    print the summary (unless ``quiet``) and write ``report.html`` there. ``weeks``
    shortens the production period (a quick look)."""
    import pandas as pd
    from rich.console import Console

    from tidal.control.replay import ReplaySpec, run_replay
    from tidal.control.replay_report import render

    console = Console(quiet=quiet, highlight=False, stderr=True)
    if dataset == "elec2":
        frame = elec2_frame(data_dir)
        train_until = pd.Timestamp("1996-05-07") + pd.Timedelta(days=TRAIN_DAYS)
        spec = ReplaySpec(frame, time="time", target="target", dataset="elec2")
    elif dataset == "bike":
        frame = bike_frame(data_dir)
        train_until = pd.Timestamp("2012-01-01")
        spec = ReplaySpec(frame, time="time", target="cnt", dataset="bike sharing",
                          task="regression", candidates=["linear", "random_forest"])
    else:
        raise ValidationError(f"unknown demo dataset {dataset!r}: elec2 or bike")
    if weeks is not None:
        spec.frame = frame[frame["time"] < train_until + pd.Timedelta(weeks=weeks)]
    spec.train_until = train_until.tz_localize("UTC").timestamp()
    folder = (folder or Path(f"{dataset}-loop")).resolve()
    console.print(f"replaying {spec.dataset} through the loop in {folder} …")
    summary = run_replay(spec, folder, progress=console.print)
    report = folder / "report.html"
    report.write_text(render(summary, start=spec.train_until))
    summary = {**summary, "report": str(report), "project": str(folder)}
    print_loop_summary(console, summary)
    return summary


def print_loop_summary(console: Any, summary: dict[str, Any]) -> None:
    metric = summary["metric"]

    def number(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    console.print(f"{summary['dataset']}: {summary['rows']:,} production rows, {metric}: "
                  f"static {number(summary['static'])} · Tidal's loop "
                  f"{number(summary['tidal'])} · adaptive random forest "
                  f"{number(summary['reference_online'])}")
    console.print(f"{summary['retrains']} retrain(s), {summary['promotions']} promotion(s), "
                  f"{summary['rollbacks']} rollback(s); report: {summary['report']}")
