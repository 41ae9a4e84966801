"""The durable prediction log: every prediction the server makes, appended with group commit.

Why this is written by hand: the server needs an append-only log that an asyncio handler
can await until its record is on disk (written *and* fsync'ed), at tens of thousands of
requests per second. Per-record fsync costs milliseconds each; a database (SQLite WAL,
PostgreSQL) adds a round trip and a lock per request; logging libraries neither fsync nor
tell the caller when a record is durable. So: one writer thread per process, a queue the
event loop appends to without blocking, and *group commit* — the writer takes everything
pending at once, writes it with one ``write`` and one ``fdatasync``, then releases all of
that batch's waiters together with one ``loop.call_soon_threadsafe`` per event loop.
While the disk syncs one batch, the next one accumulates, so the cost of an fsync is
shared by every request that arrived meanwhile. A request that is alone (the server has no
other in flight, ``write(..., alone=True)``) finds nobody to share with: it writes and
syncs on its own thread while the writer is idle, saving the two thread wake-ups.

Durability modes (``PredictionLog(durability=...)``):

``"acknowledged"`` (default)
    :meth:`PredictionLog.write` returns only once its records are written and fsync'ed, so
    a request answered with a 2xx after ``await log.write(...)`` survives SIGKILL and power
    loss. The writer writes as soon as anything is pending (``flush_interval`` and
    ``max_pending`` do not apply to ``write``; the records of in-flight requests are the
    only thing queued, so the server's concurrency bounds the queue).
``"async"``
    ``write`` returns at once. The writer writes (and fsyncs) a batch when the oldest
    pending record is ``flush_interval`` seconds old or ``max_pending`` records are
    pending. **Loss window:** a crash loses the records not yet flushed — at most the
    last ``flush_interval`` seconds of records (plus the duration of the batch being
    written), and never more than ``max_pending`` records. When the writer falls so far
    behind that ``max_pending`` records are pending, ``write`` waits for the next batch
    to be durable (backpressure instead of a larger loss window).

:meth:`PredictionLog.write_nowait` (shadow records, fire-and-forget callers) never waits in
either mode: its records are in the async loss window, and when ``max_pending`` records
are already pending they are dropped and counted (``stats["dropped"]``), never silently.
:meth:`PredictionLog.close` flushes and fsyncs everything that was queued.

File format. Each process writes its own segment files in the log folder, named
``log-<UTC start, to the microsecond>-<pid>-<random>-<sequence>.tpl`` (so names sort by
start time; the random part keeps containers that share a volume and reuse pids apart),
and never opens an existing file for writing. A
segment is the 8-byte magic ``TIDALPL1`` followed by frames::

    u32 little-endian payload length | u32 crc32(length bytes + payload) | payload

A payload holds the records of one or more whole ``write`` calls as orjson lines joined by
``\\n`` (orjson never emits a raw newline), so the records of one call commit together or
not at all. Readers stop at the first frame that is incomplete, empty (a zero-filled tail
after power loss) or fails its checksum: a torn tail is never returned. A segment rolls
over once it holds ``segment_bytes``. While a process writes a segment it holds an
exclusive ``flock`` on it (released by the kernel even on SIGKILL), which is how the
compactor tells a segment that may still grow from a sealed one; a new segment is created
under a hidden name, locked, then renamed into place, so a visible unlocked segment is
always finished. Local disks only: ``flock`` is not reliable on network file systems.

Preallocation. The writer zero-fills a segment ``PREALLOCATE_BYTES`` ahead of its last
frame (written and synced with the next batch) and writes frames over those zeros with
``pwrite``. An ``fdatasync`` after an append must also commit the file's new size through
the file system's journal; one after an overwrite of blocks that already exist need not,
which halves its cost on this project's test machines (about 270 → 140 µs). That is the
cost every acknowledged request waits for at low concurrency. The zeros past the last
frame are the "zero-filled tail" readers already stop at; a segment closed cleanly is
truncated to its last frame.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import fcntl
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from tidal.core.errors import TidalError

log = logging.getLogger("tidal.serve")

DURABILITY_MODES = ("acknowledged", "async")

MAGIC = b"TIDALPL1"
HEADER_SIZE = len(MAGIC)
FRAME_HEADER = struct.Struct("<II")
SEGMENT_SUFFIX = ".tpl"
SEGMENT_PREFIX = "log-"
# Frames are cut at about this many payload bytes so a reader never holds a huge frame;
# one write() call's records always stay in one frame.
FRAME_TARGET_BYTES = 1 << 20
MAX_WRITE_BYTES = 256 << 20
# how far ahead of the last frame a segment is zero-filled (see "Preallocation" above)
PREALLOCATE_BYTES = 1 << 20
# a lone write syncs on the event loop's thread only while syncs take at most this long
# (seconds): on a slow disk the loop must not stop answering for the length of an fsync
LONE_SYNC_MAX = 0.002
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_fdatasync = getattr(os, "fdatasync", os.fsync)


class PredictionLogError(TidalError):
    """The prediction log cannot take records: closed, its writer failed, or the disk did."""


@dataclass(slots=True)
class PredictionRecord:
    """One request's prediction, as logged."""

    request_id: str
    event_time: float          # epoch seconds (from the request or the clock)
    deployment: str
    model: str
    version: int
    route: str                 # stable | canary | shadow | batch
    inputs: dict[str, Any]     # column name -> values (a list or numpy array, one per row)
    outputs: dict[str, Any]    # output name -> values (probabilities: rows of class values)
    latency_ms: float
    received_at: float         # epoch seconds when the server received it
    key: str | None = None     # the entity key the request was routed by (labels join on it)
    status: int = 200          # a failed request is logged too: its status, no rows
    error: str | None = None   # ... and the start of its error message


