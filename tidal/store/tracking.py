"""Experiments and runs: the tracking repository.

Writes come in batches (``log_batch``): one transaction hands every metric point to the
database in bulk (executemany on SQLite, COPY on PostgreSQL), refreshes ``latest_metrics``
with one upsert and the run's summary (see :mod:`tidal.store.summary`) with one update,
which is what makes logging 100,000 points take a fraction of a second. Params are
write-once: logging a different value for a key already logged is a
:class:`ConflictError`, because a run's parameters are a fact about what ran.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from tidal.core import validate
from tidal.core.codeinfo import CodeInfo
from tidal.core.errors import ConflictError, NotFoundError, ValidationError
from tidal.core.ids import new_id

from . import bulk
from .bulk import fetch_for_runs
from .database import Database
from .filters import parse_filter, parse_order_by
from .models import Experiment, LatestMetric, Metric, Param, Run, RunArtifact, Tag
from .records import ArtifactRecord, ExperimentRecord, MetricPoint, RunRecord
from .search import RUN_STATUSES, apply_order, where_clause
from .summary import Summary
from .upsert import insert_rows, upsert

MAX_SEARCH_RESULTS = 50_000
MAX_OFFSET = 10**12  # far past any store, and within every backend's 64-bit integers


class PendingMetric(NamedTuple):
    """One metric point waiting to be written (a tuple: cheap to build by the million)."""

    key: str
    value: float
    step: int
    timestamp: float


class TrackingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: experiments are never renamed or deleted, so a lookup can be remembered
        self._experiments: dict[str, ExperimentRecord] = {}

    # -- experiments ---------------------------------------------------------------
    def get_or_create_experiment(self, name: str, now: float) -> ExperimentRecord:
        if not isinstance(name, str) or not name.strip() or len(name) > 256 \
                or not name.isprintable():
            raise ValidationError(f"invalid experiment name {name!r}: 1-256 printable "
                                  "characters")
        found = self._experiments.get(name) or self._find_experiment(name)
        if found is not None:
            self._experiments[name] = found
            return found

        def create(session: Session) -> ExperimentRecord:
            existing = session.scalar(select(Experiment).where(Experiment.name == name))
            if existing is None:
                existing = Experiment(id=new_id(now), name=name, created_at=now)
                session.add(existing)
            return _experiment(existing)

        try:
            return self.db.transact(create)
        except IntegrityError:  # created by another process in the meantime
            found = self._find_experiment(name)
            assert found is not None
            return found

    def list_experiments(self) -> list[ExperimentRecord]:
        with self.db.read() as session:
            rows = session.scalars(select(Experiment).order_by(Experiment.created_at))
            return [_experiment(row) for row in rows]

    def _find_experiment(self, name: str) -> ExperimentRecord | None:
        with self.db.read() as session:
            row = session.scalar(select(Experiment).where(Experiment.name == name))
            return None if row is None else _experiment(row)

    # -- runs ----------------------------------------------------------------------------
    def create_run(
        self,
        experiment: ExperimentRecord,
        *,
        now: float,
        name: str | None = None,
        actor: str | None = None,
        source: str | None = None,
        code: CodeInfo | None = None,
        tags: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> str:
        run_id = new_id(now)
        tag_rows = _tag_rows(run_id, tags or {})
        param_rows = _param_rows(run_id, params or {})

        row = {
            "id": run_id, "experiment_id": experiment.id, "name": name, "status": "RUNNING",
            "start_time": now, "actor": actor, "source": source,
            "git_commit": code.git_commit if code else None,
            "git_dirty_hash": code.git_dirty_hash if code else None,
            "python_version": code.python_version if code else None,
            "packages": code.packages if code else None,
        }

        summary = Summary(params={r["key"]: r["value"] for r in param_rows},
                          tags={r["key"]: r["value"] for r in tag_rows})
        row["summary"] = summary.encode()

        def create(session: Session) -> str:
            insert_rows(session, Run, [row])
            insert_rows(session, Param, param_rows)
            insert_rows(session, Tag, tag_rows)  # a new run: no key can conflict yet
            return run_id

        return self.db.transact(create)

    def log_batch(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        metrics: Sequence[PendingMetric] = (),
        tags: dict[str, Any] | None = None,
        end_status: str | None = None,
        end_time: float | None = None,
    ) -> None:
        """Record params, metric points and tags of one run in one transaction.

        With ``end_status`` the same transaction also ends the run, so a short run costs
        two transactions in all (start, and log-and-end).
        """
        if end_status is not None:
            _check_end_status(end_status)
        param_rows = _param_rows(run_id, params or {})
        tag_rows = _tag_rows(run_id, tags or {})
        metric_rows = [
            (run_id, m.key, _storable(m.value), m.step, m.timestamp) for m in metrics
        ]
        latest = _latest_points(metrics)
        latest_rows = [
            {"run_id": run_id, "key": p.key, "value": _storable(p.value), "step": p.step,
             "timestamp": p.timestamp}
            for p in latest
        ]

        def write(session: Session) -> None:
            if end_status is None and not (param_rows or metric_rows or tag_rows):
                return
            connection = session.connection()
            found = connection.execute(_SUMMARY_OF_RUN, {"run": run_id}).first()
            if found is None:
                raise NotFoundError(f"no run with id {run_id!r}")
            summary = Summary.decode(found[0])
            fresh_params = _new_params(run_id, summary.params, param_rows)
            summary.params.update({r["key"]: r["value"] for r in fresh_params})
            summary.tags.update({r["key"]: r["value"] for r in tag_rows})
            for point in latest:
                summary.add_metric(*point)
            values = {"run": run_id, "summary": summary.encode()}
            if end_status is None:
                connection.execute(_SET_SUMMARY, values)
            else:
                connection.execute(
                    _END_WITH_SUMMARY, {**values, "new_status": end_status, "ended": end_time})
            insert_rows(session, Param, fresh_params)
            if metric_rows:
                _insert_points(session, metric_rows)
                upsert(
                    session, LatestMetric, latest_rows, keys=("run_id", "key"),
                    update=("value", "step", "timestamp"), where=_newer,
                )
            upsert(session, Tag, tag_rows, keys=("run_id", "key"), update=("value",))

        self._write_for_run(run_id, write)

    def end_run(self, run_id: str, status: str, now: float) -> None:
        _check_end_status(status)
        self._write_for_run(run_id, lambda session: _end(session, run_id, status, now))

    def add_artifact(self, run_id: str, name: str, sha256: str, size: int, now: float) -> None:
        row = {"run_id": run_id, "name": name, "sha256": sha256, "size": size, "created_at": now}
        self._write_for_run(run_id, lambda session: upsert(
            session, RunArtifact, [row], keys=("run_id", "name"),
            update=("sha256", "size", "created_at"),
        ))

    def _write_for_run(self, run_id: str, work: Callable[[Session], None]) -> None:
        """A write about one run; a missing run shows up as a foreign-key violation."""
        try:
            self.db.transact(work)
        except IntegrityError as exc:
            if "foreign key" in str(exc.orig).lower():
                raise NotFoundError(f"no run with id {run_id!r}") from None
            raise

    # -- reading -------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        with self.db.read() as session:
            records = self._hydrate(session, [run_id], artifacts=True)
        if not records:
            raise NotFoundError(f"no run with id {run_id!r}")
        return records[0]

    def find_runs(self, prefix: str) -> list[str]:
        """Run ids starting with ``prefix`` (for short ids typed on the command line)."""
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            raise ValidationError(f"{prefix!r} is not a run id (32 hex characters, or a prefix)")
        with self.db.read() as session:
            upper = prefix + "g"  # every hex id with the prefix sorts below this
            rows = session.scalars(
                select(Run.id).where(Run.id >= prefix, Run.id < upper).limit(10)
            )
            return list(rows)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        with self.db.read() as session:
            rows = session.execute(
                select(Metric.key, Metric.value, Metric.step, Metric.timestamp)
                .where(Metric.run_id == run_id, Metric.key == key)
                .order_by(Metric.step, Metric.timestamp, Metric.id)
            )
            return [MetricPoint(r.key, _loaded(r.value), r.step, r.timestamp) for r in rows]

    def search_runs(
        self,
        *,
        experiments: Iterable[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs matching ``filter`` (see :mod:`tidal.store.filters`), best first."""
        if not 1 <= max_results <= MAX_SEARCH_RESULTS:
            raise ValidationError(f"max_results must be between 1 and {MAX_SEARCH_RESULTS}")
        if isinstance(offset, bool) or not isinstance(offset, int) \
                or not 0 <= offset <= MAX_OFFSET:
            raise ValidationError(f"offset must be a whole number from 0 to {MAX_OFFSET:,}")
        query = search_statement(
            filter, tuple(order_by or ()), None if experiments is None else tuple(experiments),
            max_results, offset,
        )
        with self.db.read() as session:
            run_ids = list(session.connection().execute(query).scalars())
            return self._hydrate(session, run_ids)

    def _hydrate(
        self, session: Session, run_ids: list[str], artifacts: bool = False
    ) -> list[RunRecord]:
        """Load runs (params, latest metrics and tags come from each run's summary): one
        query, and one more for artifacts when asked."""
        if not run_ids:
            return []
        connection = session.connection()
        runs = {row[0]: row for row in fetch_for_runs(connection, bulk.RUNS, run_ids)}
        files: dict[str, list[ArtifactRecord]] = {i: [] for i in runs}
        if artifacts:
            for run_id, *artifact in fetch_for_runs(connection, bulk.ARTIFACTS, run_ids):
                files[run_id].append(ArtifactRecord(*artifact))
        records = []
        for run_id in run_ids:  # keep the caller's order
            if run_id not in runs:
                continue
            (_, experiment_id, experiment, name, status, start_time, end_time, actor, source,
             git_commit, git_dirty_hash, python_version, packages, summary_text) = runs[run_id]
            if isinstance(packages, str):  # SQLite hands JSON back as text
                packages = dict(_decode_packages(packages))  # a copy per record
            summary = Summary.decode(summary_text)
            records.append(
                RunRecord(
                    id=run_id, experiment_id=experiment_id, experiment=experiment, name=name,
                    status=status, start_time=start_time, end_time=end_time, actor=actor,
                    source=source, git_commit=git_commit, git_dirty_hash=git_dirty_hash,
                    python_version=python_version, packages=packages or {},
                    params=summary.params, metrics=summary.metric_points(), tags=summary.tags,
                    artifacts=files[run_id],
                )
            )
        return records

    def count_runs(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(Run)) or 0


