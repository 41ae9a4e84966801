"""Speed and memory of Tidal's data checks on 1 million rows x 25 columns.

The issue's target: profiling "1 million rows x 25 columns takes a few seconds at most
on this machine". No peer keeps mergeable profiles with the same contents (Evidently
recomputes from raw data; its drift speed is measured in ``drift_speed.py``), so this
benchmark measures Tidal alone, each step in a fresh process reading the same Parquet
files, under ``/usr/bin/time -v`` for the peak resident set:

- ``schema``: infer a schema from the reference file;
- ``validate``: check the current file against it;
- ``profile``: profile the reference file (moments, KLL sketch, histogram, categories);
- ``profile_window``: profile the current file on the reference's bins;
- ``merge_drift``: merge ten window profiles, then drift between two saved profiles.

Data: 20 float64 columns (normal, shifted in 6) and 5 string columns of 10 categories,
seeded, written once to ``benchmarks/.scratch/data_speed/``. Figures are medians of
``--repeats`` runs (default 3). Results go to ``benchmarks/results/data_speed.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402

SCRATCH = peers.SCRATCH_DIR / "data_speed"
RESULTS = peers.HERE / "results" / "data_speed.json"
STEPS = ("schema", "validate", "profile", "profile_window", "merge_drift")
TARGET_SECONDS = 5.0  # "a few seconds at most"


def make_data(rows: int, folder: Path) -> tuple[Path, Path]:
    """Reference and current Parquet files (written once per size)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"reference_{rows}.parquet", folder / f"current_{rows}.parquet"
    if all(path.exists() for path in paths):
        return paths
    rng = np.random.default_rng(20261123)
    words = np.array([f"category_{j}" for j in range(10)])
    for path, shift in zip(paths, (0.0, 0.3), strict=True):
        columns: dict[str, Any] = {
            f"n{i:02d}": rng.normal(shift if i < 6 else 0.0, 1.0, rows) for i in range(20)}
        columns.update({f"c{i}": pa.array(words[rng.integers(0, 10, rows)])
                        for i in range(5)})
        pq.write_table(pa.table(columns), path)
    return paths


def worker(step: str, reference: Path, current: Path, scratch: Path) -> dict[str, Any]:
    """One step, timed inside a fresh process (imports before the clock starts)."""
    from tidal.data import (
        drift_from_profiles,
        infer_schema,
        load_profile,
        profile,
        save_profile,
        validate,
    )

    extra: dict[str, Any] = {}
    started = time.perf_counter()
    if step == "schema":
        extra["columns"] = len(infer_schema(reference).columns)
    elif step == "validate":
        schema = infer_schema(reference)
        started = time.perf_counter()  # the check alone
        extra["anomalies"] = len(validate(current, schema).anomalies)
    elif step == "profile":
        made = profile(reference)
        extra["profile_bytes"] = len(made.to_bytes())
        save_profile(made, scratch / "reference.profile")
    elif step == "profile_window":
        base = load_profile(scratch / "reference.profile")
        started = time.perf_counter()
        window = profile(current, reference=base)
        save_profile(window, scratch / "window.profile")
    else:  # merge_drift
        base = load_profile(scratch / "reference.profile")
        window = load_profile(scratch / "window.profile")
        started = time.perf_counter()
        merged = window
        for _ in range(9):
            merged = merged.merge(window)
        result = drift_from_profiles(base, merged)
        extra["drifted"] = sorted(c["column"] for c in result["columns"] if c["drifted"])
    return {"step": step, "seconds": time.perf_counter() - started, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--scratch", type=Path, default=SCRATCH, help="where data is written")
    parser.add_argument("--worker", nargs=4, metavar=("STEP", "REF", "CUR", "SCRATCH"))
    args = parser.parse_args()
    if args.worker:
        step, reference, current, scratch = args.worker
        peers.emit(worker(step, Path(reference), Path(current), Path(scratch)))
        return

    reference, current = make_data(args.rows, args.scratch)
    runs: dict[str, list[dict[str, Any]]] = {step: [] for step in STEPS}
    for _ in range(args.repeats):
        for step in STEPS:  # profile before profile_window and merge_drift: they read it
            cmd = [sys.executable, __file__, "--worker", step, str(reference), str(current),
                   str(args.scratch)]
            runs[step].append(peers.run_measured(cmd))
    figures = {
        step: {"median_s": statistics.median(r["seconds"] for r in results),
               "values_s": [r["seconds"] for r in results],
               "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
               **{k: v for k, v in results[-1].items()
                  if k not in ("step", "seconds", "peak_rss_mb", "process_wall_s")}}
        for step, results in runs.items()
    }
    profile_s = figures["profile"]["median_s"]
    report = {
        "benchmark": "data_speed", "rows": args.rows, "columns": 25,
        "command": "python benchmarks/data_speed.py " + " ".join(sys.argv[1:]),
        "machine": peers.machine(), "tidal_source": peers.tidal_source_hash(),
        "versions": peers.package_versions(["pyarrow", "numpy", "datasketches", "scipy"]),
        "figures": figures,
        "target": {"profile_seconds_at_most": TARGET_SECONDS, "met": profile_s <= TARGET_SECONDS},
    }
    peers.print_table(
        f"Tidal data checks, {args.rows:,} rows x 25 columns (medians of {args.repeats})",
        ["step", "seconds", "peak MB", "notes"],
        [[step, f"{f['median_s']:.2f}", f"{f['median_peak_rss_mb']:.0f}",
          ", ".join(f"{k}={v}" for k, v in f.items()
                    if k not in ("median_s", "values_s", "median_peak_rss_mb"))]
         for step, f in figures.items()])
    print(f"target: profile in at most {TARGET_SECONDS:.0f} s -> "
          f"{'met' if report['target']['met'] else 'NOT met'} ({profile_s:.2f} s)")
    peers.write_results(args.output, report)


if __name__ == "__main__":
    main()
