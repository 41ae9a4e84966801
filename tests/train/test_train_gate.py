"""The validation gate on real census models: blessed when every check passes, vetoed with
every failing reason when slices fail or the champion is better; and the choice between
candidates that prefers the simpler model."""

from __future__ import annotations

import pytest

from tidal.train.evaluate import Slice, metrics, slice_table
from tidal.train.gate import Verdict, choose, decide

SLICES = {"SEX": "SEX", "RAC1P": "RAC1P", "age": Slice("AGEP", bins=(0, 18, 30, 50, 65, 100))}


@pytest.fixture(scope="module")
def evaluated(census, census_fitted):
    """Overall metrics and slice tables (accuracy) of each fitted census candidate."""
    y = census.test[census.target].to_numpy()
    overall, tables = {}, {}
    for name, pred in census_fitted.pred.items():
        overall[name] = metrics("classification", y, pred, census_fitted.proba[name],
                                labels=census_fitted.classes)
        tables[name] = slice_table("classification", census.test, y, pred, SLICES,
                                   census_fitted.pred["baseline"], "accuracy")
    return overall, tables


def _slice_score(table, slice_name, value):
    return next(r["score"] for r in table if r["slice"] == slice_name and r["value"] == value)


def test_blessed_when_every_check_passes(evaluated) -> None:
    overall, tables = evaluated
    verdict = decide(
        overall["hist_gradient_boosting"], overall["baseline"], overall["linear"],
        tables["hist_gradient_boosting"], metric="accuracy", higher_is_better=True,
        slice_rules={
            "SEX": {"min": 0.75, "max_regression": 0.02},
            "RAC1P": {"min": 0.7, "min_rows": 100},
        },
        champion_slice_rows=tables["linear"], candidate_name="hist_gradient_boosting",
    )
    assert isinstance(verdict, Verdict)
    assert verdict.blessed, verdict.reasons
    assert all(c["passed"] for c in verdict.checks)
    kinds = {c["check"] for c in verdict.checks}
    assert {"beats_baseline", "champion_overall", "slice_min", "slice_regression",
            "slice_skipped"} <= kinds
    assert verdict.reasons[0].startswith("hist_gradient_boosting beats the trivial baseline")
    # Small race groups (< 100 rows in the test split) are skipped, not judged.
    assert any(c["check"] == "slice_skipped" and c["slice"] == "RAC1P" for c in verdict.checks)
    # No champion yet: that check passes and says so.
    first = decide(overall["linear"], overall["baseline"], None, tables["linear"],
                   metric="accuracy", higher_is_better=True)
    assert first.blessed and "no champion" in first.reasons[1]
    assert verdict.to_dict()["blessed"] is True


def test_vetoed_with_every_failing_slice_reason(evaluated) -> None:
    overall, tables = evaluated
    table = tables["hist_gradient_boosting"]
    women = _slice_score(table, "SEX", "2")
    young = _slice_score(table, "age", "[18, 30)")
    assert women < 0.83 and young < 0.8  # what the real data gives; the rules below bite
    verdict = decide(
        overall["hist_gradient_boosting"], overall["baseline"], None, table,
        metric="accuracy", higher_is_better=True,
        slice_rules={"SEX": {"min": 0.83}, "age=[18, 30)": {"min": 0.8}},
    )
    assert not verdict.blessed
    failed = [c for c in verdict.checks if not c["passed"]]
    assert len(verdict.reasons) == len(failed) >= 2
    assert f"slice SEX=2: accuracy {women:.4g} is below the minimum 0.83." in verdict.reasons
    assert f"slice age=[18, 30): accuracy {young:.4g} is below the minimum 0.8." in (
        verdict.reasons)
    # The overall checks passed and are still recorded.
    assert [c["passed"] for c in verdict.checks[:2]] == [True, True]


