"""Project configuration: ``tidal.toml`` in the project folder, overridden by ``TIDAL_*``.

Precedence, lowest first: built-in defaults, ``tidal.toml``, environment variables,
explicit keyword arguments. Relative paths (the SQLite file, the artifact root) are
resolved against the project folder, not the current directory, so a command run from a
sub-folder still finds the project's store.

The file is small and nested (``[store] url = ...``) while the variables are flat
(``TIDAL_STORE_URL``); pydantic-settings would force the variables into a nested
``TIDAL_STORE__URL`` shape, so the mapping is spelled out here and pydantic only
validates.
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from .cron import Cron, check_pattern, zone
from .errors import ConfigError

CONFIG_FILE = "tidal.toml"
STATE_DIR = ".tidal"
DEFAULT_STORE_URL = "sqlite:///.tidal/tidal.db"
DEFAULT_ARTIFACT_ROOT = ".tidal/artifacts"

#: environment variable → (section, key) in tidal.toml
ENV_VARS: dict[str, tuple[str, str]] = {
    "TIDAL_STORE_URL": ("store", "url"),
    "TIDAL_ARTIFACT_ROOT": ("artifacts", "root"),
    "TIDAL_SERVE_DURABILITY": ("serve", "durability"),
}


class StoreSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(default=DEFAULT_STORE_URL, min_length=1)
    #: seconds a writer waits for a locked SQLite database before retrying
    busy_timeout: float = Field(default=30.0, gt=0)


class ArtifactsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: str = Field(default=DEFAULT_ARTIFACT_ROOT, min_length=1)


#: the roles a data column may have (kept in step with ``tidal.data.schema.ROLES``)
ColumnRole = Literal["feature", "target", "id", "timestamp", "segment", "metadata"]


class DataColumnSection(BaseModel):
    """``[data.columns.NAME]``: what a reviewer knows better than inference does."""

    model_config = ConfigDict(extra="forbid")
    role: ColumnRole | None = None
    nullable: bool | None = None
    max_missing: float | None = Field(default=None, ge=0, le=1)
    min: int | float | None = None
    max: int | float | None = None
    domain: list[str | int] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> DataColumnSection:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class DataSection(BaseModel):
    """``[data]``: column roles and constraints applied on top of an inferred schema.

    The shortcuts (``target = "cnt"``) and ``[data.columns.cnt] role = "target"`` say the
    same thing; a column given two different roles is an error rather than a silent pick.
    """

    model_config = ConfigDict(extra="forbid")
    target: str | None = Field(default=None, min_length=1)
    timestamp: str | None = Field(default=None, min_length=1)
    id: str | None = Field(default=None, min_length=1)
    segments: list[str] = []
    metadata: list[str] = []
    columns: dict[str, DataColumnSection] = {}

    @model_validator(mode="after")
    def _one_role_per_column(self) -> DataSection:
        self.roles()
        return self

    def roles(self) -> dict[str, str]:
        """Column name → role, from the shortcuts and the per-column ``role`` keys."""
        given: list[tuple[str, str]] = [
            (name, role)
            for role, names in (
                ("target", [self.target] if self.target else []),
                ("timestamp", [self.timestamp] if self.timestamp else []),
                ("id", [self.id] if self.id else []),
                ("segment", self.segments),
                ("metadata", self.metadata),
            )
            for name in names
        ]
        given += [(name, c.role) for name, c in self.columns.items() if c.role is not None]
        roles: dict[str, str] = {}
        for name, role in given:
            if roles.setdefault(name, role) != role:
                raise ValueError(f"column {name!r} is given two roles: {roles[name]} and {role}")
        return roles


class SqlSource(BaseModel):
    """A source read with SQLAlchemy: ``source = {url = "...", query = "select ..."}``."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1)
    query: str = Field(min_length=1)


class SliceSection(BaseModel):
    """A slice: a column's values, or a numeric column cut at ``bins`` edges."""

    model_config = ConfigDict(extra="forbid")
    column: str = Field(min_length=1)
    bins: list[float] | None = Field(default=None, min_length=2)
    #: the slice's worst value may not fall below (above, for errors) this
    min: float | None = None
    #: how far the slice may regress against the champion's same slice
    max_regression: float | None = Field(default=None, ge=0)


