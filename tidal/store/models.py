"""The metadata schema, as SQLAlchemy 2 declarative models.

The schema is code: Alembic migrations in ``migrations/versions`` are the source of truth
for existing databases, and a test checks that these models and the migrations agree.
Times are epoch seconds (``Double``) everywhere: portable between SQLite and PostgreSQL,
sortable, and what the injectable clock returns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
#: autoincrementing 64-bit key; SQLite only autoincrements a column typed INTEGER
BigId = BigInteger().with_variant(Integer(), "sqlite")
Id = String(32)
Sha256 = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)


class Run(Base):
    __tablename__ = "runs"
    # both indexes end in id, so the id-only search query never reads the (wide) rows
    __table_args__ = (
        Index("ix_runs_experiment_start", "experiment_id", "start_time", "id"),
        Index("ix_runs_start", "start_time", "id"),
    )

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)
    start_time: Mapped[float] = mapped_column(Double)
    end_time: Mapped[float | None] = mapped_column(Double)
    actor: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(String(1024))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    git_dirty_hash: Mapped[str | None] = mapped_column(Sha256)
    python_version: Mapped[str | None] = mapped_column(String(32))
    packages: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    #: params, latest metrics and tags as JSON text, kept in step with their rows so a
    #: page of search results loads in one read (see tidal.store.summary)
    summary: Mapped[str | None] = mapped_column(Text)


class Param(Base):
    __tablename__ = "params"
    __table_args__ = (Index("ix_params_key_value_num", "key", "value_num"),)

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    #: the value as a number when it parses as one, so filters can compare numerically
    value_num: Mapped[float | None] = mapped_column(Double)


class Tag(Base):
    __tablename__ = "tags"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    """Every logged metric point (a history per key)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    #: NULL stands for NaN (SQLite cannot store NaN)
    value: Mapped[float | None] = mapped_column(Double)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[float] = mapped_column(Double)


class LatestMetric(Base):
    """The point with the highest step per run and key; what search filters and sorts on."""

    __tablename__ = "latest_metrics"
    __table_args__ = (Index("ix_latest_metrics_key_value", "key", "value"),)

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float | None] = mapped_column(Double)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[float] = mapped_column(Double)


