"""GET /v1/reports/sales?source=: the shared tables (the default) or the projection kept from events."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from common.db.session import get_engine, session_factory
from svc_report import projection
from svc_transaction import service as transactions
from tests.events.conftest import drain
from tests.factories import committed_account, committed_item, make_account

URL = "/v1/reports/sales"


@pytest.fixture
def reports(make_client):
    return make_client("report")


def window() -> dict:
    today = datetime.now(timezone.utc).date()
    return {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=2))}


def test_both_sources_give_the_buyer_s_row_once_the_projector_has_applied_the_events(reports):
    # Committed, not in the test's transaction: an open writer holds every consumer back (that is the lag).
    admin = committed_account("admin")
    buyer = committed_account()
    item = committed_item(price=700, stock=10)
    with get_engine().connect() as conn:
        for quantity in (1, 2, 3):
            with conn.begin():
                sale = transactions.purchase(conn, buyer.id, [{"item_id": item, "quantity": quantity}])
    with session_factory()() as session:
        transactions.cancel(session, _as(buyer), sale.id)  # the 3 units: paid, then cancelled
        session.commit()
    drain(projection.projector(), session_factory())
    answers = {}
    for source in ("tables", "events"):
        response = reports.get(URL, query_string={**window(), "group_by": "user", "source": source},
                               headers=admin.headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert set(body) == {"data", "meta"} and body["meta"]["source"] == source
        assert isinstance(body["meta"]["lag_seconds"], (int, float)) and body["meta"]["lag_seconds"] >= 0
        answers[source] = [row for row in body["data"]["rows"] if row["key"] == buyer.id]
    assert answers["events"] == answers["tables"] == [
        {"key": buyer.id, "transactions": 2, "quantity": 3, "revenue": 2100, "username": buyer.username}]


def test_the_tables_are_the_default_and_never_lag(reports, db_session):
    admin = make_account(db_session, "admin")
    response = reports.get(URL, query_string=window(), headers=admin.headers)
    assert response.status_code == 200
    assert response.get_json()["meta"] == {"source": "tables", "lag_seconds": 0}


@pytest.mark.parametrize("source", ["replica", "EVENTS", ""])
def test_any_other_source_is_422_naming_the_field(reports, db_session, source):
    admin = make_account(db_session, "admin")
    response = reports.get(URL, query_string={**window(), "source": source}, headers=admin.headers)
    assert response.status_code == 422
    assert "source" in response.get_json()["error"]["details"]["fields"]


def _as(account):
    from common.principal import Principal

    now = datetime.now(timezone.utc)
    return Principal(0, account.id, account.username, "customer", True, now, now, now)
