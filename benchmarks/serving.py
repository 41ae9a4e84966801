"""Model serving, side by side: Tidal vs MLServer vs the HTTP floor, under wrk.

Why: the serving issue promises single-row throughput at least 10x MLServer's with a lower
p99, at least 60 % of the HTTP floor's throughput, 1,024-row requests at 50 % or more of
the in-process ONNX limit in rows/s, and "acknowledged" prediction logging costing at
most 20 % of throughput.

Models (the same fitted objects for everyone): Tidal's ``linear`` candidate (a
scikit-learn pipeline: imputer, scaler, logistic regression) and its 100-tree random
forest, trained on Elec2 days 0-364. Tidal serves them through ONNX Runtime (exported and
checked to 1e-5) from a project with two deployments; MLServer 1.7.1 serves the same
pickles with its scikit-learn runtime (own venv, pinned as BENCHMARKING.md says) returning
``predict_proba``; the floor is a bare ASGI app on the same server stack (uvicorn, uvloop,
httptools) that reads the body and returns a fixed answer.

Load: wrk (one thread) POSTing the same V2 body (one tensor per column) for ``--seconds``
after a 3 s warm-up, at concurrency 1, 8 and 64, single-row bodies, then 1,024-row bodies
at concurrency 8. The server is pinned to core 0 and wrk to core 1 (``taskset``); the
server's CPU use is read from /proc so a client-bound run shows. Contenders alternate
within each (model, concurrency) cell, for ``--repeats`` rounds; medians are reported.

MLServer variants: "mlserver" (debug off, inference in the HTTP process: its fastest
unbatched setting here) and "mlserver-batch" (the same with adaptive batching, 64 rows /
20 ms, as in BENCHMARKING.md). Tidal variants: "tidal" (acknowledged logging, the
default) and "tidal-async".

Usage:  python benchmarks/serving.py [--seconds 15 --repeats 2]
        python benchmarks/serving.py --quick          # a smoke run: 1 s a cell, no warm-up, c=8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import peers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
DATA = ROOT.parent / "shared" / "data"
FEATURES = [f"feat_{i}" for i in range(1, 7)]
NO_MODEL = "no-such-deployment"
MLSERVER_PINS = {"mlserver": "==1.7.1", "mlserver-sklearn": "==1.7.1", "uvloop": "==0.21.0",
                 "scikit-learn": "==1.9.1"}
WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local header_length = os.getenv("HEADER_LENGTH")
if header_length and header_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = header_length
end
local handle = io.open(os.getenv("BODY_FILE"), "rb")
wrk.body = handle:read("*a")
handle:close()
done = function(summary, latency, requests)
  io.write(string.format('WRK-JSON {"requests":%d,"duration_us":%d,"connect":%d,' ..
    '"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
FLOOR_APP = """\
import sys, uvicorn
BODY = (b'{"model_name":"floor","outputs":[{"name":"probabilities","shape":[1,2],'
        b'"datatype":"FP64","data":[0.25,0.75]}]}')
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="error", access_log=False)
"""


# -- models -------------------------------------------------------------------------------

def prepare(scratch: Path) -> dict[str, Any]:
    """Train both models, register them in a Tidal project with their ONNX exports and
    deployments, write MLServer's model folders; returns paths and the ONNX bytes."""
    import joblib
    import pandas as pd

    import tidal
    from tidal.train.candidates import make_candidate
    from tidal.train.onnx_export import export_onnx

    frame = pd.read_csv(DATA / "elec2.csv.gz").iloc[:365 * 48]
    train, test = frame.iloc[:-30 * 48], frame.iloc[-30 * 48:]
    project_dir = scratch / "tidal-project"
    project_dir.mkdir()
    (project_dir / "tidal.toml").write_text("[serve]\nmax_batch_size = 1024\n")
    signature = {"inputs": [{"name": f, "datatype": "FP64", "nullable": True}
                            for f in FEATURES],
                 "outputs": [{"name": "label", "datatype": "INT64"},
                             {"name": "probabilities", "datatype": "FP64"}],
                 "task": "classification"}
    onnx: dict[str, bytes] = {}
    mlserver_dir = scratch / "mlserver"
    with tidal.Project(project_dir) as project:
        for name, family in (("lr", "linear"), ("rf", "random_forest")):
            model = make_candidate(family, "classification", FEATURES, [], seed=0)
            model.fit(train[FEATURES], train["target"])
            exported = export_onnx(model, test[FEATURES], task="classification")
            if not exported.exported:
                raise SystemExit(f"{name}: ONNX export failed: {exported.reason}")
            stored = project.artifacts.put_bytes(exported.onnx_bytes)
            onnx[name] = exported.onnx_bytes
            project.register_model(name, model, signature=signature, metrics={"onnx": {
                "exported": True, "sha256": stored.sha256, "size": stored.size,
                "reason": exported.reason, "max_difference": exported.max_difference}})
            project.set_deployment(name, f"{name}:1")
            folder = mlserver_dir / name
            folder.mkdir(parents=True)
            joblib.dump(model, folder / "model.joblib")
    return {"project": project_dir, "mlserver": mlserver_dir, "onnx": onnx,
            "rows": test[FEATURES].reset_index(drop=True)}


