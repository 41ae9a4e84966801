"""Compacted parts whose columns do not share a type (a new signature, JSON text in one
part) are read together: the clashing column becomes text, and the window is computed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

import tidal
from tidal.core.clock import ManualClock
from tidal.monitor.job import Monitor

HOUR = 1_700_002_800.0  # 2023-11-14T23:00Z, an hour boundary


def _part(folder, name: str, feature: pa.Array) -> None:
    n = len(feature)
    times = pa.array([int((HOUR + i) * 1e6) for i in range(n)], pa.int64()).cast(
        pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({
        "request_id": [f"{name}{i}" for i in range(n)], "row": pa.array([0] * n, pa.int32()),
        "event_time": times, "deployment": ["d"] * n, "model": ["m"] * n,
        "version": pa.array([1] * n, pa.int64()), "route": ["stable"] * n,
        "latency_ms": [1.0] * n, "in.colour": feature,
        "out.prediction": [0.5] * n}), folder / f"part-{name}.parquet")


def test_parts_with_clashing_types_are_read_as_text(tmp_path):
    folder = tmp_path / ".tidal" / "predictions-parquet" / "deployment=d" / \
        "hour=2023-11-14T23"
    folder.mkdir(parents=True)
    _part(folder, "a", pa.array([1.5] * 150))
    _part(folder, "b", pa.array(['{"r": 1}'] * 150))
    (tmp_path / "tidal.toml").write_text('[monitor]\nwindow = "1h"\nlateness = 0\n')
    with tidal.Project(tmp_path, clock=ManualClock(HOUR + 7200)) as project, \
            Monitor(project, sinks=[]) as monitor:
        run = monitor.run(["d"])
        (window,) = run.deployments[0].windows
        assert window.rows == 300 and run.deployments[0].note is None
        missing = project.monitoring.series("d", "missing", "colour")
        assert [p.value for p in missing] == [0.0]


def test_a_window_of_several_hours_gives_its_stable_and_shadow_rows_in_one_pass(tmp_path):
    from tidal.monitor.job import HourReader

    root = tmp_path / "compacted"
    for hour in range(3):
        folder = root / "deployment=d" / f"hour=2023-11-15T0{hour}"
        folder.mkdir(parents=True)
        start = HOUR + 3600 * (hour + 1)
        times = pa.array([int((start + 60 * i) * 1e6) for i in range(60)], pa.int64()).cast(
            pa.timestamp("us", tz="UTC"))
        pq.write_table(pa.table({
            "request_id": [f"h{hour}-{i}" for i in range(60)], "event_time": times,
            "route": ["shadow" if i % 3 == 0 else "stable" for i in range(60)]}),
            folder / "part-0.parquet")
    reader = HourReader(root, "d")
    # from half past the first hour to half past the third
    stable, shadow = reader.window_and_shadow(HOUR + 3600 + 1800, HOUR + 3 * 3600 + 1800)
    assert stable.num_rows == 80 and shadow.num_rows == 40  # 30 + 60 + 30 minutes
    assert set(stable.column("route").to_pylist()) == {"stable"}
    assert set(shadow.column("route").to_pylist()) == {"shadow"}
    alone = reader.window(HOUR + 3600 + 1800, HOUR + 3 * 3600 + 1800)
    assert alone.equals(stable)
    assert reader.window_and_shadow(HOUR, HOUR + 3600, shadow=False)[1].num_rows == 0
    # a job that knows where it stands lists only the hours from the one before ``since``
    since = HOUR + 3 * 3600 + 600  # ten minutes into the third hour
    later = HourReader(root, "d", since=since)
    assert later.hours == reader.hours[1:]
    assert later.window(since, since + 3600).equals(reader.window(since, since + 3600))
