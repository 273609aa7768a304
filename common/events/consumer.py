"""The gap-safe reader and the consumer loop: every committed event read once, in order, applied once.

Reading. Sequence numbers are taken at INSERT but become visible at COMMIT, in another order: a reader
that asked for "seq after the last one I saw" would step over an event whose transaction was still open
and never come back for it. So a consumer reads by position (tx_id, seq) after its stored one, and only
below pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction still running: every transaction
below it has committed or rolled back, so no event can appear there any more, and nothing is skipped.
An open writer holds the reader back (that is the lag), never makes it lose an event.

Applying. Each event's id is recorded in applied_events in the same transaction as its effect (and the
new position), so a redelivered event is found and changes nothing, and a crash loses neither. An
event a handler cannot apply is set aside in event_dead_letters with the reason, and the consumer goes
on; `replay` tries it again.
"""

from __future__ import annotations

import logging
import random
import select
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.events.bell import CHANNEL
from common.events.outbox import utc
from common.settings import get_settings
from common.worker import Worker

log = logging.getLogger("toko.events")


@dataclass(frozen=True)
class Event:
    """One outbox row, with its position."""

    id: uuid.UUID
    type: str
    version: int
    aggregate_type: str
    aggregate_id: str
    occurred_at: datetime
    data: Any
    tx_id: str
    seq: int

    def envelope(self) -> dict:
        """The event as the contract writes it (and a broker would carry it)."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "aggregate": {"type": self.aggregate_type, "id": self.aggregate_id},
            "occurred_at": utc(self.occurred_at),
            "data": self.data,
        }


Handler = Callable[[Session, Event], None]

_COLUMNS = "id, type, version, aggregate_type, aggregate_id, occurred_at, data, tx_id::text AS tx_id, seq"
# After the consumer's stored position (the start when it has none).
_AFTER_POSITION = """
    (tx_id, seq) > (
        coalesce((SELECT position_tx_id FROM event_consumers WHERE name = :name), '0'::xid8),
        coalesce((SELECT position_seq FROM event_consumers WHERE name = :name), 0))
"""
# One statement: the stored position and the horizon come from the same snapshot as the rows.
_READ = text(f"""
    SELECT {_COLUMNS} FROM outbox_events
    WHERE {_AFTER_POSITION}
      AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY tx_id, seq
    LIMIT :limit
""").columns(id=Uuid())
# One consumer of a name at a time, however many processes run it; no transaction id is taken (a row
# lock would take one, and this transaction's own id would then hold its own reads back).
_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(hashtext('toko.events:' || :name))")
_MOVE = text("""
    INSERT INTO event_consumers (name, position_tx_id, position_seq, updated_at)
    VALUES (:name, CAST(:tx_id AS xid8), :seq, now())
    ON CONFLICT (name) DO UPDATE
    SET position_tx_id = excluded.position_tx_id, position_seq = excluded.position_seq, updated_at = now()
""")
_CLAIM = text("""
    INSERT INTO applied_events (consumer, event_id) VALUES (:name, :id)
    ON CONFLICT DO NOTHING RETURNING event_id
""")
_SET_ASIDE = text("""
    INSERT INTO event_dead_letters (consumer, event_id, reason) VALUES (:name, :id, :reason)
    ON CONFLICT (consumer, event_id) DO UPDATE SET reason = excluded.reason, at = now()
""")
_PRUNE = text("""
    DELETE FROM applied_events WHERE consumer = :name AND event_id IN (
        SELECT event_id FROM applied_events
        WHERE consumer = :name AND applied_at < now() - make_interval(days => :days) LIMIT :limit)
""")
# Events this consumer has not read yet, committed or not visible to its reads yet.
BACKLOG = text(f"SELECT count(*) FROM outbox_events WHERE {_AFTER_POSITION}")
# Seconds between the oldest event this consumer has not read yet and now; 0 when it has read them all.
LAG = text(f"""
    SELECT coalesce(extract(epoch FROM now() - min(occurred_at)), 0) FROM (
        SELECT occurred_at FROM outbox_events WHERE {_AFTER_POSITION} ORDER BY tx_id, seq LIMIT 1
    ) AS oldest
