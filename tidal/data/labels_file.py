"""Reading a file of labels (``tidal label``) into checked feedback items.

Each row names a prediction by request id (and row, default 0) or by entity key and event
time, and gives its label. Every row is checked before anything is stored, and the errors
name the row (counted from 1, after the header) and the field, so a file is added whole
or not at all.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tidal.core.errors import ValidationError
from tidal.data.sources import open_source
from tidal.store.feedback import FeedbackItem, check_item

#: at most this many errors are listed (the count says how many there were)
SHOWN_ERRORS = 10


def read_labels(path: str | Path, deployment: str, *, label_column: str = "label",
                id_column: str = "request_id", row_column: str = "row",
                key_column: str = "key", time_column: str = "event_time"
                ) -> list[FeedbackItem]:
    """The checked labels of a CSV or Parquet file (ValidationError listing bad rows)."""
    table = open_source(path).to_table()
    names = set(table.column_names)
    if label_column not in names:
        raise ValidationError(f"{path} has no label column {label_column!r} (name it with "
                              "--label-column)")
    by_id, by_key = id_column in names, key_column in names
    if not by_id and not by_key:
        raise ValidationError(f"{path} has neither a request id column {id_column!r} nor "
                              f"a key column {key_column!r}")
    if by_key and not by_id and time_column not in names:
        raise ValidationError(f"{path} has keys but no event time column {time_column!r}")
    columns = {name: table.column(name).to_pylist() for name in
               (label_column, id_column, row_column, key_column, time_column) if name in names}
    items: list[FeedbackItem] = []
    errors: list[str] = []
    for index in range(table.num_rows):
        raw: dict[str, Any] = {"label": _plain(columns[label_column][index])}
        request_id = columns[id_column][index] if by_id else None
        if request_id is not None and request_id != "":
            raw["request_id"] = str(request_id)
            if row_column in columns and columns[row_column][index] is not None:
                raw["row"] = _whole(columns[row_column][index])
        elif by_key:
            raw["key"] = None if columns[key_column][index] is None else \
                str(columns[key_column][index])
            raw["event_time"] = _epoch(columns.get(time_column, [None] * (index + 1))[index])
        try:
            items.append(check_item(raw, deployment=deployment, where=f"row {index + 1}"))
        except ValidationError as exc:
            errors.append(str(exc))
    if errors:
        shown = "; ".join(errors[:SHOWN_ERRORS])
        more = f" (and {len(errors) - SHOWN_ERRORS:,} more)" if len(errors) > SHOWN_ERRORS \
            else ""
        raise ValidationError(f"{len(errors):,} bad row(s) in {path}, nothing added: "
                              f"{shown}{more}")
    return items


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # a CSV's 1.0 is the class 1
    return value


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _epoch(value: Any) -> Any:
    """Epoch seconds from a number, a datetime or an ISO 8601 text (UTC unless marked);
    anything else is passed on for the check to refuse."""
    from datetime import UTC, datetime

    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            return number if math.isfinite(number) else None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return value