def bodies(rows: Any, scratch: Path) -> dict[tuple[str, int], tuple[Path, str]]:
    """The V2 request bodies, per flavour and row count, with the binary header length
    ("" for JSON): "tidal" and "mlserver" are JSON (one tensor per column; MLServer's
    pandas codec and ``predict_proba``), "binary" uses the protocol's binary tensor
    extension (tritonclient's default), which MLServer refuses."""
    import numpy as np

    out = {}
    for count in (1, 1024):
        chunk = rows.iloc[:count]
        inputs = [{"name": f, "shape": [count], "datatype": "FP64",
                   "data": chunk[f].astype(float).tolist()} for f in FEATURES]
        for flavour, extra in (("tidal", {}),
                               ("mlserver", {"parameters": {"content_type": "pd"},
                                             "outputs": [{"name": "predict_proba"}]})):
            path = scratch / f"body-{flavour}-{count}.json"
            path.write_text(json.dumps({"inputs": inputs, **extra}))
            out[(flavour, count)] = (path, "")
        header = json.dumps({"inputs": [
            {"name": f, "shape": [count], "datatype": "FP64",
             "parameters": {"binary_data_size": 8 * count}} for f in FEATURES],
            "parameters": {"binary_data_output": True}}).encode()
        blob = b"".join(chunk[f].to_numpy(np.float64).astype("<f8").tobytes()
                        for f in FEATURES)
        path = scratch / f"body-binary-{count}.bin"
        path.write_bytes(header + blob)
        out[("binary", count)] = (path, str(len(header)))
    return out


def in_process_limit(onnx_bytes: bytes, rows: Any) -> dict[str, float]:
    """ONNX Runtime on one thread, in this process: rows/s at 1 and 1,024 rows a call."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    dtype = np.float64 if "double" in session.get_inputs()[0].type else np.float32
    result = {}
    for count, calls in ((1, 20_000), (1024, 300)):
        feed = {n: rows[n].iloc[:count].to_numpy(dtype).reshape(-1, 1) for n in names}
        session.run(None, feed)
        began = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        result[f"rows_per_s_{count}"] = count * calls / (time.perf_counter() - began)
    return result


# -- servers ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, errors: Path,
               timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {errors.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def start(kind: str, setup: dict[str, Any], scratch: Path, mlserver_python: Path | None
          ) -> tuple[subprocess.Popen, int, str]:
    """Start a contender pinned to core 0; returns (process, port, path prefix)."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    pin = ["taskset", "-c", "0"]
    if kind == "floor":
        script = scratch / "floor.py"
        script.write_text(FLOOR_APP)
        cmd = [*pin, sys.executable, str(script), str(port)]
        ready = f"http://127.0.0.1:{port}/"
    elif kind.startswith("tidal"):
        env.update(TIDAL_PROJECT_DIR=str(setup["project"]),
                   TIDAL_SERVE_DURABILITY="async" if kind == "tidal-async" else
                   "acknowledged")
        cmd = [*pin, sys.executable, "-m", "tidal", "serve", "--port", str(port)]
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
    else:
        folder = scratch / f"{kind}-{port}"
        shutil.copytree(setup["mlserver"], folder)
        (folder / "settings.json").write_text(json.dumps({
            "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
            "debug": False, "parallel_workers": 0, "metrics_endpoint": None}))
        for name in ("lr", "rf"):
            settings: dict[str, Any] = {
                "name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"}}
            if kind == "mlserver-batch":
                settings.update(max_batch_size=64, max_batch_time=0.02)
            (folder / name / "model-settings.json").write_text(json.dumps(settings))
        assert mlserver_python is not None
        cmd = [*pin, str(mlserver_python.parent / "mlserver"), "start", str(folder)]
        ready = f"http://127.0.0.1:{port}/v2/health/ready"
    with open(scratch / f"{kind}-{port}.stderr", "wb") as errors:  # a file: never blocks
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors,
                                   start_new_session=True)
    try:
        wait_ready(ready, process, scratch / f"{kind}-{port}.stderr")
    except BaseException:
        stop(process)
        raise
    return process, port, ready


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (from /proc)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-g", str(os.getpgid(pid))], capture_output=True, text=True
    ).stdout.split() if int(p) != pid]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            pass
    return total


