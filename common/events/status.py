"""What operators see of the events (`toko events`, /metrics): the outbox, each consumer, the dead letters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

_BEHIND = "(e.tx_id, e.seq) > (c.position_tx_id, c.position_seq)"
_CONSUMERS = text(f"""
    WITH c AS (
        SELECT name, position_tx_id, position_seq, updated_at FROM event_consumers
        UNION ALL
        -- A consumer that has never run starts from the beginning.
        SELECT name, '0'::xid8, 0, NULL FROM unnest(CAST(:known AS text[])) AS k(name)
        WHERE name NOT IN (SELECT name FROM event_consumers)
    )
    SELECT c.name, c.position_tx_id::text AS tx_id, c.position_seq AS seq, c.updated_at,
           (SELECT count(*) FROM outbox_events e WHERE {_BEHIND}) AS backlog,
           coalesce((SELECT extract(epoch FROM now() - e.occurred_at) FROM outbox_events e WHERE {_BEHIND}
                     ORDER BY e.tx_id, e.seq LIMIT 1), 0) AS lag_seconds
    FROM c ORDER BY c.name
""")
_OUTBOX = text(
    "SELECT (SELECT count(*) FROM outbox_events), "
    "(SELECT occurred_at FROM outbox_events ORDER BY tx_id DESC, seq DESC LIMIT 1)"
)
_DEAD = text("""
    SELECT d.consumer, d.event_id, e.type, d.at, d.reason
    FROM event_dead_letters d LEFT JOIN outbox_events e ON e.id = d.event_id
    ORDER BY d.at, d.consumer
""")


@dataclass(frozen=True)
class ConsumerState:
    name: str
    tx_id: str
    seq: int
    updated_at: datetime | None
    backlog: int  # events after its position
    lag_seconds: float  # age of the oldest of them; 0 when it has read everything


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    event_id: object
    type: str | None
    at: datetime
    reason: str


@dataclass(frozen=True)
class Overview:
    events: int
    newest: datetime | None
    consumers: list[ConsumerState]
    dead_letters: list[DeadLetter]

    @property
    def depth(self) -> int:
        """Events some consumer has still to read."""
        return max((c.backlog for c in self.consumers), default=0)


_DEAD_COUNTS = text("SELECT consumer, count(*) FROM event_dead_letters GROUP BY consumer")


def dead_letter_counts(session: Session | Connection) -> dict[str, int]:
    return {name: count for name, count in session.execute(_DEAD_COUNTS)}


def outbox_size(session: Session | Connection) -> int:
    return session.execute(_OUTBOX).one()[0]


def consumers(session: Session | Connection, known: Iterable[str] = ()) -> list[ConsumerState]:
    rows = session.execute(_CONSUMERS, {"known": list(known)}).mappings()
    return [ConsumerState(**{**row, "lag_seconds": float(row["lag_seconds"])}) for row in rows]


def overview(session: Session, known: Iterable[str] = ()) -> Overview:
    """The outbox, every consumer (those in `known` too, before they first run) and the dead letters."""
    events, newest = session.execute(_OUTBOX).one()
    dead = [DeadLetter(**row) for row in session.execute(_DEAD).mappings()]
    return Overview(events, newest, consumers(session, known), dead)