class GateSection(BaseModel):
    """``[pipeline.gate]``: when a candidate is blessed."""

    model_config = ConfigDict(extra="forbid")
    #: the metric that decides (default: accuracy or rmse by task)
    metric: str | None = None
    champion_tolerance: float = Field(default=0.01, ge=0)
    #: score the champion on the candidate's test rows (else: its own, older test score)
    rescore_champion: bool = True
    #: prefer the linear model when it is this close to the best
    simpler_tolerance: float = Field(default=0.005, ge=0)


class PipelineSection(BaseModel):
    """``[pipeline]``: the standard tabular pipeline ``tidal run`` runs.

    Target, time and segment columns come from ``[data]`` (one place per fact).
    """

    model_config = ConfigDict(extra="forbid")
    source: str | SqlSource | None = None
    model: str | None = Field(default=None, min_length=1)
    task: Literal["classification", "regression"] | None = None
    schema_file: str = "schema.yaml"
    allow_anomalies: list[str] = []
    test_size: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0
    candidates: list[str] | None = None
    search_budget: int = Field(default=0, ge=0)
    slices: list[SliceSection] = []
    #: with ``[data] segments``: a segment trains its own model from this many rows
    segment_min_rows: int = Field(default=200, ge=2)
    #: the family trained per segment (default: the best global family)
    segment_family: str | None = None
    gate: GateSection = GateSection()
    executor: Literal["inline", "process", "ray"] = "process"
    ray_address: str | None = None
    #: export the chosen model to ONNX (served with ONNX Runtime); off, it is served
    #: natively and a run saves the conversion (seconds for a large forest)
    export_onnx: bool = True


class ServeSection(BaseModel):
    """``[serve]``: the model server (``tidal serve``). The admin token is never written
    here: it is read from the environment variable named by ``admin_token_env``."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    #: "acknowledged": a response is sent once its prediction record is on disk;
    #: "async": records are flushed in the background (loss window: flush_interval)
    durability: Literal["acknowledged", "async"] = "acknowledged"
    #: the prediction log's folder (relative to the project folder)
    log_folder: str = ".tidal/predictions"
    flush_interval: float = Field(default=0.2, gt=0)
    #: batching defaults for deployments that do not set their own
    max_batch_size: int = Field(default=256, ge=1)
    max_batch_wait_ms: float = Field(default=0.0, ge=0)
    max_body_bytes: int = Field(default=8 * 2**20, ge=1024)
    max_rows: int = Field(default=100_000, ge=1)
    #: how often a replica looks for deployment changes
    poll_interval: float = Field(default=0.5, gt=0)
    #: the latency objective, a bucket of the request-latency histogram
    latency_objective_ms: float = Field(default=25.0, gt=0)
    admin_token_env: str = "TIDAL_ADMIN_TOKEN"
    #: POST /v1/feedback takes this token (or the admin token); off when neither is set
    feedback_token_env: str = "TIDAL_FEEDBACK_TOKEN"
    onnx_threads: int = Field(default=1, ge=1)

    def log_path(self, project_dir: Path) -> Path:
        """The prediction log's folder, relative paths against the project folder."""
        folder = Path(self.log_folder)
        return folder if folder.is_absolute() else project_dir / folder