def run_wrk(url: str, body: tuple[Path, str], script: Path, connections: int,
            seconds: float, process: subprocess.Popen, warm_up: float = 3) -> dict[str, Any]:
    env = {**os.environ, "BODY_FILE": str(body[0]), "HEADER_LENGTH": body[1]}
    base = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "-s", str(script)]
    if warm_up > 0:
        subprocess.run([*base, f"-d{warm_up:g}s", url], env=env, capture_output=True,
                       check=True)
    cpu_before = cpu_seconds(process.pid)
    done = subprocess.run([*base, f"-d{seconds:g}s", "--latency", url], env=env,
                          capture_output=True, text=True, check=True)
    cpu = cpu_seconds(process.pid) - cpu_before
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("WRK-JSON "))
    figures = json.loads(line[len("WRK-JSON "):])
    duration = figures["duration_us"] / 1e6
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"rps": figures["requests"] / duration, "p50_ms": figures["p50_us"] / 1000,
            "p99_ms": figures["p99_us"] / 1000, "errors": errors,
            "server_cpu": cpu / duration, "requests": figures["requests"]}


# -- the run ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    seconds = 1 if args.quick else args.seconds
    repeats = 1 if args.quick else args.repeats
    levels = [8] if args.quick else [1, 8, 64]
    mlserver_python = None if args.skip_peer else peers.ensure_venv(
        peers.PEERS_DIR / "mlserver-venv", MLSERVER_PINS)
    scratch = Path(tempfile.mkdtemp(prefix="tidal-serving-"))
    try:
        setup = prepare(scratch)
        body = bodies(setup["rows"], scratch)
        script = scratch / "post.lua"
        script.write_text(WRK_SCRIPT)
        limits = {name: in_process_limit(data, setup["rows"])
                  for name, data in setup["onnx"].items()}
        kinds = ["floor", "tidal", "tidal-async"] + (
            [] if args.skip_peer else ["mlserver", "mlserver-batch"])
        cells: list[tuple[str, int, int, str]] = [
            (m, c, 1, "json") for m in ("lr", "rf") for c in levels]
        cells += [(m, 8, 1024, encoding) for m in ("lr", "rf")
                  for encoding in ("json", "binary")]
        # Tidal's HTTP layer alone: a request for a deployment it does not serve, answered
        # 404 by the same dispatcher, with no parsing, model or log (how much of the gap to
        # the floor is the HTTP layer, how much the prediction work)
        cells.append((NO_MODEL, max(levels), 1, "json"))
        raw: list[dict[str, Any]] = []
        for repeat in range(repeats):
            for kind in kinds:  # one server per contender and round, every cell on it
                process, port, _ = start(kind, setup, scratch, mlserver_python)
                try:
                    for model, connections, rows, encoding in cells:
                        if kind == "floor" and model == "rf":
                            continue  # the floor has no model
                        if model == NO_MODEL and kind != "tidal-async":
                            continue
                        if encoding == "binary" and not kind.startswith("tidal"):
                            continue  # MLServer refuses it; the floor ignores bodies
                        flavour = ("binary" if encoding == "binary" else "mlserver"
                                   if kind.startswith("mlserver") else "tidal")
                        url = (f"http://127.0.0.1:{port}/" if kind == "floor" else
                               f"http://127.0.0.1:{port}/v2/models/{model}/infer")
                        figures = run_wrk(url, body[(flavour, rows)], script, connections,
                                          seconds, process, warm_up=0 if args.quick else 3)
                        raw.append({"kind": kind, "model": model, "connections": connections,
                                    "rows": rows, "encoding": encoding, "repeat": repeat,
                                    **figures})
                        print(f"  {kind:<15} {model} c={connections:<3} rows={rows:<5} "
                              f"{encoding:<6} "
                              f"{figures['rps']:9.0f} req/s  p99 {figures['p99_ms']:8.2f} ms"
                              f"  cpu {figures['server_cpu']:.2f}  errors {figures['errors']}",
                              flush=True)
                finally:
                    stop(process)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(raw, limits, args, seconds, repeats)


def median_of(raw: list[dict[str, Any]], **match: Any) -> dict[str, float] | None:
    runs = [r for r in raw if all(r[k] == v for k, v in match.items())]
    if not runs:
        return None
    return {key: statistics.median(r[key] for r in runs)
            for key in ("rps", "p50_ms", "p99_ms", "server_cpu", "errors")}


