"""Re-running the standard pipeline: unchanged (everything cached) and with one change.

Why: the pipelines issue promises that "re-running an unchanged pipeline takes well
under a second and changing one step re-runs only what depends on it". This measures
both on the demo project (Elec2, days 0-364: 17,520 rows, the four default candidates,
two slices, process executor), in a fresh project folder:

- cold: the first run, everything executes (for scale);
- cached, in process: ``run_standard`` again in a process that has already run it (what
  a notebook, the controller or a scheduler calling Tidal pays);
- cached, ``tidal run``: the command in a new process, start-up and imports included,
  and beside it the start-up alone (``python -c "import tidal.cli, ..."``) so that the
  pipeline's own share is visible;
- one change: a slice's bins are edited in ``tidal.toml``; only the evaluation steps
  may re-run (listed), and the time is recorded.

Figures are medians over ``--repeats``; results go to benchmarks/results/pipeline_rerun.json.

Usage:  python benchmarks/pipeline_rerun.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import peers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pipeline_rerun.json"
DATA = ROOT.parent / "shared" / "data"
IMPORTS = "import tidal.cli, tidal.project, tidal.train.standard"


def timed_command(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TIDAL_PROJECT_DIR", None)
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - began, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import tidal
    from tidal.demo import prepare_project
    from tidal.train.standard import run_standard

    scratch = Path(tempfile.mkdtemp(prefix="tidal-rerun-"))
    try:
        folder = prepare_project(scratch / "elec2", args.data)
        with tidal.Project(folder) as project:
            began = time.perf_counter()
            cold = run_standard(project, progress=False)
            cold_s = time.perf_counter() - began
            in_process = []
            for _ in range(args.repeats):
                began = time.perf_counter()
                again = run_standard(project, progress=False)
                in_process.append(time.perf_counter() - began)
                assert again["ran"] == [], again["ran"]
        cli, startup = [], []
        for _ in range(args.repeats):  # alternate the two, the machine's speed drifts
            seconds, out = timed_command([sys.executable, "-m", "tidal", "run", "--json"],
                                         folder)
            assert json.loads(out)["ran"] == [], out
            cli.append(seconds)
            startup.append(timed_command([sys.executable, "-c", IMPORTS], folder)[0])
        config = (folder / "tidal.toml").read_text()
        edited = config.replace("bins = [0, 0.25, 0.5, 0.75, 1.0]", "bins = [0, 0.5, 1.0]")
        assert edited != config, "the demo's tidal.toml no longer has the slice to edit"
        (folder / "tidal.toml").write_text(edited)
        changed_s, out = timed_command([sys.executable, "-m", "tidal", "run", "--json"],
                                       folder)
        changed = json.loads(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    steps = len(cold["ran"]) + len(cold["cached"])
    summary = {
        "benchmark": "pipeline_rerun", "project": "Elec2 days 0-364 (17,520 rows)",
        "candidates": list(cold["candidates"]), "steps": steps, "repeats": args.repeats,
        "cold_s": cold_s,
        "cached_in_process_s": statistics.median(in_process),
        "cached_cli_s": statistics.median(cli),
        "cli_startup_s": statistics.median(startup),
        "cached_cli_minus_startup_s": statistics.median(c - s for c, s in
                                                        zip(cli, startup, strict=True)),
        "one_change": {"edit": "feat_1 slice bins 5 -> 3 edges", "wall_s": changed_s,
                       "ran": changed["ran"], "cached": len(changed["cached"])},
        "raw": {"in_process": in_process, "cli": cli, "startup": startup},
        "machine": {**peers.machine(), "tidal_source": peers.tidal_source_hash(),
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                    **peers.package_versions(["scikit-learn", "sqlalchemy", "pandas"])},
    }
    peers.write_results(args.output, summary, compact=())
    m = summary["machine"]
    peers.print_table(
        f"standard pipeline, {steps} steps; {m['cpu_model']} ({m['nproc']} cores); "
        f"medians of {args.repeats}",
        ["run", "seconds", "notes"],
        [["cold (everything executes)", f"{cold_s:.2f}", f"{len(cold['ran'])} steps ran"],
         ["cached, in process", f"{summary['cached_in_process_s']:.3f}", "0 steps ran"],
         ["cached, `tidal run` (new process)", f"{summary['cached_cli_s']:.2f}",
          f"of which start-up and imports {summary['cli_startup_s']:.2f}"],
         ["  the pipeline's share (run − start-up)",
          f"{summary['cached_cli_minus_startup_s']:.3f}", "median of the paired differences"],
         ["one slice edited, `tidal run`", f"{changed_s:.2f}",
          f"ran: {', '.join(changed['ran'])}"]])


if __name__ == "__main__":
    main()
