"""Drift detection power and false alarms on real data: Tidal against Evidently 0.7.23.

Why: a drift monitor is only useful if it stays quiet when nothing changed and speaks up
when something did. The drift issue promises a column-level false-alarm rate of at most
5 % and a detection rate at least Evidently's on every kind of shift. This script measures
both tools on the same samples of two real datasets, with shifts injected in a controlled
way so the truth is known.

Data (see /work/shared/data/README.md):

- Elec2 (``elec2.csv.gz``), rows 17,520 onwards (days 365+, where the Victorian columns
  vary; before row 17,424 feat_4..feat_6 are constant), features feat_1..feat_6, all
  numeric (feat_1 is the half-hour slot, 48 values); ``target`` dropped. 27,792 rows.
- US census, Massachusetts 2015 (``us_census_ma_employment_2015_reference.parquet``),
  16 features: AGEP (age) numeric; SCHL (educational attainment, codes 1-24) is treated
  as an ordinal number, because it is ordered and the noise and mean-shift scenarios need
  a second numeric column; the other 14 coded columns (dictionary-encoded strings) are
  categorical. id, year, employed, prediction, predicted_probability dropped. 68,785 rows.

Draws: for each dataset, size (100, 1,000, 10,000 rows) and draw (50 by default, seeded),
the reference and the current sample are disjoint random rows of the same pool (same
period), so without an injected shift every flag is a false alarm. The current sample
then yields five variants:

- ``none``: unchanged (false-alarm rate);
- ``noise``: Gaussian noise with sd = 0.5 x the feature's pool sd added to the noise
  columns (Elec2 feat_2, feat_3, feat_6; census AGEP, SCHL);
- ``knockout``: a category disappears and its rows take other values of the same column,
  resampled from the current sample's own other values (census: the most frequent
  category of MAR and of RELP; Elec2 has no categorical column, so the half-hour slots
  0-5, 00:00-03:00, vanish from feat_1). Only the knocked-out column is rewritten, not
  whole rows, so the other columns stay exactly unshifted and their flags stay false
  alarms;
- ``mean_shift``: +0.5 x pool sd on the mean-shift columns (Elec2 feat_3, feat_4, feat_5;
  census AGEP, SCHL);
- ``missing``: 20 % of the values of three columns set to null (Elec2 feat_2, feat_4,
  feat_6; census AGEP, MAR, CIT). Evidently drops missing values before its tests, so this
  shift is invisible to it by design; Tidal also tests the share of missing values.

Figures, per dataset x size x variant x tool: detection rate = flagged shifted columns /
(draws x shifted columns); false-alarm rate (FAR) = flagged unshifted columns / (draws x
unshifted columns), where every column is unshifted in ``none``; dataset verdict rate =
share of draws whose report says the dataset drifted. FAR is also broken down by the test
that raised it, and per column.

Method: each draw is written once to one Parquet file under benchmarks/.scratch/drift_power/
(reference and the five currents, told apart by a ``_part`` column), so both tools see
the same values. Tidal runs in this process: ``compare(reference_df, current_df)`` on the
pandas frames read from that file (kinds inferred: float -> numeric, string ->
categorical). Evidently runs in its own venv (benchmarks/.peers/evidently-venv, created
when missing), one worker process per dataset x size, which reads the same files with
pandas and runs ``Report([DataDriftPreset()])`` with a ``DataDefinition`` naming the same
numeric and categorical columns; its per-column verdicts come from the ``ValueDrift``
metrics (see drift_speed.py). Seconds per report are recorded for both (Evidently's
interpreter start-up excluded). Results go to benchmarks/results/drift_power.json.

Usage:  python benchmarks/drift_power.py [--draws 50] [--sizes 100,1000,10000]
        [--datasets elec2,census] [--estimate] [--quick] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_speed import evidently_verdicts  # noqa: E402
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
RESULTS = HERE / "results" / "drift_power.json"
DATA = Path("/work/shared/data")
DEFAULT_PEER_VENV = PEERS_DIR / "evidently-venv"
PEER_PINS = {"evidently": "==0.7.23", "pandas": "<3", "pyarrow": ""}
DATA_VERSION = 1
SEED = 20261125
PART = "_part"

SCENARIOS = ["none", "noise", "knockout", "mean_shift", "missing"]
NOISE_SD = 0.5
MEAN_SHIFT_SD = 0.5
MISSING_SHARE = 0.2
ELEC2_FIRST_ROW = 17_520
ELEC2_KNOCKED_SLOTS = 6  # half-hour slots 0..5: 00:00-03:00

CENSUS_CATEGORICAL = ["MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY",
                      "DEAR", "DEYE", "DREM", "SEX", "RAC1P"]
DATASETS: dict[str, dict[str, Any]] = {
    "elec2": {
        "numeric": [f"feat_{i}" for i in range(1, 7)],
        "categorical": [],
        "shifted": {"none": [], "noise": ["feat_2", "feat_3", "feat_6"],
                    "knockout": ["feat_1"], "mean_shift": ["feat_3", "feat_4", "feat_5"],
                    "missing": ["feat_2", "feat_4", "feat_6"]},
    },
    "census": {
        "numeric": ["AGEP", "SCHL"],
        "categorical": CENSUS_CATEGORICAL,
        "shifted": {"none": [], "noise": ["AGEP", "SCHL"], "knockout": ["MAR", "RELP"],
                    "mean_shift": ["AGEP", "SCHL"], "missing": ["AGEP", "MAR", "CIT"]},
    },
}
DEFAULT_SIZES = [100, 1_000, 10_000]
QUICK_SIZES = [100, 1_500]
TARGET_FAR = 0.05
BUDGET_MINUTES = 25.0


# -- data ----------------------------------------------------------------------------------
def load_pool(name: str) -> dict[str, Any]:
    """The dataset's rows as numpy arrays: float64 for numeric, object (str) for categories."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    spec = DATASETS[name]
    if name == "elec2":
        table = pv.read_csv(DATA / "elec2.csv.gz").slice(ELEC2_FIRST_ROW)
    else:
        table = pq.read_table(DATA / "us_census_ma_employment_2015_reference.parquet")
    pool: dict[str, Any] = {}
    for column in spec["numeric"] + spec["categorical"]:
        array = table.column(column)
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        if column in spec["categorical"]:
            pool[column] = np.asarray(array.to_pylist(), dtype=object)
        else:  # SCHL's codes are text: the ordinal number is the code
            pool[column] = np.asarray(pc.cast(array, pa.float64()).to_numpy(), dtype=np.float64)
    return pool


