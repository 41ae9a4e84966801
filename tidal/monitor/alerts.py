"""Alert rules and states: from a check's value per window to ok / warn / alert.

A :class:`Rule` judges one window: its value is at the ``alert`` level when at or beyond
the alert threshold (above it, or below it for ``direction="below"``), at ``warn`` when
beyond the warn threshold, else ``ok``; a value that could not be computed (too few
rows, no reference) is ``none`` and changes nothing.

The state of a check moves with hysteresis, so a value hovering at a threshold does not
flap: it escalates to a level after ``fire_after`` consecutive windows at that level or
worse, and falls back after ``clear_after`` consecutive windows below its state, to the
level of the window that completed the run. A rule with a ``window`` longer than the
monitor's judges the mean of the check's values over that span instead of each value
alone (the job reads the earlier values: :meth:`tidal.monitor.job.Monitor.point`). Every
move is a :class:`StateChange`, which becomes an event.

Every check has a default rule (:data:`DEFAULT_RULES`), so a new deployment is monitored
without configuration; ``[[monitor.alerts]]`` in ``tidal.toml`` replaces the rule of a
check for one subject or for all (``subject = "*"``), and a rule with no threshold
switches a check's alerts off.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from tidal.core.config import AlertRuleSection
from tidal.store.monitoring import AlertStateRecord, CheckPoint, StateChange

OK, WARN, ALERT, NONE = "ok", "warn", "alert", "none"
_RANK = {OK: 0, WARN: 1, ALERT: 2}


@dataclass(frozen=True)
class Rule:
    check: str
    subject: str = "*"
    warn: float | None = None
    alert: float | None = None
    direction: str = "above"
    fire_after: int = 1
    clear_after: int = 2
    #: seconds: judge the mean over the windows ending in this span (None: each alone)
    window: float | None = None

    def level(self, value: float | None) -> str:
        """The level of one window's value."""
        if value is None or math.isnan(value) or (self.warn is None and self.alert is None):
            return NONE
        if self.alert is not None and self._beyond(value, self.alert):
            return ALERT
        if self.warn is not None and self._beyond(value, self.warn):
            return WARN
        return OK

    def _beyond(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.direction == "above" else value <= threshold

    def describe(self) -> str:
        sign = ">=" if self.direction == "above" else "<="
        parts = [f"{name} {sign} {threshold:g}" for name, threshold in
                 (("warn", self.warn), ("alert", self.alert)) if threshold is not None]
        described = ", ".join(parts) or "no thresholds"
        if self.window is not None:
            described += f", on the mean over {self.window / 3600:g} h"
        return described


#: check → its default rule (the comments say why these values; the README lists them)
DEFAULT_RULES: dict[str, Rule] = {rule.check: rule for rule in (
    # a feature's drift score: 1.0 is the test's own threshold (Evidently's defaults)
    Rule("drift", alert=1.0),
    # the share of drifted features: Evidently's "dataset drift" at half of them
    Rule("drift_share", warn=0.25, alert=0.5),
    Rule("prediction_drift", alert=1.0),
    # the rise of a feature's missing share over the reference's
    Rule("missing", warn=0.05, alert=0.2),
    # the share of a feature's values outside what training saw
    Rule("schema", warn=0.05, alert=0.2),
    # the share of null or non-finite outputs
    Rule("output_invalid", warn=0.001, alert=0.01),
    # how far the predicted class shares (or the mean prediction, in target standard
    # deviations) moved from the training prior
    Rule("prediction_bias", warn=0.1, alert=0.2),
    Rule("model_age_days", warn=30, alert=90),
    # failed requests: any (bad input upstream shows here first), and the server's own
    Rule("error_rate", warn=0.05, alert=0.2),
    Rule("server_error_rate", warn=0.001, alert=0.01),
    # labelled quality against the version's test score, relatively (0.1 = 10 % worse)
    Rule("quality_drop", warn=0.05, alert=0.1),
    # a slice against the same slice of the test set: fewer rows, so wider thresholds
    # and two windows in a row before it fires
    Rule("quality_slice_drop", warn=0.1, alert=0.2, fire_after=2),
    # the same, estimated from confidences before labels arrive
    Rule("estimated_drop", warn=0.05, alert=0.1),
    # the share of sampled predictions whose served feature differs from the source's
    Rule("skew", warn=0.01, alert=0.05),
)}


def rule_from_section(section: AlertRuleSection) -> Rule:
    return Rule(section.check, section.subject, section.warn, section.alert,
                section.direction, section.fire_after, section.clear_after, section.window)


class Rules:
    """The rule for each check and subject: configured ones first, then the defaults."""

    def __init__(self, configured: Iterable[AlertRuleSection] = (),
                 defaults: dict[str, Rule] | None = None) -> None:
        self.defaults = dict(DEFAULT_RULES if defaults is None else defaults)
        self.specific: dict[tuple[str, str], Rule] = {}
        for section in configured:
            rule = rule_from_section(section)
            if rule.subject == "*":
                self.defaults[rule.check] = rule
            else:
                self.specific[(rule.check, rule.subject)] = rule

    def rule_for(self, check: str, subject: str) -> Rule | None:
        return self.specific.get((check, subject)) or self.defaults.get(check)

    def judge(self, check: str, subject: str, value: float | None) -> str:
        rule = self.rule_for(check, subject)
        return NONE if rule is None else rule.level(value)


def evaluate(points: Sequence[CheckPoint], before: dict[tuple[str, str], AlertStateRecord],
             rules: Rules, *, now: float) -> tuple[list[AlertStateRecord], list[StateChange]]:
    """The alert states after one window's points (see the module docstring)."""
    after: list[AlertStateRecord] = []
    changes: list[StateChange] = []
    for point in points:
        rule = rules.rule_for(point.check, point.subject)
        if rule is None or point.level == NONE:
            continue
        state = before.get((point.check, point.subject)) or AlertStateRecord(
            point.deployment, point.check, point.subject, OK, point.window_start, 0, 0, 0,
            None, point.window_start, now)
        moved = advance(state, rule, point, now=now)
        after.append(moved)
        if moved.state != state.state:
            changes.append(StateChange(moved, state.state, _reason(moved, state.state, rule)))
    return after, changes


def advance(state: AlertStateRecord, rule: Rule, point: CheckPoint, *,
            now: float) -> AlertStateRecord:
    """One judged window's effect on a state (hysteresis)."""
    level = point.level
    warn_streak = state.warn_streak + 1 if _RANK[level] >= _RANK[WARN] else 0
    alert_streak = state.alert_streak + 1 if level == ALERT else 0
    clear_streak = state.clear_streak + 1 if _RANK[level] < _RANK[state.state] else 0
    new = state.state
    if state.state != ALERT and alert_streak >= rule.fire_after:
        new = ALERT
    elif state.state == OK and warn_streak >= rule.fire_after:
        new = WARN
    elif clear_streak >= rule.clear_after:
        new = level
    if new != state.state:
        clear_streak = 0
    return replace(state, state=new, since=point.window_end if new != state.state
                   else state.since, warn_streak=warn_streak, alert_streak=alert_streak,
                   clear_streak=clear_streak, last_value=_judged(point, rule),
                   last_window_end=point.window_end, updated_at=now)


def _judged(point: CheckPoint, rule: Rule) -> float | None:
    """The value the rule judged: the point's, or its mean over the rule's window."""
    if rule.window is not None and point.details and "judged" in point.details:
        return point.details["judged"]
    return point.value


def _reason(state: AlertStateRecord, previous: str, rule: Rule) -> str:
    subject = f" of {state.subject}" if state.subject else ""
    value = "n/a" if state.last_value is None else f"{state.last_value:.4g}"
    if _RANK[state.state] > _RANK[previous]:
        return (f"{state.check}{subject} = {value} ({rule.describe()}) for "
                f"{rule.fire_after} window(s): {previous} → {state.state}")
    return (f"{state.check}{subject} back to {state.state} after {rule.clear_after} "
            f"window(s) below {previous} (last {value})")
