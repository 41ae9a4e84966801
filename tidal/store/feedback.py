"""Feedback: ground-truth labels for predictions, as they arrive (often long after).

A label names its prediction either by **request id** (and the row within the request,
0 for single-row requests) or by **entity key and event time** (the key a request was
routed by, ``X-Tidal-Route-Key`` or the records' ``key``). Labels are only ever inserted:
a second label for the same prediction is kept beside the first, and the join
with the predictions takes the later one, so a correction wins and the history
of what was said stays. :meth:`FeedbackRepository.add` reports how many of the new labels
superseded an earlier one. A label for a prediction that does not exist (yet) is stored
all the same (nothing is lost): it is joined if its prediction's window is computed, or
recomputed within the label horizon, later.

:func:`check_item` is the one validation of a label item, used by the HTTP endpoint and
by ``tidal label`` alike: every problem names the field (and the item's position).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from tidal.core.errors import ValidationError

from .database import Database
from .models import Feedback

SOURCES = ("api", "file", "review")
MAX_REQUEST_ID = 128
MAX_KEY = 256
MAX_LABEL_TEXT = 1_000
MAX_DEPLOYMENT = 64  # the deployments table's name length
#: rows within one request are numbered from 0 (a 32-bit column)
MAX_ROW = 2**31


@dataclass(frozen=True)
class FeedbackItem:
    deployment: str
    label: Any
    request_id: str | None = None
    row: int = 0
    entity_key: str | None = None
    event_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Labels:
    """Labels found for a set of predictions: (feedback id, label) per prediction, by
    (request id, row) and by (key, event time, row); ``corrections`` counts the earlier
    labels the latest ones replaced; ``ids`` holds every label's id per prediction (the
    replaced ones too), by ``("request", request id, row)`` or ``("key", key, event time,
    row)``, to mark which labels matched a prediction."""

    by_request: dict[tuple[str, int], tuple[int, Any]]
    by_key: dict[tuple[str, float, int], tuple[int, Any]]
    corrections: int
    #: of the labels not marked matched yet (those marked need no second update)
    ids: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    deployment: str
    request_id: str | None
    row: int
    entity_key: str | None
    event_time: float | None
    label: Any
    source: str
    actor: str | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_item(raw: Any, *, deployment: str | None = None, where: str = "") -> FeedbackItem:
    """A validated :class:`FeedbackItem` from a JSON-like mapping (ValidationError)."""
    at = f"{where}: " if where else ""
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{at}a label is an object such as "
                              "{\"request_id\": \"...\", \"label\": 1}")
    unknown = set(raw) - {"deployment", "label", "request_id", "row", "key", "event_time"}
    if unknown:
        raise ValidationError(f"{at}unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("deployment") or deployment
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{at}'deployment' is missing")
    _text(at, "deployment", name, MAX_DEPLOYMENT)
    label = check_label(raw.get("label"), where=where)
    request_id, key = raw.get("request_id"), raw.get("key")
    if (request_id is None) == (key is None):
        raise ValidationError(f"{at}give either 'request_id' or 'key' with 'event_time'")
    row = raw.get("row", 0)
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < MAX_ROW:
        raise ValidationError(f"{at}'row' must be a whole number from 0 to {MAX_ROW - 1:,}")
    if request_id is not None:
        _text(at, "request_id", request_id, MAX_REQUEST_ID)
        return FeedbackItem(name, label, request_id=request_id, row=row)
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)  # a numeric key is logged as its text too
    _text(at, "key", key, MAX_KEY)
    when = raw.get("event_time")
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ValidationError(f"{at}'event_time' (epoch seconds) is needed with 'key'")
    # to the microsecond, as the prediction log keeps event times
    return FeedbackItem(name, label, row=row, entity_key=key,
                        event_time=round(float(when) * 1e6) / 1e6)


def check_label(label: Any, *, where: str = "") -> Any:
    """``label`` if it can be a label (a finite number, a text, a boolean), else
    ValidationError naming the field."""
    at = f"{where}: " if where else ""
    if label is None or isinstance(label, dict | list) or (
            isinstance(label, float) and not math.isfinite(label)):
        raise ValidationError(f"{at}'label' must be a number, a text or a boolean")
    if isinstance(label, str) and len(label) > MAX_LABEL_TEXT:
        raise ValidationError(f"{at}'label' is longer than {MAX_LABEL_TEXT} characters")
    if isinstance(label, str) and "\x00" in label:  # PostgreSQL cannot store it in text
        raise ValidationError(f"{at}'label' contains a NUL character")
    return label


def _text(at: str, field: str, value: Any, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit \
            or not value.isprintable():
        raise ValidationError(f"{at}'{field}' must be printable text of 1 to {limit} "
                              "characters")


class FeedbackRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, items: Sequence[FeedbackItem], *, source: str, actor: str | None,
            now: float) -> dict[str, int]:
        """Store labels in one transaction (all or none); returns ``{"added",
        "superseded"}``, superseded counting the new labels for predictions that
        already had one."""
        if not items:
            return {"added": 0, "superseded": 0}
        return self.db.transact(lambda session: insert_labels(
            session, items, source=source, actor=actor, now=now))

    def since(self, deployment: str, after_id: int = 0, *,
              limit: int = 100_000) -> list[FeedbackRecord]:
        """Labels of ``deployment`` added after ``after_id``, oldest first."""
        query = (select(Feedback).where(Feedback.deployment == deployment,
                                        Feedback.id > after_id)
                 .order_by(Feedback.id).limit(limit))
        with self.db.read() as session:
            return [_record(row) for row in session.scalars(query)]

    def latest_id(self, deployment: str) -> int:
        """The newest label's id for ``deployment`` (0: none yet)."""
        with self.db.read() as session:
            return session.scalar(select(func.max(Feedback.id)).where(
                Feedback.deployment == deployment)) or 0

    def labels_for(self, deployment: str, request_ids: Sequence[str] = (),
                   keys: Sequence[str] = (), *, start: float | None = None,
                   end: float | None = None) -> Labels:
        """The labels of the predictions with these request ids, and of these entity keys
        with event times in ``[start, end)``: the latest per prediction, with its id."""
        found = Labels({}, {}, 0)
        with self.db.read() as session:
            for chunk in _chunks(sorted(set(request_ids)), 500):
                for id_, request_id, row, label, matched in session.execute(
                        select(Feedback.id, Feedback.request_id, Feedback.row, Feedback.label,
                               Feedback.matched_at)
                        .where(Feedback.deployment == deployment,
                               Feedback.request_id.in_(chunk))):
                    found.corrections += _keep_latest(found.by_request, (request_id, row),
                                                      id_, label)
                    if matched is None:
                        found.ids.setdefault(("request", request_id, row), []).append(id_)
            for chunk in _chunks(sorted(set(keys)), 500):
                query = select(Feedback.id, Feedback.entity_key, Feedback.event_time,
                               Feedback.row, Feedback.label, Feedback.matched_at).where(
                    Feedback.deployment == deployment, Feedback.entity_key.in_(chunk))
                if start is not None:
                    query = query.where(Feedback.event_time >= start)
                if end is not None:
                    query = query.where(Feedback.event_time < end)
                for id_, key, when, row, label, matched in session.execute(query):
                    found.corrections += _keep_latest(found.by_key, (key, when, row), id_,
                                                      label)
                    if matched is None:
                        found.ids.setdefault(("key", key, when, row), []).append(id_)
        return found

    def unmatched(self, deployment: str, *, received_before: float,
                  limit: int = 100) -> tuple[int, list[FeedbackRecord]]:
        """Labels received before ``received_before`` that no window's quality join has
        matched to a prediction: how many, and the oldest ``limit`` of them. Given a
        cut-off past the label delay and a window, these name predictions that are not
        in the log (a wrong id, another deployment's, older than the label horizon)."""
        where = (Feedback.deployment == deployment, Feedback.matched_at.is_(None),
                 Feedback.received_at < received_before)
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(Feedback).where(*where))
            rows = session.scalars(select(Feedback).where(*where).order_by(Feedback.id)
                                   .limit(limit))
            return total or 0, [_record(row) for row in rows]

    def matched_count(self, deployment: str) -> int:
        """How many of the deployment's labels a quality join has matched."""
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(Feedback).where(
                Feedback.deployment == deployment, Feedback.matched_at.is_not(None))) or 0

    def count(self, deployment: str) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(Feedback).where(
                Feedback.deployment == deployment)) or 0


