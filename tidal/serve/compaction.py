"""Compaction: the prediction log's segments become Parquet, partitioned by deployment and
hour, exactly once.

The log (:mod:`tidal.serve.predlog`) is shaped for the server: appends, group commit, one
file per process. Monitors want the opposite: columns, one row per predicted row, and
only the hours they look at. So :func:`compact` turns committed log records into

    into/deployment=<name>/hour=<YYYY-MM-DDTHH>/part-<plan id>.parquet

(UTC hour of the event time; the deployment name percent-encoded, as Hive partitioning
expects), one row per prediction row: ``request_id, row, event_time, received_at,
deployment, model, version, route, latency_ms, key, status, error`` then ``in.<input>`` and
``out.<output>`` (a failed request is one row with its status and error and no values).
Times are ``timestamp[us, UTC]``. Each part has the columns of its own records; values
missing from a record are null, integer lists (probabilities) become ``list<double>``, and
a column whose values do not share a type is stored as JSON text. Read the folder with
:func:`read_predictions` (it reads only the hours asked for and unifies the parts'
schemas), or with any Parquet reader that knows Hive partitions.

Why exactly once needs care, and how. A compaction can die anywhere (SIGKILL, power loss)
and the log keeps growing meanwhile. The checkpoint ``into/_checkpoint.json`` records, per
segment, the byte offset compacted up to (always a frame boundary) and whether the segment
is done (sealed and fully compacted). Each round is a small write-ahead protocol:

1. read new frames (up to ``max_batch_bytes``), and save the *plan* — a fresh id and the
   exact byte range per segment — in the checkpoint (atomic ``os.replace`` + fsync);
2. write the parts, each to a hidden temporary name, fsync'ed, then renamed to
   ``part-<plan id>.parquet``;
3. save the checkpoint with the offsets advanced and the plan cleared.

A run that finds a plan in the checkpoint redoes exactly that plan first — the same byte
ranges, so the same rows and the same part names — overwriting whatever the dead run left,
then carries on. Nothing is written twice and nothing is skipped. (Naming parts by the
range read instead would not do: a rerun reads a longer range of a growing segment.) Only
one compaction runs at a time per output folder (``into/_compaction.lock``).

A segment is *sealed* once no process holds its write lock (see predlog); only then can it
be marked done and, with ``delete_compacted=True``, deleted. Open segments are compacted up
to their last complete frame and continued next time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tidal.core.errors import TidalError
from tidal.core.ids import new_id
from tidal.serve.predlog import (
    HEADER_SIZE,
    decode_payload,
    fsync_folder,
    iter_frames,
    list_segments,
    segment_is_sealed,
)
from tidal.serve.predparts import TIMESTAMP, hour_folder

log = logging.getLogger("tidal.serve")

CHECKPOINT = "_checkpoint.json"
LOCK = "_compaction.lock"
CHECKPOINT_FORMAT = 1
_FIXED = ("request_id", "row", "event_time", "received_at", "deployment", "model", "version",
          "route", "latency_ms", "key", "status", "error")


def compact(log_folder: str | Path, into: str | Path, *, delete_compacted: bool = False,
            max_batch_bytes: int = 16 << 20) -> dict[str, Any]:
    """Compact every committed record of ``log_folder`` not compacted yet into Parquet
    under ``into``; exactly once, safe to kill and rerun at any point.

    Returns ``{"rows", "records", "files", "segments", "deleted", "recovered"}``: rows and
    part files written (an interrupted run's rows, rewritten in place, included), log
    records and segments read, segments deleted (``delete_compacted``: sealed segments
    once fully compacted), and whether an interrupted compaction was finished first.
    Records appended while it runs are left for the next call. Each round reads at most
    ``max_batch_bytes`` of log (its records are held in memory as Python objects, several
    times that size), so a large backlog becomes several parts per hour.
    """
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    with _exclusive(into / LOCK):
        return Compactor(Path(log_folder), into, max_batch_bytes=max_batch_bytes).run(
            delete_compacted=delete_compacted)


@dataclass
class Plan:
    """One round: which byte range of which segment goes into parts named by ``id``."""

    id: str
    ranges: dict[str, tuple[int, int, bool]]  # segment name -> (start, end, done after)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "ranges": {name: list(r) for name, r in self.ranges.items()}}


class Compactor:
    """The steps of :func:`compact`, separately callable (the crash tests drive them);
    the caller must hold the output folder's lock."""

    def __init__(self, log_folder: Path, into: Path, *, max_batch_bytes: int = 16 << 20):
        self.log_folder = log_folder
        self.into = into
        into.mkdir(parents=True, exist_ok=True)
        self.max_batch_bytes = max_batch_bytes
        self.state = self._load()
        self.summary: dict[str, Any] = {"rows": 0, "records": 0, "files": 0, "segments": 0,
                                        "deleted": 0, "recovered": False}
        self._read: set[str] = set()

    def run(self, *, delete_compacted: bool = False) -> dict[str, Any]:
        if self.state["plan"] is not None:
            plan = self.reload_plan()
            self.write_parts(plan)
            self.commit(plan)
            self.summary["recovered"] = True
        snapshot = self.snapshot()
        while (plan := self.next_plan(snapshot)) is not None:
            self.save_plan(plan)
            self.write_parts(plan)
            self.commit(plan)
        if delete_compacted:
            self.delete_done()
        self.summary["segments"] = len(self._read)
        return dict(self.summary)

    # -- planning --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, tuple[Path, bool, int]]:
        """Segment name -> (path, sealed, size) now. Sealed is decided before the size is
        taken, so a sealed segment's size is final; records appended later wait for the
        next compaction (a busy log cannot keep one compaction running forever)."""
        found: dict[str, tuple[Path, bool, int]] = {}
        for path in list_segments(self.log_folder):
            entry = self.state["segments"].get(path.name)
            if entry is not None and entry["done"]:
                continue
            sealed = segment_is_sealed(path)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            found[path.name] = (path, sealed, size)
        self._forget_deleted()  # a run killed between deleting and saving
        return found

    def next_plan(self, snapshot: dict[str, tuple[Path, bool, int]]) -> Plan | None:
        """The next round's byte ranges and records, at most ``max_batch_bytes`` of log;
        None when everything in the snapshot is compacted."""
        ranges: dict[str, tuple[int, int, bool]] = {}
        records: list[dict[str, Any]] = []
        budget = self.max_batch_bytes
        for name, (path, sealed, size) in snapshot.items():
            entry = self.state["segments"].get(name, {"offset": HEADER_SIZE, "done": False})
            if entry["done"]:
                continue
            start = end = entry["offset"]
            if start >= size and not sealed:
                continue
            cut = False
            for _begin, frame_end, payload in iter_frames(path, start, stop=size):
                if budget <= 0:
                    cut = True
                    break
                records.extend(decode_payload(payload))
                budget -= len(payload)
                end = frame_end
            done = sealed and not cut
            if end > start or done:
                ranges[name] = (start, end, done)
            if budget <= 0:
                break
        if not ranges:
            return None
        return Plan(new_id(), ranges, records)

    def save_plan(self, plan: Plan) -> None:
        self.state["plan"] = plan.to_json()
        self._save()

    def reload_plan(self) -> Plan:
        """The interrupted plan from the checkpoint, with its records read again from
        exactly the same byte ranges."""
        saved = self.state["plan"]
        plan = Plan(saved["id"], {name: (int(r[0]), int(r[1]), bool(r[2]))
                                  for name, r in saved["ranges"].items()})
        for name, (start, end, _done) in plan.ranges.items():
            path = self.log_folder / name
            if not path.exists():
                log.warning("compaction: segment %s of interrupted plan %s is gone", name,
                            plan.id)
                continue
            for _begin, _end, payload in iter_frames(path, start, stop=end):
                plan.records.extend(decode_payload(payload))
        return plan

    # -- writing ---------------------------------------------------------------------------

    def write_parts(self, plan: Plan) -> list[Path]:
        """One part per (deployment, hour) of the plan's records, each written to a
        temporary name, fsync'ed and renamed; the folders are fsync'ed after."""
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for record in plan.records:
            when = record.get("event_time")
            if not isinstance(when, int | float):
                when = record.get("received_at") or 0.0
            groups.setdefault((str(record.get("deployment")), int(when // 3600)),
                              []).append(record)
        written, folders = [], set()
        for (deployment, bucket), records in sorted(groups.items()):
            table = records_to_table(records)
            if table.num_rows == 0:
                continue
            folder = hour_folder(self.into, deployment, bucket * 3600.0)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"part-{plan.id}.parquet"
            temporary = folder / f".part-{plan.id}.parquet.tmp"
            pq.write_table(table, temporary, compression="zstd")
            _fsync_file(temporary)
            os.replace(temporary, final)
            folders.update((folder, folder.parent))
            written.append(final)
            self.summary["rows"] += table.num_rows
        for folder in folders:
            fsync_folder(folder)
        fsync_folder(self.into)
        self.summary["files"] += len(written)
        return written

    def commit(self, plan: Plan) -> None:
        """Advance the checkpoint past the plan's ranges and clear the plan."""
        for name, (_start, end, done) in plan.ranges.items():
            self.state["segments"][name] = {"offset": end, "done": done}
            self._read.add(name)
        self.state["plan"] = None
        self._save()
        self.summary["records"] += len(plan.records)

    def delete_done(self) -> None:
        """Delete the segments that are sealed and fully compacted, and the hidden files
        of writers that died while creating a segment."""
        deleted = 0
        for path in list_segments(self.log_folder):
            entry = self.state["segments"].get(path.name)
            if entry is not None and entry["done"]:
                path.unlink(missing_ok=True)
                deleted += 1
        for path in self.log_folder.glob(".log-*.tpl.new"):
            if segment_is_sealed(path):
                path.unlink(missing_ok=True)
        if deleted:
            fsync_folder(self.log_folder)
            self._forget_deleted()
        self.summary["deleted"] += deleted

    def _forget_deleted(self) -> None:
        """Drop the checkpoint entries of finished segments whose files are gone (names
        are never reused). Unfinished entries stay even if their file is missing: a log
        folder mounted late must not be compacted twice."""
        present = {path.name for path in list_segments(self.log_folder)}
        kept = {name: entry for name, entry in self.state["segments"].items()
                if name in present or not entry["done"]}
        if len(kept) != len(self.state["segments"]):
            self.state["segments"] = kept
            self._save()

    # -- the checkpoint ----------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        path = self.into / CHECKPOINT
        if not path.exists():
            return {"format": CHECKPOINT_FORMAT, "segments": {}, "plan": None}
        state = orjson.loads(path.read_bytes())
        if state.get("format") != CHECKPOINT_FORMAT:
            raise TidalError(f"{path} has format {state.get('format')!r}; this Tidal "
                               f"reads format {CHECKPOINT_FORMAT}")
        return state

    def _save(self) -> None:
        path = self.into / CHECKPOINT
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as file:
            file.write(orjson.dumps(self.state, option=orjson.OPT_INDENT_2))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        fsync_folder(self.into)


# -- records to Arrow ----------------------------------------------------------------------------

def records_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """One row per prediction row of ``records`` (log records as dicts)."""
    fixed: dict[str, list[Any]] = {name: [] for name in _FIXED}
    inputs: dict[str, list[Any]] = {}
    outputs: dict[str, list[Any]] = {}
    total = 0
    for record in records:
        ins, outs = record.get("inputs") or {}, record.get("outputs") or {}
        ins = {k: v if isinstance(v, list) else [v] for k, v in ins.items()}
        outs = {k: v if isinstance(v, list) else [v] for k, v in outs.items()}
        rows = max(map(len, (*ins.values(), *outs.values())), default=0)
        if rows == 0:
            if record.get("status") in (None, 200):
                continue
            rows = 1  # a failed request: one row with its status and error, no values
        fixed["request_id"] += [record.get("request_id")] * rows
        fixed["row"] += range(rows)
        for name in ("event_time", "received_at"):
            value = record.get(name)
            fixed[name] += [round(value * 1_000_000) if isinstance(value, int | float)
                            else None] * rows
        for name in ("deployment", "model", "version", "route", "latency_ms", "key", "status",
                     "error"):
            fixed[name] += [record.get(name)] * rows
        for columns, values_by_name in ((inputs, ins), (outputs, outs)):
            for name, values in values_by_name.items():
                column = columns.get(name)
                if column is None:
                    column = columns[name] = [None] * total
                column += values
                if len(values) < rows:
                    column += [None] * (rows - len(values))
        total += rows
        for columns in (inputs, outputs):
            for column in columns.values():
                if len(column) < total:
                    column += [None] * (total - len(column))
    arrays = {
        "request_id": pa.array(fixed["request_id"], pa.string()),
        "row": pa.array(fixed["row"], pa.int32()),
        "event_time": pa.array(fixed["event_time"], pa.int64()).cast(TIMESTAMP),
        "received_at": pa.array(fixed["received_at"], pa.int64()).cast(TIMESTAMP),
        "deployment": pa.array(fixed["deployment"], pa.string()),
        "model": pa.array(fixed["model"], pa.string()),
        "version": pa.array(fixed["version"], pa.int64()),
        "route": pa.array(fixed["route"], pa.string()),
        "latency_ms": pa.array(fixed["latency_ms"], pa.float64()),
        "key": pa.array(fixed["key"], pa.string()),
        "status": pa.array([200 if s is None else s for s in fixed["status"]], pa.int32()),
        "error": pa.array(fixed["error"], pa.string()),
    }
    for prefix, columns in (("in.", inputs), ("out.", outputs)):
        for name, values in columns.items():
            arrays[prefix + name] = _column(values)
    return pa.table(arrays)


def _column(values: list[Any]) -> pa.Array:
    """An Arrow column with a sensible type: ints and floats together become double,
    numeric lists list<double>; values that share no type, and objects, JSON text."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return _as_text(values)
    kind = array.type
    if pa.types.is_struct(kind) or pa.types.is_map(kind):
        return _as_text(values)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        inner = kind.value_type
        if pa.types.is_integer(inner) or pa.types.is_floating(inner) or pa.types.is_null(inner):
            return array.cast(pa.list_(pa.float64()))
        if pa.types.is_struct(inner):
            return _as_text(values)
    return array


def _as_text(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
                     for v in values], pa.string())


# -- reading the compacted folder ------------------------------------------------------------

def read_predictions(into: str | Path, deployment: str | None = None, *,
                     start: float | None = None, end: float | None = None,
                     columns: list[str] | None = None) -> pa.Table:
    """The compacted rows of ``deployment`` (all deployments if None) whose event time is
    in ``[start, end)`` (epoch seconds; open when None). Only the matching hour folders
    are read; the parts' schemas are unified (a column missing from a part is null)."""
    into = Path(into)
    if deployment is not None:
        folders = [into / f"deployment={quote(deployment, safe='')}"]
    else:
        folders = sorted(p for p in into.glob("deployment=*") if p.is_dir())
    first = None if start is None else time.strftime("%Y-%m-%dT%H", time.gmtime(start))
    last = None if end is None else time.strftime("%Y-%m-%dT%H", time.gmtime(end))
    filtered = start is not None or end is not None
    reading = columns
    if columns is not None and filtered and "event_time" not in columns:
        reading = [*columns, "event_time"]
    tables = []
    for folder in folders:
        for hour in sorted(folder.glob("hour=*")):
            name = hour.name[len("hour="):]
            if (first is not None and name < first) or (last is not None and name > last):
                continue
            for part in sorted(hour.glob("part-*.parquet")):
                table = pq.read_table(part)
                if reading is not None:
                    table = table.select([c for c in reading if c in table.column_names])
                tables.append(table)
    if not tables:
        return pa.table({})
    table = concat_parts(tables)
    if filtered:
        times = table.column("event_time").cast(pa.int64()).to_numpy(zero_copy_only=False)
        keep = (times >= (-2**62 if start is None else round(start * 1e6))) & \
               (times < (2**62 if end is None else round(end * 1e6)))
        table = table.filter(pa.array(keep))
        if reading is not columns:
            table = table.drop_columns(["event_time"])
    return table


def concat_parts(tables: list[pa.Table]) -> pa.Table:
    """One table from parts whose columns may differ; a column stored with types that do
    not unify (a new model version's signature, JSON text in one part) becomes text."""
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        types: dict[str, set[pa.DataType]] = {}
        for table in tables:
            for field_ in table.schema:
                types.setdefault(field_.name, set()).add(field_.type)
        clashing = {name for name, kinds in types.items()
                    if len({k for k in kinds if not pa.types.is_null(k)}) > 1}
        return pa.concat_tables([_columns_as_text(t, clashing) for t in tables],
                                promote_options="permissive")


def _columns_as_text(table: pa.Table, names: set[str]) -> pa.Table:
    for name in names & set(table.column_names):
        column = table.column(name)
        try:
            text = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # lists and the like
            text = pa.array([None if v is None else str(v) for v in column.to_pylist()],
                            pa.string())
        table = table.set_column(table.column_names.index(name), name, text)
    return table


def iter_parts(into: str | Path) -> Iterator[Path]:
    """Every part file under ``into``."""
    yield from sorted(Path(into).glob("deployment=*/hour=*/part-*.parquet"))


# -- files ---------------------------------------------------------------------------------------

@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (one compaction per output folder at a time)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

