"""The validation gate: bless or veto a candidate, and choose between candidates.

Why a gate (ML Test Score, "model quality is validated before serving" and "quality is
sufficient on important slices"): a model reaches the registry as ``blessed`` only when

1. it beats the trivial baseline on the gate metric;
2. it does not regress against the current champion overall by more than a tolerance;
3. no important slice falls below (or above, for error metrics) its absolute threshold, or
   regresses against the champion's metric on that slice by more than its tolerance.

Every check is evaluated (no short-circuit), so a veto lists every reason at once, as
readable sentences with the metric, the values and the thresholds. Tolerances are absolute,
in the metric's units.

:func:`choose` implements "a simpler model is not better": among the candidates, the best
one wins unless a simpler model (``linear`` by default) is within the tolerance of it, in
which case the simpler model is preferred and the reason says so.

Pure logic on dicts (the outputs of :mod:`tidal.train.evaluate`); no scikit-learn import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from tidal.core.errors import ValidationError


class SliceRule(TypedDict, total=False):
    """Rule for an important slice (every value of it, or one ``"slice=value"``).

    ``min`` / ``max``: absolute bounds on the slice's metric (use ``max`` for error metrics
    such as MAE). ``max_regression``: how much worse than the champion's metric on the same
    slice value it may be. ``min_rows``: slice values with fewer rows are not judged
    (too noisy); default 1.
    """

    min: float | None
    max: float | None
    max_regression: float | None
    min_rows: int


@dataclass
class Verdict:
    """The gate's decision: ``blessed``, the reasons (failures when vetoed), every check."""

    blessed: bool
    reasons: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"blessed": self.blessed, "reasons": list(self.reasons), "checks": self.checks}


#: Direction of each metric :mod:`tidal.train.evaluate` computes (True: higher is
#: better). Here, not there, so that gating needs neither scikit-learn nor pandas.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "balanced_accuracy": True, "f1": True, "roc_auc": True,
    "log_loss": False, "mae": False, "rmse": False, "r2": True,
}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    try:
        return HIGHER_IS_BETTER[metric]
    except KeyError:
        raise ValueError(
            f"unknown metric {metric!r}; known: {', '.join(HIGHER_IS_BETTER)}"
        ) from None


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _better(a: float, b: float, higher_is_better: bool) -> bool:
    return a > b if higher_is_better else a < b


def _regression(candidate: float, reference: float, higher_is_better: bool) -> float:
    """How much worse ``candidate`` is than ``reference`` (negative: it is better)."""
    return reference - candidate if higher_is_better else candidate - reference


def _value(metrics: Mapping[str, Any], metric: str, who: str) -> float:
    if metric not in metrics:
        hint = " (did the target or the task change? a new task needs a new model name)" \
            if who == "champion" else ""
        raise ValidationError(
            f"the {who} metrics have no {metric!r} (they have: "
            f"{', '.join(sorted(metrics))}){hint}")
    return float(metrics[metric])


def _rule_for(
    rules: Mapping[str, Mapping[str, Any]], slice_name: str, value: str,
) -> tuple[str, Mapping[str, Any]] | None:
    specific = f"{slice_name}={value}"
    if specific in rules:
        return specific, rules[specific]
    if slice_name in rules:
        return slice_name, rules[slice_name]
    return None


