"""Validation of names and values at the boundary, with messages that say what is allowed.

Every key, name and value a user passes is checked here before it reaches the store, so
that the database never sees (and never has to reject) a malformed value.
"""

from __future__ import annotations

import math
import re
from numbers import Real
from typing import Any

from .errors import ValidationError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-./: ]{1,250}\Z")
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]{0,63}\Z")
MAX_PARAM_LENGTH = 6000
#: steps are stored as 64-bit integers
STEP_LIMIT = 2**63
MAX_TAG_LENGTH = 8000
#: 9999-12-31T23:59:59Z: the last moment an event time or a window may name (the
#: prediction log is partitioned by hour, and a year has four digits)
MAX_EPOCH_SECONDS = 253402300799.0


def check_key(kind: str, key: Any) -> str:
    """A metric, param or tag key: 1–250 of letters, digits, ``_ - . / :`` and spaces."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or key != key.strip():
        raise ValidationError(
            f"invalid {kind} key {key!r}: use 1-250 letters, digits, spaces or _ - . / : "
            "(no leading or trailing space)"
        )
    return key


def param_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else _plain(value)
    _no_nul("param", key, text)
    if len(text) > MAX_PARAM_LENGTH:
        raise ValidationError(
            f"param {key!r} is {len(text)} characters long; params hold at most "
            f"{MAX_PARAM_LENGTH} (log long values as an artifact)"
        )
    return text


def tag_value(key: str, value: Any) -> str:
    text = value if isinstance(value, str) else _plain(value)
    _no_nul("tag", key, text)
    if len(text) > MAX_TAG_LENGTH:
        raise ValidationError(f"tag {key!r} is longer than {MAX_TAG_LENGTH} characters")
    return text


def metric_value(key: str, value: Any) -> float:
    """A metric must be a real number; NaN and ±inf are accepted and kept."""
    if isinstance(value, bool) or not isinstance(value, Real):
        try:
            import numpy  # only to recognise numpy scalars; already loaded if they are used

            if isinstance(value, numpy.generic) and not isinstance(value, numpy.bool_):
                return float(value)
        except ImportError:
            pass
        raise ValidationError(f"metric {key!r} must be a number, got {value!r}")
    return float(value)


def step_value(key: str, step: Any) -> int:
    if (isinstance(step, bool) or not isinstance(step, int | Real)
            or not math.isfinite(step) or float(step) != int(step)):
        raise ValidationError(f"metric {key!r}: step must be an integer, got {step!r}")
    if not -STEP_LIMIT <= int(step) < STEP_LIMIT:
        raise ValidationError(f"metric {key!r}: step {step} does not fit in 64 bits")
    return int(step)


def timestamp_value(timestamp: Any) -> float:
    """Epoch seconds, finite."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, Real) or not math.isfinite(
            timestamp):
        raise ValidationError(f"timestamp must be finite epoch seconds, got {timestamp!r}")
    return float(timestamp)


def check_text(what: str, value: Any, limit: int, optional: bool = True) -> str | None:
    """A short free-text field (a run name, a flavor): a string within ``limit``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise ValidationError(f"invalid {what} {value!r}: 1-{limit} characters, no NUL")
    return value


def _no_nul(kind: str, key: str, text: str) -> None:
    if "\x00" in text:
        raise ValidationError(f"{kind} {key!r} contains a NUL character, which cannot be stored")


def numeric_or_none(text: str) -> float | None:
    """The param text as a finite number, when it is one ("0.01" → 0.01, "abc" → None)."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_model_name(name: Any) -> str:
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        raise ValidationError(
            f"invalid model name {name!r}: start with a letter or digit, then up to 127 "
            "letters, digits or _ . -"
        )
    return name


def check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.match(alias):
        raise ValidationError(
            f"invalid alias {alias!r}: a lowercase letter, then up to 63 lowercase letters, "
            "digits, _ or - (e.g. champion, challenger)"
        )
    return alias


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)
