"""Drift report speed and memory: Tidal against Evidently 0.7.23's default data-drift preset.

Why: the drift issue promises that ``tidal data drift`` gives Evidently's verdicts at least
20x faster and in at most a fifth of Evidently's peak memory on a 1M-row table. This
script measures exactly that, side by side on this machine, and checks on the way that
both tools flag the same columns (a fast report with other verdicts would prove nothing).

Data: synthetic, seeded, one pair of Parquet files (reference, current; same number of
rows) per size under benchmarks/.scratch/drift_speed/, written once and reused. 20 numeric
float64 columns (normal, log-normal, uniform and gamma shapes, each with its own location
and scale) and 5 string columns with 5-20 categories (Zipf-like frequencies). In the
current file, n00-n02 are shifted by +0.3 reference standard deviations, n03-n05 are
stretched 1.5x about their mean, and c0 (8 categories, frequencies reversed) and c1 (15
categories, frequencies rotated by 4) change their frequencies; the other 12 numeric and 3
string columns are drawn from the same distribution as the reference. The shifts are
large enough (normed Wasserstein 0.3-0.45, Jensen-Shannon distance >= 0.2) that both
tools must flag exactly these 8 columns, and the null columns are well below the 0.1
thresholds (or the p < 0.05 tests at 1,000 rows or fewer).

Method: each report runs in a fresh subprocess, wrapped by ``/usr/bin/time -v`` for its
peak resident set (the whole process: interpreter, imports and work). The timed span,
``time.perf_counter`` inside the worker, starts before the Parquet files are read and ends
once the result dict exists, so reading is part of the work for both. Evidently reads both
files with ``pandas.read_parquet`` and runs ``Report([DataDriftPreset()])`` with a
``DataDefinition`` naming the 20 numeric and 5 categorical columns, then ``snapshot.dict()``.
Tidal runs ``tidal.data.drift.compare(ref_path, cur_path)``, which infers the same kinds
from the Parquet schema. Imports are outside the timed span (their cost shows in the
process wall time and in the memory figure). Evidently runs in its own venv under
benchmarks/.peers/evidently-venv (created and pip-installed by this script when missing),
Tidal with this interpreter. Contenders alternate (the first of each pair alternates
too); figures are medians over the repeats. Evidently's per-column verdicts are read from
its ``ValueDrift`` metrics (value against the method's threshold with Evidently's own
comparison: p <= t for K-S, p < t for chi-square and Z, distance >= t otherwise) and
checked against its ``DriftedColumnsCount``. Results go to
benchmarks/results/drift_speed.json.

Usage:  python benchmarks/drift_speed.py [--sizes 10000,100000,1000000:2] [--repeats 3]
        [--quick] [--skip-peer] [--profile SIZE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402  (the workers run this file from the peer's venv too)
    PEERS_DIR,
    SCRATCH_DIR,
    emit,
    ensure_venv,
    machine,
    package_versions,
    print_table,
    run_measured,
    tidal_source_hash,
    write_results,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "drift_speed.json"
DEFAULT_PEER_VENV = PEERS_DIR / "evidently-venv"
PEER_PINS = {"evidently": "==0.7.23", "pandas": "<3", "pyarrow": ""}
DATA_VERSION = 1
SEED = 20261124

NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORIES = {"c0": 8, "c1": 15, "c2": 5, "c3": 12, "c4": 20}
CATEGORICAL = list(CATEGORIES)
MEAN_SHIFTED = ["n00", "n01", "n02"]
SCALED = ["n03", "n04", "n05"]
FREQ_SHIFTED = ["c0", "c1"]
SHIFTED = MEAN_SHIFTED + SCALED + FREQ_SHIFTED
MEAN_SHIFT_SD = 0.3
SCALE_FACTOR = 1.5

DEFAULT_SIZES = [10_000, 100_000, 1_000_000]
QUICK_SIZES = [2_000]
TARGET_SPEED = 20.0
TARGET_MEMORY = 0.2
#: Evidently's per-column verdict rule, by the method name its result carries
P_VALUE_LE = {"K-S p_value"}
P_VALUE_LT = {"chi-square p_value", "Z-test p_value"}


# -- data ----------------------------------------------------------------------------------
def _zipf(k: int) -> Any:
    import numpy as np

    weights = 1.0 / np.arange(1, k + 1) ** 0.9
    return weights / weights.sum()


def _category_probs(name: str, shifted: bool) -> Any:
    """Reference frequencies are Zipf-like; c0 reverses them, c1 rotates them by 4."""
    import numpy as np

    probs = _zipf(CATEGORIES[name])
    if shifted and name == "c0":
        return probs[::-1].copy()
    if shifted and name == "c1":
        return np.roll(probs, 4)
    return probs


def _numeric(index: int, values_rng: Any, n: int) -> tuple[Any, float, float]:
    """One numeric column's sample of ``n`` values, with the true mean and sd.

    The shape cycles normal / log-normal / uniform / gamma by column index; location and
    scale come from a generator seeded by the column index alone, so the reference and
    the current file share them while their values come from ``values_rng``.
    """
    import numpy as np

    params = np.random.default_rng([SEED, index])
    loc, scale = float(params.uniform(-50, 50)), float(params.uniform(0.5, 20))
    shape = index % 4
    if shape == 0:
        return values_rng.normal(loc, scale, n), loc, scale
    if shape == 1:
        sigma = 0.5
        mean = float(np.exp(sigma**2 / 2))
        sd = float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(sigma**2)))
        return loc + scale * values_rng.lognormal(0.0, sigma, n), loc + scale * mean, scale * sd
    if shape == 2:
        return values_rng.uniform(loc, loc + scale, n), loc + scale / 2, scale / float(np.sqrt(12))
    k = 2.0
    return loc + values_rng.gamma(k, scale, n), loc + k * scale, float(np.sqrt(k)) * scale


def generate(n: int, folder: Path) -> dict[str, Any]:
    """Write reference.parquet and current.parquet with ``n`` rows each (seeded), unless
    the folder already holds this version of them. Returns the data's description."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    meta_path = folder / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == DATA_VERSION and meta.get("rows") == n:
            return meta
    folder.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {"reference": {}, "current": {}}
    for role, role_id in (("reference", 1), ("current", 2)):
        rng = np.random.default_rng([SEED, n, role_id])
        for i, name in enumerate(NUMERIC):
            values, mean, sd = _numeric(i, rng, n)
            if role == "current" and name in MEAN_SHIFTED:
                values = values + MEAN_SHIFT_SD * sd
            elif role == "current" and name in SCALED:
                values = mean + SCALE_FACTOR * (values - mean)
            tables[role][name] = pa.array(values, type=pa.float64())
        for name, k in CATEGORIES.items():
            probs = _category_probs(name, role == "current" and name in FREQ_SHIFTED)
            labels = pa.array([f"{name}_v{j:02d}" for j in range(k)], type=pa.string())
            codes = rng.choice(k, size=n, p=probs)
            tables[role][name] = pc.take(labels, pa.array(codes))
    for role, columns in tables.items():
        pq.write_table(pa.table(columns), folder / f"{role}.parquet")
    meta = {"version": DATA_VERSION, "rows": n, "seed": SEED, "numeric": NUMERIC,
            "categorical": CATEGORICAL, "shifted": SHIFTED,
            "shifts": {f"mean +{MEAN_SHIFT_SD} sd": MEAN_SHIFTED,
                       f"scale x{SCALE_FACTOR} about the mean": SCALED,
                       "category frequencies changed": FREQ_SHIFTED},
            "js_distance_of_designed_shift": _designed_js()}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _designed_js() -> dict[str, float]:
    """Jensen-Shannon distance (natural log, as Evidently) of the designed category shifts."""
    from scipy.spatial.distance import jensenshannon

    return {name: float(jensenshannon(_category_probs(name, False), _category_probs(name, True)))
            for name in FREQ_SHIFTED}