#: a duration: seconds as a number, or text such as "30s", "5m", "1h", "1d", "2w"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: int | float | str) -> float:
    """Seconds (0 or more) from a number or a text like ``"5m"`` (else ValueError)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text such as \"5m\"")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:]) if text else None
        try:
            seconds = float(text[:-1]) * unit if unit else float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a duration: use seconds or a number with "
                             "s, m, h, d or w (\"5m\", \"1h\")") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class AlertRuleSection(BaseModel):
    """``[[monitor.alerts]]``: thresholds for one check (replacing its default rule).

    ``subject`` is a feature name, or ``"*"`` for every subject of the check. A window
    whose value is at or beyond ``alert`` (``warn``) is an alert (warning) window; the
    state escalates after ``fire_after`` such windows in a row and falls back after
    ``clear_after`` windows below its level in a row (hysteresis). With ``window``
    longer than ``[monitor] window``, a window is judged by the mean of the check's
    values over the windows ending in that span (a slow rise shows, one noisy window
    does not).
    """

    model_config = ConfigDict(extra="forbid")
    check: str = Field(min_length=1)
    subject: str = "*"
    warn: float | None = None
    alert: float | None = None
    #: "above": larger values are worse; "below": smaller values are worse
    direction: Literal["above", "below"] = "above"
    fire_after: int = Field(default=1, ge=1)
    clear_after: int = Field(default=2, ge=1)
    #: judge the mean of the check's values over the windows ending in this last span
    #: (e.g. "1d" of hourly windows) instead of each window's value alone
    window: Annotated[Duration, Field(gt=0)] | None = None
    #: a rule with neither threshold switches the check's alerting off
    @model_validator(mode="after")
    def _ordered(self) -> AlertRuleSection:
        if self.warn is not None and self.alert is not None:
            worse = self.alert >= self.warn if self.direction == "above" else \
                self.alert <= self.warn
            if not worse:
                raise ValueError(f"the alert threshold ({self.alert}) must be beyond the "
                                 f"warn threshold ({self.warn}) in direction "
                                 f"{self.direction!r}")
        return self


class WebhookSection(BaseModel):
    """``[[monitor.webhooks]]``: an HTTP endpoint told of every alert state change."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(default=5.0, gt=0)
    #: delivery attempts before the failure is recorded (back-off doubles from 0.5 s)
    attempts: int = Field(default=5, ge=1, le=20)


class ReviewSection(BaseModel):
    """``[monitor.review]``: which predictions go to people (``tidal review``)."""

    model_config = ConfigDict(extra="forbid")
    #: a classifier's prediction whose top probability is below this (None: off)
    confidence_below: float | None = Field(default=None, gt=0, le=1)
    #: when the shadow's label differs from the stable one
    shadow_disagreement: bool = True
    #: the predictions in a slice whose quality_slice_drop check is in alert
    alerting_slices: bool = True
    #: a random share of predictions (chosen by request id, so reruns choose alike)
    sample_rate: float = Field(default=0.001, ge=0, le=1)
    #: at most this many items per window (the least confident first)
    max_per_window: int = Field(default=20, ge=0)
    #: an item is done once this many reviewers answered it (2+ gives agreement rates)
    reviewers_per_item: int = Field(default=1, ge=1, le=10)
    #: an unanswered claim lapses after this long
    claim_timeout: Duration = 900.0


class MonitorSection(BaseModel):
    """``[monitor]``: the window jobs over the prediction log (``tidal monitor``)."""

    model_config = ConfigDict(extra="forbid")
    #: tumbling windows of event time, aligned to the epoch
    window: Annotated[Duration, Field(gt=0)] = 3600.0
    #: how long after a window's end its records may still arrive; it is computed once
    #: the clock has passed end + lateness, and never again
    lateness: Duration = 60.0
    #: windows with fewer prediction rows (or labelled rows) are stored but not judged
    min_rows: int = Field(default=100, ge=1)
    #: labelled quality of a window is first judged this long after its end
    label_delay: Duration = 86400.0
    #: until this long after its end, a window's quality is updated by late labels
    label_horizon: Duration = 7 * 86400.0
    #: where the prediction log is compacted (default: the log folder + "-parquet")
    compacted_folder: str | None = None
    alerts: list[AlertRuleSection] = []
    webhooks: list[WebhookSection] = []
    review: ReviewSection = ReviewSection()

    def compacted_path(self, project_dir: Path, log_folder: Path) -> Path:
        """The compacted Parquet folder, relative paths against the project folder."""
        if self.compacted_folder is None:
            return log_folder.with_name(log_folder.name + "-parquet")
        folder = Path(self.compacted_folder)
        return folder if folder.is_absolute() else project_dir / folder


STRATEGIES = ("blue_green", "shadow", "canary", "shadow_then_canary")


