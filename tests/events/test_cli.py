"""`toko events` and `toko events replay`, and the pruning of applied-event records, on the run's database."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone

from click.testing import CliRunner
from sqlalchemy import text

from common.db.session import get_engine, session_factory
from common.events import record
from common.events.consumer import Consumer
from svc_report import projection
from tests.events.conftest import drain
from toko.cli import main


def toko(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def paid(transaction_id: int, status: str = "paid") -> dict:
    return {"id": transaction_id, "user_id": 1, "status": status, "total": 10, "currency": "IDR",
            "paid_at": datetime.now(timezone.utc).isoformat(), "created_at": None, "confirm_by": None,
            "cancelled_at": None, "lines": [{"item_id": 1, "quantity": 1, "unit_price": 10, "subtotal": 10}]}


def test_events_shows_each_consumer_and_a_dead_letter_that_replay_applies_once_it_can(database_url):
    transaction_id = 10**15 + uuid.uuid4().int % 10**9  # no real transaction has it
    with get_engine().begin() as conn:
        [event_id] = record(conn, "transaction.paid", ("transaction", transaction_id),
                            paid(transaction_id, status="refunded"))
    drain(projection.projector(), session_factory())
    code, out = toko("events")
    assert code == 0, out
    assert re.search(r"consumer svc_report_projector: position \(\d+, \d+\), \d+ behind, lag [\d.]+ s", out), out
    assert f"{event_id} transaction.paid for svc_report_projector" in out
    assert "ValueError: unknown status 'refunded'" in out

    code, out = toko("events", "replay", str(event_id))
    assert code == 1 and "is still a dead letter" in out and "unknown status" in out
    # What a fixed consumer would now accept (the outbox's owner may correct a row; the services may not).
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE outbox_events SET data = CAST(:d AS jsonb) WHERE id = :id"),
                     {"d": json.dumps(paid(transaction_id)), "id": event_id})
    code, out = toko("events", "replay", str(event_id))
    assert code == 0 and f"applied {event_id} for svc_report_projector" in out
    with get_engine().connect() as conn:
        assert conn.scalar(text("SELECT status FROM projected_sales WHERE id = :i"), {"i": transaction_id}) == "paid"
        assert conn.scalar(text("SELECT count(*) FROM event_dead_letters WHERE event_id = :e"),
                           {"e": event_id}) == 0
    code, out = toko("events", "replay", str(event_id))
    assert code == 1 and f"no dead letter {event_id}" in out


def test_a_consumer_that_never_ran_is_shown_behind_from_the_start(database_url, monkeypatch):
    from toko import cli

    monkeypatch.setitem(cli.CONSUMERS, "test_never_ran", ("svc_report.projection", "projector"))
    code, out = toko("events")
    assert code == 0 and "consumer test_never_ran: position (0, 0)" in out and "moved never" in out


def test_applied_records_older_than_the_retention_are_pruned(database_url, environment):
    environment(TOKO_EVENTS_APPLIED_RETENTION_DAYS="7")
    consumer = Consumer(f"test-prune-{uuid.uuid4().hex[:8]}", {})
    old, recent = uuid.uuid4(), uuid.uuid4()
    with get_engine().begin() as conn:
        conn.execute(text("INSERT INTO applied_events (consumer, event_id, applied_at) VALUES "
                          "(:c, :old, now() - interval '8 days'), (:c, :recent, now() - interval '6 days')"),
                     {"c": consumer.name, "old": old, "recent": recent})
    with session_factory()() as session:
        assert consumer.prune(session) == 1
        session.commit()
    with get_engine().connect() as conn:
        assert list(conn.scalars(text("SELECT event_id FROM applied_events WHERE consumer = :c"),
                                 {"c": consumer.name})) == [recent]
