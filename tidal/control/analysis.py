"""Rollout analysis: the candidate against the stable version over the same period.

Google's SRE workbook warns that before/after comparisons are risky ("time is one of the
biggest sources of change in observed metrics"), so a step compares the candidate's rows
with the stable version's rows *of the same period*, on a few metrics that matter
(Argo Rollouts and Flagger do the same with success rate and p99 latency). Each
comparison has a threshold and a minimum sample, and a verdict:

- ``server_errors`` — the candidate's share of requests that failed with a 5xx, minus
  the stable one's;
- ``client_errors`` — the same for 4xx: the SRE workbook leaves 4xx out because they are
  the client's doing, but here both versions see the same clients, so a candidate that
  refuses what the stable one answers (a stricter signature, say) is at fault;
- ``latency_p99`` — the candidate's p99 against ``max_latency_ratio`` times the stable
  one's, and at least ``latency_slack_ms`` more (a fast model's p99 is noisy);
- ``invalid_outputs`` — the share of the candidate's rows with a null or non-finite
  output (nothing to compare: a healthy model has none);
- ``prediction_shift`` — how far apart the two prediction distributions are: the total
  variation distance of the class shares, or for regression the shift of the mean in
  units of the stable predictions' standard deviation (the default allows a lot: a model
  retrained after drift *should* answer differently);
- ``collapsed_outputs`` — a candidate answering (nearly) one class where the stable one
  does not (top class share at least 0.99 against at most 0.9), or a regression whose
  predictions barely vary (standard deviation under 1 % of the stable one's);
- ``agreement`` — in the shadow phase, where both versions answer the same requests: the
  share answered alike (the same class; within one stable standard deviation);
- ``quality`` — where labels came back for both: the version's metric on each side's
  labelled rows, the candidate's drop against the stable one's. Labels usually come back
  later than a step lasts, so without ``min_labelled`` rows of each this comparison is
  ``skipped`` (left out of the verdict) unless ``require_quality`` is set.

A comparison without its minimum sample is ``inconclusive``, except that a candidate
failing on most of its first requests (``server_errors`` or ``invalid_outputs`` above
half of at least 10 rows) fails at once: waiting for more evidence would only serve
more errors. The analysis fails when any comparison fails, passes when every one
passes, and is inconclusive otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tidal.core.config import AnalysisSection
from tidal.monitor.outputs import LABEL, PREDICTION, outputs_of_table
from tidal.monitor.quality import HIGHER_IS_BETTER, join, measure
from tidal.store.feedback import Labels

PASS, FAIL, INCONCLUSIVE, SKIPPED = "pass", "fail", "inconclusive", "skipped"
#: fail at once when more than this share of the first (at least FAST_ROWS) rows failed
FAST_SHARE, FAST_ROWS = 0.5, 10
#: a classifier answering its top class this often, where the stable one answers its own
#: at most VARIED_SHARE of the time, has collapsed; a regressor whose spread is under
#: COLLAPSED_SPREAD of the stable one's
COLLAPSED_SHARE, VARIED_SHARE, COLLAPSED_SPREAD = 0.99, 0.9, 0.01


@dataclass(frozen=True)
class Comparison:
    name: str
    verdict: str
    candidate: float | None
    stable: float | None
    limit: float | None
    samples: int
    note: str = ""


@dataclass
class Analysis:
    verdict: str
    comparisons: list[Comparison] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    candidate_requests: int = 0
    stable_requests: int = 0

    def reasons(self) -> str:
        """The comparisons behind the verdict, in one line."""
        picked = [c for c in self.comparisons if c.verdict == self.verdict] or \
            self.comparisons
        return "; ".join(_describe(c) for c in picked) or "no traffic yet"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Side:
    """One version's rows of the period, as logged (failed requests included)."""

    rows: pa.Table

    @cached_property
    def ok(self) -> pa.Table:
        """The answered rows (each comparison reads them: filtered once)."""
        if "status" not in self.rows.column_names or self.rows.num_rows == 0:
            return self.rows
        failed = pc.greater_equal(pc.fill_null(self.rows.column("status"), 200), 400)
        return self.rows.filter(pc.invert(failed))

    @cached_property
    def predictions(self) -> list[Any]:
        """The answered rows' predicted classes or values (computed once)."""
        return _predictions(self.ok)

    def requests(self) -> int:
        if self.rows.num_rows == 0 or "request_id" not in self.rows.column_names:
            return 0
        return pc.count_distinct(self.rows.column("request_id")).as_py()

    def errors(self, low: int, high: int) -> int:
        """Rows that failed with a status in ``[low, high)``."""
        if self.rows.num_rows == 0 or "status" not in self.rows.column_names:
            return 0
        status = pc.fill_null(self.rows.column("status"), 200)
        return int(pc.sum(pc.and_(pc.greater_equal(status, low),
                                  pc.less(status, high))).as_py() or 0)


