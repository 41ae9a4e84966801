"""The `tidal` command, run as a real process: tables, --json, and errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tidal.project import Project


def tidal(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDAL_PROJECT_DIR": str(folder), "COLUMNS": "200",
           "TIDAL_ACTOR": "cli-user"}
    result = subprocess.run([sys.executable, "-m", "tidal", *args], env=env, text=True,
                            capture_output=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A project with three runs and a model with two versions."""
    project = Project(tmp_path)
    for index, (model, auc) in enumerate([("hgb", 0.8), ("logreg", 0.7), ("hgb", 0.9)]):
        with project.start_run("exp", name=f"run{index}", params={"model": model}) as run:
            run.log_metrics({"auc": auc})
            run.register_model("churn", {"i": index}) if index < 2 else None
    project.set_alias("churn", "champion", 1, reason="first")
    project.close()
    return tmp_path


def test_init_and_db_commands(tmp_path: Path):
    out = json.loads(tidal(tmp_path, "init", "--json").stdout)
    assert out["created"] is True
    assert (tmp_path / "tidal.toml").is_file()
    current = json.loads(tidal(tmp_path, "db", "current", "--json").stdout)
    assert current["current"] == current["head"] == out["schema"]
    upgraded = json.loads(tidal(tmp_path, "db", "upgrade", "--json").stdout)
    assert upgraded["from"] == upgraded["to"] == out["schema"]


def test_runs_list_filters_and_orders(filled: Path):
    rows = json.loads(tidal(filled, "runs", "list", "-f", "params.model = 'hgb'",
                            "-o", "metrics.auc desc", "--json").stdout)
    assert [row["name"] for row in rows] == ["run2", "run0"]
    assert rows[0]["metrics"]["auc"]["value"] == 0.9
    table = tidal(filled, "runs", "list", "-e", "exp").stdout
    assert "3 runs" in table and "run1" in table and "auc" in table and "0.7" in table


def test_runs_show_and_compare(filled: Path):
    rows = json.loads(tidal(filled, "runs", "list", "--json").stdout)
    first, second = rows[0]["id"], rows[1]["id"]
    shown = json.loads(tidal(filled, "runs", "show", first[:16], "--json",
                             "--history", "auc").stdout)
    assert shown["id"] == first and len(shown["history"]["auc"]) == 1
    compared = json.loads(tidal(filled, "runs", "compare", first, second, "--json").stdout)
    assert compared["differing_params"] == ["model"]
    assert "params.model *" in tidal(filled, "runs", "compare", first, second).stdout


def test_models_commands(filled: Path):
    models = json.loads(tidal(filled, "models", "list", "--json").stdout)
    assert models[0]["name"] == "churn" and models[0]["aliases"] == {"champion": 1}
    moved = json.loads(tidal(filled, "models", "alias", "churn", "champion", "2",
                             "-r", "better", "--json").stdout)
    assert moved["version"] == 2
    shown = json.loads(tidal(filled, "models", "show", "churn@champion", "--json").stdout)
    assert shown["version"] == 2 and shown["aliases"] == ["champion"]
    versions = json.loads(tidal(filled, "models", "show", "churn", "--json").stdout)
    assert [v["version"] for v in versions] == [1, 2]
    tidal(filled, "models", "status", "churn", "1", "archived", "-r", "old")
    history = json.loads(tidal(filled, "models", "history", "churn", "--json").stdout)
    last = history[-2:]
    assert [(e["kind"], e["actor"], e["reason"]) for e in last] == [
        ("alias_set", "cli-user", "better"), ("status_changed", "cli-user", "old")]
    tidal(filled, "models", "alias", "churn", "champion", "--delete")
    assert "churn" in tidal(filled, "models", "list").stdout


