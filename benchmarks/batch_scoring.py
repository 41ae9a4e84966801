"""Batch scoring: 10 million Elec2-shaped rows, rows/s against the ONNX limit, peak memory.

Why: the batch issue asks that ``tidal score`` reach at least 70 % of the in-process ONNX
throughput on one core times the cores it uses, on the process executor and on a local
Ray instance, with peak memory under 2 GB for an input of any size.

Models: the logistic regression pipeline and the 100-tree random forest of
``serving.py`` (Tidal's candidates, trained on Elec2 days 0-364), registered in a project
with their ONNX exports and deployed as ``lr`` and ``rf``.

Input (not timed): ``--rows`` rows (10 million) shaped like Elec2: its rows drawn at
random with a little noise, plus an int64 key ``id``, in one Parquet file (zstd, row groups
of 1 million rows).

Measured: ``tidal score`` as a user runs it, in a subprocess: start-up, reading,
checking every row, scoring, writing the output (keys, label, probabilities, version,
request id, row) and logging every prediction. For each model: the process executor
with one worker per core, the Ray executor with as many (a local Ray instance that the
job starts, start-up included), ``--repeats`` times each, alternating, and one worker
in the job's own process; the table shows medians (peak memory: the highest). Rows/s is
``--rows`` over the command's wall time. Memory is the peak over the run of the summed
resident set (RSS) of the job's whole process tree (workers, and Ray's own processes),
and of its proportional set (PSS: each shared page counted once), sampled from /proc
every 0.1 s.

Limit: ONNX Runtime in this process, one thread, scoring 100,000-row partitions of the
same data (the job's partition size) in a loop: rows/s on one core, times the workers.
It is measured just before and just after each job and averaged, because these shared
machines drift 25-35 % in speed over minutes: a limit measured once at the start would
skew the later jobs' shares. Beside it, the cores at once: the loop on every core
together, summed (what the cores give when all of them work), as a second reference.
Also measured, because no job that keeps its output and logs its predictions can run
faster than its writing: the I/O floor (read the input, write an output and log parts of
the job's columns with a dummy model, one core), and from both the reachable rate
``workers / (1/limit + 1/floor)``: the model and the writing, each at its own one-core
speed, on every worker.

Usage:  python benchmarks/batch_scoring.py [--rows 10000000] [--repeats 3] [--quick] [--no-ray]
Results go to benchmarks/results/batch_scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402
from serving import FEATURES, prepare  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"
TARGET_SHARE = 0.70
MEMORY_LIMIT_MB = 2048.0
PARTITION_ROWS = 100_000


def write_input(path: Path, rows: int) -> None:
    """``rows`` Elec2-shaped rows (resampled with noise of 1 % of each feature's range)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    elec2 = pd.read_csv(DATA / "elec2.csv.gz")[FEATURES].to_numpy(np.float64)
    spread = elec2.max(axis=0) - elec2.min(axis=0)
    rng = np.random.default_rng(0)
    chunk = 1_000_000
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        values = elec2[rng.integers(0, len(elec2), n)]
        values = values + rng.normal(0, 0.01, values.shape) * spread
        table = pa.table({"id": np.arange(start, start + n, dtype=np.int64),
                          **{f: values[:, i] for i, f in enumerate(FEATURES)}})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=chunk)
    writer.close()


def in_process_limit(onnx_bytes: bytes, path: Path, start_at: float | None = None) -> float:
    """ONNX Runtime, one thread, on 100,000-row partitions of the input: rows/s (timed
    from ``start_at``, a wall-clock time, when given)."""
    import numpy as np
    import onnxruntime as ort
    import pyarrow.parquet as pq

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    dtype = np.float64 if "double" in session.get_inputs()[0].type else np.float32
    first = next(pq.ParquetFile(path).iter_batches(batch_size=PARTITION_ROWS,
                                                   columns=FEATURES))
    feed = {n: first.column(n).to_numpy().astype(dtype).reshape(-1, 1) for n in names}
    session.run(None, feed)
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    calls, began = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - began < 5.0:
        session.run(None, feed)
        calls += 1
    return PARTITION_ROWS * calls / (time.perf_counter() - began)


def all_cores_limit(onnx_bytes: bytes, path: Path, cores: int) -> float:
    """The same loop on ``cores`` processes at once, summed: what the cores give when all
    of them work (less than one core's rate times ``cores`` when they share caches,
    memory bandwidth or a host with other tenants)."""
    if cores == 1:
        return in_process_limit(onnx_bytes, path)
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    start_at = time.time() + 3.0  # every process loaded and ready before any measures
    with ProcessPoolExecutor(cores, mp_context=get_context("spawn")) as pool:
        rates = pool.map(in_process_limit, [onnx_bytes] * cores, [path] * cores,
                         [start_at] * cores)
        return sum(rates)


