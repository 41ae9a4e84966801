"""Monitoring cost: one simulated day of predictions at 100 requests/s, in 5-minute windows.

Why: the monitoring issue promises that each window's checks take under 0.5 s, that
memory stays flat over the day, and that the total cost is linear in new data only (no
window is ever recomputed or reread).

Setup: Tidal's ``linear`` model (an ONNX logistic-regression pipeline) trained on Elec2's
first year, deployed, with the training data as its reference. The log: ``--hours`` (24)
of traffic at ``--rate`` (100) requests/s, one row per request, written by the server's
own log writer (:class:`tidal.serve.predlog.PredictionLog`, its file format and group
commit), the rows cycling through Elec2's production period with their real predictions.
That is 8.64 M records and 288 windows of 30,000 records.

What is measured, in this process:

- writing the log (records/s), for orientation;
- the monitor over the first half of the day, then, after the second half is appended,
  over the second half: compaction (log → Parquet) and the window jobs are timed apart;
  "linear in new data" means the second run costs about what the first did;
- per window: read + profile + checks + store, in seconds (median, p95, max), and the
  process's resident memory after each window (first, last, max: flat means the last is
  not above the early windows by more than noise);
- peak resident memory of the whole run (``ru_maxrss``).

Usage:  python benchmarks/monitoring.py                 # the full day (a few minutes)
        python benchmarks/monitoring.py --hours 0.5 --rate 20   # a smoke run
Results go to benchmarks/results/monitoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
FEATURES = ["feat_1", "feat_2", "feat_3", "feat_4", "feat_5", "feat_6"]
DAY_START = 1_700_006_400.0  # 2023-11-15 00:00 UTC (a day boundary, so windows align)
WINDOW = 300.0


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def prepare(folder: Path) -> tuple[Any, pd.DataFrame, dict[str, np.ndarray]]:
    """Train, register (with ONNX) and deploy the model; set its reference; return the
    loaded model, the production rows and their outputs."""
    import tidal
    from tidal.monitor.reference import set_reference
    from tidal.runtime.inputs import check_columns
    from tidal.runtime.loaded import load_version
    from tidal.train.candidates import make_candidate
    from tidal.train.onnx_export import export_onnx

    frame = pd.read_csv(DATA / "elec2.csv.gz")
    train, production = frame.iloc[:17_520], frame.iloc[17_520:].reset_index(drop=True)
    (folder / "tidal.toml").write_text(f'[monitor]\nwindow = {WINDOW}\nlateness = 0\n')
    model = make_candidate("linear", "classification", FEATURES, [], seed=0)
    model.fit(train[FEATURES], train["target"])
    exported = export_onnx(model, train[FEATURES].iloc[:500], task="classification")
    signature = {"inputs": [{"name": f, "datatype": "FP64", "nullable": True}
                            for f in FEATURES],
                 "outputs": [{"name": "label", "datatype": "INT64"},
                             {"name": "probabilities", "datatype": "FP64"}],
                 "task": "classification", "classes": [0, 1]}
    project = tidal.Project(folder)
    stored = project.artifacts.put_bytes(exported.onnx_bytes)
    project.register_model("elec2", model, signature=signature, metrics={"onnx": {
        "exported": True, "sha256": stored.sha256, "size": stored.size,
        "reason": exported.reason, "max_difference": exported.max_difference}})
    project.set_deployment("elec2", "elec2:1")
    set_reference(project, "elec2:1", train, target="target")
    loaded = load_version(project.artifacts, project.model_version("elec2:1"))
    columns = check_columns(loaded.signature, {f: production[f].to_numpy() for f in FEATURES},
                            max_rows=len(production))
    outputs = loaded.predict(columns)
    project.close()
    return loaded, production, outputs


def write_log(folder: Path, production: pd.DataFrame, outputs: dict[str, np.ndarray],
              start: float, seconds: float, rate: float, first_row: int) -> tuple[int, float]:
    """Append ``seconds`` of traffic at ``rate`` requests/s from ``start``; returns
    (records, seconds taken)."""
    from tidal.core.ids import new_id
    from tidal.serve.predlog import PredictionLog, PredictionRecord

    count = int(seconds * rate)
    values = production[FEATURES].to_numpy()
    labels, probabilities = outputs["label"], outputs["probabilities"]
    n = len(values)
    began = time.perf_counter()
    with PredictionLog(folder, durability="async", max_pending=1_000_000) as log:
        for i in range(count):
            row = (first_row + i) % n
            at = start + i / rate
            log.write_nowait([PredictionRecord(
                request_id=new_id(at), event_time=at, deployment="elec2", model="elec2",
                version=1, route="stable",
                inputs={f: values[row:row + 1, j] for j, f in enumerate(FEATURES)},
                outputs={"label": labels[row:row + 1],
                         "probabilities": probabilities[row:row + 1]},
                latency_ms=1.5, received_at=at)])
            if i % 200_000 == 199_999:
                progress(f"  wrote {i + 1:,} / {count:,} records")
    return count, time.perf_counter() - began


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def monitor_once(folder: Path, now: float) -> dict[str, Any]:
    """Compact, then run the window jobs up to ``now``; per-window times and memory."""
    import tidal
    from tidal.core.clock import ManualClock
    from tidal.monitor.job import Monitor
    from tidal.serve.compaction import compact

    project = tidal.Project(folder, clock=ManualClock(now))
    monitor = Monitor(project, sinks=[])
    began = time.perf_counter()
    compacted = compact(monitor.log_folder, monitor.compacted, delete_compacted=True)
    compaction_s = time.perf_counter() - began
    times: list[float] = []
    memory: list[float] = []
    last = [time.perf_counter()]

    def on_window(_name: str, _record: Any) -> None:
        now_ = time.perf_counter()
        times.append(now_ - last[0])
        memory.append(rss_mb())
        last[0] = now_
        if len(times) % 48 == 0:
            progress(f"  {len(times)} windows, last {times[-1]:.3f} s, rss {memory[-1]:.0f} MB")

    began = time.perf_counter()
    last[0] = began
    run = monitor.run(["elec2"], on_window=on_window)
    windows_s = time.perf_counter() - began
    monitor.close()
    project.close()
    windows = run.deployments[0].windows
    return {"records": compacted["records"], "compaction_s": compaction_s,
            "windows": len(windows), "windows_s": windows_s,
            "rows_per_window": statistics.median(w.rows for w in windows) if windows else 0,
            "window_s": {"median": statistics.median(times), "p95": float(
                np.percentile(times, 95)), "max": max(times)} if times else None,
            "rss_mb": {"first": memory[0], "last": memory[-1], "max": max(memory)}
            if memory else None, "per_window_s": times, "per_window_rss_mb": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "monitoring.json")
    args = parser.parse_args()
    seconds = args.hours * 3600
    half = round(seconds / 2 / WINDOW) * WINDOW or WINDOW
    with tempfile.TemporaryDirectory(prefix="tidal-monitoring-") as scratch:
        folder = Path(scratch)
        progress("training and registering the model ...")
        loaded, production, outputs = prepare(folder)
        log_folder = folder / ".tidal" / "predictions"
        progress(f"writing the first {half / 3600:g} h of the log ...")
        first_records, first_write = write_log(log_folder, production, outputs, DAY_START,
                                               half, args.rate, 0)
        progress("monitoring the first half ...")
        first = monitor_once(folder, DAY_START + half)
        progress(f"writing the next {(seconds - half) / 3600:g} h ...")
        second_records, second_write = write_log(
            log_folder, production, outputs, DAY_START + half, seconds - half, args.rate,
            first_records)
        progress("monitoring the second half ...")
        second = monitor_once(folder, DAY_START + seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    all_times = first["per_window_s"] + second["per_window_s"]
    summary = {
        "hours": args.hours, "rate": args.rate, "records": first_records + second_records,
        "window_seconds": WINDOW,
        "log_write_records_per_s": (first_records + second_records) / (first_write
                                                                        + second_write),
        "first_half": {k: v for k, v in first.items() if not k.startswith("per_window")},
        "second_half": {k: v for k, v in second.items() if not k.startswith("per_window")},
        "window_s_median": statistics.median(all_times),
        "window_s_p95": float(np.percentile(all_times, 95)),
        "window_s_max": max(all_times),
        "second_over_first": (second["compaction_s"] + second["windows_s"])
        / (first["compaction_s"] + first["windows_s"]),
        "peak_rss_mb": peak,
        "per_window_s": all_times,
        "per_window_rss_mb": first["per_window_rss_mb"] + second["per_window_rss_mb"],
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2))
    report(summary)


def report(s: dict[str, Any]) -> None:
    print(f"\n{s['records']:,} records over {s['hours']:g} h at {s['rate']:g} req/s, "
          f"windows of {s['window_seconds']:g} s")
    print(f"log written at {s['log_write_records_per_s']:,.0f} records/s")
    print("| run | records | compaction s | windows | window jobs s | median window s "
          "| p95 | max | rss first / last / max MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in ("first_half", "second_half"):
        r = s[name]
        w, m = r["window_s"] or {}, r["rss_mb"] or {}
        print(f"| {name.replace('_', ' ')} | {r['records']:,} | {r['compaction_s']:.1f} | "
              f"{r['windows']} | {r['windows_s']:.1f} | {w.get('median', 0):.3f} | "
              f"{w.get('p95', 0):.3f} | {w.get('max', 0):.3f} | "
              f"{m.get('first', 0):.0f} / {m.get('last', 0):.0f} / {m.get('max', 0):.0f} |")
    print(f"second half / first half (cost of new data only): {s['second_over_first']:.2f}")
    print(f"per window: median {s['window_s_median']:.3f} s, p95 {s['window_s_p95']:.3f} s, "
          f"max {s['window_s_max']:.3f} s (target < 0.5 s); peak RSS {s['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