def _experiment(row: Experiment) -> ExperimentRecord:
    return ExperimentRecord(row.id, row.name, row.created_at, row.description)


def _param_rows(run_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, value in params.items():
        validate.check_key("param", key)
        text = validate.param_value(key, value)
        rows.append({"run_id": run_id, "key": key, "value": text,
                     "value_num": validate.numeric_or_none(text)})
    return rows


def _tag_rows(run_id: str, tags: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "key": validate.check_key("tag", k), "value": validate.tag_value(k, v)}
        for k, v in tags.items()
    ]


def _new_params(
    run_id: str, logged: dict[str, str], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows not logged yet; a key already logged must keep its value (params are
    facts about what ran)."""
    fresh = []
    for row in rows:
        old = logged.get(row["key"])
        if old is None:
            fresh.append(row)
        elif old != row["value"]:
            raise ConflictError(
                f"param {row['key']!r} of run {run_id} is already {old!r}; params are "
                f"write-once, so it cannot become {row['value']!r} (start a new run, or "
                "log the changing value as a metric or tag)"
            )
    return fresh


def _end(session: Session, run_id: str, status: str, now: float | None) -> None:
    result = session.connection().execute(
        _END_RUN, {"run": run_id, "new_status": status, "ended": now})
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFoundError(f"no run with id {run_id!r}")


def _check_end_status(status: str) -> None:
    if status not in RUN_STATUSES or status == "RUNNING":
        raise ValidationError(f"a run ends as FINISHED, FAILED or KILLED, not {status!r}")


def _insert_points(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """The hot path: hand the points to the database in bulk.

    PostgreSQL gets them through COPY (about 10x faster than executemany for 100,000
    points); SQLite through the driver's executemany, skipping SQLAlchemy's per-row dict
    handling, which costs about 1.6x as much. Statements are constants; values are data.
    """
    connection = session.connection()
    columns = "run_id, key, value, step, timestamp"
    if connection.dialect.name == "postgresql":
        driver_connection = connection.connection.dbapi_connection
        with driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY metrics ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    marks = ", ".join(["?" if connection.dialect.paramstyle == "qmark" else "%s"] * 5)
    statement = f"INSERT INTO metrics ({columns}) VALUES ({marks})"  # noqa: S608
    connection.exec_driver_sql(statement, rows)


def _latest_points(metrics: Sequence[PendingMetric]) -> list[PendingMetric]:
    """Per key, the point with the highest (step, timestamp) in this batch."""
    latest: dict[str, PendingMetric] = {}
    for point in metrics:
        best = latest.get(point.key)
        if best is None or (point.step, point.timestamp) >= (best.step, best.timestamp):
            latest[point.key] = point
    return list(latest.values())


def _newer(current: Any, excluded: Any) -> Any:
    return or_(
        excluded.step > current.step,
        and_(excluded.step == current.step, excluded.timestamp >= current.timestamp),
    )


def _storable(value: float) -> float | None:
    return None if value != value else value  # NaN → NULL (SQLite cannot hold NaN)


_NAN = float("nan")
# statements of the write path, built once (building them per call cost more than running)
# the summary is read under the write lock (BEGIN IMMEDIATE on SQLite, FOR UPDATE here)
_SUMMARY_OF_RUN = select(Run.summary).where(Run.id == bindparam("run")).with_for_update()
_SET_SUMMARY = update(Run).where(Run.id == bindparam("run")).values(
    summary=bindparam("summary"))
_END_WITH_SUMMARY = update(Run).where(Run.id == bindparam("run")).values(
    summary=bindparam("summary"), status=bindparam("new_status"), end_time=bindparam("ended"))
_END_RUN = update(Run).where(Run.id == bindparam("run")).values(
    status=bindparam("new_status"), end_time=bindparam("ended"))


@functools.lru_cache(maxsize=256)
def search_statement(
    filter: str | None, order_by: tuple[str, ...], experiments: tuple[str, ...] | None,
    max_results: int, offset: int,
) -> Select[Any]:
    """The SELECT of matching run ids. Statements are immutable, so scripts and
    dashboards that repeat a search reuse the parsed and built one."""
    query = select(Run.id)
    if experiments is not None:
        ids = select(Experiment.id).where(Experiment.name.in_(list(experiments)))
        query = query.where(Run.experiment_id.in_(ids))
    condition = where_clause(parse_filter(filter))
    if condition is not None:
        query = query.where(condition)
    return apply_order(query, parse_order_by(list(order_by))).limit(max_results).offset(offset)


@functools.lru_cache(maxsize=64)
def _decode_packages(text: str) -> dict[str, str]:
    """Package lists repeat from run to run; decode each distinct one once."""
    return json.loads(text)


def _loaded(value: float | None) -> float:
    return _NAN if value is None else value
