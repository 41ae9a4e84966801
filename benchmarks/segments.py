"""Per-segment training: Tidal's platform overhead per segment, process executor and Ray.

Why: the per-segment issue (the Freshworks case) promises that training a model per
segment costs at most 5 ms of platform overhead per segment on the process executor, and
that the same run completes on a local Ray instance.

Data (seeded): S segments (default 10,000) × R rows (default 500), three numeric
features, y = x · coef[segment] + intercept[segment] + noise, coefficients drawn per
segment, so a segment's own model is much better than the global one (checked).
Model: scikit-learn ``LinearRegression``, one per segment, plus the global model.

What is measured, each in a fresh project (nothing comes from the cache):

- total: wall time of ``fit_segments`` (planning, storing the batches, the pipeline run,
  reading the models back), with the executor already started (Ray's start-up is timed
  apart, as it happens once per process);
- pure fitting: the sum of ``model.fit`` seconds measured inside the workers, and, as a
  cross-check, the same fits in a plain loop in this process without Tidal;
- overhead per segment = (total − pure fitting / parallelism) / segments, where
  parallelism is the number of workers (2 here). It includes everything Tidal adds:
  sorting and slicing, pickling, the artifact store, the lineage records, the pool.
- batching: the same with one step per segment on the first ``--per-step`` segments
  (default 1,000), to show why segments are batched.

Contenders alternate (process, Ray, process, Ray ...), figures are medians over
``--repeats``. Results go to benchmarks/results/segments.json.

Usage:  python benchmarks/segments.py [--segments 10000 --rows 500 --repeats 3]
        python benchmarks/segments.py --segments 300 --rows 200 --repeats 1 --per-step 100
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402

from tidal.project import Project  # noqa: E402
from tidal.train.segments import fit_segments  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "segments.json"
FEATURES = ["x0", "x1", "x2"]
WORKERS = 2


def make_data(segments: int, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = np.repeat(np.arange(segments), rows)
    coef = rng.normal(0, 2, size=(segments, len(FEATURES)))
    intercept = rng.normal(0, 5, size=segments)
    x = rng.normal(size=(segments * rows, len(FEATURES)))
    y = (x * coef[segment]).sum(axis=1) + intercept[segment] + rng.normal(0, 0.5, len(x))
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["segment"] = segment
    frame["y"] = y
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted


def make_model() -> Any:
    from sklearn.linear_model import LinearRegression

    return LinearRegression()


def plain_loop(frame: pd.DataFrame) -> dict[str, float]:
    """The same fits without Tidal: group, slice, fit, in this process."""
    started = time.perf_counter()
    fit_seconds = 0.0
    for _, rows in frame.groupby("segment", sort=True):
        model = make_model()
        began = time.perf_counter()
        model.fit(rows[FEATURES], rows["y"].to_numpy())
        fit_seconds += time.perf_counter() - began
    return {"total_s": time.perf_counter() - started, "fit_s": fit_seconds}


def tidal_run(frame: pd.DataFrame, executor: str, segments: int,
              segments_per_batch: int | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tidal-seg-") as folder:
        project = Project(folder, artifact_root=str(Path(folder) / "artifacts"))
        try:
            started = time.perf_counter()
            model = fit_segments(frame, target="y", features=FEATURES,
                                 segment_columns=["segment"], make_model=make_model,
                                 min_rows=50, project=project, executor=executor,
                                 max_workers=WORKERS, segments_per_batch=segments_per_batch)
            total = time.perf_counter() - started
        finally:
            project.close()
    info = model.training_
    assert info["levels"][0]["trained"] == segments, info
    fit = info["fit_seconds"]
    return {"total_s": total, "fit_s_in_workers": fit, "steps": info["steps"],
            "plan_s": info["plan_seconds"], "run_s": info["run_seconds"],
            "overhead_ms_per_segment": 1000 * (total - fit / WORKERS) / segments,
            "model": model}


def accuracy(frame: pd.DataFrame, model: Any) -> dict[str, float]:
    sample = frame.iloc[:50_000]
    y = sample["y"].to_numpy()
    segment_mse = float(np.mean((model.predict(sample) - y) ** 2))
    global_mse = float(np.mean((model.global_model_.predict(sample[FEATURES]) - y) ** 2))
    return {"segment_mse": segment_mse, "global_mse": global_mse}


def machine() -> dict[str, Any]:
    """The machine and the versions measured (Ray's only when it is installed)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    return {**peers.machine(), "python": platform.python_version(), "commit": commit,
            "tidal_source": peers.tidal_source_hash(), "date": time.strftime("%Y-%m-%d %H:%M"),
            **peers.package_versions(["numpy", "pandas", "scikit-learn", "ray"])}