def shown(value: float | None, form: str) -> str:
    """A ratio for the table, or a dash where the cell has none (e.g. no floor run)."""
    return "–" if value is None else form.format(value)


def report(raw: list[dict[str, Any]], limits: dict[str, Any], args: Any, seconds: float,
           repeats: int) -> None:
    kinds = sorted({r["kind"] for r in raw}, key=["floor", "tidal", "tidal-async", "mlserver",
                                                   "mlserver-batch"].index)
    table, results = [], []
    for model, connections, rows, encoding in sorted(
            {(r["model"], r["connections"], r["rows"], r["encoding"])
             for r in raw if r["kind"] != "floor" and r["model"] != NO_MODEL}):
        cell: dict[str, Any] = {"model": model, "connections": connections, "rows": rows,
                                "encoding": encoding}
        for kind in kinds:
            # JSON cells compare everyone; a binary cell compares Tidal with the others'
            # JSON figures (MLServer refuses binary tensors; the floor reads no body)
            figures = median_of(raw, kind=kind, model="lr" if kind == "floor" else model,
                                connections=connections, rows=rows,
                                encoding=encoding if kind.startswith("tidal") else "json")
            cell[kind] = figures
        tidal, best_peer = cell.get("tidal"), max(
            (cell[k] for k in ("mlserver", "mlserver-batch") if cell.get(k)),
            key=lambda f: f["rps"], default=None)
        if tidal and best_peer:
            cell["tidal_vs_best_mlserver"] = tidal["rps"] / best_peer["rps"]
            cell["tidal_p99_below_best_mlserver"] = tidal["p99_ms"] < best_peer["p99_ms"]
        if tidal and cell.get("floor") and rows == 1:
            cell["tidal_share_of_floor"] = tidal["rps"] / cell["floor"]["rps"]
        if tidal and cell.get("tidal-async"):
            cell["acknowledged_cost"] = 1 - tidal["rps"] / cell["tidal-async"]["rps"]
        if tidal and rows == 1024:
            cell["share_of_in_process_limit"] = (tidal["rps"] * rows
                                                 / limits[model]["rows_per_s_1024"])
        results.append(cell)
        table.append([f"{model} c={connections} rows={rows} {encoding}"] + [
            f"{cell[k]['rps']:.0f} / {cell[k]['p99_ms']:.1f}" if cell.get(k) else "–"
            for k in kinds] + [shown(cell.get("tidal_vs_best_mlserver"), "{:.1f}x"),
                               shown(cell.get("tidal_share_of_floor"), "{:.0%}"),
                               shown(cell.get("acknowledged_cost"), "{:.0%}"),
                               shown(cell.get("share_of_in_process_limit"), "{:.0%}")])
    dispatch = next(({"connections": r["connections"], **median_of(
        raw, kind="tidal-async", model=NO_MODEL, connections=r["connections"])}
        for r in raw if r["model"] == NO_MODEL), None)
    if dispatch is not None:
        floor = median_of(raw, kind="floor", connections=dispatch["connections"], rows=1)
        dispatch["share_of_floor"] = dispatch["rps"] / floor["rps"] if floor else None
    summary = {"benchmark": "serving", "seconds": seconds, "repeats": repeats,
               "in_process_onnx": limits, "results": results, "dispatch_only": dispatch,
               "raw": raw,
               "machine": {**peers.machine(), "tidal_source": peers.tidal_source_hash(),
                           "date": time.strftime("%Y-%m-%d %H:%M"),
                           **peers.package_versions(["onnxruntime", "scikit-learn",
                                                     "uvicorn", "starlette"]),
                           "mlserver": None if args.skip_peer else MLSERVER_PINS["mlserver"]}}
    peers.write_results(args.output, summary)
    peers.print_table("requests/s / p99 ms (medians); server on core 0, wrk on core 1",
                      ["cell", *kinds, "tidal / best MLServer", "tidal / floor",
                       "ack cost", "of in-process rows/s"], table, width=220)
    if dispatch is not None:
        print(f"Tidal's HTTP layer alone (404 for an unknown deployment, "
              f"c={dispatch['connections']}): {dispatch['rps']:,.0f} req/s, "
              f"p99 {dispatch['p99_ms']:.1f} ms, {dispatch['share_of_floor'] or 0:.0%} "
              "of the floor")
    for model, figures in limits.items():
        print(f"in-process ONNX Runtime, 1 thread, {model}: "
              f"{figures['rows_per_s_1']:,.0f} rows/s single-row, "
              f"{figures['rows_per_s_1024']:,.0f} rows/s at 1,024 rows")


if __name__ == "__main__":
    main()