class RunArtifact(Base):
    """A named artifact of a run; the bytes live in the artifact store under the hash."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(Sha256, index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Double)


class RegisteredModel(Base):
    __tablename__ = "registered_models"

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_number"),)

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    artifact_sha256: Mapped[str] = mapped_column(Sha256)
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    flavor: Mapped[str] = mapped_column(String(64))
    signature: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    dataset_hash: Mapped[str | None] = mapped_column(Sha256)
    code_commit: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Double)


class ModelAlias(Base):
    __tablename__ = "model_aliases"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[float] = mapped_column(Double)


class Event(Base):
    """Append-only audit record of a decision: what happened, to what, by whom, and why."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_entity", "entity_type", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Double, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class PipelineRun(Base):
    """One execution of a pipeline: what ran, from which code, with which parameters."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        Index("ix_pipeline_runs_name_started", "name", "started_at", "id"),
        Index("ix_pipeline_runs_started", "started_at", "id"),
    )

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    #: the pipeline's parameters as JSON text
    params: Mapped[str] = mapped_column(Text)
    code_commit: Mapped[str | None] = mapped_column(String(64))
    code_dirty_hash: Mapped[str | None] = mapped_column(Sha256)
    actor: Mapped[str | None] = mapped_column(String(256))
    #: the experiment run that tracks this pipeline run, if any (no foreign key: deleting
    #: a tracked run must not erase how an artifact was made)
    run_id: Mapped[str | None] = mapped_column(Id)
    started_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)


class StepRun(Base):
    """One execution of a pipeline step, or one cache hit standing in for it.

    ``cache_key`` hashes the step's code, parameters and input hashes; a FINISHED row with
    an output is what a later run with the same key reuses. ``inputs`` and ``output_sha256``
    are the lineage: each input hash leads to the step run that produced it.
    """

    __tablename__ = "step_runs"
    __table_args__ = (
        Index("ix_step_runs_cache_key_status", "cache_key", "status"),
        Index("ix_step_runs_pipeline_started", "pipeline_run_id", "started_at", "id"),
    )

    id: Mapped[str] = mapped_column(Id, primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="CASCADE")
    )
    step: Mapped[str] = mapped_column(String(256))
    cache_key: Mapped[str] = mapped_column(Sha256)
    code_hash: Mapped[str] = mapped_column(Sha256)
    #: the step's parameters as JSON text
    params: Mapped[str] = mapped_column(Text)
    #: JSON text: a list of {"name": ..., "sha256": ...}, in the step's argument order
    inputs: Mapped[str] = mapped_column(Text)
    output_sha256: Mapped[str | None] = mapped_column(Sha256, index=True)
    output_size: Mapped[int | None] = mapped_column(BigInteger)
    #: FINISHED or FAILED; a cache hit is FINISHED with ``cached`` set
    status: Mapped[str] = mapped_column(String(16))
    cached: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float] = mapped_column(Double)
    duration: Mapped[float] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)


class Deployment(Base):
    """A named endpoint and the model versions it serves: stable, canary (with a share of
    the traffic) and shadow (mirrored, never returned), plus its batching settings.

    Versions are numbers of the deployment's one model (a version is never deleted, so
    the numbers stay valid). ``revision`` is the value of the deployment revision counter
    when the row was last written; a model server compares it with the counter.
    """

    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id"), index=True)
    stable_version: Mapped[int] = mapped_column(Integer)
    canary_version: Mapped[int | None] = mapped_column(Integer)
    canary_weight: Mapped[float] = mapped_column(Double)
    shadow_version: Mapped[int | None] = mapped_column(Integer)
    max_batch_size: Mapped[int | None] = mapped_column(Integer)
    max_batch_wait_ms: Mapped[float | None] = mapped_column(Double)
    revision: Mapped[int] = mapped_column(BigInteger, unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    updated_by: Mapped[str | None] = mapped_column(String(256))


class DeploymentRevision(Base):
    """One row (id 1): the number of deployment writes ever made, sets and deletes alike.

    Every write increments it first, in its own transaction, which also serialises
    deployment writes on PostgreSQL (the row lock) as ``BEGIN IMMEDIATE`` does on SQLite.
    Model servers poll it: one primary-key read tells them whether anything changed,
    including a deletion (which leaves no row behind to carry a revision).
    """

    __tablename__ = "deployment_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class ReferenceProfile(Base):
    """The reference a model version is monitored against: the profile of the data it was
    trained on (inputs, the model's own outputs on them, the target), as an artifact."""

    __tablename__ = "reference_profiles"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True)
    artifact_sha256: Mapped[str] = mapped_column(Sha256)
    rows: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    #: a classifier's reliability on the reference (accuracy per confidence bin), for
    #: estimating accuracy before labels arrive
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class MonitorWindow(Base):
    """One computed window of one deployment's predictions: computed once, never again.

    ``profile_sha256`` names the window's profile (inputs and outputs) in the artifact
    store, so longer periods are merges of stored windows rather than rereads of the log.
    """

    __tablename__ = "monitor_windows"
    __table_args__ = (
        UniqueConstraint("deployment", "start", "end", name="uq_monitor_windows_span"),
        Index("ix_monitor_windows_latest", "deployment", "end"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Double)
    end: Mapped[float] = mapped_column(Double)
    rows: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int] = mapped_column(BigInteger)
    #: the version that answered most of the window's rows (its reference is used)
    version: Mapped[int | None] = mapped_column(Integer)
    profile_sha256: Mapped[str | None] = mapped_column(Sha256)
    computed_at: Mapped[float] = mapped_column(Double)
    #: the window's predictions in brief (ids, keys, outputs), joined with labels later
    predictions_sha256: Mapped[str | None] = mapped_column(Sha256)
    #: when labelled quality was first judged, and how many of the deployment's labels
    #: there were when it was last joined (a count, not the newest id: on PostgreSQL a
    #: label with a lower id may commit after one with a higher id, and the count still
    #: grows when it does)
    quality_at: Mapped[float | None] = mapped_column(Double)
    quality_cursor: Mapped[int | None] = mapped_column(BigInteger)