def median(runs: list[dict[str, Any]], field: str) -> float:
    return statistics.median(run[field] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-step", type=int, default=1_000,
                        help="segments for the one-step-per-segment comparison (0: skip)")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as in the pool's workers
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)

    frame = make_data(args.segments, args.rows)
    print(f"{args.segments:,} segments × {args.rows} rows = {len(frame):,} rows", flush=True)
    ray_start = None
    if not args.skip_ray:
        import ray

        began = time.perf_counter()
        ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - began
    plain: list[dict[str, float]] = []
    runs: dict[str, list[dict[str, Any]]] = {"process": [], "ray": []}
    executors = ["process"] + ([] if args.skip_ray else ["ray"])
    model = None
    for repeat in range(args.repeats):
        plain.append(plain_loop(frame))
        print(f"  plain loop   {plain[-1]['total_s']:.2f} s", flush=True)
        for executor in executors:
            run = tidal_run(frame, executor, args.segments)
            model = run.pop("model")
            runs[executor].append(run)
            print(f"  {executor:<7} #{repeat + 1} {run['total_s']:.2f} s, "
                  f"{run['overhead_ms_per_segment']:.2f} ms/segment overhead", flush=True)
    per_step: dict[str, Any] | None = None
    if args.per_step:
        count = min(args.per_step, args.segments)
        subset = frame[frame["segment"] < count]
        batched = tidal_run(subset, "process", count)
        single = tidal_run(subset, "process", count, segments_per_batch=1)
        batched.pop("model")
        single.pop("model")
        per_step = {"segments": count, "batched": batched, "one_step_per_segment": single}
    quality = accuracy(frame, model)

    summary: dict[str, Any] = {
        "segments": args.segments, "rows_per_segment": args.rows, "workers": WORKERS,
        "repeats": args.repeats, "ray_start_s": ray_start,
        "plain_loop": {"total_s": median(plain, "total_s"), "fit_s": median(plain, "fit_s")},
        "executors": {name: {field: median(rs, field) for field in rs[0]}
                      for name, rs in runs.items() if rs},
        "runs": {**runs, "plain_loop": plain}, "per_step_comparison": per_step,
        "accuracy_on_50k_rows": quality, "target_ms_per_segment": 5.0,
        "machine": machine(),
    }
    peers.write_results(args.output, summary, compact=("runs",))

    m = summary["machine"]
    print(f"\n{args.segments:,} segments × {args.rows} rows, LinearRegression, {WORKERS} "
          f"workers; {m['cpu_model']} ({m['nproc']} cores); medians of {args.repeats}; "
          f"scikit-learn {m['scikit-learn']}, ray {m['ray']}, python {m['python']}")
    print("| run | total s | fit s (sum in workers) | overhead ms/segment | steps |")
    print("| --- | ---: | ---: | ---: | ---: |")
    loop = summary["plain_loop"]
    print(f"| plain loop, no Tidal, 1 process | {loop['total_s']:.2f} | {loop['fit_s']:.2f} "
          f"| – | – |")
    for name, fig in summary["executors"].items():
        print(f"| Tidal, {name} executor | {fig['total_s']:.2f} | {fig['fit_s_in_workers']:.2f} "
              f"| {fig['overhead_ms_per_segment']:.2f} | {fig['steps']:.0f} |")
    if per_step:
        for label, fig in (("batched", per_step["batched"]),
                           ("one step per segment", per_step["one_step_per_segment"])):
            print(f"| {per_step['segments']:,} segments, process, {label} | "
                  f"{fig['total_s']:.2f} | {fig['fit_s_in_workers']:.2f} | "
                  f"{fig['overhead_ms_per_segment']:.2f} | {fig['steps']} |")
    if ray_start is not None:
        print(f"Ray start-up (once per process, not in the totals): {ray_start:.1f} s")
    print(f"MSE on 50k training rows: segment models {quality['segment_mse']:.3f}, "
          f"global model {quality['global_mse']:.3f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