def analyse(candidate: pa.Table, stable: pa.Table, config: AnalysisSection, *,
            task: str | None, classes: Sequence[Any] | None = None, paired: bool = False,
            labels: Labels | None = None, metric: str | None = None,
            start: float = 0.0, end: float = 0.0) -> Analysis:
    """Compare the candidate's rows with the stable version's (see the module
    docstring). ``paired``: both answered the same requests (the shadow phase);
    ``labels``: the labels found for the rows' request ids; ``metric``: the version's
    own quality metric."""
    ours, theirs = Side(candidate), Side(stable)
    comparisons = [_errors(ours, theirs, config, "server_errors", 500, 600),
                   _errors(ours, theirs, config, "client_errors", 400, 500),
                   _latency(ours, theirs, config),
                   _invalid(ours, config), _shift(ours, theirs, config, task),
                   _collapse(ours, theirs, config, task)]
    if paired:
        comparisons.append(_agreement(ours, theirs, config, task))
    if labels is not None:
        comparisons.append(_quality(ours, theirs, config, labels, task, classes, metric))
    verdicts = {c.verdict for c in comparisons} - {SKIPPED}
    verdict = FAIL if FAIL in verdicts else PASS if verdicts == {PASS} else INCONCLUSIVE
    return Analysis(verdict, comparisons, start, end, ours.requests(), theirs.requests())


def _errors(ours: Side, theirs: Side, config: AnalysisSection, name: str, low: int,
            high: int) -> Comparison:
    n, m = ours.requests(), theirs.requests()
    rate = ours.errors(low, high) / n if n else None
    base = theirs.errors(low, high) / m if m else None
    limit = (base or 0.0) + config.max_error_rate_increase
    if rate is not None and n >= FAST_ROWS and rate > max(FAST_SHARE, limit):
        return Comparison(name, FAIL, rate, base, limit, n, "fails most requests")
    if n < config.min_requests or m < config.min_requests:
        return Comparison(name, INCONCLUSIVE, rate, base, limit, n,
                          f"needs {config.min_requests} requests of each")
    assert rate is not None and base is not None
    return Comparison(name, PASS if rate <= limit else FAIL, rate, base, limit, n)


def _latency(ours: Side, theirs: Side, config: AnalysisSection) -> Comparison:
    mine, base = _p99(ours.ok), _p99(theirs.ok)
    n = ours.ok.num_rows
    limit = None if base is None else max(base * config.max_latency_ratio,
                                          base + config.latency_slack_ms)
    if n < config.min_requests or theirs.ok.num_rows < config.min_requests:
        return Comparison("latency_p99", INCONCLUSIVE, mine, base, limit, n,
                          f"needs {config.min_requests} answered requests of each")
    assert mine is not None and limit is not None
    return Comparison("latency_p99", PASS if mine <= limit else FAIL, mine, base, limit, n)