class AnalysisSection(BaseModel):
    """``[rollout.analysis]``: how a rollout step compares the candidate with the stable
    version over the same period (each comparison needs its minimum sample, else it is
    inconclusive)."""

    model_config = ConfigDict(extra="forbid")
    #: candidate rows (requests for the error rate) a comparison needs
    min_requests: int = Field(default=200, ge=1)
    #: labelled rows of each version the quality comparison needs
    min_labelled: int = Field(default=100, ge=1)
    #: how much higher the candidate's server error rate may be (absolute share)
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    #: the candidate's p99 latency over the stable one's (and at least this many ms more)
    max_latency_ratio: float = Field(default=2.0, ge=1)
    latency_slack_ms: float = Field(default=5.0, ge=0)
    #: the share of the candidate's outputs that are null or not finite
    max_invalid_share: float = Field(default=0.001, ge=0, le=1)
    #: distance between the two versions' prediction distributions: total variation of
    #: the class shares; for regression, the shift of the mean in stable std units
    max_prediction_shift: float = Field(default=0.5, ge=0)
    #: shadow phase: the share of mirrored requests where both versions answer alike
    #: (same class; regression: within 1 stable std)
    min_agreement: float = Field(default=0.5, ge=0, le=1)
    #: how much worse the candidate's labelled quality may be (absolute, the version's
    #: metric: accuracy down, MAE up, ...)
    max_quality_drop: float = Field(default=0.02, ge=0)
    #: wait for labelled quality at every step (labels must come back within a step);
    #: otherwise a step without enough labels is judged on the rest
    require_quality: bool = False


class RolloutSection(BaseModel):
    """``[rollout]``: how ``tidal deploy`` and the controller bring a version to traffic."""

    model_config = ConfigDict(extra="forbid")
    strategy: Literal["blue_green", "shadow", "canary", "shadow_then_canary"] = \
        "shadow_then_canary"
    #: canary weights, ascending; reaching 1.0 is the promotion
    steps: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5, 1.0],
                               min_length=1)
    #: a canary step lasts at least this long before its analysis can pass it
    step_time: Duration = 600.0
    #: the shadow phase: until this many mirrored requests, or this long, whichever first
    shadow_requests: int = Field(default=1000, ge=1)
    shadow_time: Duration = 3600.0
    #: an inconclusive step waits this long, then holds for a person
    inconclusive_limit: Duration = 3600.0
    analysis: AnalysisSection = AnalysisSection()

    @model_validator(mode="after")
    def _ascending(self) -> RolloutSection:
        steps = self.steps
        if any(not 0 < w <= 1 for w in steps) or steps != sorted(set(steps)):
            raise ValueError(f"rollout steps are ascending weights in (0, 1], got {steps}")
        return self