_RECORD_FIELDS = frozenset(f.name for f in fields(PredictionRecord))


def _default(value: Any) -> Any:
    """What orjson cannot serialise natively: non-contiguous or exotic numpy arrays and
    numpy scalars (both have ``tolist``; numpy itself need not be imported here), sets.
    NaN and infinities become null (orjson's rule), i.e. missing."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot log a value of type {type(value).__name__}")


def encode_records(records: list[PredictionRecord]) -> bytes:
    """The records as orjson lines joined by ``\\n`` (one payload chunk)."""
    try:
        lines = []
        for record in records:
            if not isinstance(record, PredictionRecord):
                raise TypeError(f"expected a PredictionRecord, got {type(record).__name__}")
            lines.append(orjson.dumps(_packed(record), default=_default,
                                      option=_DUMPS_OPTIONS))
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise PredictionLogError(f"cannot log prediction record: {exc}") from exc
    blob = b"\n".join(lines)
    if len(blob) > MAX_WRITE_BYTES:
        raise PredictionLogError(f"one write of {len(blob):,} bytes is larger than the "
                                 f"{MAX_WRITE_BYTES:,} bytes a log frame may hold; split it")
    return blob


def decode_payload(payload: bytes) -> list[dict[str, Any]]:
    """The records of one frame as plain dicts (what the compactor reads)."""
    return [_unpacked(orjson.loads(line)) for line in payload.split(b"\n")]


#: numeric columns at least this long are logged as base64 of their bytes: writing 8,000
#: floats as decimal text costs more than predicting them (a 1,024-row request)
PACK_MIN_VALUES = 64
_PACKABLE = {"f": "<f8", "i": "<i8", "u": "<u8", "b": "|b1"}
_PACKED = "$array"


def _packed(record: PredictionRecord) -> Any:
    """The record with its long numeric columns packed (see :data:`PACK_MIN_VALUES`)."""
    if not any(_packable(v) for v in (*record.inputs.values(), *record.outputs.values())):
        return record
    fields_ = {name: getattr(record, name) for name in _RECORD_FIELDS}
    for part in ("inputs", "outputs"):
        fields_[part] = {name: _pack(values) if _packable(values) else values
                         for name, values in fields_[part].items()}
    return fields_


def _packable(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    return dtype is not None and dtype.kind in _PACKABLE and values.size >= PACK_MIN_VALUES


def _pack(values: Any) -> dict[str, Any]:
    dtype = _PACKABLE[values.dtype.kind]
    data = values.astype(dtype, copy=False).tobytes()
    return {_PACKED: {"dtype": dtype, "shape": list(values.shape),
                      "base64": base64.b64encode(data).decode("ascii")}}


def _unpacked(obj: dict[str, Any]) -> dict[str, Any]:
    for part in ("inputs", "outputs"):
        columns = obj.get(part)
        if isinstance(columns, dict) and any(
                isinstance(v, dict) and _PACKED in v for v in columns.values()):
            obj[part] = {name: _unpack(v[_PACKED]) if isinstance(v, dict) and _PACKED in v
                         else v for name, v in columns.items()}
    return obj


def _unpack(packed: dict[str, Any]) -> list[Any]:
    """A packed column as the list JSON would have given: NaN as None (missing)."""
    import numpy as np

    values = np.frombuffer(base64.b64decode(packed["base64"]), dtype=packed["dtype"])
    values = values.reshape(packed["shape"])
    listed = values.tolist()
    if values.dtype.kind == "f" and np.isnan(values).any():
        if values.ndim == 1:
            return [None if v != v else v for v in listed]
        return [[None if v != v else v for v in row] for row in listed]
    return listed  # type: ignore[no-any-return]


def _record_from(obj: dict[str, Any]) -> PredictionRecord:
    if obj.keys() != _RECORD_FIELDS:  # written by a newer or older Tidal
        obj = {key: obj.get(key) for key in _RECORD_FIELDS}
    return PredictionRecord(**obj)


# -- reading ---------------------------------------------------------------------------------

def list_segments(folder: str | Path) -> list[Path]:
    """The segment files in ``folder``, sorted by name (start time first)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if path.name.startswith(SEGMENT_PREFIX) and path.name.endswith(SEGMENT_SUFFIX))


