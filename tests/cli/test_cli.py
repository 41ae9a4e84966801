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
    (["models", "alias", "churn", "champion"], 1, "give a VERSION"),
    (["runs", "list", "-c", "weird.col"], 1, "unknown column"),
])
def test_errors_are_one_line_messages_with_exit_codes(filled, args, code, message):
    result = tidal(filled, *args, check=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_broken_config_is_reported_not_raised(tmp_path: Path):
    (tmp_path / "tidal.toml").write_text("[store]\nurl = 42\n")
    result = tidal(tmp_path, "runs", "list", check=False)
    assert result.returncode == 1
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
    result = tidal(tmp_path / "typo", "runs", "list", check=False)
    assert result.returncode == 1
    assert "no Tidal store" in result.stderr and "tidal init" in result.stderr
    assert not (tmp_path / "typo" / ".tidal").exists()


def test_passwords_are_not_printed(tmp_path: Path):
    from tidal.store.database import redact

    assert redact("postgresql+psycopg://me:s3cret@db/x") == "postgresql+psycopg://me:***@db/x"