def insert_labels(session: Session, items: Sequence[FeedbackItem], *, source: str,
                  actor: str | None, now: float) -> dict[str, int]:
    """Insert validated labels in the caller's transaction (so a review answer and its
    label commit together); returns ``{"added", "superseded"}``."""
    if source not in SOURCES:
        raise ValidationError(f"unknown feedback source {source!r}")
    superseded = _already_labelled(session, items)
    rows = [{"deployment": i.deployment, "request_id": i.request_id, "row": i.row,
             "entity_key": i.entity_key, "event_time": i.event_time, "label": i.label,
             "source": source, "actor": actor, "received_at": now} for i in items]
    for chunk in _chunks(rows, 10_000):  # one executemany per chunk, in order
        session.execute(insert(Feedback), chunk)
    return {"added": len(items), "superseded": superseded}


def mark_matched(session: Session, ids: Sequence[int], *, now: float) -> None:
    """Note, in the caller's transaction, that these labels matched a prediction (the
    first match's time is kept)."""
    for chunk in _chunks(sorted(set(ids)), 1_000):
        session.execute(update(Feedback).where(Feedback.id.in_(chunk),
                                               Feedback.matched_at.is_(None))
                        .values(matched_at=now))


def _already_labelled(session: Session, items: Sequence[FeedbackItem]) -> int:
    """How many of ``items`` name a prediction that has a label (stored, or earlier in
    ``items``). Looked up by request ids and keys in chunks (IN lists), then matched on
    the row and event time here."""
    ids: dict[str, set[str]] = {}
    keys: dict[str, set[str]] = {}
    for item in items:
        if item.request_id is not None:
            ids.setdefault(item.deployment, set()).add(item.request_id)
        elif item.entity_key is not None:
            keys.setdefault(item.deployment, set()).add(item.entity_key)
    seen: set[tuple[Any, ...]] = set()
    for deployment, names in ids.items():
        for chunk in _chunks(sorted(names), 500):
            seen.update((deployment, r, n) for r, n in session.execute(
                select(Feedback.request_id, Feedback.row).where(
                    Feedback.deployment == deployment, Feedback.request_id.in_(chunk))))
    for deployment, names in keys.items():
        for chunk in _chunks(sorted(names), 500):
            seen.update((deployment, k, t, n) for k, t, n in session.execute(
                select(Feedback.entity_key, Feedback.event_time, Feedback.row).where(
                    Feedback.deployment == deployment, Feedback.entity_key.in_(chunk))))
    superseded = 0
    for item in items:
        identity = (item.deployment, item.request_id, item.row) if item.request_id else \
            (item.deployment, item.entity_key, item.event_time, item.row)
        superseded += identity in seen
        seen.add(identity)
    return superseded


def _keep_latest(found: dict[Any, tuple[int, Any]], identity: Any, id_: int, label: Any) -> int:
    """Keep the label with the larger id; 1 when this one met another (a correction)."""
    seen = found.get(identity)
    if seen is None:
        found[identity] = (id_, label)
        return 0
    if id_ > seen[0]:
        found[identity] = (id_, label)
    return 1


def _chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _record(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord(row.id, row.deployment, row.request_id, row.row, row.entity_key,
                          row.event_time, row.label, row.source, row.actor, row.received_at)