def iter_frames(path: str | Path, start: int = HEADER_SIZE,
                stop: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """``(start offset, end offset, payload)`` of each committed frame of a segment from
    byte ``start`` (a frame boundary) until the first torn or corrupt frame, the end of
    the file, or offset ``stop`` (frames ending after it are left for later)."""
    with open(path, "rb") as file:
        if file.read(HEADER_SIZE) != MAGIC:
            size = os.fstat(file.fileno()).st_size
            if size >= HEADER_SIZE:  # a header that was written whole but is wrong
                log.warning("%s is not a prediction log segment; skipped", path)
            return
        offset = max(start, HEADER_SIZE)
        file.seek(offset)
        while stop is None or offset < stop:
            header = file.read(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                return
            length, crc = FRAME_HEADER.unpack(header)
            if length == 0:  # a zero-filled tail, never written by us
                return
            end = offset + FRAME_HEADER.size + length
            if stop is not None and end > stop:
                return
            payload = file.read(length)
            if len(payload) < length:
                return  # torn tail, or a frame still being written
            if zlib.crc32(payload, zlib.crc32(header[:4])) != crc:
                log.warning("%s: frame at byte %d fails its checksum; the rest of the "
                            "segment is ignored", path, offset)
                return
            yield offset, end, payload
            offset = end


def read_segment(path: str | Path) -> Iterator[PredictionRecord]:
    """Every committed record of one segment, in the order written."""
    for _start, _end, payload in iter_frames(path):
        for line in payload.split(b"\n"):
            yield _record_from(_unpacked(orjson.loads(line)))


def read_log(folder: str | Path) -> Iterator[PredictionRecord]:
    """Every committed record in the log folder: segment by segment (sorted by name), in
    the order written within each segment. Torn tails are skipped."""
    for path in list_segments(folder):
        yield from read_segment(path)


def segment_is_sealed(path: str | Path) -> bool:
    """True when no process is writing ``path`` any more: it will never grow again (its
    writer closed it, rolled over, or died). False while a writer holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also releases our shared lock
    return True


# -- writing ---------------------------------------------------------------------------------

class _Waiters:
    """The futures of one batch, grouped by event loop so each loop is woken once."""

    __slots__ = ("by_loop",)

    def __init__(self) -> None:
        self.by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.by_loop.setdefault(loop, []).append(future)

    def release(self, error: BaseException | None) -> None:
        for loop, futures in self.by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():  # a cancelled request
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


class PredictionLog:
    """An append-only, group-committed log of prediction records (one per process).

    Create it, :meth:`start` it (``write`` also starts it), ``await write(records)`` from
    the event loop, and :meth:`close` it on shutdown. See the module docstring for the
    durability modes and the file format.
    """

    def __init__(self, folder: str | Path, *, durability: str = "acknowledged",
                 flush_interval: float = 0.2, max_pending: int = 100_000,
                 segment_bytes: int = 64 * 2**20) -> None:
        if durability not in DURABILITY_MODES:
            raise PredictionLogError(f"unknown durability {durability!r}: use "
                                     f"{' or '.join(map(repr, DURABILITY_MODES))}")
        if flush_interval <= 0 or max_pending < 1 or segment_bytes < 1:
            raise PredictionLogError("flush_interval, max_pending and segment_bytes must "
                                     "be positive")
        self.folder = Path(folder)
        self.durability = durability
        self.flush_interval = float(flush_interval)
        self.max_pending = int(max_pending)
        self.segment_bytes = int(segment_bytes)
        self._acknowledged = durability == "acknowledged"
        self._cond = threading.Condition(threading.Lock())
        # the queue (guarded by _cond): payload chunks, their record count, their waiters
        self._chunks: list[bytes] = []
        self._waiters = _Waiters()
        self._pending = 0
        self._urgent = False         # a waiter in async mode or flush(): write now
        self._oldest = 0.0           # monotonic enqueue time of the oldest queued chunk
        self._inflight_since = 0.0   # ... of the oldest record of the batch being written
        self._inflight = 0
        self._closing = False
        self._sleeping = False       # the writer waits on _cond
        self._inline = False         # a lone write commits on its own thread (write())
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        # the segment's state: the writer thread's, or a lone write()'s while _inline
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0               # the end of the last committed frame
        self._zeroed = 0             # the end of the zero-filled region after it
        self._sequence = 0
        self._name_stem = ""
        # counters
        self._batches = 0
        self._lone_commits = 0       # batches committed by write(alone=True) itself
        self._records = 0
        self._bytes = 0
        self._dropped = 0
        self._last_drop_warning = -1e9
        self._errors = 0
        self._segments = 0
        self._last_fsync = 0.0
        self._last_batch_records = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent). No file is created before the first
        batch, so an idle process leaves no empty segment behind."""
        with self._cond:
            if self._closing:
                raise PredictionLogError("the prediction log is closed")
            if self._thread is not None:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            now = time.time_ns() // 1000
            started = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**6)) + \
                f"{now % 10**6:06d}Z"
            self._name_stem = f"{SEGMENT_PREFIX}{started}-{os.getpid()}-{secrets.token_hex(3)}"
            self._thread = threading.Thread(target=self._run, name="tidal-predlog-writer",
                                            daemon=True)
            self._thread.start()
        atexit.register(self.close)  # a process that forgets close() still flushes

    def close(self, timeout: float = 10.0) -> None:
        """Write and fsync everything queued, close the segment and stop the writer.
        Idempotent. Raises :class:`PredictionLogError` if the writer does not finish
        within ``timeout`` seconds (the records still queued are then not durable)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        atexit.unregister(self.close)
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            raise PredictionLogError(
                f"the prediction log writer did not finish within {timeout} s; "
                f"{self._pending + self._inflight} records may not be durable")

    def __enter__(self) -> PredictionLog:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the hot path --------------------------------------------------------------------

    def _encoded(self, records: list[PredictionRecord]) -> bytes | None:
        """The records' bytes (None for none), encoded before the lock is taken; starts
        the writer on first use."""
        if not records:
            return None
        blob = encode_records(records)
        if self._thread is None:
            self.start()
        return blob

    async def write(self, records: list[PredictionRecord], *, alone: bool = False) -> None:
        """Log ``records`` (one request's, typically). In "acknowledged" mode this returns
        once they are written and fsync'ed; in "async" mode at once (unless the queue is
        full, see the module docstring). Raises :class:`PredictionLogError` if the log is
        closed, its writer died or the disk failed — records are never dropped silently.

        ``alone``: the caller knows no other request is in flight. In "acknowledged" mode
        with the writer idle, the records are then written and synced right here, on the
        event loop's thread: with nobody to share the fsync with, handing the batch to the
        writer thread and back only adds two thread wake-ups to the wait. Not while the
        last sync took longer than ``LONE_SYNC_MAX``: the loop would stop for as long."""
        blob = self._encoded(records)
        if blob is None:
            return
        with self._cond:
            self._check_open()
            inline = alone and self._acknowledged and self._sleeping and not self._chunks \
                and not self._inline and self._last_fsync <= LONE_SYNC_MAX
            if inline:
                self._inline = True  # the writer waits until this commit is done
                self._inflight, self._inflight_since = len(records), time.monotonic()
            else:
                wait = self._acknowledged or self._pending >= self.max_pending
                if wait:
                    loop = asyncio.get_running_loop()
                    future: asyncio.Future[None] = loop.create_future()
                    self._waiters.add(loop, future)
                    self._urgent = True
                self._enqueue(blob, len(records))
        if inline:
            self._commit_lone(blob, len(records))
        elif wait:
            await future

    def _commit_lone(self, blob: bytes, count: int) -> None:
        """Commit one write on the caller's thread (``_inline`` is set: the writer
        waits), then hand the segment back to the writer."""
        error: PredictionLogError | None = None
        committed = False
        try:
            error = self._commit([blob], count)
            committed = error is None
        finally:
            with self._cond:
                self._inline = False
                self._inflight = 0
                self._lone_commits += committed
                if self._chunks or self._waiters.by_loop or self._closing:
                    self._cond.notify()  # work that arrived meanwhile, or a close
        if error is not None:
            raise error

    def write_nowait(self, records: list[PredictionRecord]) -> None:
        """Queue ``records`` without waiting for them (shadow records, async mode). They
        are in the async loss window; if ``max_pending`` records are already queued they
        are dropped and counted in ``stats["dropped"]``."""
        blob = self._encoded(records)
        if blob is None:
            return
        with self._cond:
            self._check_open()
            if self._pending < self.max_pending:
                self._enqueue(blob, len(records))
                return
            self._dropped += len(records)
            dropped, now = self._dropped, time.monotonic()
            warn = now - self._last_drop_warning >= 10.0
            if warn:
                self._last_drop_warning = now
        if warn:  # at most every 10 s, however hard the server is overloaded
            log.warning("prediction log queue full (%d records pending): %d shadow/async "
                        "records dropped so far", self.max_pending, dropped)

    async def flush(self) -> None:
        """Wait until everything queued so far is written and fsync'ed (any mode)."""
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            self._check_open()
            if not self._pending and not self._inflight:
                return
            self._waiters.add(loop, future)
            self._urgent = True
            self._cond.notify()
        await future

    def _check_open(self) -> None:  # with self._cond held
        if self._failure is not None:
            raise PredictionLogError(f"the prediction log writer died: {self._failure!r}")
        if self._closing:
            raise PredictionLogError("the prediction log is closed")

    def _enqueue(self, blob: bytes, count: int) -> None:  # with self._cond held
        first = not self._chunks
        if first:
            self._oldest = time.monotonic()
        self._chunks.append(blob)
        self._pending += count
        # wake the writer if it sleeps and has something to do now (acknowledged mode, a
        # waiter, a full queue) or a flush_interval timer to start; a busy writer looks
        # at the queue again after its batch anyway
        if self._sleeping and (first or self._urgent or self._acknowledged
                               or self._pending >= self.max_pending):
            self._cond.notify()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters for metrics and the admin API."""
        now = time.monotonic()
        with self._cond:
            oldest = [t for t, live in ((self._inflight_since, self._inflight),
                                        (self._oldest, self._chunks)) if live]
            return {
                "durability": self.durability,
                "pending": self._pending + self._inflight,
                "batches_written": self._batches,
                "lone_commits": self._lone_commits,
                "records_written": self._records,
                "bytes_written": self._bytes,
                "last_batch_records": self._last_batch_records,
                "last_fsync_seconds": self._last_fsync,
                "lag_seconds": now - min(oldest) if oldest else 0.0,
                "dropped": self._dropped,
                "write_errors": self._errors,
                "segments_created": self._segments,
                "segment": self._path.name if self._fd is not None and self._path else None,
                "running": self._thread is not None and self._thread.is_alive(),
                "error": repr(self._failure) if self._failure is not None else None,
            }

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        inflight = _Waiters()
        try:
            while True:
                with self._cond:
                    if not self._wait_for_batch():
                        break
                    chunks, inflight, count = self._chunks, self._waiters, self._pending
                    self._chunks, self._waiters, self._pending = [], _Waiters(), 0
                    self._inflight, self._inflight_since = count, self._oldest
                    self._urgent = False
                error = self._commit(chunks, count) if chunks else None
                with self._cond:
                    self._inflight = 0
                done, inflight = inflight, _Waiters()
                done.release(error)
        except BaseException as exc:  # a bug: fail everyone loudly rather than hang them
            log.exception("the prediction log writer died")
            with self._cond:
                self._failure = exc
                queued, self._waiters = self._waiters, _Waiters()
                self._chunks, self._pending, self._inflight = [], 0, 0
            error = PredictionLogError(f"the prediction log writer died: {exc!r}")
            inflight.release(error)
            queued.release(error)
        finally:
            self._close_segment()

    def _wait_for_batch(self) -> bool:  # with self._cond held; False: stop
        while True:
            if self._inline:  # write() is committing: the segment is its until then
                remaining = None
            elif self._chunks or self._waiters.by_loop:
                if self._acknowledged or self._urgent or self._closing \
                        or self._pending >= self.max_pending:
                    return True
                remaining = self._oldest + self.flush_interval - time.monotonic()
                if remaining <= 0:
                    return True
            elif self._closing:
                return False
            else:
                remaining = None
            self._sleeping = True
            try:
                self._cond.wait(remaining)
            finally:
                self._sleeping = False

    def _commit(self, chunks: list[bytes], count: int) -> PredictionLogError | None:
        """Write the batch as frames and sync it with one fdatasync. On a disk error the
        batch's waiters get the error and the segment is abandoned (a later batch starts a
        new one: nothing is ever appended after a possibly partial frame)."""
        data = _frames(chunks)
        try:
            if self._fd is None:
                self._open_segment()
            assert self._fd is not None
            end = self._size + len(data)
            if end > self._zeroed:  # synced together with this batch's frames
                ahead = max(end, min(self._zeroed + PREALLOCATE_BYTES, self.segment_bytes))
                _write_at(self._fd, bytes(ahead - end), end)
                self._zeroed = ahead
            # the first frame's header last: a reader of the live segment sees zeros
            # (and stops) until the whole batch is in the file, never half a frame
            frames = memoryview(data)
            _write_at(self._fd, frames[FRAME_HEADER.size:], self._size + FRAME_HEADER.size)
            _write_at(self._fd, frames[:FRAME_HEADER.size], self._size)
            began = time.perf_counter()
            _fdatasync(self._fd)
            fsync_seconds = time.perf_counter() - began
        except OSError as exc:
            self._errors += 1
            log.error("prediction log: writing %d records to %s failed: %s", count,
                      self._path, exc)
            self._close_segment()
            return PredictionLogError(f"the prediction log could not write to disk: {exc}")
        self._size += len(data)
        with self._cond:
            self._batches += 1
            self._records += count
            self._bytes += len(data)
            self._last_fsync = fsync_seconds
            self._last_batch_records = count
        if self._size >= self.segment_bytes:
            self._close_segment()  # sealed: the compactor may finish it and delete it
        return None

    def _open_segment(self) -> None:
        """Create the next segment: hidden name, locked, header fsync'ed, renamed into
        place, folder fsync'ed — so the file and its name survive a crash."""
        self._sequence += 1
        name = f"{self._name_stem}-{self._sequence:06d}{SEGMENT_SUFFIX}"
        final, hidden = self.folder / name, self.folder / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, MAGIC)
            _fdatasync(fd)
            os.rename(hidden, final)
            fsync_folder(self.folder)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._path = fd, final
        self._size = self._zeroed = HEADER_SIZE
        with self._cond:
            self._segments += 1

    def _close_segment(self) -> None:
        if self._fd is not None:
            try:  # drop the zeros after the last frame (a reader would stop at them anyway)
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            try:
                os.close(self._fd)  # releases the lock: the segment is sealed
            except OSError:
                pass
            self._fd = None


def _write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """All of ``data`` at ``offset`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _frames(chunks: list[bytes]) -> bytes:
    """Pack payload chunks (one per write call) into frames of about FRAME_TARGET_BYTES."""
    parts: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for chunk in chunks:
        group.append(chunk)
        size += len(chunk) + 1
        if size >= FRAME_TARGET_BYTES:
            _append_frame(parts, b"\n".join(group))
            group, size = [], 0
    if group:
        _append_frame(parts, b"\n".join(group))
    return b"".join(parts)


def _append_frame(parts: list[bytes], payload: bytes) -> None:
    length = struct.pack("<I", len(payload))
    parts.append(length)
    parts.append(struct.pack("<I", zlib.crc32(payload, zlib.crc32(length))))
    parts.append(payload)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX needs the folder synced)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
