"""Compaction of the prediction log into Parquet: partitions, one row per prediction row,
schemas, exactly once across reruns, crashes and a growing log (real files and processes)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tidal.serve.compaction import (
    CHECKPOINT,
    Compactor,
    compact,
    iter_parts,
    read_predictions,
)
from tidal.serve.predlog import (
    PredictionLog,
    PredictionRecord,
    iter_frames,
    list_segments,
    read_log,
)

CHILD = Path(__file__).with_name("predlog_child.py")
HOUR = 1_700_000_000 - 1_700_000_000 % 3600  # 2023-11-14T22:00:00Z


def record(request_id: str, rows: int = 1, *, deployment: str = "elec2",
           event_time: float = HOUR + 60, version: int = 1, inputs: dict | None = None,
           outputs: dict | None = None) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id, event_time=event_time, deployment=deployment, model="elec2",
        version=version, route="stable",
        inputs=inputs if inputs is not None else {
            "nswprice": [0.1 * (i + 1) for i in range(rows)], "day": ["mon"] * rows},
        outputs=outputs if outputs is not None else {
            "label": [i % 2 for i in range(rows)], "probabilities": [[0, 1]] * rows},
        latency_ms=2.0, received_at=event_time + 0.5)


def write(folder: Path, records: list[PredictionRecord], **options) -> None:
    """Write records through a real log (one process's worth), then close it."""
    async def main() -> None:
        log = PredictionLog(folder, **options)
        for r in records:
            await log.write([r])
        log.close()

    asyncio.run(main())


def row_keys(into: Path) -> Counter[tuple[str, int]]:
    table = read_predictions(into, columns=["request_id", "row"])
    return Counter(zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(),
                       strict=True))


def expected_keys(folder: Path) -> Counter[tuple[str, int]]:
    return Counter((r.request_id, i) for r in read_log(folder)
                   for i in range(len(next(iter(r.inputs.values())))))


def test_partitions_by_deployment_and_hour_one_row_per_prediction_row(tmp_path: Path) -> None:
    log, into = tmp_path / "log", tmp_path / "parquet"
    write(log, [
        record("a", rows=3),
        record("b", rows=1, event_time=HOUR + 3600 + 5),  # the next hour
        record("c", rows=2, deployment="fraud model/v2"),  # needs percent-encoding
        record("d", rows=1, event_time=HOUR + 3599.999),
    ])
    summary = compact(log, into)
    assert summary == {"rows": 7, "records": 4, "files": 3, "segments": 1, "deleted": 0,
                       "recovered": False}
    parts = [p.relative_to(into).parent.as_posix() for p in iter_parts(into)]
    assert sorted(parts) == ["deployment=elec2/hour=2023-11-14T22",
                             "deployment=elec2/hour=2023-11-14T23",
                             "deployment=fraud%20model%2Fv2/hour=2023-11-14T22"]

    first = pq.read_table(next(iter_parts(into)))
    assert first.column_names == [
        "request_id", "row", "event_time", "received_at", "deployment", "model", "version",
        "route", "latency_ms", "key", "status", "error", "in.nswprice", "in.day", "out.label",
        "out.probabilities"]
    assert first.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert first.schema.field("out.probabilities").type == pa.list_(pa.float64())
    assert first.schema.field("in.nswprice").type == pa.float64()
    rows = first.sort_by([("request_id", "ascending"), ("row", "ascending")]).to_pylist()
    assert [(r["request_id"], r["row"]) for r in rows] == [("a", 0), ("a", 1), ("a", 2),
                                                           ("d", 0)]
    a0 = rows[0]
    assert a0["in.nswprice"] == pytest.approx(0.1) and a0["in.day"] == "mon"
    assert a0["out.probabilities"] == [0.0, 1.0] and a0["out.label"] == 0
    assert a0["event_time"].timestamp() == HOUR + 60 and a0["version"] == 1
    assert rows[2]["in.nswprice"] == pytest.approx(0.3) and rows[2]["out.label"] == 0

    # the hive layout is readable by pyarrow directly (the hour comes from the path)
    hour = ds.partitioning(pa.schema([("hour", pa.string())]), flavor="hive")
    table = ds.dataset(into, partitioning=hour).to_table()
    assert table.num_rows == 7
    assert set(table.column("deployment").to_pylist()) == {"elec2", "fraud model/v2"}
    # read_predictions filters by deployment and event time
    assert read_predictions(into, "fraud model/v2").num_rows == 2
    assert read_predictions(into, "elec2", start=HOUR + 3600).column(
        "request_id").to_pylist() == ["b"]
    assert read_predictions(into, "elec2", end=HOUR + 3600).num_rows == 4
    assert read_predictions(into, "elec2", start=HOUR + 3599, end=HOUR + 3600,
                            columns=["request_id"]).to_pydict() == {"request_id": ["d"]}
    assert read_predictions(into, "nobody").num_rows == 0


