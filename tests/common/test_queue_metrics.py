"""The workers' queues on /metrics: each read at scrape time by its owning service, under that service's role."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.factories import make_account, make_awaiting_transaction

HOUR = 3600


def scrape(make_client, db_session, service: str) -> dict[tuple[str, str, str], float]:
    """The service's queue gauges, scraped as its own PostgreSQL role would read them."""
    client = make_client(service)
    # SET LOCAL: the role holds to the end of the test's transaction, which the fixture rolls back.
    db_session.execute(text(f"SET LOCAL ROLE toko_{service}"))
    assert db_session.execute(text("SELECT current_user")).scalar_one() == f"toko_{service}"
    response = client.get("/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name in ("toko_queue_depth", "toko_queue_oldest_age_seconds"):
                labels = sample.labels
                assert labels["service"] == service
                found[(sample.name, labels["queue"], labels["state"])] = sample.value
    return found


def age_an_hour(db_session, table: str, ids) -> None:
    db_session.execute(text(f"UPDATE {table} SET created_at = now() - interval '1 hour' WHERE id = ANY(:ids)"),
                       {"ids": list(ids)})


def test_otp_messages_waiting_to_be_sent(make_client, db_session):
    ids = db_session.execute(text("""
        INSERT INTO otp_messages (channel, destination, body, status)
        VALUES ('email', 'a@example.test', 'code 1', 'pending'), ('email', 'b@example.test', 'code 2', 'pending')
        RETURNING id
    """)).scalars().all()
    age_an_hour(db_session, "otp_messages", ids[:1])
    found = scrape(make_client, db_session, "otp")
    assert found[("toko_queue_depth", "otp_messages", "pending")] >= 2
    assert found[("toko_queue_oldest_age_seconds", "otp_messages", "pending")] >= HOUR


def test_purchases_awaiting_their_code(make_client, db_session):
    buyer = make_account(db_session)
    ids = [make_awaiting_transaction(db_session, buyer.id) for _ in range(3)]
    age_an_hour(db_session, "transactions", ids[1:2])
    found = scrape(make_client, db_session, "transaction")
    assert found[("toko_queue_depth", "transactions", "awaiting_otp")] >= 3
    assert found[("toko_queue_oldest_age_seconds", "transactions", "awaiting_otp")] >= HOUR


def test_report_jobs_queued_and_running(make_client, db_session):
    admin = make_account(db_session, "admin")
    ids = db_session.execute(text("""
        INSERT INTO report_jobs (kind, params, status, requested_by, started_at)
        VALUES ('sales', '{}', 'queued', :u, NULL), ('sales', '{}', 'running', :u, now() - interval '2 hours')
        RETURNING id
    """), {"u": admin.id}).scalars().all()
    age_an_hour(db_session, "report_jobs", ids[:1])
    found = scrape(make_client, db_session, "report")
    assert found[("toko_queue_depth", "report_jobs", "queued")] >= 1
    assert found[("toko_queue_depth", "report_jobs", "running")] >= 1
    assert found[("toko_queue_oldest_age_seconds", "report_jobs", "queued")] >= HOUR
    # A running job's age counts from its start.
    assert found[("toko_queue_oldest_age_seconds", "report_jobs", "running")] >= 2 * HOUR


@pytest.mark.parametrize("service", ["otp", "transaction", "report"])
def test_an_empty_queue_reads_zero_not_nothing(make_client, db_session, service):
    tables = {"otp": "otp_messages", "transaction": "transactions", "report": "report_jobs"}
    # Only in this test's transaction, rolled back afterwards: the queues of the run's database stay.
    db_session.execute(text(f"DELETE FROM {tables[service]}"))
    found = scrape(make_client, db_session, service)
    assert found and set(found.values()) == {0}