# -- workers (run in subprocesses) ---------------------------------------------------------
def worker_tidal(ref: Path, cur: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Tidal's full drift comparison of the two Parquet files (it reads them itself)."""
    from tidal.data.drift import compare

    source = tidal_source_hash()
    start = time.perf_counter()
    result = compare(str(ref), str(cur))
    seconds = time.perf_counter() - start
    columns = {c["column"]: {"test": c["test"], "statistic": c["statistic"],
                             "p_value": c.get("p_value"), "threshold": c["threshold"],
                             "drifted": bool(c["drifted"])} for c in result["columns"]}
    return {"tool": "tidal", "seconds": seconds, "columns": columns,
            "dataset_drift": bool(result["dataset_drift"]),
            "drifted_count": int(result["number_of_drifted_columns"]),
            "versions": {**package_versions(["tidal-ml", "pyarrow", "numpy", "scipy"]),
                         "tidal_source": source}}


def worker_evidently(ref: Path, cur: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Evidently's default data-drift preset on the two Parquet files, read with pandas."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    reference = pd.read_parquet(ref)
    current = pd.read_parquet(cur)
    definition = DataDefinition(numerical_columns=cfg["numeric"],
                                categorical_columns=cfg["categorical"])
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition))
    result = snapshot.dict()
    seconds = time.perf_counter() - start
    columns, count, share = evidently_verdicts(result)
    return {"tool": "evidently", "seconds": seconds, "columns": columns,
            "dataset_drift": share >= 0.5, "drifted_count": count,
            "versions": package_versions(["evidently", "pandas", "pyarrow", "numpy", "scipy"])}


