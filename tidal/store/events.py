"""The append-only audit log: every decision Tidal records, with who and why.

Events are only ever inserted; nothing in Tidal updates or deletes them. The registry
writes one for each version registered, alias moved and status changed; later the
controller writes one for each rollout step and retraining decision.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from .database import Database
from .models import Event
from .records import EventRecord


def record_event(
    session: Session,
    *,
    at: float,
    kind: str,
    entity_type: str,
    entity_id: str,
    actor: str | None,
    reason: str | None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Append an event inside the caller's transaction (so it lands with the change)."""
    session.add(
        Event(at=at, kind=kind, entity_type=entity_type, entity_id=entity_id, actor=actor,
              reason=reason, payload=payload)
    )


def list_events(
    db: Database, *, entity_type: str | None = None, entity_id: str | None = None,
    kind: str | None = None, limit: int = 1000, newest_first: bool = False,
) -> list[EventRecord]:
    """Events oldest first (or newest first), optionally for one entity and kind."""
    with db.read() as session:
        query = select(Event)
        if entity_type is not None:
            query = query.where(Event.entity_type == entity_type)
        if entity_id is not None:
            query = query.where(Event.entity_id == entity_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        order = Event.id.desc() if newest_first else Event.id
        rows = session.scalars(query.order_by(order).limit(limit))
        return [
            EventRecord(e.id, e.at, e.kind, e.entity_type, e.entity_id, e.actor, e.reason,
                        e.payload)
            for e in rows
        ]


def search_events(db: Database, *, kind: str = "", entity_id: str = "",
                  limit: int = 200) -> tuple[list[EventRecord], int]:
    """The newest ``limit`` events of a kind family (``rollout`` matches ``rollout``,
    ``rollout.promoted`` and ``rollout_x``; the text is matched literally, never as a
    pattern) and of one entity, with how many match in all: one page of a timeline."""
    conditions = []
    if kind:
        conditions.append(or_(Event.kind == kind,
                              Event.kind.startswith(kind + ".", autoescape=True),
                              Event.kind.startswith(kind + "_", autoescape=True)))
    if entity_id:
        conditions.append(Event.entity_id == entity_id)
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(Event).where(*conditions))
        rows = session.scalars(select(Event).where(*conditions)
                               .order_by(Event.id.desc()).limit(limit))
        return [EventRecord(e.id, e.at, e.kind, e.entity_type, e.entity_id, e.actor,
                            e.reason, e.payload) for e in rows], int(total or 0)


def event_kinds(db: Database) -> list[str]:
    """Every kind of event there is, sorted."""
    with db.read() as session:
        return sorted(session.scalars(select(Event.kind).distinct()))