def io_floor(path: Path, scratch: Path) -> float:
    """What a job that writes what ``tidal score`` writes costs without a model: read the
    input in 100,000-row partitions, write an output of the same columns (id, label, two
    probabilities, version, request id, row) and a log part per partition, on one core,
    in this process: rows/s. No batch job that keeps an output and a log can beat it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tidal.serve.predparts import dictionary_columns, each_repeated, prediction_rows

    rows, began = 0, time.perf_counter()
    writer = None
    for part, batch in enumerate(pq.ParquetFile(path).iter_batches(batch_size=PARTITION_ROWS)):
        n = batch.num_rows
        inputs = {f: batch.column(f).to_numpy() for f in FEATURES}
        label, proba = np.zeros(n, np.int64), np.full((n, 2), 0.5)
        ids = [f"job-{part}-{i}" for i in range(-(-n // 1000))]
        log = prediction_rows(request_ids=ids, rows_per_id=1000, count=n, event_time=1.8e9,
                              deployment="floor", model="floor", version=1, route="batch",
                              inputs=inputs, outputs={"label": label, "probabilities": proba})
        pq.write_table(log, scratch / "floor-log.parquet", compression="zstd",
                       use_dictionary=dictionary_columns(log.schema))
        out = pa.table({"id": batch.column("id"), "label": label, "proba_0": proba[:, 0],
                        "proba_1": proba[:, 1], "model_version": np.ones(n, np.int64),
                        "request_id": each_repeated(ids, 1000, n),
                        "row": np.arange(n) % 1000})
        if writer is None:
            writer = pq.ParquetWriter(scratch / "floor-out.parquet", out.schema,
                                      compression="zstd",
                                      use_dictionary=dictionary_columns(out.schema))
        writer.write_table(out)
        rows += n
    writer.close()
    return rows / (time.perf_counter() - began)


class TreeMemory:
    """Peak summed RSS and PSS of a process and all its descendants, from /proc."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.peak_rss_mb = self.peak_pss_mb = 0.0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            rss = pss = 0.0
            for pid in pids:
                found = _memory_kb(pid)
                rss += found.get("Rss", 0.0)
                pss += found.get("Pss", 0.0)
            self.peak_rss_mb = max(self.peak_rss_mb, rss / 1024)
            self.peak_pss_mb = max(self.peak_pss_mb, pss / 1024)
            self.peak_processes = max(self.peak_processes, len(pids))
            self._stop.wait(self.every)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _memory_kb(pid: int) -> dict[str, float]:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            out[name] = float(rest.split()[0])
    return out