def evidently_verdicts(result: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], int, float]:
    """Per-column verdicts from an Evidently 0.7 snapshot dict, and its drifted count/share.

    The snapshot carries each column's statistic, method and threshold but not the
    boolean, so the verdict is recomputed with Evidently's own comparison for that method,
    then checked against the preset's ``DriftedColumnsCount`` (so a wrong rule fails loudly).
    """
    columns: dict[str, dict[str, Any]] = {}
    count, share = -1, -1.0
    for metric in result["metrics"]:
        config = metric["config"]
        kind = config.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            count, share = int(metric["value"]["count"]), float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            method, threshold = config["method"], float(config["threshold"])
            value = float(metric["value"])
            if method in P_VALUE_LE:
                drifted = value <= threshold
            elif method in P_VALUE_LT:
                drifted = value < threshold
            else:
                drifted = value >= threshold
            is_p = method in P_VALUE_LE | P_VALUE_LT
            columns[config["column"]] = {"test": method, "statistic": value,
                                         "p_value": value if is_p else None,
                                         "threshold": threshold, "drifted": bool(drifted)}
    flagged = sum(c["drifted"] for c in columns.values())
    if flagged != count:
        raise AssertionError(f"Evidently verdicts recomputed: {flagged} columns drifted, "
                             f"its DriftedColumnsCount says {count}")
    return columns, count, share


WORKERS = {"tidal": worker_tidal, "evidently": worker_evidently}


# -- parent ----------------------------------------------------------------------------------
def run_one(python: str, kind: str, folder: Path) -> dict[str, Any]:
    cfg = {"numeric": NUMERIC, "categorical": CATEGORICAL}
    cmd = [python, str(Path(__file__).resolve()), "--worker", kind,
           "--ref", str(folder / "reference.parquet"), "--cur", str(folder / "current.parquet"),
           "--config", json.dumps(cfg)]
    env = {"DO_NOT_TRACK": "1"}
    return run_measured(cmd, env=env, cwd=folder)


