"""Run search on both backends: the filter language's meaning, ordering and paging."""

from __future__ import annotations

import pytest

from tidal.core.errors import FilterSyntaxError, ValidationError


@pytest.fixture
def runs(project, clock):
    """Six runs with known params, metrics and tags, one second apart."""
    spec = [
        ("a", {"model": "hgb", "depth": 3}, {"auc": 0.70, "loss": 0.9}, {"team": "x"}),
        ("b", {"model": "hgb", "depth": 6}, {"auc": 0.80, "loss": 0.5}, {"team": "y"}),
        ("c", {"model": "logreg", "depth": 0}, {"auc": 0.75}, {"team": "x"}),
        ("d", {"model": "hgb", "depth": 10}, {"auc": 0.90, "loss": 0.3}, {}),
        ("e", {"model": "forest", "depth": "auto"}, {}, {"team": "z"}),
    ]
    ids = {}
    for name, params, metrics, tags in spec:
        with project.start_run("search", name=name, params=params, tags=tags) as run:
            if metrics:
                run.log_metrics(metrics)
        ids[name] = run.id
        clock.advance(1)
    with project.start_run("other", name="f", params={"model": "hgb"}) as run:
        run.log_metrics({"auc": 0.95})
    ids["f"] = run.id
    return ids


def names(project, filter=None, **options):
    return [run.name for run in project.search_runs(filter, **options)]


def test_no_filter_returns_newest_first(project, runs):
    assert names(project) == ["f", "e", "d", "c", "b", "a"]


@pytest.mark.parametrize("text,expected", [
    ("metrics.auc > 0.75", {"b", "d", "f"}),
    ("metrics.auc >= 0.75", {"b", "c", "d", "f"}),
    ("metrics.auc != 0.8", {"a", "c", "d", "f"}),
    ("metrics.loss < 0.6 and params.model = 'hgb'", {"b", "d"}),
    ("params.model = 'hgb' or tags.team = 'x'", {"a", "b", "c", "d", "f"}),
    ("params.depth >= 6", {"b", "d"}),
    ("params.depth = 6.0", {"b"}),
    ("params.depth = 'auto'", {"e"}),
    ("params.model in ('logreg', 'forest')", {"c", "e"}),
    ("params.model like 'h%'", {"a", "b", "d", "f"}),
    ("tags.team ilike 'X'", {"a", "c"}),
    ("metrics.loss is null", {"c", "e", "f"}),
    ("tags.team is not null", {"a", "b", "c", "e"}),
    ("not metrics.auc > 0.75", {"a", "c", "e"}),
    ("(metrics.auc > 0.85 or metrics.auc < 0.72) and experiment = 'search'", {"a", "d"}),
    ("name = 'c'", {"c"}),
    ("status = 'finished' and name in ('a', 'b')", {"a", "b"}),
    ("experiment = 'other'", {"f"}),
    ("start_time >= 1700000003", {"d", "e", "f"}),
    ("METRICS.auc > 0.9 AND params.model = \"hgb\"", {"f"}),
])
def test_filters_select_exactly_the_matching_runs(project, runs, text, expected):
    assert set(names(project, text)) == expected


def test_experiment_restriction(project, runs):
    assert set(names(project, "metrics.auc > 0.85", experiments=["search"])) == {"d"}
    assert names(project, experiments=["nope"]) == []


def test_order_by_metric_puts_missing_values_last_both_ways(project, runs):
    assert names(project, order_by=["metrics.loss"])[:3] == ["d", "b", "a"]
    descending = names(project, order_by=["metrics.loss desc"])
    assert descending[:3] == ["a", "b", "d"]
    assert set(descending[3:]) == {"c", "e", "f"}


def test_order_by_param_sorts_numbers_numerically(project, runs):
    ordered = names(project, "experiment = 'search'", order_by=["params.depth desc"])
    assert ordered == ["d", "b", "a", "c", "e"]  # 10 > 6 > 3 > 0, then the text 'auto'


def test_paging(project, runs):
    first = names(project, order_by=["name"], max_results=2)
    second = names(project, order_by=["name"], max_results=2, offset=2)
    assert first == ["a", "b"] and second == ["c", "d"]


def test_values_are_bound_not_pasted(project, runs):
    hostile = "x' or '1'='1"
    assert names(project, f"params.model = \"{hostile}\"") == []
    assert names(project, "tags.team = 'x''; drop table runs; --'") == []
    assert len(names(project)) == 6  # the table is still there


