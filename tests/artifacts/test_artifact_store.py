"""The content-addressed artifact store: dedupe, verification, and names that stay put."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tidal.artifacts import ArtifactStore, safe_artifact_name, safe_destination
from tidal.core.errors import IntegrityError, NotFoundError, ValidationError


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    return ArtifactStore(f"memory://tidal-test-{tmp_path.name}")


def test_bytes_are_stored_under_their_sha256_once(store):
    first = store.put_bytes(b"model bytes")
    again = store.put_bytes(b"model bytes")
    assert first == again
    assert first.sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert first.size == 11
    assert store.get_bytes(first.sha256) == b"model bytes"
    assert store.path_of(first.sha256).endswith(f"sha256/{first.sha256[:2]}/{first.sha256}")


def test_files_round_trip_through_a_verified_download(store, tmp_path: Path):
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 20_000)  # 5 MB, several hash chunks
    stored = store.put_file(source)
    copy = store.get_file(stored.sha256, tmp_path / "out" / "copy.bin")
    assert copy.read_bytes() == source.read_bytes()


def test_tampered_bytes_are_refused(tmp_path: Path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    stored = store.put_bytes(b"the real model")
    Path(store.path_of(stored.sha256)).write_bytes(b"the evil model")
    with pytest.raises(IntegrityError, match="failed verification"):
        store.get_bytes(stored.sha256)
    target = tmp_path / "download" / "model.bin"
    with pytest.raises(IntegrityError):
        store.get_file(stored.sha256, target)
    assert not target.exists(), "a file that failed verification must not be left behind"
    assert list(target.parent.iterdir()) == []


def test_a_tampered_registered_model_is_never_unpickled(sqlite_project):
    version = sqlite_project.register_model("m", {"safe": True})
    path = Path(sqlite_project.artifacts.path_of(version.artifact_sha256))
    path.write_bytes(path.read_bytes().replace(b"safe", b"evil"))
    with pytest.raises(IntegrityError):
        sqlite_project.load_model("m:1")


def test_missing_and_malformed_digests(store):
    with pytest.raises(NotFoundError):
        store.get_bytes("0" * 64)
    for bad in ["../../etc/passwd", "A" * 64, "0" * 63, "", "0" * 64 + "/x"]:
        with pytest.raises(ValidationError, match="not a sha256"):
            store.get_bytes(bad)


@pytest.mark.parametrize("name", [
    "../escape", "a/../../b", "/etc/passwd", "C:\\windows", "c:/x", "a\\..\\b", "a//b",
    "./a", "a/./b", "a/", "", "nul\x00byte", "tab\there", " lead/x", "x" * 1025,
])
def test_path_tricks_in_names_are_refused(name):
    with pytest.raises(ValidationError, match="invalid artifact name"):
        safe_artifact_name(name)


def test_safe_names_map_inside_the_folder(tmp_path: Path):
    assert safe_destination(tmp_path, "model/model.pkl") == tmp_path / "model" / "model.pkl"
    assert safe_artifact_name("reports/2026-11-23 summary.json")


def test_a_symlink_cannot_carry_a_download_out_of_the_folder(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValidationError, match="outside"):
        safe_destination(folder, "link/file.txt")


def test_runs_refuse_bad_artifact_names(sqlite_project):
    with sqlite_project.start_run() as run:
        with pytest.raises(ValidationError):
            run.log_bytes(b"x", "../../outside.txt")
    assert sqlite_project.get_run(run.id).artifacts == []


def test_a_truncated_object_is_repaired_by_storing_the_bytes_again(tmp_path: Path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    stored = store.put_bytes(b"a complete model")
    Path(store.path_of(stored.sha256)).write_bytes(b"a comp")  # a crash mid-write
    with pytest.raises(IntegrityError):
        store.get_bytes(stored.sha256)
    store.put_bytes(b"a complete model")
    assert store.get_bytes(stored.sha256) == b"a complete model"


def test_the_stored_name_always_matches_the_stored_bytes(tmp_path: Path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    source = tmp_path / "model.bin"
    source.write_bytes(b"v1" * 1000)
    stored = store.put_file(source)
    assert hashlib.sha256(store.get_bytes(stored.sha256)).hexdigest() == stored.sha256
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []  # no temporaries left
