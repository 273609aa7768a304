"""What waits in a worker's queue, read by the service that owns it (its /metrics and `toko status`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# (queue, state, how many, age of the oldest in seconds)
QueueRow = tuple[str, str, int, float]


def waiting(session: Session, table: str, status: str) -> QueueRow:
    """The rows of `table` (one of toko's own names, never a client's) in `status`, by their created_at."""
    count, oldest = session.execute(
        text(
            f"SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
            f"FROM {table} WHERE status = :status"
        ),
        {"status": status},
    ).one()
    return (table, status, count, float(oldest))
