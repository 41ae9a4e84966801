"""The artifact store: bytes kept under their sha256, verified every time they are read.

Layout under the root: ``sha256/ab/abcdef…`` (two-character fan-out keeps folders small
on local disks). Writing the same bytes twice stores them once. Reads hash what they
return and raise :class:`~tidal.core.errors.IntegrityError` if the bytes no longer match
their name, so a model altered on disk is never loaded. Any fsspec URL works as the root.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

from tidal.core.errors import IntegrityError, NotFoundError, StoreError, ValidationError
from tidal.core.hashing import CHUNK_SIZE, is_sha256, sha256_bytes


@dataclass(frozen=True)
class StoredArtifact:
    sha256: str
    size: int


class ArtifactStore:
    def __init__(self, root: str) -> None:
        self.root_url = root
        try:
            self.fs, self.root = url_to_fs(root)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open artifact root {root!r}: {exc}") from None
        self.root = self.root.rstrip("/")
        self._local = "file" in _protocols(self.fs)

    # -- writing -------------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> StoredArtifact:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError(f"artifact data must be bytes, got {type(data).__name__}")
        return self._store([bytes(data)])

    def put_file(self, path: str | os.PathLike[str]) -> StoredArtifact:
        """Store a file. It is hashed while it is copied, so the name always matches the
        bytes stored, even if the file changes while it is being read."""
        source = Path(path)
        if not source.is_file():
            raise NotFoundError(f"no file at {source}")
        with source.open("rb") as handle:
            return self._store(iter(lambda: handle.read(CHUNK_SIZE), b""))

    def _store(self, chunks: Iterable[bytes]) -> StoredArtifact:
        """Write chunks to a temporary object while hashing, then move it under its hash.

        An object already stored under that hash is kept if its size is right, and
        replaced if not (a truncated write from a crash must not poison the hash forever).
        """
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        temporary = f"{self.root}/tmp/{uuid.uuid4().hex}"
        hasher = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(temporary, "wb") as handle:
                for chunk in chunks:
                    hasher.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
                if self._local:
                    handle.flush()
                    os.fsync(handle.fileno())
            digest = hasher.hexdigest()
            final = self.path_of(digest)
            if not (self.fs.exists(final) and self.fs.size(final) == size):
                self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
                if self._local:
                    os.replace(temporary, final)  # atomic: readers never see half a file
                else:
                    self.fs.mv(temporary, final)
        finally:
            if self.fs.exists(temporary):
                self.fs.rm(temporary)
        return StoredArtifact(digest, size)

    # -- reading -------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return self.fs.exists(self.path_of(digest))

    def get_bytes(self, digest: str) -> bytes:
        """The stored bytes, after checking they still hash to ``digest``."""
        path = self.path_of(digest)
        try:
            with self.fs.open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise self._missing(digest) from None
        actual = sha256_bytes(data)
        if actual != digest:
            raise _tampered(digest, actual, path)
        return data

    def get_file(self, digest: str, destination: str | os.PathLike[str]) -> Path:
        """Copy an artifact to a local file, verifying it; the file appears only if valid."""
        target = Path(destination)
        target.parent.mkdir(parents=True, exist_ok=True)
        path = self.path_of(digest)
        hasher = hashlib.sha256()
        descriptor, scratch = tempfile.mkstemp(dir=target.parent, prefix=".tidal-")
        try:
            with os.fdopen(descriptor, "wb") as out, self.fs.open(path, "rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise _tampered(digest, hasher.hexdigest(), path)
            os.replace(scratch, target)
        except FileNotFoundError:
            raise self._missing(digest) from None
        finally:
            if os.path.exists(scratch):
                os.unlink(scratch)
        return target

    def _missing(self, digest: str) -> NotFoundError:
        return NotFoundError(f"artifact {digest} is not in the store at {self.root_url}")

    def path_of(self, digest: str) -> str:
        """Where the bytes of ``digest`` live; only a valid sha256 ever becomes a path."""
        if not is_sha256(digest):
            raise ValidationError(f"not a sha256 digest: {digest!r}")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"


def _tampered(expected: str, actual: str, path: str) -> IntegrityError:
    return IntegrityError(
        f"artifact {expected} failed verification: the stored bytes at {path} hash to "
        f"{actual}. It was modified or corrupted after it was stored; refusing to use it."
    )


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
