"""The exceptions Tidal raises on purpose.

Every error a user can cause derives from :class:`TidalError`; the CLI prints those as a
one-line message (never a traceback) and exits non-zero. Anything else is a bug.
"""

from __future__ import annotations


class TidalError(Exception):
    """Base class of every error Tidal raises deliberately."""

    #: Exit status the CLI uses for this kind of error.
    exit_code: int = 1


class ConfigError(TidalError):
    """The project configuration (tidal.toml or TIDAL_* variables) is invalid."""

    exit_code = 2  # bad input, as the README's table of exit statuses says


class ValidationError(TidalError, ValueError):
    """A value given by the user is malformed (a key, a name, a metric value...)."""

    exit_code = 2


class NotFoundError(TidalError, LookupError):
    """A run, model, version, alias or artifact that was asked for does not exist."""

    exit_code = 3


class ConflictError(TidalError):
    """The request contradicts what is already recorded (e.g. changing a logged param)."""

    exit_code = 4


class FilterSyntaxError(ValidationError):
    """A search filter could not be parsed; the message points at the offending spot."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        pointer = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {pointer}")


class IntegrityError(TidalError):
    """Stored bytes do not match their recorded sha256: the artifact was altered."""

    exit_code = 5


class StoreError(TidalError):
    """The metadata store could not be reached or is in an unusable state."""

    exit_code = 6
