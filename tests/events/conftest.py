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


def drain(consumer, sessions, timeout: float = 60.0) -> int:
    """Tick until the consumer has read every event in the outbox; how many it read.

    A batch that reads nothing does not mean drained: the horizon is the oldest transaction still
    open on the whole server (xids are cluster-wide), and other databases' writers hold it back too.
    """
    import time

    deadline, total = time.monotonic() + timeout, 0
    while True:
        with sessions() as session:
            read = consumer.tick(session)
            session.commit()
            left = consumer.backlog(session) if not read else 1
        total += read
        if not left:
            return total
        if not read:
            assert time.monotonic() < deadline, f"{consumer.name} still has {left} events to read"
            time.sleep(0.05)
