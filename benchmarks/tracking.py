"""Experiment tracking: Tidal against MLflow 3.17, both on SQLite, side by side.

Why: the tracking issue promises that logging and searching runs is at least 10x faster
than MLflow on the same backend (SQLite), and that a filtered search over 10,000 runs
answers in under 50 ms. This script measures exactly those claims, on this machine, in
one run, so the ratios mean something on a shared, noisy box (see
/work/shared/BENCHMARKING.md).

What is measured (each contender through its normal user API):

1. create N runs (default 1,000) with 10 params and 10 metrics each, in one experiment.
   MLflow: ``mlflow.start_run()`` + ``log_params`` + ``log_metrics``.
   Tidal:  ``with project.start_run("bench") as run: run.log_params(); run.log_metrics()``.
2. log P metric points (default 100,000) to one run, from start of the run to its end.
   MLflow: ``MlflowClient().log_batch`` in batches of 1,000 (its documented maximum).
   Tidal:  ``run.log_metric("loss", value, step=i)`` P times, then the run ends (flushes).
3. search the runs of (1) with ``metrics.m0 > 0.5 and params.p0 = 'a'``, up to 1,000
   results; the first (cold) call is reported apart, the figure is the median of warm
   repeats. Both tools must return the same number of runs (checked against the count
   computed from the generated data).
4. Tidal only: the same filter over 10,000 runs (a separate project), top 100 ordered by
   ``metrics.m1 desc`` (target < 50 ms), and the 1,000-result variant; the order is
   checked against the generated data.

Method: every contender's workload runs in a fresh subprocess with a fresh scratch store.
Tidal runs with this interpreter; MLflow with its own venv under benchmarks/.peers/
(created and pip-installed by this script when missing; never in Tidal's environment).
Times are ``time.perf_counter`` inside the subprocess around the work only: interpreter
start and imports are excluded; opening the store and creating its schema is a separate
"setup" figure, excluded from workloads 1-3. Creating each experiment is inside the
workload that uses it. The generated params/metrics/values are built before the clock
starts. Contenders alternate (Tidal, MLflow, Tidal, MLflow ...); figures are medians
over the repeats. Results go to benchmarks/results/tracking.json.

Usage:  python benchmarks/tracking.py [--repeats 3] [--quick] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (shared with the drift benchmarks)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "tracking.json"
DEFAULT_PEER_VENV = HERE / ".peers" / "mlflow-venv"
MLFLOW_SPEC = "mlflow==3.17.*"
MARKER = "BENCH-RESULT "

FILTER = "metrics.m0 > 0.5 and params.p0 = 'a'"
ORDER_BY = "metrics.m1 desc"
BATCH = 1_000  # MLflow's documented maximum of metrics per log_batch call
TARGET_RATIO = 10.0
TARGET_SEARCH_S = 0.050

FULL = {"runs": 1_000, "points": 100_000, "big_runs": 10_000, "search_repeats": 7}
QUICK = {"runs": 100, "points": 10_000, "big_runs": 1_000, "search_repeats": 5}


# -- generated data (identical for both tools) -------------------------------------------
def run_params(i: int) -> dict[str, str]:
    """p0 cycles 'a', 'b', 'c' by run index; p1..p9 are filler."""
    params = {"p0": "abc"[i % 3]}
    params.update({f"p{j}": f"v{(i + j) % 5}" for j in range(1, 10)})
    return params


def run_metrics(i: int) -> dict[str, float]:
    """m0..m9 from a RNG seeded by the run index."""
    rng = random.Random(i)
    return {f"m{j}": rng.random() for j in range(10)}


def expected_matches(n_runs: int) -> list[int]:
    """Indexes of the runs the filter must return."""
    return [i for i in range(n_runs) if run_metrics(i)["m0"] > 0.5 and run_params(i)["p0"] == "a"]


def point_values(n: int) -> list[float]:
    return [1.0 / (1.0 + i * 1e-4) for i in range(n)]


def tidal_source_hash() -> str:
    """Fingerprint of the imported tidal package's source (it may change between runs)."""
    import hashlib

    import tidal

    root = Path(tidal.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def warm_times(fn: Callable[[], Any], repeats: int) -> list[float]:
    return [timed(fn)[0] for _ in range(repeats)]


def sqlite_count(db: Path, sql: str, *args: Any) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


# -- workers (run in subprocesses) -------------------------------------------------------
def worker_tidal(scratch: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Workloads 1-3 on a fresh Tidal project."""
    from importlib import metadata

    import sqlalchemy

    import tidal

    source = tidal_source_hash()
    n_runs, n_points = cfg["runs"], cfg["points"]
    params = [run_params(i) for i in range(n_runs)]
    metrics = [run_metrics(i) for i in range(n_runs)]
    values = point_values(n_points)
    db = scratch / "tidal.db"
    project = tidal.Project(scratch, store_url=f"sqlite:///{db}",
                            artifact_root=str(scratch / "artifacts"))

    setup_s, _ = timed(lambda: project.search_runs(max_results=1))  # opens store + schema

    def create_runs() -> None:
        for p, m in zip(params, metrics, strict=True):
            with project.start_run("bench") as run:
                run.log_params(p)
                run.log_metrics(m)

    def log_points() -> str:
        with project.start_run("points") as run:
            for i, v in enumerate(values):
                run.log_metric("loss", v, step=i)
        return run.id

    def search() -> int:
        return len(project.search_runs(FILTER, experiments=["bench"], max_results=1000))

    create_s, _ = timed(create_runs)
    points_s, run_id = timed(log_points)
    cold_s, count = timed(search)
    warm = warm_times(search, cfg["search_repeats"])
    project.close()
    return {
        "tool": "tidal",
        "versions": {"tidal": metadata.version("tidal-ml"), "tidal_source": source,
                     "sqlalchemy": sqlalchemy.__version__,
                     "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
        "setup_s": setup_s, "create_runs_s": create_s, "log_points_s": points_s,
        "search_cold_s": cold_s, "search_warm_s": warm, "search_s": statistics.median(warm),
        "search_count": count,
        "stored_runs": sqlite_count(
            db, "SELECT COUNT(*) FROM runs r JOIN experiments e ON e.id = r.experiment_id "
                "WHERE e.name = 'bench'"),
        "stored_points": sqlite_count(db, "SELECT COUNT(*) FROM metrics WHERE run_id = ?", run_id),
    }


def worker_mlflow(scratch: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Workloads 1-3 on a fresh MLflow SQLite store with a local artifact location."""
    from importlib import metadata

    import mlflow
    import sqlalchemy
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    n_runs, n_points = cfg["runs"], cfg["points"]
    params = [run_params(i) for i in range(n_runs)]
    metrics = [run_metrics(i) for i in range(n_runs)]
    values = point_values(n_points)
    db = scratch / "mlflow.db"
    artifacts = (scratch / "mlartifacts").as_uri()
    mlflow.set_tracking_uri(f"sqlite:///{db}")

    setup_s, _ = timed(lambda: MlflowClient().search_experiments())  # opens store + schema

    def create_runs() -> str:
        exp_id = mlflow.create_experiment("bench", artifact_location=artifacts)
        for p, m in zip(params, metrics, strict=True):
            with mlflow.start_run(experiment_id=exp_id):
                mlflow.log_params(p)
                mlflow.log_metrics(m)
        return exp_id

    def log_points() -> str:
        client = MlflowClient()
        exp_id = mlflow.create_experiment("points", artifact_location=artifacts)
        with mlflow.start_run(experiment_id=exp_id) as run:
            run_id = run.info.run_id
            for start in range(0, n_points, BATCH):
                now = int(time.time() * 1000)
                batch = [Metric("loss", values[i], now, i)
                         for i in range(start, min(start + BATCH, n_points))]
                client.log_batch(run_id, metrics=batch)
        return run_id

    create_s, exp_id = timed(create_runs)
    points_s, run_id = timed(log_points)

    def search() -> int:
        return len(mlflow.search_runs(experiment_ids=[exp_id], filter_string=FILTER,
                                      max_results=1000, output_format="list"))

    cold_s, count = timed(search)
    warm = warm_times(search, cfg["search_repeats"])
    return {
        "tool": "mlflow",
        "versions": {"mlflow": metadata.version("mlflow"), "sqlalchemy": sqlalchemy.__version__,
                     "python": platform.python_version(), "sqlite": sqlite3.sqlite_version},
        "setup_s": setup_s, "create_runs_s": create_s, "log_points_s": points_s,
        "search_cold_s": cold_s, "search_warm_s": warm, "search_s": statistics.median(warm),
        "search_count": count,
        "stored_runs": sqlite_count(db, "SELECT COUNT(*) FROM runs WHERE experiment_id = ?",
                                    int(exp_id)),
        "stored_points": sqlite_count(db, "SELECT COUNT(*) FROM metrics WHERE run_uuid = ?",
                                      run_id),
    }


def worker_tidal_big(scratch: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Workload 4: filtered, ordered search over 10,000 Tidal runs."""
    import tidal

    source = tidal_source_hash()
    n_runs = cfg["big_runs"]
    params = [run_params(i) for i in range(n_runs)]
    metrics = [run_metrics(i) for i in range(n_runs)]
    project = tidal.Project(scratch, store_url=f"sqlite:///{scratch / 'tidal.db'}",
                            artifact_root=str(scratch / "artifacts"))
    setup_s, _ = timed(lambda: project.search_runs(max_results=1))

    def create_runs() -> None:
        for p, m in zip(params, metrics, strict=True):
            with project.start_run("bench") as run:
                run.log_params(p)
                run.log_metrics(m)

    def search(limit: int) -> Callable[[], list[float]]:
        def go() -> list[float]:
            runs = project.search_runs(FILTER, experiments=["bench"], order_by=[ORDER_BY],
                                       max_results=limit)
            return [r.metrics["m1"].value for r in runs]
        return go

    create_s, _ = timed(create_runs)
    expected = sorted((metrics[i]["m1"] for i in expected_matches(n_runs)), reverse=True)
    figures: dict[str, Any] = {"tool": "tidal-big", "tidal_source": source, "setup_s": setup_s,
                               "create_runs_s": create_s}
    for limit in (100, 1000):
        cold_s, got = timed(search(limit))
        if got != expected[:limit]:
            raise AssertionError(f"search top {limit}: wrong runs or order")
        warm = warm_times(search(limit), cfg["search_repeats"])
        figures.update({f"search{limit}_cold_s": cold_s, f"search{limit}_warm_s": warm,
                        f"search{limit}_s": statistics.median(warm),
                        f"search{limit}_count": len(got)})
    project.close()
    return figures


WORKERS: dict[str, Callable[[Path, dict[str, Any]], dict[str, Any]]] = {
    "tidal": worker_tidal, "mlflow": worker_mlflow, "tidal-big": worker_tidal_big,
}


# -- parent: peer venv, subprocesses, report ---------------------------------------------
def ensure_peer(venv: Path, spec: str) -> Path:
    """The peer venv's python, with ``spec`` installed (creating/installing if needed)."""
    python = venv / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    check = ("import sys, importlib.metadata as m\n"
             "from packaging.specifiers import SpecifierSet\n"
             "sys.exit(0 if m.version('mlflow') in SpecifierSet(sys.argv[1]) else 1)")
    spec_range = spec.removeprefix("mlflow")
    if subprocess.run([str(python), "-c", check, spec_range], capture_output=True).returncode:
        print(f"installing {spec} into {venv} ...", flush=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", spec],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pip install {spec} failed:\n{done.stderr[-3000:]}")
    return python


def run_worker(python: str, kind: str, scratch_root: Path, cfg: dict[str, Any],
               rep: int) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix=f"{kind}-{rep}-", dir=scratch_root))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    cmd = [python, str(Path(__file__).resolve()), "--worker", kind, "--scratch", str(scratch),
           "--config", json.dumps(cfg)]
    done = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)]
    if done.returncode or not lines:
        raise RuntimeError(f"{kind} worker failed (rc={done.returncode}):\n{done.stderr[-3000:]}")
    shutil.rmtree(scratch, ignore_errors=True)
    return json.loads(lines[-1][len(MARKER):])


