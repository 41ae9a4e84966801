"""The append-only audit log: every decision Tidal records, with who and why.

Events are only ever inserted; nothing in Tidal updates or deletes them. The registry
writes one for each version registered, alias moved and status changed; later the
controller writes one for each rollout step and retraining decision.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
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