def test_different_columns_and_types_are_unified(tmp_path: Path) -> None:
    log, into = tmp_path / "log", tmp_path / "parquet"
    write(log, [
        record("v1", rows=2, inputs={"x": [1, 2], "kind": ["a", "b"]},
               outputs={"label": [0, 1]}),
        record("v2", rows=1, version=2, inputs={"x": [2.5], "extra": [None], "mixed": [1]},
               outputs={"label": [1], "probabilities": [[0.5, 0.5]]}),
        record("v3", rows=2, version=2, inputs={"x": [None, 4], "mixed": ["text", {"k": 1}]},
               outputs={"probabilities": [[1, 0], None]}),
    ])
    compact(log, into)
    [part] = list(iter_parts(into))
    table = pq.read_table(part)
    types = {f.name: f.type for f in table.schema}
    assert types["in.x"] == pa.float64()  # ints and floats together
    assert types["in.kind"] == pa.string()
    assert types["in.mixed"] == pa.string()  # no common type: JSON text
    assert types["out.probabilities"] == pa.list_(pa.float64())
    rows = table.to_pylist()
    assert [r["in.x"] for r in rows] == [1.0, 2.0, 2.5, None, 4.0]
    assert [r["in.kind"] for r in rows] == ["a", "b", None, None, None]  # absent: null
    assert [r["in.mixed"] for r in rows] == [None, None, "1", "text", '{"k":1}']
    assert [r["out.probabilities"] for r in rows] == [None, None, [0.5, 0.5], [1.0, 0.0], None]
    assert [r["version"] for r in rows] == [1, 1, 2, 2, 2]

    # parts with different schemas read together
    write(log, [record("later", inputs={"x": [7], "new": [True]}, outputs={"label": [3]})])
    compact(log, into)
    table = read_predictions(into, "elec2")
    assert table.num_rows == 6 and table.schema.field("in.x").type == pa.float64()
    assert table.column("in.new").to_pylist() == [None] * 5 + [True]


def test_parts_whose_types_clash_are_read_together_as_text(tmp_path: Path) -> None:
    """Version 1 logged x as numbers, version 2 as text: each part has its own type, and
    reading both gives text rather than an error."""
    log, into = tmp_path / "log", tmp_path / "parquet"
    write(log, [record("numbers", inputs={"x": [1.5]}, outputs={"label": [0]})])
    compact(log, into)
    write(log, [record("words", version=2, inputs={"x": ["a"]}, outputs={"label": [1]})])
    compact(log, into)
    assert len(list(iter_parts(into))) == 2
    table = read_predictions(into, "elec2")
    assert table.schema.field("in.x").type == pa.string()
    assert sorted(table.column("in.x").to_pylist()) == ["1.5", "a"]


def test_rerun_is_idempotent_and_picks_up_new_records(tmp_path: Path) -> None:
    log, into = tmp_path / "log", tmp_path / "parquet"
    write(log, [record(f"r{i}", rows=1 + i % 3, event_time=HOUR + i * 600) for i in range(30)])
    first = compact(log, into)
    assert first["rows"] == sum(1 + i % 3 for i in range(30))
    files = sorted(iter_parts(into))
    again = compact(log, into)
    assert again["rows"] == 0 and again["files"] == 0 and again["records"] == 0
    assert sorted(iter_parts(into)) == files
    write(log, [record(f"s{i}", event_time=HOUR + i * 600) for i in range(10)])
    third = compact(log, into)
    assert third["rows"] == 10 and third["segments"] == 1
    counts = row_keys(into)
    assert counts == expected_keys(log) and max(counts.values()) == 1
    checkpoint = json.loads((into / CHECKPOINT).read_text())
    assert checkpoint["plan"] is None
    assert all(entry["done"] for entry in checkpoint["segments"].values())


