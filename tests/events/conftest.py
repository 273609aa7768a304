"""Helpers for the event tests: what the outbox holds for an aggregate."""
from __future__ import annotations

from sqlalchemy import text


def events_of(session, aggregate_type: str, aggregate_id) -> list[dict]:
    """The aggregate's events in reading order, as rows (type, data, tx_id, seq, id)."""
    rows = session.execute(text(
        "SELECT id, type, version, aggregate_type, aggregate_id, data, tx_id::text AS tx_id, seq "
        "FROM outbox_events WHERE aggregate_type = :t AND aggregate_id = :i ORDER BY tx_id, seq"
    ), {"t": aggregate_type, "i": str(aggregate_id)}).mappings().all()
    return [dict(row) for row in rows]


def types_of(session, aggregate_type: str, aggregate_id) -> list[str]:
    return [event["type"] for event in events_of(session, aggregate_type, aggregate_id)]
