"""Pipeline runs and step runs: the step cache and the lineage of every artifact.

A pipeline run records what ran (name, parameters, code commit, actor); each of its step
runs records the step's cache key (a hash of its code, parameters and input hashes), its
inputs and its output by content hash, and whether it ran or was served from the cache.
That is enough for two things:

- the cache: ``cached_output(key)`` is the newest FINISHED step run with that key and an
  output, so an unchanged step is skipped and a failed one never poisons the cache;
- lineage: an output hash leads to the step run that produced it, whose input hashes lead
  to their producers, and so on back to the sources (``lineage(sha256)``).

Steps are recorded as they finish (one short transaction each), so a pipeline that fails
halfway keeps its finished steps cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from tidal.core import validate
from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.core.hashing import is_sha256
from tidal.core.ids import is_id, new_id

from .database import Database
from .models import PipelineRun, StepRun
from .records import PipelineRunRecord, StepRunRecord
from .registry import json_safe

RUNNING, FINISHED, FAILED = "RUNNING", "FINISHED", "FAILED"
PIPELINE_STATUSES = (RUNNING, FINISHED, FAILED)
#: how a pipeline run or a step run can end
END_STATUSES = (FINISHED, FAILED)
#: hashes per IN (...) list: far below the bound-parameter limits of SQLite and PostgreSQL
_CHUNK = 500
_HEX = frozenset("0123456789abcdef")


class LineageRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -------------------------------------------------------------------------
    def start_pipeline_run(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None,
        code_commit: str | None,
        code_dirty_hash: str | None,
        actor: str | None,
        run_id: str | None = None,
        now: float,
    ) -> PipelineRunRecord:
        """Record that pipeline ``name`` started; its status is RUNNING until finished."""
        validate.check_text("pipeline name", name, 256, optional=False)
        validate.check_text("code commit", code_commit, 64)
        validate.check_text("code dirty hash", code_dirty_hash, 64)
        validate.check_text("actor", actor, 256)
        if run_id is not None and not (isinstance(run_id, str) and is_id(run_id)):
            raise ValidationError(f"run_id must be a run id (32 hex characters), got {run_id!r}")
        row = PipelineRun(
            id=new_id(now), name=name, status=RUNNING, params=_dump_params(params),
            code_commit=code_commit, code_dirty_hash=code_dirty_hash, actor=actor,
            run_id=run_id, started_at=now, ended_at=None, error=None,
        )

        def write(session: Session) -> None:
            session.add(row)

        self.db.transact(write)
        return _pipeline_record(row)

    def record_step(
        self,
        pipeline_run_id: str,
        *,
        step: str,
        cache_key: str,
        code_hash: str,
        params: Mapping[str, Any] | None,
        inputs: Iterable[Mapping[str, str]],
        output_sha256: str | None,
        output_size: int | None,
        cached: bool,
        status: str,
        started_at: float,
        ended_at: float,
        error: str | None = None,
    ) -> StepRunRecord:
        """Record one step execution (or cache hit) of a running pipeline run.

        ``status`` is FINISHED or FAILED; a cache hit is FINISHED with ``cached=True`` and
        the reused output. ``inputs`` lists ``{"name", "sha256"}`` in argument order.
        """
        validate.check_text("step name", step, 256, optional=False)
        _check_sha256("cache_key", cache_key)
        validate.check_text("code_hash", code_hash, 64, optional=False)
        if status not in END_STATUSES:
            raise ValidationError(f"a step run ends FINISHED or FAILED, not {status!r}")
        if cached and status != FINISHED:
            raise ValidationError("a cached step run is FINISHED: it reuses a finished output")
        if output_sha256 is not None:
            _check_sha256("output_sha256", output_sha256)
        if output_size is not None and (
            isinstance(output_size, bool) or not isinstance(output_size, int) or output_size < 0
        ):
            raise ValidationError(f"output_size must be a byte count, got {output_size!r}")
        started_at, ended_at = float(started_at), float(ended_at)
        if ended_at < started_at:
            raise ValidationError(f"step {step!r} ends ({ended_at}) before it starts "
                                  f"({started_at})")
        row = StepRun(
            id=new_id(started_at), pipeline_run_id=pipeline_run_id, step=step,
            cache_key=cache_key, code_hash=code_hash, params=_dump_params(params),
            inputs=_dump_inputs(inputs), output_sha256=output_sha256, output_size=output_size,
            status=status, cached=bool(cached), started_at=started_at, ended_at=ended_at,
            duration=ended_at - started_at, error=_text(error),
        )

        def write(session: Session) -> None:
            # the pipeline row is locked so a step cannot land after its run has finished
            self._running(session, pipeline_run_id)
            session.add(row)

        self.db.transact(write)
        return _step_record(row)

    def finish_pipeline_run(
        self, pipeline_run_id: str, *, status: str, error: str | None = None, now: float
    ) -> PipelineRunRecord:
        """End a running pipeline run as FINISHED or FAILED (with the failing step's error)."""
        if status not in END_STATUSES:
            raise ValidationError(f"a pipeline run ends FINISHED or FAILED, not {status!r}")

        def write(session: Session) -> None:
            row = self._running(session, pipeline_run_id)
            row.status, row.ended_at, row.error = status, now, _text(error)

        self.db.transact(write)
        return self.get_pipeline_run(pipeline_run_id)

    # -- the step cache ------------------------------------------------------------------
    def cached_output(self, cache_key: str) -> StepRunRecord | None:
        """The newest FINISHED step run with this cache key and an output, if any."""
        _check_sha256("cache_key", cache_key)
        with self.db.read() as session:
            row = session.scalar(
                select(StepRun)
                .where(StepRun.cache_key == cache_key, StepRun.status == FINISHED,
                       StepRun.output_sha256.is_not(None))
                .order_by(StepRun.ended_at.desc(), StepRun.id.desc())
                .limit(1)
            )
            return None if row is None else _step_record(row)

    # -- reading -------------------------------------------------------------------------
    def get_pipeline_run(self, id_or_prefix: str) -> PipelineRunRecord:
        """A pipeline run with its step runs, by id or by a unique prefix of its id."""
        if not isinstance(id_or_prefix, str) or not id_or_prefix \
                or not set(id_or_prefix) <= _HEX or len(id_or_prefix) > 32:
            raise ValidationError(f"{id_or_prefix!r} is not a pipeline run id (32 hex "
                                  "characters, or a prefix)")
        with self.db.read() as session:
            if len(id_or_prefix) == 32:
                row = session.get(PipelineRun, id_or_prefix)
            else:
                upper = id_or_prefix + "g"  # every hex id with the prefix sorts below this
                rows = list(session.scalars(
                    select(PipelineRun)
                    .where(PipelineRun.id >= id_or_prefix, PipelineRun.id < upper)
                    .limit(2)
                ))
                if len(rows) > 1:
                    raise ValidationError(f"{id_or_prefix!r} matches several pipeline runs; "
                                          "give more characters")
                row = rows[0] if rows else None
            if row is None:
                raise NotFoundError(f"no pipeline run id starts with {id_or_prefix!r}"
                                    if len(id_or_prefix) < 32
                                    else f"no pipeline run with id {id_or_prefix!r}")
            record = _pipeline_record(row)
            record.steps = self._steps(session, [row.id]).get(row.id, [])
            return record

    def list_pipeline_runs(
        self, name: str | None = None, limit: int = 50
    ) -> list[PipelineRunRecord]:
        """Pipeline runs, newest first (of one pipeline when ``name`` is given)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit must be a positive integer, got {limit!r}")
        query = select(PipelineRun)
        if name is not None:
            query = query.where(PipelineRun.name == name)
        query = query.order_by(PipelineRun.started_at.desc(), PipelineRun.id.desc()).limit(limit)
        with self.db.read() as session:
            records = [_pipeline_record(row) for row in session.scalars(query)]
            steps = self._steps(session, [r.id for r in records])
        for record in records:
            record.steps = steps.get(record.id, [])
        return records

    # -- lineage -------------------------------------------------------------------------
    def producers(self, sha256: str) -> list[StepRunRecord]:
        """The FINISHED step runs whose output is ``sha256``, newest first (a cached step
        run counts: it made that output available to its pipeline run)."""
        _check_sha256("sha256", sha256)
        with self.db.read() as session:
            rows = session.scalars(
                select(StepRun)
                .where(StepRun.output_sha256 == sha256, StepRun.status == FINISHED)
                .order_by(StepRun.ended_at.desc(), StepRun.id.desc())
            )
            return [_step_record(row) for row in rows]

    def lineage(self, sha256: str) -> list[StepRunRecord]:
        """The step runs that led to ``sha256``, each once, in dependency order.

        The walk starts at the newest producer of ``sha256`` and follows each input hash
        to its producer, preferring the producer in the same pipeline run as the step that
        consumed it (so the answer describes one coherent execution) and otherwise the
        newest one; hashes nobody produced are sources and end the walk. Producers come
        before their consumers; the producer of ``sha256`` itself is last. A hash with no
        producer at all gives an empty list.
        """
        _check_sha256("sha256", sha256)
        chosen: dict[str, StepRunRecord | None] = {}
        with self.db.read() as session:
            frontier: dict[str, str | None] = {sha256: None}  # hash -> preferred pipeline run
            while frontier:  # one level of the graph per round, a few queries per level
                found = _producers_for(session, frontier)
                chosen.update({digest: found.get(digest) for digest in frontier})
                following: dict[str, str | None] = {}
                for digest in frontier:
                    record = found.get(digest)
                    if record is None:
                        continue
                    for item in record.inputs:
                        source = item["sha256"]
                        if source not in chosen and source not in following:
                            following[source] = record.pipeline_run_id
                frontier = following
        root = chosen.get(sha256)
        return [] if root is None else _dependency_order(root, chosen)

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _running(session: Session, pipeline_run_id: str) -> PipelineRun:
        row = session.scalar(
            select(PipelineRun).where(PipelineRun.id == pipeline_run_id).with_for_update()
        )
        if row is None:
            raise NotFoundError(f"no pipeline run with id {pipeline_run_id!r}")
        if row.status != RUNNING:
            raise ConflictError(f"pipeline run {pipeline_run_id} is already {row.status}")
        return row

    @staticmethod
    def _steps(session: Session, run_ids: Sequence[str]) -> dict[str, list[StepRunRecord]]:
        steps: dict[str, list[StepRunRecord]] = {}
        for chunk in _chunks(run_ids):
            rows = session.scalars(
                select(StepRun).where(StepRun.pipeline_run_id.in_(chunk))
                .order_by(StepRun.pipeline_run_id, StepRun.started_at, StepRun.id)
            )
            for row in rows:
                steps.setdefault(row.pipeline_run_id, []).append(_step_record(row))
        return steps


def _producers_for(
    session: Session, wanted: Mapping[str, str | None]
) -> dict[str, StepRunRecord]:
    """For each hash, its producer in the preferred pipeline run, else its newest one."""
    found: dict[str, StepRunRecord] = {}
    preferred = {(digest, run) for digest, run in wanted.items() if run is not None}
    if preferred:
        hashes = sorted({digest for digest, _ in preferred})
        runs = sorted({run for _, run in preferred})
        for chunk in _chunks(hashes):
            rows = session.scalars(
                select(StepRun)
                .where(StepRun.output_sha256.in_(chunk), StepRun.pipeline_run_id.in_(runs),
                       StepRun.status == FINISHED)
                .order_by(StepRun.ended_at, StepRun.id)  # the newest wins below
            )
            for row in rows:
                if (row.output_sha256, row.pipeline_run_id) in preferred:
                    found[row.output_sha256] = _step_record(row)  # type: ignore[index]
    rest = sorted(digest for digest in wanted if digest not in found)
    for chunk in _chunks(rest):
        rank = func.row_number().over(
            partition_by=StepRun.output_sha256,
            order_by=(StepRun.ended_at.desc(), StepRun.id.desc()),
        ).label("rank")
        ranked = (
            select(StepRun, rank)
            .where(StepRun.output_sha256.in_(chunk), StepRun.status == FINISHED)
            .subquery()
        )
        newest = aliased(StepRun, ranked)
        for row in session.scalars(select(newest).where(ranked.c.rank == 1)):
            found[row.output_sha256] = _step_record(row)  # type: ignore[index]
    return found


def _dependency_order(
    root: StepRunRecord, chosen: Mapping[str, StepRunRecord | None]
) -> list[StepRunRecord]:
    """Depth-first post-order from ``root``: every producer before its consumers, each
    step run once, inputs in argument order. Iterative, so long chains do not recurse."""
    order: list[StepRunRecord] = []
    entered = {root.id}
    stack: list[tuple[StepRunRecord, int]] = [(root, 0)]
    while stack:
        record, position = stack.pop()
        if position < len(record.inputs):
            stack.append((record, position + 1))
            producer = chosen.get(record.inputs[position]["sha256"])
            if producer is not None and producer.id not in entered:
                entered.add(producer.id)
                stack.append((producer, 0))
        else:
            order.append(record)
    return order


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _check_sha256(what: str, value: Any) -> None:
    if not isinstance(value, str) or not is_sha256(value):
        raise ValidationError(f"{what} must be a sha256 hex digest, got {value!r}")


def _dump_params(params: Mapping[str, Any] | None) -> str:
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValidationError(f"params must be a mapping, got {type(params).__name__}")
    return json.dumps(json_safe(dict(params), "params"), sort_keys=True, allow_nan=False)


def _dump_inputs(inputs: Iterable[Mapping[str, str]]) -> str:
    if isinstance(inputs, str | bytes) or isinstance(inputs, Mapping):
        raise ValidationError("inputs must be a list of {'name': ..., 'sha256': ...}")
    items = []
    for item in inputs:
        if not isinstance(item, Mapping) or set(item) != {"name", "sha256"}:
            raise ValidationError(f"each input is {{'name': ..., 'sha256': ...}}, got {item!r}")
        validate.check_text("input name", item["name"], 1024, optional=False)
        _check_sha256(f"input {item['name']!r}", item["sha256"])
        items.append({"name": item["name"], "sha256": item["sha256"]})
    return json.dumps(items)


def _text(error: str | None) -> str | None:
    """Error text as stored: PostgreSQL text cannot hold NUL characters."""
    return None if error is None else str(error).replace("\x00", "\\x00")


def _pipeline_record(row: PipelineRun) -> PipelineRunRecord:
    return PipelineRunRecord(
        id=row.id, name=row.name, status=row.status, params=json.loads(row.params),
        code_commit=row.code_commit, code_dirty_hash=row.code_dirty_hash, actor=row.actor,
        run_id=row.run_id, started_at=row.started_at, ended_at=row.ended_at, error=row.error,
    )


def _step_record(row: StepRun) -> StepRunRecord:
    return StepRunRecord(
        id=row.id, pipeline_run_id=row.pipeline_run_id, step=row.step,
        cache_key=row.cache_key, code_hash=row.code_hash, params=json.loads(row.params),
        inputs=json.loads(row.inputs), output_sha256=row.output_sha256,
        output_size=row.output_size, status=row.status, cached=bool(row.cached),
        started_at=row.started_at, ended_at=row.ended_at, duration=row.duration,
        error=row.error,
    )
