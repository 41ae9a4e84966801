"""`tidal deployments`, run as a real process: list, show, set, delete, --json and errors."""

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
                            capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def registered(tmp_path: Path) -> Path:
    """A project with model elec2, versions 1-3, champion 2 and challenger 3."""
    project = Project(tmp_path)
    for index in range(3):
        project.register_model("elec2", {"i": index}, signature={"inputs": []})
    project.set_alias("elec2", "champion", 2)
    project.set_alias("elec2", "challenger", 3)
    project.close()
    return tmp_path


def test_set_list_show_and_delete(registered: Path):
    assert json.loads(tidal(registered, "deployments", "list", "--json").stdout) == []
    made = json.loads(tidal(registered, "deployments", "set", "elec2", "elec2@champion",
                            "--canary", "challenger", "--weight", "0.1", "--shadow", "1",
                            "--max-batch-size", "32", "--max-batch-wait-ms", "2.5",
                            "--reason", "canary v3", "--json").stdout)
    assert {k: made[k] for k in ("name", "model", "stable_version", "canary_version",
                                 "canary_weight", "shadow_version", "max_batch_size",
                                 "max_batch_wait_ms", "revision", "updated_by")} == {
        "name": "elec2", "model": "elec2", "stable_version": 2, "canary_version": 3,
        "canary_weight": 0.1, "shadow_version": 1, "max_batch_size": 32,
        "max_batch_wait_ms": 2.5, "revision": 1, "updated_by": "cli-user"}

    said = tidal(registered, "deployments", "set", "other", "elec2:1").stdout
    assert "other serves elec2:1 (stable)" in said and "revision 2" in said

    listed = json.loads(tidal(registered, "deployments", "list", "--json").stdout)
    assert [(d["name"], d["stable_version"], d["revision"]) for d in listed] == [
        ("elec2", 2, 1), ("other", 1, 2)]
    table = tidal(registered, "deployments", "list").stdout
    assert "2 deployments" in table and "3@10%" in table
    for header in ("name", "model", "stable", "canary", "shadow", "revision", "updated"):
        assert header in table

    shown = json.loads(tidal(registered, "deployments", "show", "elec2", "--json").stdout)
    assert shown["stable_version"] == 2 and shown["canary_weight"] == 0.1
    assert [(e["kind"], e["actor"], e["reason"]) for e in shown["events"]] == [
        ("deployment_set", "cli-user", "canary v3")]
    assert shown["events"][0]["payload"]["after"]["canary_version"] == 3
    page = tidal(registered, "deployments", "show", "elec2").stdout
    assert "elec2:3 at 10% of requests" in page and "canary v3" in page
    assert "created: elec2:2, canary 3@10%, shadow 1" in page

    deleted = json.loads(tidal(registered, "deployments", "delete", "elec2", "--yes",
                               "--reason", "done", "--json").stdout)
    assert deleted == {"deleted": "elec2", "revision": 3}
    assert "Deleted deployment other" in tidal(registered, "deployments", "delete", "other",
                                               "-y").stdout
    assert json.loads(tidal(registered, "deployments", "list", "--json").stdout) == []

    project = Project(registered)
    history = project.deployment_history("elec2")
    project.close()
    assert [(e.kind, e.reason) for e in history] == [("deployment_set", "canary v3"),
                                                    ("deployment_deleted", "done")]


def test_delete_asks_for_confirmation_unless_told_yes(registered: Path):
    tidal(registered, "deployments", "set", "elec2", "elec2@champion")
    refused = tidal(registered, "deployments", "delete", "elec2", check=False)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(json.loads(tidal(registered, "deployments", "list", "--json").stdout)) == 1


@pytest.mark.parametrize("args,code,message", [
    (["set", "elec2", "elec2:1", "--canary", "2", "--weight", "1.5"], 2, "from 0 to 1"),
    (["set", "elec2", "elec2:1", "--canary", "2", "--weight", "nan"], 2, "from 0 to 1"),
    (["set", "elec2", "elec2:1", "--weight", "0.3"], 2, "needs a canary version"),
    (["set", "elec2", "elec2:2", "--canary", "champion"], 2, "must differ from the stable"),
    (["set", "elec2", "elec2:1", "--max-batch-size", "0"], 2, "max_batch_size"),
    (["set", "elec2", "elec2:1", "--max-batch-wait-ms", "-1"], 2, "max_batch_wait_ms"),
    (["set", "bad name", "elec2:1"], 2, "invalid deployment name"),
    (["set", "elec2", "elec2:9"], 3, "model 'elec2' has no version 9"),
    (["set", "elec2", "elec2:1", "--shadow", "7"], 3, "has no version 7 (the shadow"),
    (["set", "elec2", "ghost@champion"], 3, "no registered model named 'ghost'"),
    (["set", "elec2", "elec2:1", "--canary", "retired"], 3, "no alias 'retired'"),
    (["show", "ghost"], 3, "no deployment named 'ghost'"),
    (["delete", "ghost", "--yes"], 3, "no deployment named 'ghost'"),
])
def test_errors_are_one_line_messages_with_exit_codes(registered, args, code, message):
    result = tidal(registered, "deployments", *args, check=False)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout


def test_a_weight_that_is_not_a_number_is_a_usage_error(registered):
    result = tidal(registered, "deployments", "set", "elec2", "elec2:1", "--canary", "2",
                   "--weight", "lots", check=False)
    assert result.returncode == 2
    assert "--weight" in result.stderr and "Traceback" not in result.stderr


def test_reading_needs_an_existing_store(tmp_path: Path):
    result = tidal(tmp_path / "typo", "deployments", "list", check=False)
    assert result.returncode == 3 and "no Tidal store" in result.stderr
    assert not (tmp_path / "typo" / ".tidal").exists()
