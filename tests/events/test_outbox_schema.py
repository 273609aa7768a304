"""The outbox's grants: the services that change things append events; the consumers read them."""
from __future__ import annotations

import pytest

from tests.common.test_roles import as_role, attempt

APPEND = ("INSERT INTO outbox_events (type, aggregate_type, aggregate_id, data) "
          "VALUES ('item.created', 'item', '1', '{}')")
CASES = [
    ("user", APPEND, "ok"),
    ("item", APPEND, "ok"),
    ("transaction", APPEND, "ok"),
    ("report", APPEND, "denied"),
    ("otp", APPEND, "denied"),
    # An event, once committed, is a fact: no writer may change or remove one.
    ("transaction", "UPDATE outbox_events SET data = '{}'", "denied"),
    ("item", "DELETE FROM outbox_events", "denied"),
    ("report", "SELECT count(*) FROM outbox_events", "ok"),
    ("otp", "SELECT count(*) FROM outbox_events", "ok"),
    ("item", "SELECT count(*) FROM outbox_events", "denied"),
    ("report", "INSERT INTO event_consumers (name) VALUES ('x')", "ok"),
    ("report", "INSERT INTO applied_events (consumer, event_id) VALUES ('x', gen_random_uuid())", "ok"),
    ("report", "INSERT INTO event_dead_letters (consumer, event_id, reason) VALUES ('x', gen_random_uuid(), 'r')",
     "ok"),
    ("transaction", "INSERT INTO event_consumers (name) VALUES ('x')", "denied"),
]


@pytest.mark.parametrize("service, sql, expected", CASES)
def test_writers_append_and_consumers_read(database_url, service, sql, expected):
    engine = as_role(database_url, service)
    try:
        assert attempt(engine, sql) == expected
    finally:
        engine.dispose()


def test_an_event_takes_its_writer_s_transaction_id_and_a_sequence_number(db_session):
    from sqlalchemy import text

    db_session.execute(text(APPEND))
    db_session.execute(text(APPEND))
    rows = db_session.execute(text(
        "SELECT tx_id = pg_current_xact_id(), seq FROM outbox_events ORDER BY seq DESC LIMIT 2")).all()
    assert [same for same, _ in rows] == [True, True]
    assert rows[0].seq == rows[1].seq + 1