def decide(
    candidate_metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    slice_rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    higher_is_better: bool,
    champion_tolerance: float = 0.01,
    slice_rules: Mapping[str, Mapping[str, Any]] | None = None,
    champion_slice_rows: Sequence[Mapping[str, Any]] | None = None,
    candidate_name: str = "the candidate",
    champion_basis: str | None = None,
    candidate_vs_champion: Mapping[str, Any] | None = None,
) -> Verdict:
    """Bless or veto a candidate; see the module docstring for the checks.

    ``slice_rows`` is the candidate's :func:`~tidal.train.evaluate.slice_table`;
    ``champion_slice_rows`` the champion's table on the same rows (or give each slice row a
    ``"champion"`` value). ``slice_rules`` maps a slice name (all its values) or
    ``"slice=value"`` to a :class:`SliceRule`. A NaN metric fails the checks it is part of.
    ``champion_basis`` says where the champion's figures come from (in the messages);
    ``candidate_vs_champion``, the candidate's metrics on the champion's rows when those
    are not its own test rows.
    """
    basis = f" ({champion_basis})" if champion_basis else ""
    direction = "higher" if higher_is_better else "lower"
    checks: list[dict[str, Any]] = []

    def check(kind: str, passed: bool, message: str, **details: Any) -> None:
        checks.append({"check": kind, "passed": bool(passed), "message": message, **details})

    score = _value(candidate_metrics, metric, "candidate")
    baseline = _value(baseline_metrics, metric, "baseline")
    beats = not math.isnan(score) and (math.isnan(baseline) or _better(score, baseline,
                                                                        higher_is_better))
    if beats:
        message = (f"{candidate_name} beats the trivial baseline on {metric}: "
                   f"{_fmt(score)} vs {_fmt(baseline)} ({direction} is better).")
    else:
        message = (f"{candidate_name} does not beat the trivial baseline on {metric}: "
                   f"{_fmt(score)} vs baseline {_fmt(baseline)} ({direction} is better).")
    check("beats_baseline", beats, message, metric=metric, value=score, baseline=baseline)

    if champion_metrics is None:
        check("champion_overall", True, "There is no champion to compare with.",
              metric=metric)
    else:
        champion = _value(champion_metrics, metric, "champion")
        compared = score if candidate_vs_champion is None else \
            _value(candidate_vs_champion, metric, "candidate")
        worse_by = _regression(compared, champion, higher_is_better)
        ok = not math.isnan(compared) and (math.isnan(champion) or worse_by <= champion_tolerance)
        if ok:
            message = (f"{candidate_name} does not regress against the champion on {metric}: "
                       f"{_fmt(compared)} vs {_fmt(champion)} "
                       f"(tolerance {_fmt(champion_tolerance)}){basis}.")
        else:
            message = (f"{candidate_name} regresses against the champion on {metric}: "
                       f"{_fmt(compared)} vs champion {_fmt(champion)}, worse by "
                       f"{_fmt(worse_by)}, more than the tolerance of "
                       f"{_fmt(champion_tolerance)} ({direction} is better){basis}.")
        check("champion_overall", ok, message, metric=metric, value=compared, champion=champion,
              tolerance=champion_tolerance)

    rules = dict(slice_rules or {})
    champion_by_key = {
        (str(r["slice"]), str(r["value"])): float(r["score"]) for r in champion_slice_rows or []
    }
    judged: set[str] = set()
    for row in slice_rows:
        name, value = str(row["slice"]), str(row["value"])
        found = _rule_for(rules, name, value)
        if found is None:
            continue
        rule_key, rule = found
        judged.add(rule_key)
        where = f"slice {name}={value}"
        slice_score = float(row["score"])
        rows = int(row.get("rows", 0))
        min_rows = int(rule.get("min_rows") or 1)
        if rows < min_rows:
            check("slice_skipped", True,
                  f"{where} has {rows} rows, fewer than {min_rows}: not judged.",
                  slice=name, value=value, rows=rows)
            continue
        bad_value = math.isnan(slice_score)
        floor = rule.get("min")
        if floor is not None:
            ok = not bad_value and slice_score >= floor
            message = (f"{where}: {metric} {_fmt(slice_score)} is "
                       f"{'at or above' if ok else 'below'} the minimum {_fmt(floor)}.")
            check("slice_min", ok, message, slice=name, value=value, metric=metric,
                  score=slice_score, threshold=floor, rows=rows)
        ceiling = rule.get("max")
        if ceiling is not None:
            ok = not bad_value and slice_score <= ceiling
            message = (f"{where}: {metric} {_fmt(slice_score)} is "
                       f"{'at or below' if ok else 'above'} the maximum {_fmt(ceiling)}.")
            check("slice_max", ok, message, slice=name, value=value, metric=metric,
                  score=slice_score, threshold=ceiling, rows=rows)
        tolerance = rule.get("max_regression")
        champion_slice = row.get("champion", champion_by_key.get((name, value)))
        if tolerance is not None and champion_slice is not None:
            champion_slice = float(champion_slice)
            worse_by = _regression(slice_score, champion_slice, higher_is_better)
            ok = not bad_value and (math.isnan(champion_slice) or worse_by <= tolerance)
            if ok:
                message = (f"{where}: {metric} {_fmt(slice_score)} vs champion "
                           f"{_fmt(champion_slice)}, within the tolerance of "
                           f"{_fmt(tolerance)}.")
            else:
                message = (f"{where}: {metric} {_fmt(slice_score)} regresses against the "
                           f"champion's {_fmt(champion_slice)} by {_fmt(worse_by)}, more "
                           f"than the tolerance of {_fmt(tolerance)} "
                           f"({direction} is better).")
            check("slice_regression", ok, message, slice=name, value=value, metric=metric,
                  score=slice_score, champion=champion_slice, tolerance=tolerance, rows=rows)
    for rule_key in rules:
        if rule_key not in judged:
            # A rule that matches nothing is a configuration error the user must see.
            check("slice_missing", False,
                  f"slice rule {rule_key!r} matches no row of the slice table.",
                  slice=rule_key)

    failures = [c["message"] for c in checks if not c["passed"]]
    if failures:
        return Verdict(False, failures, checks)
    return Verdict(True, [c["message"] for c in checks], checks)


def choose(
    results: Mapping[str, Mapping[str, Any]], metric: str, higher_is_better: bool,
    tolerance: float = 0.01, *, prefer: Sequence[str] = ("linear",),
    exclude: Sequence[str] = ("baseline",),
) -> tuple[str, str]:
    """Pick the candidate to gate: ``(name, reason)``.

    ``results`` maps candidate names to their metrics. The best candidate on ``metric``
    wins, unless a model in ``prefer`` (simplest first) is within ``tolerance`` of it: then
    the simpler model is chosen ("a simpler model is not better" than a complex one that
    barely wins). Candidates in ``exclude`` are only chosen when nothing else is left;
    candidates with a missing or NaN metric are ignored.
    """
    scored = {
        name: float(values[metric]) for name, values in results.items()
        if metric in values and not math.isnan(float(values[metric]))
    }
    if not scored:
        raise ValueError(f"no candidate has a value for {metric!r}")
    pool = {name: s for name, s in scored.items() if name not in exclude} or scored
    sign = 1.0 if higher_is_better else -1.0
    order = list(results)
    best = max(pool, key=lambda name: (sign * pool[name], -order.index(name)))
    best_score = pool[best]
    for simple in prefer:
        if simple == best:
            return best, f"{best} has the best {metric} ({_fmt(best_score)})."
        if simple in pool:
            worse_by = _regression(pool[simple], best_score, higher_is_better)
            if worse_by <= tolerance:
                return simple, (
                    f"{simple} ({metric} {_fmt(pool[simple])}) is within {_fmt(tolerance)} of "
                    f"the best, {best} ({_fmt(best_score)}): the simpler model is preferred."
                )
    return best, f"{best} has the best {metric} ({_fmt(best_score)})."