class CheckValue(Base):
    """One check's value for one window: a point of that check's time series."""

    __tablename__ = "check_values"
    __table_args__ = (
        UniqueConstraint("window_id", "check", "subject", name="uq_check_values_point"),
        Index("ix_check_values_series", "deployment", "check", "subject", "window_end"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    window_id: Mapped[int] = mapped_column(
        ForeignKey("monitor_windows.id", ondelete="CASCADE"))
    deployment: Mapped[str] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(64))
    #: a feature name, or "" for a check of the whole deployment
    subject: Mapped[str] = mapped_column(String(256))
    window_start: Mapped[float] = mapped_column(Double)
    window_end: Mapped[float] = mapped_column(Double)
    value: Mapped[float | None] = mapped_column(Double)
    #: the window's level by the rule: ok, warn, alert, or none (not judged)
    level: Mapped[str] = mapped_column(String(8))
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class AlertState(Base):
    """The current alert state of one check and subject of one deployment (hysteresis)."""

    __tablename__ = "alert_states"

    deployment: Mapped[str] = mapped_column(String(64), primary_key=True)
    check: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(256), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    since: Mapped[float] = mapped_column(Double)
    #: consecutive judged windows at warn level or worse, at alert level, and below state
    warn_streak: Mapped[int] = mapped_column(Integer)
    alert_streak: Mapped[int] = mapped_column(Integer)
    clear_streak: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[float | None] = mapped_column(Double)
    last_window_end: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)


class Feedback(Base):
    """A ground-truth label for a prediction, by request id (and row) or by entity key and
    event time. Rows are only inserted: a later label for the same prediction supersedes
    an earlier one when predictions are joined (the later wins, and both are kept)."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_request", "deployment", "request_id", "row"),
        Index("ix_feedback_key", "deployment", "entity_key", "event_time"),
        Index("ix_feedback_received", "deployment", "id"),
        Index("ix_feedback_unmatched", "deployment", "matched_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    row: Mapped[int] = mapped_column(Integer)
    entity_key: Mapped[str | None] = mapped_column(String(256))
    event_time: Mapped[float | None] = mapped_column(Double)
    #: the label as JSON (a class, a number)
    label: Mapped[Any] = mapped_column(JsonType)
    #: api, file or review
    source: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(256))
    received_at: Mapped[float] = mapped_column(Double)
    #: when a window's quality join first matched this label to a prediction (None: not
    #: yet, or never: a label for an unknown prediction)
    matched_at: Mapped[float | None] = mapped_column(Double)


class ReviewItem(Base):
    """A prediction routed to people: why, what the model (and the shadow) said, and its
    inputs, so a reviewer needs nothing else to judge it."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("deployment", "request_id", "row", name="uq_review_items_prediction"),
        Index("ix_review_items_open", "deployment", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(128))
    row: Mapped[int] = mapped_column(Integer)
    event_time: Mapped[float] = mapped_column(Double)
    #: low_confidence, shadow_disagreement, alerting_slice or sample
    reason: Mapped[str] = mapped_column(String(32))
    inputs: Mapped[dict[str, Any]] = mapped_column(JsonType)
    outputs: Mapped[dict[str, Any]] = mapped_column(JsonType)
    shadow_outputs: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    #: open, claimed or done
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(256))
    claimed_at: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[float] = mapped_column(Double)