""")
PRUNE_EVERY_SECONDS = 3600.0
# How soon a consumer looks again when events wait behind an open transaction.
HELD_BACK_SECONDS = 0.1


def _reason(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return f"{type(orig or error).__name__}: {orig or error}"[:1000]


class Consumer:
    """A named reader of the outbox that applies the event types it has handlers for."""

    def __init__(self, name: str, handlers: Mapping[str, Handler]) -> None:
        self.name, self.handlers = name, dict(handlers)
        # The test switch's redeliveries and their order (a test may seed it to replay a failure).
        self.redelivery = random.Random()
        self._last_prune = 0.0

    def read(self, session: Session, limit: int) -> list[Event]:
        """The next committed events after this consumer's position, in order (the gap-safe read)."""
        rows = session.execute(_READ, {"name": self.name, "limit": limit}).mappings()
        return [Event(**row) for row in rows]

    def backlog(self, session: Session) -> int:
        """How many events in the outbox this consumer has not read yet."""
        return session.execute(BACKLOG, {"name": self.name}).scalar_one()

    def tick(self, session: Session) -> int:
        """Read a batch and apply it, in the caller's transaction (the Worker commits it); how many read."""
        settings = get_settings()
        session.execute(_EXCLUSIVE, {"name": self.name})
        events = self.read(session, settings.events_batch)
        for event in self._deliveries(events):
            self._apply(session, event)
        if events:
            last = events[-1]
            session.execute(_MOVE, {"name": self.name, "tx_id": last.tx_id, "seq": last.seq})
        return len(events)

    def _deliveries(self, events: list[Event]) -> list[Event]:
        """The events as delivered: in test mode each two or three times, out of order, as a broker may."""
        settings = get_settings()
        if not (settings.env == "test" and settings.events_test_redeliver):
            return events
        repeated = [event for event in events for _ in range(self.redelivery.choice((2, 3)))]
        self.redelivery.shuffle(repeated)
        return repeated

    def _apply(self, session: Session, event: Event) -> bool:
        """Apply one event once, or set it aside when its handler fails; True when it is applied."""
        handler = self.handlers.get(event.type)
        if handler is None:
            return True
        try:
            with session.begin_nested():
                if session.execute(_CLAIM, {"name": self.name, "id": event.id}).first() is not None:
                    handler(session, event)
            return True
        except Exception as error:  # noqa: BLE001 - one bad event must not stop the others
            if isinstance(error, DBAPIError) and error.connection_invalidated:
                raise  # the database is gone, not the event: the whole batch is read again
            with session.begin_nested():
                session.execute(_SET_ASIDE, {"name": self.name, "id": event.id, "reason": _reason(error)})
            log.warning(
                "event set aside",
                extra={"consumer": self.name, "event_id": str(event.id), "error": _reason(error)},
            )
            return False

    def replay(self, session: Session, event_id: uuid.UUID) -> bool:
        """Apply a dead letter again; on success it leaves the dead letters. False when it fails again."""
        row = (
            session.execute(
                text(f"SELECT {_COLUMNS} FROM outbox_events WHERE id = :id").columns(id=Uuid()),
                {"id": event_id},
            )
            .mappings()
            .first()
        )
        if row is None:
            raise LookupError(f"no event {event_id}")
        if not self._apply(session, Event(**row)):
            return False
        session.execute(
            text("DELETE FROM event_dead_letters WHERE consumer = :name AND event_id = :id"),
            {"name": self.name, "id": event_id},
        )
        return True

    def prune(self, session: Session, limit: int = 10_000) -> int:
        """Forget applied-event records older than TOKO_EVENTS_APPLIED_RETENTION_DAYS."""
        days = get_settings().events_applied_retention_days
        result: Any = session.execute(_PRUNE, {"name": self.name, "days": days, "limit": limit})
        return result.rowcount


class ConsumerWorker(Worker):
    """A consumer as a supervisor program: woken by the bell (LISTEN), polling every TOKO_EVENTS_POLL_MS."""

    def __init__(self, consumer: Consumer, *, service: str) -> None:
        super().__init__(
            consumer.name, self._tick, service=service, idle_seconds=get_settings().events_poll_ms / 1000
        )
        self.consumer = consumer
        self._listener: Any = None
        self._since_prune = 0.0
        self._held_back = False

    def _tick(self, session: Session) -> int:
        read = self.consumer.tick(session)
        # Nothing readable, yet events wait: committed ones behind an open writer (the horizon is the
        # whole server's oldest open transaction), or ones about to commit. The bell has rung already.
        self._held_back = not read and self.consumer.backlog(session) > 0
        if not read and self._since_prune <= 0:
            self.consumer.prune(session)
            self._since_prune = PRUNE_EVERY_SECONDS
        return read

    def idle(self, seconds: float) -> None:
        if self._held_back:
            seconds = min(seconds, HELD_BACK_SECONDS)
        self._since_prune -= seconds
        listener = self._listen()
        if listener is None:
            self.stopping.wait(seconds)
            return
        try:
            # Woken by a NOTIFY, or after `seconds` whatever happened (the polling fallback).
            ready, _, _ = select.select([listener], [], [], seconds)
            if ready:
                listener.poll()
                listener.notifies.clear()
        except Exception as exc:  # noqa: BLE001 - a broken listener falls back to polling
            log.warning("events listener lost", extra={"consumer": self.name, "error": _reason(exc)})
            self._close_listener()

    def _listen(self) -> Any:
        if self._listener is not None:
            return self._listener
        settings = get_settings()
        if not settings.events_listen:
            return None
        import psycopg2

        url = make_url(settings.database_url_for(self.service)).set(drivername="postgresql")
        try:
            listener = psycopg2.connect(
                url.render_as_string(hide_password=False),
                connect_timeout=settings.db_connect_timeout,
                application_name=f"toko-{self.name}-listen",
            )
            listener.autocommit = True
            with listener.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # noqa: BLE001 - polling goes on without the bell
            log.warning("events listener unavailable", extra={"consumer": self.name, "error": _reason(exc)})
            return None
        self._listener = listener
        return listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._close_listener()
