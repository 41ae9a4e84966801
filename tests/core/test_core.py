"""Clock, ids, hashing and code info."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tidal.core.clock import ManualClock
from tidal.core.codeinfo import code_info
from tidal.core.hashing import is_sha256, sha256_json
from tidal.core.ids import is_id, new_id


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(10.0)
    assert clock.now() == 10.0
    assert clock.advance(5) == 15.0
    clock.set(1.5)
    assert clock.now() == 1.5


def test_ids_are_hex_and_sort_by_time():
    early, late = new_id(1_000.0), new_id(2_000.0)
    assert is_id(early) and is_id(late)
    assert early < late
    assert len({new_id(1.0) for _ in range(1000)}) == 1000


def test_json_hash_ignores_key_order():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert is_sha256(sha256_json([]))
    assert not is_sha256("xyz")


def test_code_info_sees_commits_and_uncommitted_changes(tmp_path: Path):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    (tmp_path / "train.py").write_text("print(1)\n")
    info = code_info(str(tmp_path))
    assert info.git_commit and len(info.git_commit) == 40
    assert info.git_dirty_hash is not None  # an untracked file is an uncommitted change

    clean = tmp_path / "clean"
    clean.mkdir()
    assert code_info(str(clean / "missing")).git_commit is None


def test_code_info_hashes_untracked_contents_and_odd_bytes(tmp_path: Path):
    import time

    from tidal.core import codeinfo

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "data.csv").write_bytes(b"caf\xe9\n")  # Latin-1, not UTF-8
    git("add", "data.csv")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "x")
    (tmp_path / "data.csv").write_bytes(b"caf\xe9 au lait\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    first = codeinfo._describe(str(tmp_path))
    (tmp_path / "train.py").write_text("print(2)\n")  # an untracked file edited
    second = codeinfo._describe(str(tmp_path))
    assert first.git_dirty_hash and second.git_dirty_hash
    assert first.git_dirty_hash != second.git_dirty_hash
    assert codeinfo.UNKNOWN not in (first.git_dirty_hash, second.git_dirty_hash)
    # the cache answers repeated calls but not for long
    codeinfo.code_info(str(tmp_path))
    time.sleep(codeinfo.CACHE_SECONDS + 0.1)
    (tmp_path / "train.py").write_text("print(3)\n")
    assert codeinfo.code_info(str(tmp_path)).git_dirty_hash != second.git_dirty_hash


def test_runs_in_a_clean_checkout_are_clean_whatever_the_project_state_holds(tmp_path: Path):
    """The store, artifacts and prediction log under .tidal change on every run; they are
    not code, so they never make a run "dirty"."""
    import tidal

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "train.py").write_text("print(1)\n")
    git("init", "-q")
    git("add", "train.py")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "x")
    with tidal.Project(tmp_path) as project:
        for _ in range(2):
            with project.start_run("e") as run:
                run.log_metric("m", 1.0)
            (tmp_path / ".tidal" / "predictions").mkdir(exist_ok=True)
            (tmp_path / ".tidal" / "predictions" / "x.log").write_bytes(b"new every run")
            codeinfo_cache_clear()
        assert [r.git_dirty_hash for r in project.search_runs()] == [None, None]
    (tmp_path / "new.py").write_text("print(2)\n")  # real code, untracked: dirty
    assert code_info(str(tmp_path)).git_dirty_hash is not None


def codeinfo_cache_clear() -> None:
    from tidal.core import codeinfo

    codeinfo._cache.clear()


def test_names_and_hashes_do_not_accept_a_trailing_newline():
    from tidal.core import validate
    from tidal.core.errors import ValidationError

    for check, value in ((validate.check_model_name, "churn\n"),
                         (validate.check_alias, "champion\n"),
                         (lambda key: validate.check_key("metric", key), "auc\n")):
        try:
            check(value)
        except ValidationError:
            continue
        raise AssertionError(f"{value!r} was accepted")
    assert not is_sha256("a" * 64 + "\n")
    assert not is_id("0" * 32 + "\n")
