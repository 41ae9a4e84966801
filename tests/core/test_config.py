"""Configuration: tidal.toml, TIDAL_* variables, and paths relative to the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.core.config import find_project_dir, load_settings
from tidal.core.errors import ConfigError


def test_defaults_live_in_the_project_folder(tmp_path: Path):
    settings = load_settings(tmp_path, environ={})
    assert settings.store_url == f"sqlite:///{tmp_path.resolve()}/.tidal/tidal.db"
    assert settings.artifact_root == str(tmp_path.resolve() / ".tidal" / "artifacts")


def test_file_then_environment_then_arguments(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text(
        '[store]\nurl = "sqlite:///meta/x.db"\nbusy_timeout = 5\n'
        '[artifacts]\nroot = "s3://bucket/tidal"\n'
    )
    settings = load_settings(tmp_path, environ={})
    assert settings.store_url == f"sqlite:///{tmp_path.resolve()}/meta/x.db"
    assert settings.artifact_root == "s3://bucket/tidal"
    assert settings.busy_timeout == 5

    env = {"TIDAL_STORE_URL": "postgresql+psycopg://u@h/db", "TIDAL_ACTOR": "ci"}
    settings = load_settings(tmp_path, environ=env)
    assert settings.store_url == "postgresql+psycopg://u@h/db"
    assert settings.actor == "ci"

    settings = load_settings(tmp_path, environ=env, store_url="sqlite:////abs.db")
    assert settings.store_url == "sqlite:////abs.db"


def test_project_found_from_a_subfolder(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text("")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_project_dir(deep) == tmp_path.resolve()
    assert load_settings(environ={"TIDAL_PROJECT_DIR": str(deep)}).project_dir == deep.resolve()


@pytest.mark.parametrize("content,message", [
    ("[store\nurl=1", "not valid TOML"),
    ("[store]\nurl = 3", "store.url"),
    ("[store]\nulr = 'x'", "store.ulr"),
    ("[store]\nbusy_timeout = -1", "busy_timeout"),
    ("[cache]\nsize = 1", "cache"),
])
def test_bad_configuration_is_explained(tmp_path: Path, content: str, message: str):
    (tmp_path / "tidal.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_a_configuration_that_is_not_utf8_is_explained(tmp_path: Path):
    (tmp_path / "tidal.toml").write_bytes("[store]\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(tmp_path, environ={})


def test_data_section_holds_roles_and_column_constraints(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text(
        '[data]\ntarget = "cnt"\ntimestamp = "dteday"\nsegments = ["season"]\n'
        '[data.columns.weathersit]\nrole = "feature"\nmax_missing = 0.1\n'
        'domain = ["Clear", "Mist"]\n'
        '[data.columns.temp]\nmin = -10\nmax = 45.5\n'
    )
    data = load_settings(tmp_path, environ={}).data
    assert data.target == "cnt"
    assert data.roles() == {"cnt": "target", "dteday": "timestamp", "season": "segment",
                            "weathersit": "feature"}
    assert data.columns["weathersit"].domain == ["Clear", "Mist"]
    assert (data.columns["temp"].min, data.columns["temp"].max) == (-10, 45.5)
    assert type(data.columns["temp"].min) is int
    assert load_settings(tmp_path / "elsewhere", environ={}).data.columns == {}


@pytest.mark.parametrize("content,message", [
    ('[data]\ntarget = "cnt"\n[data.columns.cnt]\nrole = "feature"', "two roles"),
    ("[data.columns.temp]\nmax_missing = 1.5", "data.columns.temp.max_missing"),
    ("[data.columns.temp]\nmin = 5\nmax = 1", "min .5. is greater than max"),
    ('[data.columns.temp]\nrole = "label"', "data.columns.temp.role"),
    ("[data.columns.temp]\nmaximum = 3", "data.columns.temp.maximum"),
    ('[data]\ntargets = ["cnt"]', "data.targets"),
])
def test_bad_data_section_is_explained(tmp_path: Path, content: str, message: str):
    (tmp_path / "tidal.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_the_pipeline_section_is_parsed_and_checked(tmp_path):
    from tidal.core.config import load_settings
    from tidal.core.errors import ConfigError

    (tmp_path / "tidal.toml").write_text(
        '[data]\ntarget = "cnt"\n[pipeline]\nsource = "bike.csv"\nmodel = "bikes"\n'
        'slices = [{column = "season"}, {column = "temp", bins = [0, 20, 45], min = 0.5}]\n'
        '[pipeline.gate]\nmetric = "rmse"\n')
    settings = load_settings(tmp_path, environ={})
    assert settings.pipeline.source == "bike.csv" and settings.pipeline.executor == "process"
    assert settings.pipeline.slices[1].bins == [0, 20, 45]
    assert settings.pipeline.gate.metric == "rmse"
    (tmp_path / "tidal.toml").write_text('[pipeline]\ntest_size = 1.5\nexecutor = "spark"\n')
    with pytest.raises(ConfigError, match="pipeline.test_size.*pipeline.executor"):
        load_settings(tmp_path, environ={})


SCHEDULE = ('[[schedules]]\nname = "hourly"\ndeployment = "elec2"\ncron = "0 * * * *"\n'
            'input = "incoming/{start:%Y-%m-%d_%H}.parquet"\n'
            'output = "scored/{start:%Y-%m-%d_%H}.parquet"\n')


WINDOW_QUERY = "select * from t where ts >= '{start:%Y-%m-%d %H:%M}'"


def test_schedules_are_read_and_map_to_the_scoring_jobs_options(tmp_path: Path):
    databases = SCHEDULE.replace("incoming/{start:%Y-%m-%d_%H}.parquet", "sqlite:///in.db") \
        .replace("scored/{start:%Y-%m-%d_%H}.parquet", "sqlite:///out.db")
    (tmp_path / "tidal.toml").write_text(
        databases + 'keys = ["meter"]\nworkers = 2\nby = "proba_1"\ntop = 10\n'
        f'query = "{WINDOW_QUERY}"\ntable = "scores"\nif_exists = "append"\n'
        'executor = "ray"\n'
        + SCHEDULE.replace('"hourly"', '"nightly"').replace("0 * * * *", "@daily"))
    hourly, nightly = load_settings(tmp_path, environ={}).schedules
    assert (hourly.catch_up, hourly.by, hourly.top) == (24, "proba_1", 10)
    # what is not set is left to the job's own defaults
    assert hourly.score_options() == {
        "keys": ["meter"], "partition_rows": 100_000, "workers": 2, "executor": "ray",
        "query": WINDOW_QUERY, "table": "scores", "if_exists": "append"}
    assert nightly.cron == "@daily"
    assert nightly.score_options() == {"partition_rows": 100_000, "workers": 1}
    assert (hourly.timezone, hourly.stable_only) == ("UTC", False)


def test_a_schedule_may_run_on_a_time_zone_and_with_the_stable_version_alone(
        tmp_path: Path):
    (tmp_path / "tidal.toml").write_text(
        SCHEDULE + 'timezone = "Europe/Paris"\nstable_only = true\n')
    (schedule,) = load_settings(tmp_path, environ={}).schedules
    assert schedule.timezone == "Europe/Paris"
    assert schedule.score_options() == {"partition_rows": 100_000, "workers": 1,
                                        "candidates": False}


@pytest.mark.parametrize("change,message", [
    (("0 * * * *", "0 * * *"), r"schedules\.0\.cron.*'hourly'.*has 4 field"),
    (("0 * * * *", "0 0 * * * *"), r"schedules\.0\.cron.*has 6 field"),
    (("0 * * * *", "61 * * * *"), r"schedules\.0\.cron.*bad minute"),
    (("{start:%Y-%m-%d_%H}.parquet\"\noutput", "{date}.parquet\"\noutput"),
     r"schedules\.0\.input.*'hourly'.*placeholder \{date\}"),
    (("scored/{start", "scored/{{start"), r"schedules\.0\.output.*Single '}'"),
    (("scored/{start:%Y-%m-%d_%H}", "scored/{start.hours}"),
     r"schedules\.0\.output.*cannot be filled"),
    (('deployment = "elec2"', 'deployment = "elec2"\ntop = 5'), "top triage by a column"),
    (('deployment = "elec2"', 'deployment = "elec2"\nby = "proba_1"'), "top or above"),
    (('deployment = "elec2"', 'deployment = "elec2"\ncatch_up = 0'), "catch_up"),
    (('deployment = "elec2"', 'deployment = "elec2"\nevery = "1h"'), "schedules.0.every"),
    (("incoming/{start:%Y-%m-%d_%H}.parquet\"\n", "sqlite:///in.db\"\n"
      'query = "select * from t where t > {when}"\n'),
     r"schedules\.0\.query.*placeholder \{when\}"),
    (('deployment = "elec2"', 'deployment = "elec2"\nquery = "select 1"'),
     "query is for a database input"),
    (("incoming/{start:%Y-%m-%d_%H}.parquet", "sqlite:///in.db"),
     "a database input .a SQLAlchemy URL. needs query"),
    (("scored/{start:%Y-%m-%d_%H}.parquet", "postgresql://db/x"), "output .* needs table"),
    (('deployment = "elec2"', 'deployment = "elec2"\ntable = "scores"'),
     "table is for a database output"),
    (('deployment = "elec2"', 'deployment = "elec2"\nif_exists = "append"'),
     "if_exists is for a database output"),
    (('deployment = "elec2"', 'deployment = "elec2"\nexecutor = "spark"'),
     "schedules.0.executor"),
    (('deployment = "elec2"', 'deployment = "elec2"\ntimezone = "Europe/Pariss"'),
     r"schedules\.0\.timezone.*'hourly'.*unknown time zone 'Europe/Pariss'"),
])
def test_a_bad_schedule_is_a_configuration_error(tmp_path: Path, change, message):
    (tmp_path / "tidal.toml").write_text(SCHEDULE.replace(*change))
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_schedule_names_are_unique(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text(SCHEDULE + SCHEDULE)
    with pytest.raises(ConfigError, match="schedule names must be unique"):
        load_settings(tmp_path, environ={})