def _invalid(ours: Side, config: AnalysisSection) -> Comparison:
    table = ours.ok
    n = table.num_rows
    bad = _invalid_rows(table)
    share = bad / n if n else None
    limit = config.max_invalid_share
    if share is not None and n >= FAST_ROWS and share > max(FAST_SHARE, limit):
        return Comparison("invalid_outputs", FAIL, share, None, limit, n,
                          "most outputs null or not finite")
    if n < config.min_requests:
        return Comparison("invalid_outputs", INCONCLUSIVE, share, None, limit, n,
                          f"needs {config.min_requests} rows")
    assert share is not None
    return Comparison("invalid_outputs", PASS if share <= limit else FAIL, share, None,
                      limit, n)


def _shift(ours: Side, theirs: Side, config: AnalysisSection,
           task: str | None) -> Comparison:
    mine, base = ours.predictions, theirs.predictions
    n, m = len(mine), len(base)
    limit = config.max_prediction_shift
    if n < config.min_requests or m < config.min_requests:
        return Comparison("prediction_shift", INCONCLUSIVE, None, None, limit, n,
                          f"needs {config.min_requests} predictions of each")
    if _is_regression(task, mine):
        a, b = _finite(mine), _finite(base)
        spread = float(np.std(b)) or 1.0
        distance = abs(float(np.mean(a)) - float(np.mean(b))) / spread if len(a) and len(b) \
            else math.inf
    else:
        distance = _total_variation(mine, base)
    return Comparison("prediction_shift", PASS if distance <= limit else FAIL, distance,
                      0.0, limit, n)


def _collapse(ours: Side, theirs: Side, config: AnalysisSection,
              task: str | None) -> Comparison:
    mine, base = ours.predictions, theirs.predictions
    n, m = len(mine), len(base)
    if n < config.min_requests or m < config.min_requests:
        return Comparison("collapsed_outputs", INCONCLUSIVE, None, None, None, n,
                          f"needs {config.min_requests} predictions of each")
    if _is_regression(task, mine):
        a, b = _finite(mine), _finite(base)
        spread, base_spread = float(np.std(a)) if len(a) else 0.0, float(np.std(b))
        collapsed = base_spread > 0 and spread < COLLAPSED_SPREAD * base_spread
        return Comparison("collapsed_outputs", FAIL if collapsed else PASS, spread,
                          base_spread, COLLAPSED_SPREAD * base_spread, n,
                          "standard deviation of the predictions")
    top, base_top = max(_shares(mine).values()), max(_shares(base).values())
    collapsed = top >= COLLAPSED_SHARE and base_top <= VARIED_SHARE
    return Comparison("collapsed_outputs", FAIL if collapsed else PASS, top, base_top,
                      COLLAPSED_SHARE, n, "share of the most frequent class")


def _agreement(ours: Side, theirs: Side, config: AnalysisSection,
               task: str | None) -> Comparison:
    mine, base = _keyed(ours), _keyed(theirs)
    shared = sorted(set(mine) & set(base))
    limit = config.min_agreement
    if len(shared) < config.min_requests:
        return Comparison("agreement", INCONCLUSIVE, None, None, limit, len(shared),
                          f"needs {config.min_requests} requests both answered")
    a = [mine[k] for k in shared]
    b = [base[k] for k in shared]
    if _is_regression(task, a):
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        spread = float(np.nanstd(y)) or 1.0
        alike = float(np.mean(np.abs(x - y) <= spread))
    else:
        alike = float(np.mean([str(p) == str(q) for p, q in zip(a, b, strict=True)]))
    return Comparison("agreement", PASS if alike >= limit else FAIL, alike, None, limit,
                      len(shared))


