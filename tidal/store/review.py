"""The human review queue: predictions routed to people, claimed, labelled, agreed on.

An item is one prediction (deployment, request id, row), added once whatever rule routed
it. A reviewer *claims* the oldest item they have not answered (a claim lapses after
``claim_seconds``, so an abandoned claim does not hide an item), then answers it: a label,
or "unsure", with an optional note and whether the case looked familiar. An item is done
once ``required`` reviewers have answered; several answers per item give the agreement
rates of :meth:`ReviewRepository.agreement` (label consistency, per reviewer pair and per
class). Claiming locks the row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write
transactions are exclusive), so two reviewers never get the same item at once.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from tidal.core.errors import ConflictError, NotFoundError, ValidationError

from .database import Database
from .feedback import FeedbackItem, check_label, insert_labels
from .models import ReviewItem, ReviewLabel
from .upsert import insert_new

STATUSES = ("open", "claimed", "done")


@dataclass(frozen=True)
class NewReviewItem:
    deployment: str
    request_id: str
    row: int
    event_time: float
    reason: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    shadow_outputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReviewItemRecord:
    id: int
    deployment: str
    request_id: str
    row: int
    event_time: float
    reason: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    shadow_outputs: dict[str, Any] | None
    status: str
    claimed_by: str | None
    created_at: float
    answers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ReviewRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, items: Sequence[NewReviewItem], *, now: float) -> int:
        """Queue the items not queued yet; returns how many were added."""
        if not items:
            return 0
        rows = list({(i.deployment, i.request_id, i.row): {
            "deployment": i.deployment, "request_id": i.request_id, "row": i.row,
            "event_time": i.event_time, "reason": i.reason, "inputs": i.inputs,
            "outputs": i.outputs, "shadow_outputs": i.shadow_outputs, "status": "open",
            "created_at": now} for i in items}.values())
        return self.db.transact(lambda session: insert_new(
            session, ReviewItem, rows, keys=("deployment", "request_id", "row")))

    def claim_next(self, deployment: str, reviewer: str, *, now: float,
                   claim_seconds: float = 900.0) -> ReviewItemRecord | None:
        """The item ``reviewer`` holds, else the oldest they have not answered that nobody
        else holds, claimed for them."""
        _check_reviewer(reviewer)

        def write(session: Session) -> ReviewItemRecord | None:
            answered = select(ReviewLabel.item_id).where(ReviewLabel.reviewer == reviewer)
            query = (select(ReviewItem).where(
                ReviewItem.deployment == deployment, ReviewItem.status != "done",
                ReviewItem.id.not_in(answered),
                or_(ReviewItem.status == "open", ReviewItem.claimed_by == reviewer,
                    ReviewItem.claimed_at < now - claim_seconds))
                # an item this reviewer already holds first, then the oldest
                .order_by(case((ReviewItem.claimed_by == reviewer, 0), else_=1),
                          ReviewItem.id).limit(1).with_for_update(skip_locked=True))
            item = session.scalars(query).first()
            if item is None:
                return None
            item.status, item.claimed_by, item.claimed_at = "claimed", reviewer, now
            return _record(item, _answers(session, item.id))

        return self.db.transact(write)

    def answer(self, item_id: int, reviewer: str, *, label: Any = None, unsure: bool = False,
               familiar: bool | None = None, note: str | None = None, now: float,
               required: int = 1) -> ReviewItemRecord:
        """Record ``reviewer``'s answer (a label, or unsure); the item is done once
        ``required`` reviewers answered, else it is open for the next one."""
        _check_answer(reviewer, label, unsure, note)
        return self.db.transact(lambda session: _write_answer(
            session, item_id, reviewer, label=label, unsure=unsure, familiar=familiar,
            note=note, now=now, required=required))

    def items(self, deployment: str | None = None, *, status: str | None = None,
              limit: int = 100, among: Collection[str] | None = None
              ) -> list[ReviewItemRecord]:
        """Items oldest first, of ``deployment`` (or of those ``among``, or of all)."""
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status is one of {', '.join(STATUSES)}")
        query = select(ReviewItem)
        if deployment is not None:
            query = query.where(ReviewItem.deployment == deployment)
        if among is not None:
            query = query.where(ReviewItem.deployment.in_(sorted(among)))
        if status is not None:
            query = query.where(ReviewItem.status == status)
        with self.db.read() as session:
            rows = list(session.scalars(query.order_by(ReviewItem.id).limit(limit)))
            counts = dict(session.execute(
                select(ReviewLabel.item_id, func.count()).where(
                    ReviewLabel.item_id.in_([r.id for r in rows]))
                .group_by(ReviewLabel.item_id)).all()) if rows else {}
            return [_record(r, counts.get(r.id, 0)) for r in rows]

    def get(self, item_id: int, deployment: str | None = None) -> ReviewItemRecord | None:
        """One item by id (of ``deployment`` when given), with its answer count."""
        with self.db.read() as session:
            row = session.get(ReviewItem, item_id)
            if row is None or (deployment is not None and row.deployment != deployment):
                return None
            count = session.scalar(select(func.count()).where(
                ReviewLabel.item_id == item_id)) or 0
            return _record(row, count)

    def answers(self, deployment: str) -> list[dict[str, Any]]:
        """Every answer on the deployment's items (item, reviewer, label, unsure, ...)."""
        with self.db.read() as session:
            rows = session.execute(
                select(ReviewLabel, ReviewItem.request_id, ReviewItem.row)
                .join(ReviewItem, ReviewItem.id == ReviewLabel.item_id)
                .where(ReviewItem.deployment == deployment).order_by(ReviewLabel.id))
            return [{"item": a.item_id, "reviewer": a.reviewer, "label": a.label,
                     "unsure": a.unsure, "familiar": a.familiar, "note": a.note,
                     "request_id": request_id, "row": row, "at": a.created_at}
                    for a, request_id, row in rows]

    def agreement(self, deployment: str) -> dict[str, Any]:
        """How often reviewers give an item the same label: per reviewer pair (items both
        labelled, "unsure" left out) and per class (over pairs of labels on one item, by
        the class either of them gave)."""
        by_item: dict[int, dict[str, Any]] = defaultdict(dict)
        for answer in self.answers(deployment):
            if not answer["unsure"]:
                by_item[answer["item"]][answer["reviewer"]] = answer["label"]
        pairs: dict[tuple[str, str], list[bool]] = defaultdict(list)
        classes: dict[str, list[bool]] = defaultdict(list)
        for labels in by_item.values():
            for (a, la), (b, lb) in itertools.combinations(sorted(labels.items()), 2):
                same = str(la) == str(lb)
                pairs[(a, b)].append(same)
                for name in {str(la), str(lb)}:
                    classes[name].append(same)
        return {
            "items": sum(1 for labels in by_item.values() if len(labels) > 1),
            "pairs": [{"reviewers": list(pair), "items": len(v), "agreement": sum(v) / len(v)}
                      for pair, v in sorted(pairs.items())],
            "classes": [{"class": name, "pairs": len(v), "agreement": sum(v) / len(v)}
                        for name, v in sorted(classes.items())],
        }


