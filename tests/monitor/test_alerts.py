"""Alert levels and hysteresis: states move only after enough windows, and never flap."""

from __future__ import annotations

import pytest

from tidal.core.config import AlertRuleSection
from tidal.monitor.alerts import ALERT, NONE, OK, WARN, Rule, Rules, evaluate
from tidal.store.monitoring import CheckPoint


def _points(rules: Rules, values: list[float | None], check: str = "drift",
            subject: str = "x") -> list[CheckPoint]:
    return [CheckPoint("d", check, subject, float(i), float(i + 1), value,
                       rules.judge(check, subject, value)) for i, value in enumerate(values)]


def _states(rules: Rules, values: list[float | None], **kwargs) -> list[str]:
    """The state after each window, feeding windows one at a time as the monitor does."""
    before: dict = {}
    seen = []
    for point in _points(rules, values, **kwargs):
        after, _ = evaluate([point], before, rules, now=0.0)
        for state in after:
            before[(state.check, state.subject)] = state
        seen.append(before[(point.check, point.subject)].state if before else OK)
    return seen


def test_levels_follow_thresholds_in_both_directions():
    above = Rule("c", warn=1.0, alert=2.0)
    assert [above.level(v) for v in (0.5, 1.0, 1.9, 2.0, None)] == [OK, WARN, WARN, ALERT,
                                                                    NONE]
    below = Rule("c", warn=0.8, alert=0.6, direction="below")
    assert [below.level(v) for v in (0.9, 0.8, 0.7, 0.6)] == [OK, WARN, WARN, ALERT]
    assert Rule("c").level(5.0) == NONE  # no thresholds: not judged
    assert Rule("c", alert=1.0).level(float("nan")) == NONE


def test_fires_after_consecutive_windows_and_clears_with_hysteresis():
    rules = Rules([AlertRuleSection(check="drift", alert=1.0, warn=0.5, fire_after=2,
                                    clear_after=2)])
    states = _states(rules, [1.5, 0.1, 1.5, 1.5, 0.1, 1.5, 0.1, 0.1, 0.1])
    # one alert window is not enough; two in a row fire; one good window does not clear;
    # two in a row do
    assert states == [OK, OK, OK, ALERT, ALERT, ALERT, ALERT, OK, OK]


def test_alert_falls_back_to_warn_when_the_value_only_improves_partly():
    rules = Rules([AlertRuleSection(check="drift", warn=0.5, alert=1.0, clear_after=2)])
    assert _states(rules, [2.0, 0.7, 0.7, 0.1, 0.1]) == [ALERT, ALERT, WARN, WARN, OK]


def test_windows_that_cannot_be_judged_change_nothing():
    rules = Rules([AlertRuleSection(check="drift", alert=1.0, fire_after=2)])
    # a window without a value between two alert windows neither breaks nor extends the run
    assert _states(rules, [1.5, None, 1.5]) == [OK, OK, ALERT]


def test_every_state_change_is_reported_once_with_its_reason():
    rules = Rules()  # the defaults: drift alerts at a score of 1
    before: dict = {}
    changes_seen = []
    for point in _points(rules, [0.2, 3.0, 3.0, 0.1, 0.1]):
        after, changes = evaluate([point], before, rules, now=0.0)
        before.update({(s.check, s.subject): s for s in after})
        changes_seen += changes
    assert [(c.previous, c.state.state) for c in changes_seen] == [(OK, ALERT), (ALERT, OK)]
    assert "drift of x = 3" in changes_seen[0].reason
    assert changes_seen[0].state.since == 2.0  # the end of the window that fired


def test_configured_rules_replace_defaults_per_subject_or_for_all():
    rules = Rules([AlertRuleSection(check="drift", subject="price", alert=3.0),
                   AlertRuleSection(check="missing")])  # no thresholds: alerts off
    assert rules.judge("drift", "price", 2.0) == OK
    assert rules.judge("drift", "demand", 2.0) == ALERT  # default for the others
    assert rules.judge("missing", "price", 0.9) == NONE
    assert rules.judge("unknown_check", "", 1e9) == NONE


def test_a_rule_whose_alert_is_not_beyond_its_warning_is_refused():
    with pytest.raises(ValueError, match="must be beyond"):
        AlertRuleSection(check="drift", warn=2.0, alert=1.0)
    AlertRuleSection(check="accuracy", warn=0.8, alert=0.7, direction="below")


def test_a_rule_with_a_window_judges_the_mean_over_that_span(tmp_path):
    """Hourly windows, a rule on the mean over 3 h: one slow window does not fire it, a
    sustained rise does; the stored point keeps its own value and the mean judged."""
    import tidal
    from tidal.monitor.checks import Measured
    from tidal.monitor.job import Monitor
    from tidal.store.monitoring import NewWindow

    (tmp_path / "tidal.toml").write_text(
        '[monitor]\nwindow = "1h"\n'
        '[[monitor.alerts]]\ncheck = "latency_p99_ms"\nalert = 50\nwindow = "3h"\n')
    levels = []
    with tidal.Project(tmp_path) as project, Monitor(project, sinks=[]) as monitor:
        for hour, value in enumerate([10.0, 10.0, 100.0, 100.0, 10.0, 10.0, 10.0]):
            start, end = hour * 3600.0, (hour + 1) * 3600.0
            point = monitor.point("d", start, end, Measured("latency_p99_ms", "", value))
            project.monitoring.record_window(
                NewWindow("d", start, end, 100, 100, None, None), [point],
                lambda pts, before, end=end: evaluate(pts, before, monitor.rules, now=end),
                now=end, actor="monitor")
            levels.append(point.level)
        assert levels == [OK, OK, OK, ALERT, ALERT, OK, OK]  # means 10 10 40 70 70 40 10
        stored = project.monitoring.series("d", "latency_p99_ms", "")
        assert [p.value for p in stored][:4] == [10.0, 10.0, 100.0, 100.0]
        assert stored[3].details == {"judged": 70.0, "judged_windows": 3}
        (state,) = project.monitoring.states("d")
        assert (state.state, state.last_value) == (OK, 10.0)  # cleared after two ok means
        assert "mean over 3 h" in monitor.rules.rule_for("latency_p99_ms", "").describe()