def run_job(project: Path, deployment: str, source: Path, scratch: Path, executor: str,
            workers: int) -> dict[str, Any]:
    output = scratch / f"out-{deployment}-{executor}-{workers}.parquet"
    command = [sys.executable, "-m", "tidal", "score", deployment, "--input", str(source),
               "--output", str(output), "--key", "id", "--executor", executor,
               "--workers", str(workers), "--partition-rows", str(PARTITION_ROWS),
               "--json", "--project", str(project)]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    memory = TreeMemory(process.pid)
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - began
    memory.stop()
    if process.returncode != 0:
        raise SystemExit(f"tidal score failed ({executor}, {workers}):\n{stderr[-3000:]}")
    summary = json.loads(stdout)
    written = output.stat().st_size
    output.unlink()
    return {"model": deployment, "executor": executor, "workers": workers,
            "rows": summary["scored"], "seconds": seconds,
            "rows_per_s": summary["scored"] / seconds, "job_seconds": summary["seconds"],
            "peak_rss_mb": memory.peak_rss_mb, "peak_pss_mb": memory.peak_pss_mb,
            "processes": memory.peak_processes, "output_mb": written / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each job on every core (alternating executors)")
    parser.add_argument("--quick", action="store_true", help="500,000 rows, a smoke run")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = parser.parse_args()
    rows = 500_000 if args.quick else args.rows
    repeats = 1 if args.quick else args.repeats
    cores = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tidal-batch-bench-",
                                     dir=peers.SCRATCH_DIR if peers.SCRATCH_DIR.is_dir()
                                     else None) as folder:
        scratch = Path(folder)
        setup = prepare(scratch)
        source = scratch / "input.parquet"
        write_input(source, rows)
        print(f"input: {rows:,} rows, {source.stat().st_size / 2**20:.0f} MB of Parquet",
              flush=True)
        floor = io_floor(source, scratch)
        print(f"I/O floor, one core: {floor:,.0f} rows/s", flush=True)
        executors = ["process"] if args.no_ray else ["process", "ray"]
        jobs = [(model, executor, cores) for model in ("lr", "rf") for _ in range(repeats)
                for executor in executors] + [(model, "process", 1) for model in ("lr", "rf")]
        raw = []
        for model, executor, workers in jobs:
            onnx = setup["onnx"][model]
            before = in_process_limit(onnx, source)
            together = all_cores_limit(onnx, source, workers)
            result = run_job(setup["project"], model, source, scratch, executor, workers)
            # the machine's speed drifts: the limit is measured again around each job
            one_core = (before + in_process_limit(onnx, source)) / 2
            result["limit_one_core_rows_per_s"] = one_core
            result["limit_rows_per_s"] = one_core * workers
            result["limit_all_at_once_rows_per_s"] = together
            result["share_of_all_at_once"] = result["rows_per_s"] / together
            result["share_of_limit"] = result["rows_per_s"] / result["limit_rows_per_s"]
            # the best a logging job can do: the model and the writing, one core each
            reachable = workers / (1 / one_core + 1 / floor)
            result["reachable_rows_per_s"] = reachable
            result["share_of_reachable"] = result["rows_per_s"] / reachable
            raw.append(result)
            print(f"{model} {executor} x{workers}: {result['rows_per_s']:,.0f} rows/s "
                  f"({result['share_of_limit']:.0%} of the limit, "
                  f"{result['share_of_all_at_once']:.0%} of the cores at once), peak PSS "
                  f"{result['peak_pss_mb']:,.0f} MB", flush=True)
    medians = [median_job(raw, model, executor, workers)
               for model, executor, workers in dict.fromkeys(jobs)]
    table = [[m["model"], f"{m['executor']} x{m['workers']}", str(m["runs"]),
              f"{m['rows_per_s']:,.0f}", f"{m['limit_rows_per_s']:,.0f}",
              f"{m['share_of_limit']:.0%}", f"{m['share_of_all_at_once']:.0%}",
              f"{m['reachable_rows_per_s']:,.0f}", f"{m['share_of_reachable']:.0%}",
              f"{m['seconds']:.1f}", f"{m['peak_rss_mb']:,.0f}", f"{m['peak_pss_mb']:,.0f}"]
             for m in medians]
    peers.print_table(f"tidal score, {rows:,} rows, medians (target: {TARGET_SHARE:.0%} of "
                      f"the limit, peak under {MEMORY_LIMIT_MB:,.0f} MB)",
                      ["model", "executor", "runs", "rows/s", "limit rows/s", "share",
                       "of cores at once", "with I/O rows/s", "share", "wall s",
                       "peak RSS MB", "peak PSS MB"], table, width=220)
    report = {"benchmark": "batch_scoring", "rows": rows, "partition_rows": PARTITION_ROWS,
              "cores": cores, "repeats": repeats, "io_floor_rows_per_s_one_core": floor,
              "targets": {"share_of_limit": TARGET_SHARE, "peak_memory_mb": MEMORY_LIMIT_MB},
              "met": {"share_of_limit": {f"{m['model']} {m['executor']}":
                                         m["share_of_limit"] >= TARGET_SHARE
                                         for m in medians if m["workers"] == cores},
                      "peak_memory": all(r["peak_pss_mb"] < MEMORY_LIMIT_MB for r in raw)},
              "machine": peers.machine(), "tidal_source": peers.tidal_source_hash(),
              "versions": peers.package_versions(["onnxruntime", "pyarrow", "numpy",
                                                  "scikit-learn", "ray"]),
              "seconds": time.perf_counter() - started, "medians": medians, "raw": raw}
    if not args.quick:
        peers.write_results(RESULTS / "batch_scoring.json", report, compact=())
    print(json.dumps(report["met"]))


def median_job(raw: list[dict[str, Any]], model: str, executor: str,
               workers: int) -> dict[str, Any]:
    """The median of a job's runs, figure by figure (peak memory: the highest)."""
    runs = [r for r in raw if (r["model"], r["executor"], r["workers"]) == (model, executor,
                                                                            workers)]
    figures = {key: statistics.median(r[key] for r in runs) for key in runs[0]
               if isinstance(runs[0][key], float)}
    figures.update(peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                   peak_pss_mb=max(r["peak_pss_mb"] for r in runs))
    return {"model": model, "executor": executor, "workers": workers, "runs": len(runs),
            **figures}


if __name__ == "__main__":
    main()