def disagreements(tidal: dict[str, Any], peer: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns whose verdicts differ, with both tools' tests and statistics."""
    out = []
    for name, t in tidal["columns"].items():
        e = peer["columns"].get(name)
        if e is None or e["drifted"] != t["drifted"]:
            out.append({"column": name, "tidal": t, "evidently": e})
    for name in set(peer["columns"]) - set(tidal["columns"]):
        out.append({"column": name, "tidal": None, "evidently": peer["columns"][name]})
    return out


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(size: int, tidal: list[dict[str, Any]], peer: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians, ratios and the column agreement for one size."""
    t_s, e_s = median(tidal, "seconds"), median(peer, "seconds")
    t_mb, e_mb = median(tidal, "peak_rss_mb"), median(peer, "peak_rss_mb")
    flagged_t = sorted(c for c, v in tidal[0]["columns"].items() if v["drifted"])
    flagged_e = sorted(c for c, v in peer[0]["columns"].items() if v["drifted"]) if peer else None
    diff = disagreements(tidal[0], peer[0]) if peer else None
    return {
        "rows": size,
        "tidal": {"median_s": t_s, "values_s": [r["seconds"] for r in tidal],
                  "median_peak_rss_mb": t_mb, "peak_rss_mb": [r["peak_rss_mb"] for r in tidal],
                  "median_process_wall_s": median(tidal, "process_wall_s")},
        "evidently": None if not peer else {
            "median_s": e_s, "values_s": [r["seconds"] for r in peer],
            "median_peak_rss_mb": e_mb, "peak_rss_mb": [r["peak_rss_mb"] for r in peer],
            "median_process_wall_s": median(peer, "process_wall_s")},
        "speed_ratio_evidently_over_tidal": e_s / t_s if e_s and t_s else None,
        "memory_ratio_tidal_over_evidently": t_mb / e_mb if e_mb and t_mb else None,
        "tidal_flagged": flagged_t,
        "evidently_flagged": flagged_e,
        "designed_shift": SHIFTED,
        "tidal_matches_design": flagged_t == sorted(SHIFTED),
        "same_columns_flagged": None if diff is None else not diff,
        "disagreements": diff,
        "tidal_verdicts_stable": all(
            [c for c, v in r["columns"].items() if v["drifted"]] ==
            [c for c, v in tidal[0]["columns"].items() if v["drifted"]] for r in tidal),
    }


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def print_rows(rows: list[dict[str, Any]], versions: dict[str, Any]) -> None:
    columns = ["rows", "Evidently s", "Tidal s", "speed (Evid./Tidal)", "Evidently MB",
               "Tidal MB", "memory (Tidal/Evid.)", "same columns flagged"]
    lines = []
    for r in rows:
        e = r["evidently"] or {}
        lines.append([f"{r['rows']:,}", fmt_s(e.get("median_s")), fmt_s(r["tidal"]["median_s"]),
                      fmt(r["speed_ratio_evidently_over_tidal"], "{:.1f}x"),
                      fmt(e.get("median_peak_rss_mb"), "{:.0f}"),
                      fmt(r["tidal"]["median_peak_rss_mb"], "{:.0f}"),
                      fmt(r["memory_ratio_tidal_over_evidently"], "{:.2f}"),
                      {True: "yes", False: "NO", None: "-"}[r["same_columns_flagged"]]])
    print_table(f"Drift report: Tidal {versions.get('tidal-ml')} vs Evidently "
                f"{versions.get('evidently')} (default preset), 20 numeric + 5 categorical",
                columns, lines)
    for r in rows:
        for d in r["disagreements"] or []:
            t, e = d["tidal"] or {}, d["evidently"] or {}
            print(f"  {r['rows']:,} rows, column {d['column']}: "
                  f"Tidal {t.get('test')} = {t.get('statistic')} (drifted {t.get('drifted')}), "
                  f"Evidently {e.get('test')} = {e.get('statistic')} "
                  f"(drifted {e.get('drifted')})")
        if not r["tidal_matches_design"]:
            print(f"  {r['rows']:,} rows: Tidal flagged {r['tidal_flagged']}, "
                  f"designed shift is {sorted(SHIFTED)}")


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets are judged at the largest size that ran against Evidently."""
    judged = [r for r in rows if r["evidently"]]
    if not judged:
        return {"judged_at_rows": None}
    r = max(judged, key=lambda row: row["rows"])
    speed, memory = r["speed_ratio_evidently_over_tidal"], r["memory_ratio_tidal_over_evidently"]
    return {"judged_at_rows": r["rows"],
            "speed": {"target": f">= {TARGET_SPEED:g}x", "value": speed,
                      "met": speed is not None and speed >= TARGET_SPEED},
            "memory": {"target": f"<= {TARGET_MEMORY:g} of Evidently's peak", "value": memory,
                       "met": memory is not None and memory <= TARGET_MEMORY},
            "same_columns_flagged": r["same_columns_flagged"],
            "note": "" if r["rows"] >= 1_000_000 else
            "the targets are stated at 1M rows; this run's largest size is smaller"}


def profile_tidal(size: int, scratch: Path, top: int) -> None:
    """cProfile of one Tidal comparison at ``size`` rows (in this process), sorted by
    cumulative and by own time: what dominates Tidal's time when a target is missed."""
    import cProfile
    import pstats

    from tidal.data.drift import compare

    folder = scratch / f"n{size}"
    generate(size, folder)
    profiler = cProfile.Profile()
    profiler.enable()
    compare(str(folder / "reference.parquet"), str(folder / "current.parquet"))
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main_parent(args: argparse.Namespace) -> int:
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    plan = [(rows, reps or repeats) for rows, reps in
            (args.sizes or [(n, None) for n in (QUICK_SIZES if args.quick else DEFAULT_SIZES)])]
    sizes = [rows for rows, _ in plan]
    scratch: Path = args.scratch
    if args.profile:
        profile_tidal(args.profile, scratch, 30)
        return 0
    peer_python: str | None = None
    peer_error: str | None = None
    if not args.skip_peer:
        try:
            peer_python = str(ensure_venv(args.peer_venv, PEER_PINS))
        except (RuntimeError, OSError) as exc:
            peer_error = f"{type(exc).__name__}: {exc}"
            print(f"Evidently unavailable, running Tidal only: {peer_error}", file=sys.stderr)

    rows, raw, data = [], {}, {}
    for size, size_repeats in plan:
        folder = scratch / f"n{size}"
        started = time.perf_counter()
        data[size] = generate(size, folder)
        print(f"{size:,} rows: data ready in {folder} ({time.perf_counter() - started:.1f} s)",
              flush=True)
        tidal: list[dict[str, Any]] = []
        peer: list[dict[str, Any]] = []
        for rep in range(size_repeats):
            order = ["tidal", "evidently"] if rep % 2 == 0 else ["evidently", "tidal"]
            for kind in order:
                if kind == "evidently" and not peer_python:
                    continue
                python = sys.executable if kind == "tidal" else str(peer_python)
                run = run_one(python, kind, folder)
                (tidal if kind == "tidal" else peer).append(run)
                print(f"{size:,} rows, rep {rep + 1}/{size_repeats}: {kind:9s} "
                      f"{run['seconds']:8.2f} s (process {run['process_wall_s']:.1f} s), "
                      f"peak {run['peak_rss_mb']:.0f} MB, {run['drifted_count']} columns drifted",
                      flush=True)
        rows.append(summarize(size, tidal, peer))
        raw[str(size)] = {"tidal": tidal, "evidently": peer}

    all_tidal = [r for runs in raw.values() for r in runs["tidal"]]
    all_peer = [r for runs in raw.values() for r in runs["evidently"]]
    sources = sorted({r["versions"]["tidal_source"] for r in all_tidal})
    if len(sources) > 1:
        print(f"WARNING: the tidal source changed during the benchmark: {sources}",
              file=sys.stderr)
    versions = {**all_tidal[0]["versions"],
                "evidently": all_peer[0]["versions"]["evidently"] if all_peer else None,
                "evidently_venv": all_peer[0]["versions"] if all_peer else None}
    mach = machine()
    print(f"machine: nproc {mach['nproc']}, {mach['cpu_model']}; medians of "
          f"{', '.join(f'{n:,}: {k}' for n, k in plan)} alternating runs per contender; "
          f"python {versions['python']}, pyarrow {versions['pyarrow']}; "
          f"Evidently venv: {versions['evidently_venv']}")
    print_rows(rows, versions)
    goal = targets(rows)
    if goal.get("judged_at_rows"):
        print(f"targets at {goal['judged_at_rows']:,} rows: speed {goal['speed']['target']}: "
              f"{fmt(goal['speed']['value'], '{:.1f}x')} "
              f"({'met' if goal['speed']['met'] else 'NOT met'}); memory "
              f"{goal['memory']['target']}: {fmt(goal['memory']['value'], '{:.2f}')} "
              f"({'met' if goal['memory']['met'] else 'NOT met'}). {goal['note']}")

    report = {
        "benchmark": "drift_speed",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/drift_speed.py", *sys.argv[1:]]),
        "config": {"sizes": sizes, "repeats": dict((str(n), k) for n, k in plan),
                   "quick": args.quick,
                   "peer_pins": PEER_PINS},
        "method": __doc__.split("Method:", 1)[1].split("Usage:", 1)[0].strip().replace("\n", " "),
        "data": {str(k): v for k, v in data.items()},
        "machine": mach,
        "versions": versions,
        "tidal_sources_seen": sources,
        "peer_error": peer_error,
        "targets": goal,
        "results": rows,
        "raw": raw,
    }
    out: Path = args.output or RESULTS
    write_results(out, report)
    print(f"wrote {out}")
    return 0


def parse_sizes(text: str) -> list[tuple[int, int | None]]:
    """``10000,100000,1000000:2`` -> sizes, each with its own repeat count when given."""
    sizes: list[tuple[int, int | None]] = []
    for part in text.replace("_", "").split(","):
        if part:
            rows, _, reps = part.partition(":")
            sizes.append((int(float(rows)), int(reps) if reps else None))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help="rows per table, comma-separated, each optionally with its own "
                        "repeat count as ROWS:REPEATS (default 10000,100000,1000000)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="alternating runs per contender and size (default 3; 1 if --quick)")
    parser.add_argument("--quick", action="store_true", help="2,000 rows, one run: a smoke run")
    parser.add_argument("--skip-peer", action="store_true", help="Tidal only")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV)
    parser.add_argument("--scratch", type=Path, default=SCRATCH_DIR / "drift_speed",
                        help="where the generated Parquet files are kept")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    parser.add_argument("--profile", type=int, default=None, metavar="ROWS",
                        help="only cProfile one Tidal comparison at ROWS rows and print it")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cur", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--config", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        emit(WORKERS[args.worker](args.ref, args.cur, json.loads(args.config)))
        return 0
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