class ReviewLabel(Base):
    """One reviewer's answer on an item: a label, or "unsure", with a note, and whether
    the case looked familiar (familiar cases feed training, unfamiliar ones testing)."""

    __tablename__ = "review_labels"
    __table_args__ = (UniqueConstraint("item_id", "reviewer", name="uq_review_labels_once"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"),
                                         index=True)
    reviewer: Mapped[str] = mapped_column(String(256))
    label: Mapped[Any | None] = mapped_column(JsonType)
    unsure: Mapped[bool] = mapped_column(Boolean)
    familiar: Mapped[bool | None] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)


class Rollout(Base):
    """One attempt to bring a candidate version of a deployment's model to all of its
    traffic: its strategy and plan, where it stands, and how it ended.

    At most one rollout per deployment is unfinished (a partial unique index), so two
    controllers, or a person and a controller, can never run two at once. Its state and
    the traffic it sets are written in one transaction (see :mod:`tidal.store.rollouts`).
    """

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("uq_rollouts_active", "deployment", unique=True,
              sqlite_where=text("finished_at IS NULL"),
              postgresql_where=text("finished_at IS NULL")),
        Index("ix_rollouts_deployment", "deployment", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    deployment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    candidate_version: Mapped[int] = mapped_column(Integer)
    #: the stable version when the rollout began (what a rollback returns to)
    baseline_version: Mapped[int] = mapped_column(Integer)
    #: blue_green, shadow, canary or shadow_then_canary
    strategy: Mapped[str] = mapped_column(String(32))
    #: the steps, durations and analysis thresholds (:class:`tidal.control.plan.Plan`)
    plan: Mapped[dict[str, Any]] = mapped_column(JsonType)
    #: shadow, canary or switched (blue-green after its switch)
    phase: Mapped[str] = mapped_column(String(16))
    #: the canary step's index in the plan's steps (0 in the shadow phase)
    step: Mapped[int] = mapped_column(Integer)
    #: running, paused, holding (waiting for a person), promoted, rolled_back, aborted
    status: Mapped[str] = mapped_column(String(16))
    step_started_at: Mapped[float] = mapped_column(Double)
    inconclusive_since: Mapped[float | None] = mapped_column(Double)
    last_analysis: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    actor: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)


class Lease(Base):
    """A named lease (the controller's leadership): who holds it and until when.

    A holder renews it before it expires; anyone may take an expired one. Times are the
    wall clock's (a lease is about live processes, even when a replay injects its clock).
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)


class ScheduleRun(Base):
    """One window of a ``[[schedules]]`` entry: claimed, run, and how it ended.

    The unique ``(schedule, window_start)`` is what makes a window run once: a run is
    claimed by inserting its row before any scoring, so two controllers (or one that
    restarted) can never both claim it. A span of missed windows given up on after a
    downtime is one ``skipped`` row from the first's start to the last's end.
    """

    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule", "window_start", name="uq_schedule_runs_window"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[float] = mapped_column(Double)
    window_end: Mapped[float] = mapped_column(Double)
    #: running, done, failed or skipped
    status: Mapped[str] = mapped_column(String(16))
    #: who ran the latest attempt: controller (a due window) or manual (by hand)
    trigger: Mapped[str] = mapped_column(String(16))
    #: who first claimed the window (a rerun by hand does not change it): the windows of
    #: origin "controller" are the chain the controller carries on from
    origin: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(256))
    #: the process that claimed it (host:pid), to tell whose run was interrupted
    runner: Mapped[str | None] = mapped_column(String(256))
    #: the scoring job: its request ids in the prediction log start with it
    job: Mapped[str | None] = mapped_column(Id)
    #: how many times the window was started (a rerun by hand adds one)
    attempts: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    scored: Mapped[int | None] = mapped_column(BigInteger)
    rejected: Mapped[int | None] = mapped_column(BigInteger)
    output: Mapped[str | None] = mapped_column(Text)
    #: the job's own duration (the clock may be a replay's)
    seconds: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)