def answer_with_feedback(review: ReviewRepository, item_id: int, reviewer: str, *,
                         label: Any = None, unsure: bool = False,
                         familiar: bool | None = None, note: str | None = None, now: float,
                         required: int = 1, among: Collection[str] | None = None
                         ) -> ReviewItemRecord:
    """Record an answer; a label (not "unsure") also becomes feedback for the prediction
    (source ``review``), so it counts in labelled quality and training data. The answer
    and its label commit in one transaction: never one without the other. With
    ``among``, an item of another deployment is not found (a server answers for the
    deployments it serves only)."""
    _check_answer(reviewer, label, unsure, note)

    def write(session: Session) -> ReviewItemRecord:
        item = _write_answer(session, item_id, reviewer, label=label, unsure=unsure,
                             familiar=familiar, note=note, now=now, required=required,
                             among=among)
        if label is not None:
            insert_labels(session, [FeedbackItem(item.deployment, label,
                                                 request_id=item.request_id, row=item.row)],
                          source="review", actor=reviewer, now=now)
        return item

    return review.db.transact(write)


def _write_answer(session: Session, item_id: int, reviewer: str, *, label: Any,
                  unsure: bool, familiar: bool | None, note: str | None, now: float,
                  required: int, among: Collection[str] | None = None) -> ReviewItemRecord:
    item = session.get(ReviewItem, item_id, with_for_update=True)
    if item is None or (among is not None and item.deployment not in among):
        raise NotFoundError(f"no review item {item_id}")
    if session.scalar(select(ReviewLabel.id).where(
            ReviewLabel.item_id == item_id, ReviewLabel.reviewer == reviewer)):
        raise ConflictError(f"{reviewer} already answered item {item_id}")
    session.add(ReviewLabel(item_id=item_id, reviewer=reviewer, label=label, unsure=unsure,
                            familiar=familiar, note=note, created_at=now))
    session.flush()
    answers = _answers(session, item_id)
    item.status = "done" if answers >= required else "open"
    item.claimed_by = item.claimed_at = None
    return _record(item, answers)


def _check_answer(reviewer: str, label: Any, unsure: bool, note: str | None) -> None:
    _check_reviewer(reviewer)
    if unsure == (label is not None):
        raise ValidationError("answer with a label or as unsure, not both or neither")
    if label is not None:
        check_label(label)
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise ValidationError("a note is a text of at most 2,000 characters")


def _answers(session: Session, item_id: int) -> int:
    return session.scalar(select(func.count()).select_from(ReviewLabel).where(
        ReviewLabel.item_id == item_id)) or 0


def _check_reviewer(reviewer: str) -> None:
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > 256:
        raise ValidationError("name the reviewer (1 to 256 characters)")


def _record(row: ReviewItem, answers: int) -> ReviewItemRecord:
    return ReviewItemRecord(row.id, row.deployment, row.request_id, row.row, row.event_time,
                            row.reason, row.inputs, row.outputs, row.shadow_outputs,
                            row.status, row.claimed_by, row.created_at, answers)