@pytest.mark.parametrize("text,position,message", [
    ("metrics.acc >> 1", 13, "expected a number or a quoted string"),
    ("metrics.acc > 0.5 and", 21, "expected a field"),
    ("metrics.acc > 0.5 nand x", 18, "expected 'and', 'or'"),
    ("colour = 'red'", 0, "unknown run attribute 'colour'"),
    ("(metrics.a > 1", 14, "expected ')'"),
    ("metrics.a > 1 ; drop", 14, "unexpected character ';'"),
    ("params.x not in ('a')", 9, "write 'not' before the field"),
    ("metrics. > 1", 9, "expected a key name"),
])
def test_bad_filters_point_at_the_problem(project, text, position, message):
    with pytest.raises(FilterSyntaxError) as caught:
        project.search_runs(text)
    error = caught.value
    assert message in str(error)
    assert error.position == position
    assert str(error).splitlines()[-1] == " " * (position + 2) + "^"


@pytest.mark.parametrize("text,message", [
    ("metrics.auc > 'high'", "is a number"),
    ("tags.team = 5", "holds text: quote the value"),
    ("metrics.auc like 'a%'", "'like' does not apply"),
    ("start_time > 'yesterday'", "epoch seconds or an ISO date"),
])
def test_type_mistakes_are_explained(project, text, message):
    with pytest.raises(ValidationError, match=message):
        project.search_runs(text)


def test_bad_order_by_is_reported(project):
    with pytest.raises(FilterSyntaxError):
        project.search_runs(order_by=["metrics.auc sideways"])


def test_every_result_carries_its_own_params_metrics_and_tags(project, clock):
    logged = {}
    for index in range(40):
        params = {f"p{k}": f"{index}-{k}" for k in range(index % 4)}
        metrics = {f"m{k}": index + k / 10 for k in range(index % 3)}
        tags = {"i": str(index)} if index % 2 else {}
        with project.start_run("many", params=params, tags=tags) as run:
            run.log_metrics(metrics)
        logged[run.id] = (params, metrics, tags)
        clock.advance(1)
    found = project.search_runs(experiments=["many"], max_results=100)
    assert len(found) == 40
    for record in found:
        params, metrics, tags = logged[record.id]
        assert record.params == params
        assert {k: p.value for k, p in record.metrics.items()} == pytest.approx(metrics)
        assert record.tags == tags


def test_like_is_case_sensitive_and_can_match_wildcards_literally(project):
    for name in ("Elec-1", "elec-2", "elec_3", "elecX3"):
        with project.start_run("like", name=name):
            pass
    assert set(names(project, "name like 'elec%'")) == {"elec-2", "elec_3", "elecX3"}
    assert set(names(project, "name ilike 'ELEC-%'")) == {"Elec-1", "elec-2"}
    assert names(project, r"name like 'elec\_%'") == ["elec_3"]


def test_true_and_false_match_logged_booleans(project):
    with project.start_run("bools", params={"early_stopping": True}, tags={"ok": False}):
        pass
    assert len(names(project, "params.early_stopping = true")) == 1
    assert len(names(project, "tags.ok = false and params.early_stopping != false")) == 1


def test_keys_with_digit_led_parts(project):
    with project.start_run("keys") as run:
        run.log_metrics({"layer.1.loss": 0.2, "1st": 3.0})
    assert len(names(project, "metrics.layer.1.loss < 0.5 and metrics.1st = 3")) == 1


def test_deep_nesting_is_a_syntax_error_not_a_crash(project):
    with pytest.raises(FilterSyntaxError, match="nests deeper"):
        project.search_runs("(" * 2000 + "status = 'x'" + ")" * 2000)
    with pytest.raises(FilterSyntaxError, match="nests deeper"):
        project.search_runs("not " * 2000 + "status = 'x'")


def test_ilike_folds_case_beyond_ascii_on_every_backend(project):
    with project.start_run("search", name="Äpfel-run", tags={"city": "Zürich"}):
        pass
    assert [r.name for r in project.search_runs(filter="name ilike 'äpfel%'")] == ["Äpfel-run"]
    assert len(project.search_runs(filter="tags.city ilike '%ZÜRICH%'")) == 1
    assert project.search_runs(filter="name like 'äpfel%'") == []  # like stays exact


@pytest.mark.parametrize(("text", "message"), [
    ("name like 'abc\\\\'", "cannot end with the escape character"),
    ("name ilike '%\\\\'", "cannot end with the escape character"),
    ("params.x in (" + ",".join(map(str, range(1001))) + ")", "at most 1,000 values"),
])
def test_filters_the_database_would_choke_on_are_refused_clearly(project, runs, text,
                                                                  message):
    with pytest.raises(FilterSyntaxError, match=message):
        project.search_runs(filter=text)


def test_a_trailing_escaped_backslash_is_a_valid_pattern(project):
    with project.start_run("search", name="dir\\"):
        pass
    assert [r.name for r in project.search_runs(filter="name like 'dir\\\\\\\\'")] == ["dir\\"]


@pytest.mark.parametrize("offset", [2**63, -1, True])
def test_an_offset_out_of_range_is_a_validation_error(project, runs, offset):
    with pytest.raises(ValidationError, match="offset"):
        project.search_runs(offset=offset)