def _quality(ours: Side, theirs: Side, config: AnalysisSection, labels: Labels,
             task: str | None, classes: Sequence[Any] | None,
             metric: str | None) -> Comparison:
    scores = []
    counts = []
    for side in (ours, theirs):
        table = side.ok
        found = join(table, labels) if table.num_rows else []
        counts.append(sum(label is not None for label in found))
        measured = measure(table, found, task=task, classes=list(classes or []) or None,
                           reference=None, min_rows=config.min_labelled) \
            if table.num_rows else []
        scores.append({m.subject: m.value for m in measured if m.check == "quality"})
    name = metric if metric in scores[0] else ("accuracy" if "accuracy" in scores[0]
                                               else "mae" if "mae" in scores[0] else None)
    if name is None or name not in scores[1] or min(counts) < config.min_labelled:
        return Comparison("quality", INCONCLUSIVE if config.require_quality else SKIPPED,
                          None, None, config.max_quality_drop, min(counts),
                          f"needs {config.min_labelled} labelled rows of each")
    mine, base = scores[0][name], scores[1][name]
    drop = (base - mine) if name in HIGHER_IS_BETTER else (mine - base)
    verdict = PASS if drop <= config.max_quality_drop else FAIL
    return Comparison("quality", verdict, mine, base, config.max_quality_drop, counts[0],
                      f"{name}, drop {drop:+.4f}")


# -- helpers ---------------------------------------------------------------------------

def _p99(table: pa.Table) -> float | None:
    if table.num_rows == 0 or "latency_ms" not in table.column_names:
        return None
    values = table.column("latency_ms").to_numpy(zero_copy_only=False).astype(float)
    values = values[np.isfinite(values)]
    return float(np.quantile(values, 0.99)) if len(values) else None


def _predictions(table: pa.Table) -> list[Any]:
    if table.num_rows == 0:
        return []
    outputs = outputs_of_table(table)
    column = outputs.get(LABEL, outputs.get(PREDICTION))
    if column is None:
        return []
    values = column.to_pylist() if hasattr(column, "to_pylist") else list(column)
    return values


def _keyed(side: Side) -> dict[tuple[str, int], Any]:
    table = side.ok
    if table.num_rows == 0:
        return {}
    ids = table.column("request_id").to_pylist()
    rows = table.column("row").to_pylist() if "row" in table.column_names else [0] * len(ids)
    return {(i, r or 0): v for i, r, v in zip(ids, rows, side.predictions, strict=True)}


def _invalid_rows(table: pa.Table) -> int:
    if table.num_rows == 0:
        return 0
    outputs = outputs_of_table(table)
    bad = np.zeros(table.num_rows, dtype=bool)
    for values in outputs.values():
        array = values.to_numpy(zero_copy_only=False) if hasattr(values, "to_numpy") \
            else np.asarray(values)
        if array.dtype.kind in "fc":
            bad |= ~np.isfinite(array)
        elif array.dtype == object:
            bad |= np.array([v is None or (isinstance(v, float) and not math.isfinite(v))
                             for v in array], dtype=bool)
    return int(bad.sum())


def _is_regression(task: str | None, values: Sequence[Any]) -> bool:
    if task is not None:
        return task == "regression"
    return bool(values) and all(isinstance(v, float) for v in values[:100])


def _finite(values: Sequence[Any]) -> np.ndarray:
    array = np.asarray([v for v in values if v is not None], dtype=float)
    return array[np.isfinite(array)]


def _total_variation(a: Sequence[Any], b: Sequence[Any]) -> float:
    shares_a = _shares(a)
    shares_b = _shares(b)
    names = set(shares_a) | set(shares_b)
    return 0.5 * sum(abs(shares_a.get(n, 0.0) - shares_b.get(n, 0.0)) for n in names)


def _shares(values: Sequence[Any]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}


def _describe(c: Comparison) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4g}"

    text = f"{c.name} {c.verdict}: candidate {number(c.candidate)}"
    if c.stable is not None:
        text += f", stable {number(c.stable)}"
    if c.limit is not None:
        text += f", limit {number(c.limit)}"
    text += f" ({c.samples} rows)"
    return text + (f", {c.note}" if c.note else "")