class PolicySection(BaseModel):
    """``[[policies]]``: when to retrain a deployment's model, and how to roll it out.

    Triggers are alternatives (any one fires the policy): an alert on one of the named
    checks (``"drift_share"``, or ``"drift:feat_4"`` for one subject), a schedule
    (``every``), ``new_labels`` labels since the last time, the served model's age, or a
    new code commit. ``cooldown`` and ``max_per_day`` keep it from flapping."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    deployment: str = Field(min_length=1, max_length=64)
    on_alert: list[str] = Field(default_factory=list)
    every: Annotated[Duration, Field(gt=0)] | None = None
    new_labels: int | None = Field(default=None, ge=1)
    model_age: Annotated[Duration, Field(gt=0)] | None = None
    on_code_change: bool = False
    #: run the standard pipeline, then roll its model out if the gate blessed it
    action: Literal["retrain"] = "retrain"
    #: the rollout strategy (default: [rollout] strategy)
    strategy: Literal["blue_green", "shadow", "canary", "shadow_then_canary"] | None = None
    cooldown: Duration = 21600.0
    max_per_day: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _triggered(self) -> PolicySection:
        if not (self.on_alert or self.every or self.new_labels or self.model_age
                or self.on_code_change):
            raise ValueError(f"policy {self.name!r} has no trigger: give on_alert, every, "
                             "new_labels, model_age or on_code_change")
        return self


class ScheduleSection(BaseModel):
    """``[[schedules]]``: a batch scoring job the controller runs for each window of a
    cron schedule (see :mod:`tidal.batch.schedules`).

    The cron's firing at T scores the window from the previous firing to T, once the
    clock has passed T; cron times are UTC unless ``timezone`` names another zone.
    ``input`` and ``output`` (and ``query`` and ``table``) are patterns with the window's
    ``{start}`` and ``{end}`` (datetimes in that zone:
    ``"data/{start:%Y-%m-%d_%H}.parquet"``); relative paths are the project folder's.
    After a downtime, the newest ``catch_up`` missed windows run, oldest first; older
    ones are recorded as skipped. The other keys are those of ``tidal score``.
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    deployment: str = Field(min_length=1, max_length=64)
    cron: str = Field(min_length=1)
    input: str = Field(min_length=1)
    output: str = Field(min_length=1)
    keys: list[str] | None = None
    partition_rows: int = Field(default=100_000, ge=1)
    workers: int = Field(default=1, ge=1, le=64)
    #: triage: the output column that says who needs people, and which rows (the top K,
    #: or those at or above a value); ``review`` also queues them for review
    by: str | None = Field(default=None, min_length=1)
    top: int | None = Field(default=None, ge=1)
    above: float | None = None
    review: bool = False
    #: where triaged rows go (a pattern; default: OUTPUT.triage.parquet beside a file,
    #: TABLE.triage.parquet in the project folder for a table)
    triage_output: str | None = Field(default=None, min_length=1)
    #: handed to the scoring job as they are: a database input (``input`` a SQLAlchemy
    #: URL) is read with ``query``, a database output written to ``table`` (both may hold
    #: the window's placeholders) as ``if_exists`` says; where partitions are scored;
    #: where triaged rows are POSTed
    query: str | None = Field(default=None, min_length=1)
    table: str | None = Field(default=None, min_length=1)
    if_exists: Literal["fail", "replace", "append"] | None = None
    executor: Literal["process", "ray", "inline"] | None = None
    webhook: str | None = Field(default=None, pattern=r"^https?://")
    #: after a downtime, at most this many missed windows run (the newest)
    catch_up: int = Field(default=24, ge=1)
    #: the IANA time zone whose clocks the cron and the {start}/{end} placeholders are
    #: read on (see :mod:`tidal.core.cron` for the daylight-saving rules)
    timezone: str = Field(default="UTC", min_length=1)
    #: score with the stable version alone, even while a canary or shadow is deployed
    #: (``tidal score --stable-only``): for outputs that feed something that must not
    #: see a candidate's answers
    stable_only: bool = False

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str, info: ValidationInfo) -> str:
        return _named(info, lambda: Cron(value).expression)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str, info: ValidationInfo) -> str:
        return _named(info, lambda: str(zone(value)))

    @field_validator("input", "output", "triage_output", "query", "table")
    @classmethod
    def _pattern(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _named(info, lambda: check_pattern(value))

    @model_validator(mode="after")
    def _triage(self) -> ScheduleSection:
        triaging = {k for k in ("top", "above", "review", "triage_output", "webhook")
                    if getattr(self, k) not in (None, False)}
        if self.by is None and triaging:
            raise ValueError(f"schedule {self.name!r}: {', '.join(sorted(triaging))} "
                             "triage by a column: add by")
        if self.by is not None and (self.top is None) == (self.above is None):
            raise ValueError(f"schedule {self.name!r}: triage by {self.by!r} takes top or "
                             "above (one of them)")
        return self

    @model_validator(mode="after")
    def _databases(self) -> ScheduleSection:
        """A database input needs its query and a database output its table (and only
        they do), or every window would fail the same way."""
        for location, key, side in ((self.input, "query", "input"),
                                    (self.output, "table", "output")):
            given = getattr(self, key) is not None
            if _is_url(location) and not given:
                raise ValueError(f"schedule {self.name!r}: a database {side} (a SQLAlchemy "
                                 f"URL) needs {key}")
            if given and not _is_url(location):
                raise ValueError(f"schedule {self.name!r}: {key} is for a database {side}; "
                                 f"give {side} as a SQLAlchemy URL (e.g. sqlite:///x.db)")
        if self.if_exists is not None and self.table is None:
            raise ValueError(f"schedule {self.name!r}: if_exists is for a database output")
        return self

    def parsed_cron(self) -> Cron:
        """The cron expression, read on the clocks of ``timezone``."""
        return Cron(self.cron, self.timezone)

    def score_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`tidal.batch.job.score` this entry sets beyond
        the input, output and triage (unset pass-through keys are left out, so the job's
        own defaults apply)."""
        given = {"keys": self.keys, "query": self.query, "table": self.table,
                 "if_exists": self.if_exists, "executor": self.executor}
        return {"partition_rows": self.partition_rows, "workers": self.workers,
                **({"candidates": False} if self.stable_only else {}),
                **{k: v for k, v in given.items() if v is not None}}


def _is_url(location: str) -> bool:
    """A SQLAlchemy URL rather than a path (the rule of :mod:`tidal.batch.sources`)."""
    return re.match(r"^[a-z][a-z0-9+]*://", location, re.IGNORECASE) is not None


def _named(info: ValidationInfo, check: Callable[[], str]) -> str:
    """``check()``, its ValueError naming the schedule (its name is validated first)."""
    try:
        return check()
    except ValueError as error:
        name = info.data.get("name")
        raise ValueError(f"schedule {name!r}: {error}" if name else str(error)) from None


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    store: StoreSection = StoreSection()
    artifacts: ArtifactsSection = ArtifactsSection()
    data: DataSection = DataSection()
    pipeline: PipelineSection = PipelineSection()
    serve: ServeSection = ServeSection()
    monitor: MonitorSection = MonitorSection()
    rollout: RolloutSection = RolloutSection()
    policies: list[PolicySection] = Field(default_factory=list)
    schedules: list[ScheduleSection] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> FileConfig:
        for kind, names in (("policy", [p.name for p in self.policies]),
                            ("schedule", [s.name for s in self.schedules])):
            if len(names) != len(set(names)):
                raise ValueError(f"{kind} names must be unique")
        return self


class Settings(BaseModel):
    """Resolved settings of one project: absolute paths, final URLs."""

    model_config = ConfigDict(frozen=True)

    project_dir: Path
    store_url: str
    artifact_root: str
    busy_timeout: float = 30.0
    actor: str = "unknown"
    #: the ``[data]`` section as written (roles and constraint overrides for schemas)
    data: DataSection = DataSection()
    pipeline: PipelineSection = PipelineSection()
    serve: ServeSection = ServeSection()
    monitor: MonitorSection = MonitorSection()
    rollout: RolloutSection = RolloutSection()
    policies: list[PolicySection] = Field(default_factory=list)
    schedules: list[ScheduleSection] = Field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.project_dir / STATE_DIR


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding tidal.toml, else ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def load_settings(
    project_dir: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read tidal.toml and TIDAL_* variables into resolved :class:`Settings`.

    ``overrides`` may set ``store_url``, ``artifact_root`` and ``actor`` directly.
    """
    env = os.environ if environ is None else environ
    if project_dir is None:
        project_dir = env.get("TIDAL_PROJECT_DIR") or find_project_dir()
    folder = Path(project_dir).expanduser().resolve()

    raw = _read_file(folder / CONFIG_FILE)
    for variable, (section, key) in ENV_VARS.items():
        if env.get(variable):
            raw.setdefault(section, {})[key] = env[variable]
    try:
        parsed = FileConfig.model_validate(raw)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {folder / CONFIG_FILE}: {problems}") from None

    store_url = overrides.pop("store_url", None) or parsed.store.url
    artifact_root = overrides.pop("artifact_root", None) or parsed.artifacts.root
    actor = overrides.pop("actor", None) or env.get("TIDAL_ACTOR") or _login_name()
    if overrides:
        raise ConfigError(f"unknown settings: {', '.join(sorted(overrides))}")
    return Settings(
        project_dir=folder,
        store_url=resolve_store_url(store_url, folder),
        artifact_root=resolve_artifact_root(artifact_root, folder),
        busy_timeout=parsed.store.busy_timeout,
        actor=actor,
        data=parsed.data,
        pipeline=parsed.pipeline,
        serve=parsed.serve,
        monitor=parsed.monitor,
        rollout=parsed.rollout,
        policies=parsed.policies,
        schedules=parsed.schedules,
    )


def resolve_store_url(url: str, project_dir: Path) -> str:
    """Make a relative SQLite path absolute against the project folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        path, sep, query = url[len(prefix) :].partition("?")
        if path and path != ":memory:":
            absolute = (project_dir / path).resolve()
            return f"{prefix}{absolute}{sep}{query}"
    return url


def resolve_artifact_root(root: str, project_dir: Path) -> str:
    """A plain path becomes absolute against the project; an fsspec URL stays as given."""
    if "://" in root:
        return root
    return str((project_dir / Path(root).expanduser()).resolve())


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text (TOML files are UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