def median_of(results: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    values = [r[key] for r in results]
    return {"median_s": statistics.median(values), "values_s": values} if values else None


def summarize(cfg: dict[str, Any], tidal: list[dict[str, Any]], peer: list[dict[str, Any]],
              big: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per figure: Tidal and MLflow medians, ratio, target."""
    rows: list[dict[str, Any]] = []

    def add(name: str, key: str, target: str | None, t: list[dict[str, Any]],
            m: list[dict[str, Any]] | None = None, abs_target: float | None = None) -> None:
        tm, mm = median_of(t, key), median_of(m or [], key)
        ratio = mm["median_s"] / tm["median_s"] if tm and mm else None
        met: bool | None = None
        if target == "ratio" and ratio is not None:
            met = ratio >= TARGET_RATIO
        elif target == "abs" and tm and abs_target is not None:
            met = tm["median_s"] < abs_target
        rows.append({"workload": name, "key": key, "tidal": tm, "mlflow": mm,
                     "ratio_mlflow_over_tidal": ratio,
                     "target": {"ratio": f">= {TARGET_RATIO:g}x", "abs": "< 50 ms"}.get(
                         target or "", None),
                     "target_met": met})

    n, p, b = cfg["runs"], cfg["points"], cfg["big_runs"]
    add("setup: open store + create schema", "setup_s", None, tidal, peer)
    add(f"1. create {n:,} runs x (10 params + 10 metrics)", "create_runs_s", "ratio", tidal, peer)
    add(f"2. log {p:,} metric points to one run", "log_points_s", "ratio", tidal, peer)
    add(f"3. search {n:,} runs, metric+param filter (warm)", "search_s", "ratio", tidal, peer)
    add("3. same search, first call (cold)", "search_cold_s", None, tidal, peer)
    if big:
        add(f"4. Tidal: search {b:,} runs, top 100 by m1 desc (warm)", "search100_s", "abs",
            big, abs_target=TARGET_SEARCH_S)
        add(f"4. Tidal: search {b:,} runs, top 1,000 by m1 desc (warm)", "search1000_s", None,
            big)
        add(f"4. Tidal: (creating the {b:,} runs)", "create_runs_s", None, big)
    return rows


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(rows: list[dict[str, Any]], header: str) -> None:
    cols = ["workload", "Tidal (median)", "MLflow (median)", "MLflow / Tidal", "target", "met"]
    table = [[r["workload"], fmt_s(r["tidal"] and r["tidal"]["median_s"]),
              fmt_s(r["mlflow"] and r["mlflow"]["median_s"]),
              "-" if r["ratio_mlflow_over_tidal"] is None
              else f"{r['ratio_mlflow_over_tidal']:.1f}x",
              r["target"] or "-",
              {True: "yes", False: "NO", None: "-"}[r["target_met"]]] for r in rows]
    peers.print_table(header, cols, table)


def main_parent(args: argparse.Namespace) -> int:
    cfg = dict(QUICK if args.quick else FULL)
    scratch_root = Path(tempfile.mkdtemp(prefix="tidal-bench-tracking-", dir=args.scratch))
    peer_python: str | None = None
    peer_error: str | None = None
    if not args.skip_peer:
        try:
            peer_python = str(ensure_peer(args.peer_venv, args.mlflow_spec))
        except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
            peer_error = f"{type(exc).__name__}: {exc}"
            print(f"MLflow unavailable, running Tidal only: {peer_error}", file=sys.stderr)

    tidal, peer, big = [], [], []
    for rep in range(args.repeats):  # alternate: Tidal, MLflow, Tidal, MLflow ...
        tidal.append(run_worker(sys.executable, "tidal", scratch_root, cfg, rep))
        print(f"rep {rep + 1}/{args.repeats}: tidal done", flush=True)
        if peer_python:
            try:
                peer.append(run_worker(peer_python, "mlflow", scratch_root, cfg, rep))
                print(f"rep {rep + 1}/{args.repeats}: mlflow done", flush=True)
            except RuntimeError as exc:
                peer_error, peer_python = str(exc), None
                print(f"MLflow worker failed, continuing Tidal only: {exc}", file=sys.stderr)
        big.append(run_worker(sys.executable, "tidal-big", scratch_root, cfg, rep))
        print(f"rep {rep + 1}/{args.repeats}: tidal 10k-run search done", flush=True)
    shutil.rmtree(scratch_root, ignore_errors=True)

    for t, m in zip(tidal, peer, strict=False):  # the peer may have failed midway
        if not (t["search_count"] == m["search_count"] == len(expected_matches(cfg["runs"]))):
            raise AssertionError(f"search counts differ: tidal {t['search_count']}, "
                                 f"mlflow {m['search_count']}")
    for r in tidal + peer:
        if r["stored_runs"] != cfg["runs"] or r["stored_points"] != cfg["points"]:
            raise AssertionError(f"{r['tool']} stored {r['stored_runs']} runs, "
                                 f"{r['stored_points']} points")

    sources = sorted({r["versions"]["tidal_source"] for r in tidal}
                     | {r["tidal_source"] for r in big})
    if len(sources) > 1:
        print(f"WARNING: the tidal source changed during the benchmark: {sources}",
              file=sys.stderr)

    rows = summarize(cfg, tidal, peer, big)
    versions = {**tidal[0]["versions"], "mlflow": peer[0]["versions"]["mlflow"] if peer else None,
                "mlflow_sqlalchemy": peer[0]["versions"]["sqlalchemy"] if peer else None,
                "mlflow_python": peer[0]["versions"]["python"] if peer else None}
    mach = peers.machine()
    print(f"tidal {versions['tidal']} vs mlflow {versions['mlflow']}, both on SQLite; "
          f"python {versions['python']}, sqlalchemy {versions['sqlalchemy']} "
          f"(mlflow venv: {versions['mlflow_sqlalchemy']})")
    print(f"machine: nproc {mach['nproc']}, {mach['cpu_model']}; "
          f"medians of {args.repeats} alternating runs")
    print_table(rows, "Experiment tracking: Tidal vs MLflow")
    print(f"search matches: {len(expected_matches(cfg['runs']))} of {cfg['runs']:,} runs "
          f"(same count from both tools)")

    report = {
        "benchmark": "tracking",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/tracking.py", *sys.argv[1:]]),
        "config": {**cfg, "repeats": args.repeats, "quick": args.quick, "filter": FILTER,
                   "order_by": ORDER_BY, "mlflow_batch": BATCH, "mlflow_spec": args.mlflow_spec},
        "method": __doc__.split("Method:", 1)[1].split("Usage:", 1)[0].strip().replace("\n", " "),
        "machine": mach,
        "versions": versions,
        "tidal_sources_seen": sources,
        "peer_error": peer_error,
        "search_expected_count": len(expected_matches(cfg["runs"])),
        "results": rows,
        "raw": {"tidal": tidal, "mlflow": peer, "tidal_big": big},
    }
    out = args.output or RESULTS
    peers.write_results(out, report)
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per contender")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-peer", action="store_true", help="Tidal only")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV)
    parser.add_argument("--mlflow-spec", default=MLFLOW_SPEC)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    parser.add_argument("--scratch", default=None, help="folder for scratch stores (default: tmp)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--config", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        figures = WORKERS[args.worker](Path(args.scratch), json.loads(args.config))
        print(MARKER + json.dumps(figures), flush=True)
        return 0
    return main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