def knocked_mask(dataset: str, column: str, values: Any, pool: dict[str, Any]) -> Any:
    """Rows whose value the knockout scenario removes."""
    import numpy as np

    if dataset == "elec2":
        return np.rint(values.astype(float) * 47) < ELEC2_KNOCKED_SLOTS
    labels, counts = np.unique(pool[column].astype(str), return_counts=True)
    return values == labels[np.argmax(counts)]


def variants(dataset: str, pool: dict[str, Any], ref_rows: Any, cur_rows: Any,
             rng: Any) -> dict[str, dict[str, Any]]:
    """The reference and the five current variants of one draw, column -> array."""
    import numpy as np

    spec = DATASETS[dataset]
    sd = {c: float(np.nanstd(pool[c])) for c in spec["numeric"]}
    n = len(cur_rows)
    base = {c: v[cur_rows] for c, v in pool.items()}
    parts: dict[str, dict[str, Any]] = {"reference": {c: v[ref_rows] for c, v in pool.items()},
                                        "none": base}
    noise = dict(base)
    for c in spec["shifted"]["noise"]:
        noise[c] = base[c] + rng.normal(0.0, NOISE_SD * sd[c], n)
    parts["noise"] = noise
    knockout = dict(base)
    for c in spec["shifted"]["knockout"]:
        values = base[c].copy()
        mask = knocked_mask(dataset, c, values, pool)
        others = values[~mask]
        if mask.any() and len(others):
            values[mask] = rng.choice(others, int(mask.sum()), replace=True)
        knockout[c] = values
    parts["knockout"] = knockout
    parts["mean_shift"] = {**base, **{c: base[c] + MEAN_SHIFT_SD * sd[c]
                                      for c in spec["shifted"]["mean_shift"]}}
    missing = dict(base)
    for c in spec["shifted"]["missing"]:
        values = base[c].copy() if c in spec["numeric"] else base[c].astype(object).copy()
        values[rng.choice(n, int(round(MISSING_SHARE * n)), replace=False)] = (
            np.nan if c in spec["numeric"] else None)
        missing[c] = values
    parts["missing"] = missing
    return parts