def test_open_segment_is_compacted_up_to_its_last_frame(tmp_path: Path) -> None:
    log_folder, into = tmp_path / "log", tmp_path / "parquet"

    async def main() -> None:
        log = PredictionLog(log_folder)
        for i in range(10):
            await log.write([record(f"a{i}")])
        summary = compact(log_folder, into, delete_compacted=True)
        assert summary["rows"] == 10 and summary["deleted"] == 0  # still being written
        [segment] = list_segments(log_folder)
        state = json.loads((into / CHECKPOINT).read_text())["segments"][segment.name]
        last_frame_end = max(end for _start, end, _payload in iter_frames(segment))
        assert state == {"offset": last_frame_end, "done": False}
        for i in range(5):
            await log.write([record(f"b{i}")])
        log.close()
        summary = compact(log_folder, into, delete_compacted=True)
        assert summary["rows"] == 5 and summary["deleted"] == 1
        assert list_segments(log_folder) == []

    asyncio.run(main())
    assert row_keys(into) == Counter((f"{p}{i}", 0) for p, n in (("a", 10), ("b", 5))
                                     for i in range(n))
    # the deleted segment is forgotten by the checkpoint; nothing is compacted again
    assert compact(log_folder, into)["rows"] == 0
    assert json.loads((into / CHECKPOINT).read_text())["segments"] == {}


def _interrupted(log: Path, into: Path, *, stop_after: str) -> None:
    """A compaction that dies after saving its plan, or after writing its parts, before
    the checkpoint is advanced (what a SIGKILL at that moment leaves behind)."""
    compactor = Compactor(log, into)
    plan = compactor.next_plan(compactor.snapshot())
    assert plan is not None
    compactor.save_plan(plan)
    if stop_after == "parts":
        assert compactor.write_parts(plan)


@pytest.mark.parametrize("stop_after", ["plan", "parts"])
def test_crash_before_the_checkpoint_then_rerun_is_exactly_once(tmp_path: Path,
                                                                stop_after: str) -> None:
    log_folder, into = tmp_path / "log", tmp_path / "parquet"

    async def main() -> None:
        log = PredictionLog(log_folder)  # stays open: its segment grows during the crash
        for i in range(20):
            await log.write([record(f"a{i}", rows=2, event_time=HOUR + i * 300)])
        _interrupted(log_folder, into, stop_after=stop_after)
        if stop_after == "parts":
            assert sum(pq.read_metadata(p).num_rows for p in iter_parts(into)) == 40
        for i in range(20):  # the same segment grows past the interrupted plan's range
            await log.write([record(f"b{i}", event_time=HOUR + i * 300)])
        summary = compact(log_folder, into)
        assert summary["recovered"] is True
        assert summary["rows"] == 60  # the plan's 40 (rewritten in place) and the 20 new
        log.close()

    asyncio.run(main())
    counts = row_keys(into)
    assert max(counts.values()) == 1
    assert counts == expected_keys(log_folder) and sum(counts.values()) == 60
    assert not list(into.rglob(".part-*"))  # no temporary leftovers


def test_sigkilled_compactions_then_rerun_is_exactly_once(tmp_path: Path) -> None:
    log_folder, into = tmp_path / "log", tmp_path / "parquet"
    # several processes' segments, many hours, many small compaction rounds
    for p in range(4):
        write(log_folder, [record(f"p{p}-{i}", rows=1 + i % 3, deployment=f"d{i % 2}",
                                  event_time=HOUR + i * 97) for i in range(400)],
              segment_bytes=32 * 1024)
    rng = random.Random(7)
    interrupted = 0
    for _attempt in range(6):
        child = subprocess.Popen([sys.executable, str(CHILD), "compact", str(log_folder),
                                  str(into), "8192"], stdout=subprocess.PIPE)
        assert child.stdout is not None
        assert child.stdout.readline() == b"compacting\n"
        time.sleep(rng.uniform(0.05, 0.5))  # a whole compaction takes seconds (fsyncs)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        if child.returncode == -signal.SIGKILL and b"done" not in out:
            state = json.loads((into / CHECKPOINT).read_text())
            interrupted += state["plan"] is not None  # died between plan and commit
    assert interrupted >= 1
    compact(log_folder, into)
    counts = row_keys(into)
    assert max(counts.values()) == 1, "duplicated rows"
    assert counts == expected_keys(log_folder)
    assert sum(counts.values()) == 4 * sum(1 + i % 3 for i in range(400))