def test_vetoed_when_the_champion_is_better(evaluated) -> None:
    overall, tables = evaluated
    candidate, champion = overall["linear"], overall["hist_gradient_boosting"]
    assert champion["accuracy"] - candidate["accuracy"] > 0.01  # precondition on real data
    verdict = decide(
        candidate, overall["baseline"], champion, tables["linear"], metric="accuracy",
        higher_is_better=True, champion_tolerance=0.01,
        slice_rules={"SEX": {"max_regression": 0.005}},
        champion_slice_rows=tables["hist_gradient_boosting"], candidate_name="linear",
    )
    assert not verdict.blessed
    assert verdict.reasons[0].startswith(
        f"linear regresses against the champion on accuracy: {candidate['accuracy']:.4g} vs "
        f"champion {champion['accuracy']:.4g}")
    assert "more than the tolerance of 0.01" in verdict.reasons[0]
    slice_failures = [c for c in verdict.checks
                      if c["check"] == "slice_regression" and not c["passed"]]
    assert slice_failures  # HGB is better on at least one sex by more than 0.005
    assert len(verdict.reasons) == 1 + len(slice_failures)
    assert all("regresses against the champion's" in c["message"] for c in slice_failures)


def test_vetoed_when_not_beating_the_baseline_and_for_every_reason_at_once(evaluated) -> None:
    overall, tables = evaluated
    verdict = decide(
        overall["baseline"], overall["baseline"], overall["hist_gradient_boosting"],
        tables["baseline"], metric="accuracy", higher_is_better=True,
        slice_rules={"SEX": {"min": 0.6}, "NOPE": {"min": 0.5}}, candidate_name="baseline",
    )
    assert not verdict.blessed
    text = "\n".join(verdict.reasons)
    assert "baseline does not beat the trivial baseline on accuracy" in text
    assert "regresses against the champion" in text
    assert "slice SEX=1" in text and "slice SEX=2" in text
    assert "slice rule 'NOPE' matches no row" in text
    assert len(verdict.reasons) == 5


def test_lower_is_better_metric_and_validation() -> None:
    rows = [{"slice": "(all)", "value": "(all)", "rows": 10, "score": 30.0},
            {"slice": "weather", "value": "Mist", "rows": 4, "score": 45.0, "champion": 40.0}]
    verdict = decide({"mae": 30.0}, {"mae": 100.0}, {"mae": 29.8}, rows, metric="mae",
                     higher_is_better=False, champion_tolerance=1.0,
                     slice_rules={"weather": {"max": 44.0, "max_regression": 2.0}})
    assert not verdict.blessed
    assert verdict.reasons == [
        "slice weather=Mist: mae 45 is above the maximum 44.",
        "slice weather=Mist: mae 45 regresses against the champion's 40 by 5, more than the "
        "tolerance of 2 (lower is better).",
    ]
    with pytest.raises(ValueError, match="no 'mae'"):
        decide({"accuracy": 1.0}, {"mae": 1.0}, None, [], metric="mae", higher_is_better=False)


def test_choose_prefers_the_simpler_model(evaluated) -> None:
    overall, _ = evaluated
    gap = overall["hist_gradient_boosting"]["accuracy"] - overall["linear"]["accuracy"]
    assert 0 < gap < 0.05
    name, reason = choose(overall, "accuracy", True, tolerance=0.05)
    assert name == "linear"
    assert "within 0.05 of the best, hist_gradient_boosting" in reason
    assert "simpler model is preferred" in reason
    name, reason = choose(overall, "accuracy", True, tolerance=gap / 2)
    assert name == "hist_gradient_boosting" and "best accuracy" in reason
    # Lower is better; the baseline is only chosen when nothing else is left.
    results = {"baseline": {"mae": 10.0}, "linear": {"mae": 40.0}, "hgb": {"mae": 35.0}}
    assert choose(results, "mae", False, 1.0)[0] == "hgb"
    assert choose(results, "mae", False, 5.0)[0] == "linear"
    assert choose({"baseline": {"mae": 10.0}}, "mae", False)[0] == "baseline"
    with pytest.raises(ValueError, match="no candidate"):
        choose(results, "r2", True)