def write_draws(dataset: str, size: int, draws: int, folder: Path) -> dict[str, Any]:
    """One Parquet file per draw (reference + five currents), unless already there."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = DATASETS[dataset]
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == DATA_VERSION and manifest.get("draws", 0) >= draws:
            return {**manifest, "files": manifest["files"][:draws], "draws": draws}
    folder.mkdir(parents=True, exist_ok=True)
    pool = load_pool(dataset)
    pool_rows = len(next(iter(pool.values())))
    if 2 * size > pool_rows:
        raise ValueError(f"{dataset} has {pool_rows} rows, too few for two disjoint {size}")
    files = []
    columns = spec["numeric"] + spec["categorical"]
    types = {c: pa.float64() for c in spec["numeric"]} | {c: pa.string()
                                                         for c in spec["categorical"]}
    for draw in range(draws):
        rng = np.random.default_rng([SEED, list(DATASETS).index(dataset), size, draw])
        order = rng.permutation(pool_rows)
        parts = variants(dataset, pool, order[:size], order[size:2 * size], rng)
        arrays = {c: pa.array(np.concatenate([parts[p][c] for p in parts]), type=types[c],
                              from_pandas=True) for c in columns}
        arrays[PART] = pa.array(np.repeat(list(parts), size), type=pa.string())
        path = folder / f"draw{draw:03d}.parquet"
        pq.write_table(pa.table(arrays), path)
        files.append(str(path))
    manifest = {"version": DATA_VERSION, "dataset": dataset, "size": size, "draws": draws,
                "seed": SEED, "numeric": spec["numeric"], "categorical": spec["categorical"],
                "shifted": spec["shifted"], "files": files}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def split_parts(frame: Any) -> dict[str, Any]:
    """A draw file's frame -> {part: frame without the part column}."""
    return {part: group.drop(columns=PART).reset_index(drop=True)
            for part, group in frame.groupby(PART, sort=False)}


