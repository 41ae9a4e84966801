"""Content-addressed artifact storage over fsspec (local folders, S3, GCS, memory...)."""

from .names import safe_artifact_name, safe_destination
from .store import ArtifactStore, StoredArtifact

__all__ = ["ArtifactStore", "StoredArtifact", "safe_artifact_name", "safe_destination"]