@pytest.mark.parametrize("args,code,message", [
    (["runs", "list", "-f", "metrics.auc >> 1"], 2, "position 13"),
    (["runs", "show", "ffffffff"], 3, "no run id starts with"),
    (["models", "show", "ghost@champion"], 3, "no registered model named 'ghost'"),
    (["models", "alias", "churn", "champion", "9"], 3, "has no version 9"),
    (["models", "alias", "churn", "Bad Alias", "1"], 2, "invalid alias"),
    (["models", "alias", "churn", "champion"], 2, "give a VERSION"),
    (["runs", "list", "-c", "weird.col"], 2, "unknown column"),
    (["runs", "compare", "ffffffff"], 2, "at least two runs"),
    (["serve", "--port", "99999"], 2, "65535"),
    (["serve", "--durability", "bogus"], 2, "--durability"),
    (["monitor", "-d", "nosuch"], 3, "no deployment named 'nosuch'"),
    (["review", "next", "-d", "nosuch"], 3, "no deployment named 'nosuch'"),
])
def test_errors_are_one_line_messages_with_exit_codes(filled, args, code, message):
    result = tidal(filled, *args, check=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_broken_config_is_reported_not_raised(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text("[store]\nurl = 42\n")
    result = tidal(tmp_path, "runs", "list", check=False)
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_store_is_reported(tmp_path: Path):
    env_url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    (tmp_path / "tidal.toml").write_text(f'[store]\nurl = "{env_url}"\n')
    result = tidal(tmp_path, "runs", "list", check=False)
    assert result.returncode == 6
    assert "cannot reach the metadata store" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_text_is_printed_literally_not_as_markup(tmp_path: Path):
    project = Project(tmp_path)
    with project.start_run("exp", params={"path": "[/tmp/x]", "note": "[wip] [bold]x"}) as run:
        pass
    project.close()
    out = tidal(tmp_path, "runs", "show", run.id).stdout
    assert "[/tmp/x]" in out and "[wip] [bold]x" in out


def test_read_commands_do_not_create_a_store_where_there_is_none(tmp_path: Path):
    for command in (["runs", "list"], ["serve", "--port", "1"]):  # never served empty
        result = tidal(tmp_path / "typo", *command, check=False)
        assert result.returncode == 3
        assert "no Tidal store" in result.stderr and "tidal init" in result.stderr
        assert not (tmp_path / "typo" / ".tidal").exists()


def test_passwords_are_not_printed(tmp_path: Path):
    from tidal.store.database import redact

    assert redact("postgresql+psycopg://me:s3cret@db/x") == "postgresql+psycopg://me:***@db/x"


def test_a_broken_store_or_a_path_of_the_wrong_kind_is_one_line(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text("[store]\n")
    (tmp_path / ".tidal").mkdir()
    (tmp_path / ".tidal" / "tidal.db").write_bytes(b"garbage, not SQLite")
    damaged = tidal(tmp_path, "models", "list", check=False)
    assert damaged.returncode == 6 and "is not a SQLite database" in damaged.stderr
    (tmp_path / "tidal.toml").write_text('[store]\nurl = "garbage"\n')
    bad_url = tidal(tmp_path, "models", "list", check=False)
    assert bad_url.returncode == 6 and "not a database URL" in bad_url.stderr
    (tmp_path / "afile").write_text("a file, where a folder is needed")
    wrong_kind = tidal(tmp_path / "afile", "init", check=False)
    assert wrong_kind.returncode == 1 and "error:" in wrong_kind.stderr
    for result in (damaged, bad_url, wrong_kind):
        assert "Traceback" not in result.stderr + result.stdout


def test_a_failed_init_leaves_nothing_that_blocks_the_next(tmp_path: Path):
    failed = tidal(tmp_path, "init", str(tmp_path / "nosuch.csv"), "--target", "y",
                   check=False)
    assert failed.returncode == 2 and not (tmp_path / "tidal.toml").exists()
    data = tmp_path / "my données.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    tidal(tmp_path, "init", str(data), "--target", "y")
    assert 'model = "my_donnees"' in (tmp_path / "tidal.toml").read_text()


def test_replay_options_are_checked_and_a_project_is_never_overwritten(tmp_path: Path):
    data = tmp_path / "series.csv"
    data.write_text("t,x,y\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(300)))
    for option, message in ((["--label-delay", "banana"], "--label-delay"),
                            (["--train-until", "banana"], "--train-until")):
        result = tidal(tmp_path, "replay", str(data), "--time", "t", "--target", "y",
                       "--into", str(tmp_path / "r"), *option, check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tidal.toml").write_text("[data]\ntarget = 'y'\n")
    refused = tidal(tmp_path, "replay", str(data), "--time", "t", "--target", "y",
                    "--into", str(mine), check=False)
    assert refused.returncode == 4 and "holds a Tidal project" in refused.stderr
    assert (mine / "tidal.toml").read_text() == "[data]\ntarget = 'y'\n"


def test_help_keeps_the_names_of_configuration_sections():
    result = subprocess.run([sys.executable, "-m", "tidal", "serve", "--help"], text=True,
                            capture_output=True, timeout=60, env={**os.environ,
                                                                  "COLUMNS": "200"})
    assert "[serve] port" in result.stdout


def test_a_pipeline_models_overall_metrics_are_shown(tmp_path: Path):
    with Project(tmp_path) as project:
        project.register_model("elec2", {"w": 1}, metrics={
            "overall": {"accuracy": 0.8123, "log_loss": 0.41}, "slices": [{"rows": 3}]})
    shown = tidal(tmp_path, "models", "show", "elec2:1").stdout
    assert "accuracy=0.8123" in shown and "log_loss=0.41" in shown