# -- contenders ------------------------------------------------------------------------------
def run_tidal(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Tidal's compare on every draw and variant, in this process."""
    import pandas as pd

    from tidal.data.drift import compare

    out = []
    for draw, path in enumerate(manifest["files"]):
        parts = split_parts(pd.read_parquet(path))
        for scenario in SCENARIOS:
            start = time.perf_counter()
            result = compare(parts["reference"], parts[scenario])
            seconds = time.perf_counter() - start
            out.append({"draw": draw, "scenario": scenario, "seconds": seconds,
                        "dataset_drift": bool(result["dataset_drift"]),
                        "flagged": [c["column"] for c in result["columns"] if c["drifted"]],
                        "tests": {c["column"]: _tidal_reason(c) for c in result["columns"]},
                        "skipped": result.get("skipped", [])})
    return out


def _tidal_reason(column: dict[str, Any]) -> str:
    """The test behind a column's verdict; "+missing" when the missing share drifted."""
    missing = column.get("missing") or {}
    return column["test"] + ("+missing" if missing.get("drifted") else "")


def worker_evidently(manifest_path: Path, limit: int | None) -> dict[str, Any]:
    """Evidently's default preset on every draw and variant of one dataset x size."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    manifest = json.loads(manifest_path.read_text())
    definition = DataDefinition(numerical_columns=manifest["numeric"],
                                categorical_columns=manifest["categorical"])
    out = []
    for draw, path in enumerate(manifest["files"][:limit]):
        parts = split_parts(pd.read_parquet(path))
        reference = Dataset.from_pandas(parts["reference"], data_definition=definition)
        for scenario in SCENARIOS:
            start = time.perf_counter()
            current = Dataset.from_pandas(parts[scenario], data_definition=definition)
            snapshot = Report([DataDriftPreset()]).run(current_data=current,
                                                      reference_data=reference)
            columns, _, share = evidently_verdicts(snapshot.dict())
            seconds = time.perf_counter() - start
            out.append({"draw": draw, "scenario": scenario, "seconds": seconds,
                        "dataset_drift": share >= 0.5,
                        "flagged": [c for c, v in columns.items() if v["drifted"]],
                        "tests": {c: v["test"] for c, v in columns.items()}})
    result_path = manifest_path.parent / "evidently_results.json"
    result_path.write_text(json.dumps(out))
    return {"results": str(result_path), "reports": len(out),
            "versions": package_versions(["evidently", "pandas", "pyarrow", "numpy", "scipy"])}


def run_evidently(python: str, manifest_path: Path,
                  limit: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    cmd = [python, str(Path(__file__).resolve()), "--worker", str(manifest_path)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    payload = run_measured(cmd, env={"DO_NOT_TRACK": "1"}, cwd=manifest_path.parent)
    return json.loads(Path(payload["results"]).read_text()), payload


# -- figures ---------------------------------------------------------------------------------
def rates(dataset: str, scenario: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection, false-alarm and dataset-verdict rates of one tool over the draws."""
    spec = DATASETS[dataset]
    features = spec["numeric"] + spec["categorical"]
    shifted = set(spec["shifted"][scenario])
    unshifted = [c for c in features if c not in shifted]
    hits = sum(len(shifted & set(r["flagged"])) for r in reports)
    alarms = sum(len(set(unshifted) & set(r["flagged"])) for r in reports)
    draws = len(reports)
    by_test: dict[str, dict[str, int]] = {}
    for r in reports:
        for column in unshifted:
            test = r["tests"].get(column, "?")
            entry = by_test.setdefault(test, {"flagged": 0, "tested": 0})
            entry["tested"] += 1
            entry["flagged"] += column in r["flagged"]
    per_column = {c: sum(c in r["flagged"] for r in reports) / draws for c in features}
    tests_used = {c: dict(Counter(r["tests"].get(c, "?") for r in reports)) for c in features}
    return {
        "draws": draws,
        "detection": hits / (draws * len(shifted)) if shifted else None,
        "false_alarm": alarms / (draws * len(unshifted)) if unshifted else None,
        "dataset_drift": sum(r["dataset_drift"] for r in reports) / draws,
        "false_alarm_by_test": {t: {**v, "rate": v["flagged"] / v["tested"]}
                                for t, v in sorted(by_test.items())},
        "flag_rate_by_column": per_column,
        "tests_by_column": tests_used,
        "median_report_s": statistics.median(r["seconds"] for r in reports),
    }


def summarize(dataset: str, size: int, tidal: list[dict[str, Any]],
              peer: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    rows = []
    for scenario in SCENARIOS:
        t = rates(dataset, scenario, [r for r in tidal if r["scenario"] == scenario])
        e = rates(dataset, scenario, [r for r in peer if r["scenario"] == scenario]) \
            if peer else None
        far_ok = t["false_alarm"] is None or t["false_alarm"] <= TARGET_FAR
        det_ok = None
        if e is not None and t["detection"] is not None:
            det_ok = t["detection"] >= e["detection"]
        rows.append({"dataset": dataset, "rows": size, "scenario": scenario,
                     "shifted_columns": DATASETS[dataset]["shifted"][scenario],
                     "tidal": t, "evidently": e,
                     "target_far_met": far_ok, "target_detection_met": det_ok})
    return rows


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_rows(rows: list[dict[str, Any]]) -> None:
    columns = ["rows / shift", "shifted", "detect Tidal", "detect Evid.", "FAR Tidal",
               "FAR Evid.", "dataset Tidal", "dataset Evid.", "FAR<=5%", "detect>=Evid."]
    for dataset in DATASETS:
        lines = []
        for r in (r for r in rows if r["dataset"] == dataset):
            t, e = r["tidal"], r["evidently"] or {}
            lines.append([f"{r['rows']:,} {r['scenario']}", ",".join(r["shifted_columns"]) or "-",
                          pct(t["detection"]), pct(e.get("detection")),
                          pct(t["false_alarm"]), pct(e.get("false_alarm")),
                          pct(t["dataset_drift"]), pct(e.get("dataset_drift")),
                          "yes" if r["target_far_met"] else "NO",
                          {True: "yes", False: "NO", None: "-"}[r["target_detection_met"]]])
        if lines:
            draws = next(r["tidal"]["draws"] for r in rows if r["dataset"] == dataset)
            print_table(f"{dataset}: detection and false alarms over {draws} draws "
                        "(column level; dataset = share of draws with dataset drift)",
                        columns, lines)


def print_far_sources(rows: list[dict[str, Any]]) -> None:
    """Which test raises the false alarms, wherever a tool's FAR is above the target."""
    for r in rows:
        for tool in ("tidal", "evidently"):
            figures = r[tool]
            if figures and figures["false_alarm"] is not None and \
                    figures["false_alarm"] > TARGET_FAR:
                causes = ", ".join(f"{test} {v['flagged']}/{v['tested']} ({pct(v['rate'])})"
                                   for test, v in figures["false_alarm_by_test"].items()
                                   if v["flagged"])
                worst = sorted(figures["flag_rate_by_column"].items(), key=lambda kv: -kv[1])
                worst_text = ", ".join(f"{c} {pct(v)}" for c, v in worst[:4]
                                       if c not in r["shifted_columns"])
                print(f"  FAR {pct(figures['false_alarm'])} > 5%: {tool}, {r['dataset']} "
                      f"{r['rows']:,} rows, {r['scenario']}: by test {causes}; "
                      f"top columns {worst_text}")


# -- parent ----------------------------------------------------------------------------------
def estimate(peer_python: str, manifests: dict[tuple[str, int], Path], draws: int) -> float:
    """Seconds per Evidently report at each dataset x size (one draw each), and the
    projected minutes of the whole Evidently side."""
    total = 0.0
    for (dataset, size), path in manifests.items():
        reports, payload = run_evidently(peer_python, path, limit=1)
        per_report = statistics.median(r["seconds"] for r in reports)
        projected = per_report * draws * len(SCENARIOS) + payload["process_wall_s"]
        total += projected
        print(f"estimate: Evidently {dataset} {size:,} rows: {per_report:.2f} s per report "
              f"-> {projected / 60:.1f} min for {draws} draws", flush=True)
    print(f"estimate: the Evidently side takes about {total / 60:.1f} min in all "
          f"(plus Tidal, which is faster)", flush=True)
    return total / 60


def main_parent(args: argparse.Namespace) -> int:
    draws = args.draws or (3 if args.quick else 50)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    datasets = args.datasets or list(DATASETS)
    scratch: Path = args.scratch
    peer_python: str | None = None
    peer_error: str | None = None
    if not args.skip_peer:
        try:
            peer_python = str(ensure_venv(args.peer_venv, PEER_PINS))
        except (RuntimeError, OSError) as exc:
            peer_error = f"{type(exc).__name__}: {exc}"
            print(f"Evidently unavailable, running Tidal only: {peer_error}", file=sys.stderr)

    manifests: dict[tuple[str, int], Path] = {}
    for dataset in datasets:
        for size in sizes:
            folder = scratch / dataset / f"n{size}"
            write_draws(dataset, size, draws, folder)
            manifests[(dataset, size)] = folder / "manifest.json"
    if args.estimate or (peer_python and not args.quick):
        if peer_python:
            minutes = estimate(peer_python, manifests, draws)
            if minutes > BUDGET_MINUTES:
                suggested = max(5, int(draws * BUDGET_MINUTES / minutes))
                print(f"WARNING: that is over {BUDGET_MINUTES:g} minutes; pass --draws "
                      f"{suggested} for a shorter run", flush=True)
        if args.estimate:
            return 0

    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    peer_versions: dict[str, Any] | None = None
    peer_process: dict[str, Any] = {}
    for (dataset, size), path in manifests.items():
        manifest = json.loads(path.read_text())
        manifest["files"] = manifest["files"][:draws]
        started = time.perf_counter()
        tidal = run_tidal(manifest)
        print(f"{dataset} {size:,} rows: Tidal {len(tidal)} reports in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        peer = None
        if peer_python:
            started = time.perf_counter()
            try:
                peer, payload = run_evidently(peer_python, path, limit=draws)
                peer_versions = payload["versions"]
                peer_process[f"{dataset}/{size}"] = {
                    "peak_rss_mb": payload["peak_rss_mb"],
                    "process_wall_s": payload["process_wall_s"]}
                print(f"{dataset} {size:,} rows: Evidently {len(peer)} reports in "
                      f"{time.perf_counter() - started:.1f} s", flush=True)
            except RuntimeError as exc:
                peer_error, peer_python = str(exc), None
                print(f"Evidently worker failed, continuing Tidal only: {exc}", file=sys.stderr)
        rows += summarize(dataset, size, tidal, peer)
        raw[f"{dataset}/{size}"] = {
            "tidal": [{k: r[k] for k in ("draw", "scenario", "seconds", "dataset_drift",
                                         "flagged")} for r in tidal],
            "evidently": None if peer is None else [
                {k: r[k] for k in ("draw", "scenario", "seconds", "dataset_drift", "flagged")}
                for r in peer]}

    versions = {**package_versions(["tidal-ml", "pandas", "pyarrow", "numpy", "scipy"]),
                "tidal_source": tidal_source_hash(),
                "evidently": (peer_versions or {}).get("evidently"),
                "evidently_venv": peer_versions}
    mach = machine()
    print(f"Tidal {versions['tidal-ml']} (source {versions['tidal_source']}) vs Evidently "
          f"{versions['evidently']} default preset; machine: nproc {mach['nproc']}, "
          f"{mach['cpu_model']}; {draws} draws per dataset x size")
    print_rows(rows)
    print_far_sources(rows)
    far_fail = [r for r in rows if not r["target_far_met"]]
    det_fail = [r for r in rows if r["target_detection_met"] is False]
    print(f"targets: Tidal FAR <= 5% on every row: {'met' if not far_fail else 'NOT met'} "
          f"({len(far_fail)} rows above); Tidal detection >= Evidently's on every shift: "
          f"{'met' if not det_fail else 'NOT met'} ({len(det_fail)} rows below)")
    for r in det_fail:
        print(f"  detection below Evidently: {r['dataset']} {r['rows']:,} {r['scenario']}: "
              f"Tidal {pct(r['tidal']['detection'])}, "
              f"Evidently {pct(r['evidently']['detection'])}")
    timing = {f"{r['dataset']}/{r['rows']}": {
        "tidal_median_report_s": r["tidal"]["median_report_s"],
        "evidently_median_report_s": r["evidently"] and r["evidently"]["median_report_s"]}
        for r in rows if r["scenario"] == "none"}

    report = {
        "benchmark": "drift_power",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/drift_power.py", *sys.argv[1:]]),
        "config": {"draws": draws, "sizes": sizes, "datasets": datasets, "seed": SEED,
                   "scenarios": SCENARIOS, "noise_sd": NOISE_SD, "mean_shift_sd": MEAN_SHIFT_SD,
                   "missing_share": MISSING_SHARE, "elec2_first_row": ELEC2_FIRST_ROW,
                   "elec2_knocked_slots": list(range(ELEC2_KNOCKED_SLOTS)),
                   "datasets_spec": {d: DATASETS[d] for d in datasets},
                   "peer_pins": PEER_PINS, "quick": args.quick},
        "method": __doc__.split("Method:", 1)[1].split("Usage:", 1)[0].strip().replace("\n", " "),
        "machine": mach,
        "versions": versions,
        "peer_error": peer_error,
        "evidently_processes": peer_process,
        "targets": {"false_alarm": f"<= {TARGET_FAR:.0%} on every row",
                    "false_alarm_met": not far_fail,
                    "detection": ">= Evidently's on every shift",
                    "detection_met": None if not any(r["evidently"] for r in rows)
                    else not det_fail},
        "seconds_per_report": timing,
        "results": rows,
        "raw": raw,
    }
    out: Path = args.output or RESULTS
    write_results(out, report, compact=("results", "raw"))
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=None, help="draws per dataset x size "
                        "(default 50; 3 if --quick)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=None, help="rows per sample (default 100,1000,10000)")
    parser.add_argument("--datasets", type=lambda s: [x for x in s.split(",") if x],
                        default=None, help="elec2,census (default both)")
    parser.add_argument("--estimate", action="store_true",
                        help="only time one Evidently draw per dataset x size and project")
    parser.add_argument("--quick", action="store_true",
                        help="3 draws at 100 and 1,500 rows, no estimate: a smoke run")
    parser.add_argument("--skip-peer", action="store_true", help="Tidal only")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV)
    parser.add_argument("--scratch", type=Path, default=SCRATCH_DIR / "drift_power",
                        help="where the draws are written")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        emit(worker_evidently(args.worker, args.limit))
        return 0
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
