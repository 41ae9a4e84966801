"""Leases: one holder at a time for a named role (the controller's leadership).

A database row rather than PostgreSQL's advisory locks, because the same code must run
on SQLite, and because a lease that expires survives what a session lock does not make
visible (a process frozen by the OS keeps its connection, and so its advisory lock,
while it does nothing). The holder renews the lease well before ``ttl`` runs out; when
it dies, another process takes the lease once it has expired, within ``ttl``.
Acquiring locks the row (``FOR UPDATE``; SQLite's write transactions are exclusive), so
two contenders never both win.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .database import Database
from .models import Lease


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    holder: str
    acquired_at: float
    expires_at: float


class LeaseRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def acquire(self, name: str, holder: str, *, ttl: float, now: float) -> bool:
        """Take or renew the lease for ``ttl`` seconds; False while someone else holds
        an unexpired one."""
        def write(session: Session) -> bool:
            row = session.get(Lease, name, with_for_update=True)
            if row is None:
                session.add(Lease(name=name, holder=holder, acquired_at=now,
                                  expires_at=now + ttl))
                session.flush()
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            if row.holder != holder:
                row.holder, row.acquired_at = holder, now
            row.expires_at = now + ttl
            return True

        try:
            return self.db.transact(write)
        except IntegrityError:  # another process inserted the first row meanwhile
            return self.db.transact(write)

    def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown: the next one need not wait)."""
        def write(session: Session) -> None:
            row = session.get(Lease, name, with_for_update=True)
            if row is not None and row.holder == holder:
                session.delete(row)

        self.db.transact(write)

    def get(self, name: str) -> LeaseRecord | None:
        with self.db.read() as session:
            row = session.get(Lease, name)
            return None if row is None else LeaseRecord(row.name, row.holder,
                                                         row.acquired_at, row.expires_at)
