"""The live sales report in-process: what counts, window edges, buckets, grouping, and every bad input."""
from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update

from common.db.models import Item
from tests.factories import make_account, make_item
from tests.svc_report.conftest import add_sale, assert_error, utc

URL = "/v1/reports/sales"


def report(client, account, **params):
    response = client.get(URL, query_string=params, headers=account.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


@pytest.fixture
def shop(db_session):
    """Two buyers, three items and sales in March 1991, plus sales that must not count."""
    alice, bob = make_account(db_session), make_account(db_session)
    tea, rice, soap = (make_item(db_session, price=p) for p in (5000, 75000, 12000))
    add_sale(db_session, alice.id, utc(1991, 3, 1, 0, 0), [(tea, 2, 5000), (rice, 1, 75000)])     # 85,000
    add_sale(db_session, alice.id, utc(1991, 3, 1, 23, 59, 59), [(tea, 1, 5000)])                # 5,000
    add_sale(db_session, bob.id, utc(1991, 3, 2, 10, 0), [(rice, 3, 70000), (soap, 4, 12000)])    # 258,000
    add_sale(db_session, bob.id, utc(1991, 3, 5, 8, 30), [(soap, 1, 12000)])                     # 12,000
    # None of these is paid: never counted, wherever their timestamps fall.
    add_sale(db_session, alice.id, utc(1991, 3, 2, 11, 0), [(rice, 10, 75000)], status="cancelled")
    add_sale(db_session, bob.id, None, [(tea, 7, 5000)], status="awaiting_otp")
    add_sale(db_session, bob.id, None, [(soap, 9, 12000)], status="expired")
    return {"alice": alice, "bob": bob, "tea": tea, "rice": rice, "soap": soap}


def test_totals_equal_the_paid_purchases(client, admin, shop):
    data = report(client, admin, **{"from": "1991-03-01", "to": "1991-04-01", "group_by": "day"})
    assert data["totals"] == {"transactions": 4, "quantity": 2 + 1 + 1 + 3 + 4 + 1,
                              "revenue": 85000 + 5000 + 258000 + 12000}
    assert data["from"] == "1991-03-01T00:00:00Z" and data["to"] == "1991-04-01T00:00:00Z"
    assert data["group_by"] == "day" and data["tz"] == "UTC" and data["currency"] == "IDR"
    assert data["kind"] == "sales"


def test_day_buckets_are_utc_days(client, admin, shop):
    rows = report(client, admin, **{"from": "1991-03-01", "to": "1991-04-01"})["rows"]
    assert [row for row in rows if row["transactions"]] == [
        {"key": "1991-03-01", "transactions": 2, "quantity": 4, "revenue": 90000},
        {"key": "1991-03-02", "transactions": 1, "quantity": 7, "revenue": 258000},
        {"key": "1991-03-05", "transactions": 1, "quantity": 1, "revenue": 12000},
    ]


def test_a_day_report_has_a_row_for_every_day_zero_where_nothing_sold(client, admin, shop):
    rows = report(client, admin, **{"from": "1991-03-01", "to": "1991-04-01"})["rows"]
    assert [row["key"] for row in rows] == [f"1991-03-{d:02d}" for d in range(1, 32)]
    assert rows[2] == {"key": "1991-03-03", "transactions": 0, "quantity": 0, "revenue": 0}
    # A window that ends inside a day includes that day; one that starts inside a day too.
    partial = report(client, admin, **{"from": "1991-03-01T12:00:00Z", "to": "1991-03-03T00:00:01Z"})["rows"]
    assert [row["key"] for row in partial] == ["1991-03-01", "1991-03-02", "1991-03-03"]
    jakarta = report(client, admin, **{"from": "1991-03-01", "to": "1991-03-03", "tz": "Asia/Jakarta"})["rows"]
    assert [row["key"] for row in jakarta] == ["1991-03-01", "1991-03-02"]
    assert report(client, admin, **{"from": "1994-01-01", "to": "1994-02-01"})["rows"][30]["key"] == "1994-01-31"


def test_revenue_past_two_to_the_63_is_exact(client, admin, db_session):
    buyer, item = make_account(db_session), make_item(db_session, price=4 * 10**18)
    for _ in range(3):
        add_sale(db_session, buyer.id, utc(1992, 6, 1, 12), [(item, 2, 4 * 10**18)])  # 8e18 each, under 2^63
    for group_by in ("day", "item", "user"):
        data = report(client, admin, **{"from": "1992-06-01", "to": "1992-06-02", "group_by": group_by})
        assert data["totals"] == {"transactions": 3, "quantity": 6, "revenue": 24 * 10**18}
        assert data["rows"][0]["revenue"] == 24 * 10**18 > 2**63


def test_tz_moves_day_buckets_and_reads_dates_in_that_zone(client, admin, shop):
    # In Jakarta (UTC+7) 1991-03-01 23:59:59Z is already 2 March, and 1991-03-01 starts at 17:00Z on 28 Feb.
    data = report(client, admin, **{"from": "1991-03-01", "to": "1991-04-01", "tz": "Asia/Jakarta"})
    assert data["tz"] == "Asia/Jakarta"
    assert data["from"] == "1991-02-28T17:00:00Z" and data["to"] == "1991-03-31T17:00:00Z"
    assert [(r["key"], r["transactions"], r["revenue"]) for r in data["rows"] if r["transactions"]] == [
        ("1991-03-01", 1, 85000), ("1991-03-02", 2, 263000), ("1991-03-05", 1, 12000)]


def test_group_by_item_counts_each_transaction_once_per_item(client, admin, shop):
    data = report(client, admin, **{"from": "1991-03-01", "to": "1991-04-01", "group_by": "item"})
    rows = {row["key"]: row for row in data["rows"]}
    rice, tea, soap = shop["rice"], shop["tea"], shop["soap"]
    assert rows[rice.id] == {"key": rice.id, "transactions": 2, "quantity": 4, "revenue": 75000 + 210000,
                             "name": rice.name, "sku": rice.sku}
    assert rows[tea.id] == {"key": tea.id, "transactions": 2, "quantity": 3, "revenue": 15000,
                            "name": tea.name, "sku": tea.sku}
    assert rows[soap.id]["transactions"] == 2 and rows[soap.id]["quantity"] == 5
    assert [row["key"] for row in data["rows"]] == [rice.id, soap.id, tea.id]  # revenue, highest first
    assert data["totals"]["transactions"] == 4  # distinct transactions, not lines
    assert sum(row["revenue"] for row in data["rows"]) == data["totals"]["revenue"]


def test_group_by_user_names_the_buyer(client, admin, shop):
    data = report(client, admin, **{"from": "1991-03-01", "to": "1991-04-01", "group_by": "user"})
    alice, bob = shop["alice"], shop["bob"]
    assert data["rows"] == [
        {"key": bob.id, "transactions": 2, "quantity": 8, "revenue": 270000, "username": bob.username},
        {"key": alice.id, "transactions": 2, "quantity": 4, "revenue": 90000, "username": alice.username},
    ]


def test_revenue_is_the_price_paid_not_todays_price(client, admin, shop, db_session):
    db_session.execute(update(Item).where(Item.id == shop["rice"].id).values(price=1))
    rows = report(client, admin, **{"from": "1991-03-02", "to": "1991-03-03", "group_by": "item"})["rows"]
    assert {row["key"]: row["revenue"] for row in rows}[shop["rice"].id] == 210000


def test_window_is_from_inclusive_to_exclusive_to_the_microsecond(client, admin, db_session):
    buyer, item = make_account(db_session), make_item(db_session, price=100)
    edge = utc(1992, 6, 1, 12, 0)
    for moment, quantity in ((edge - timedelta(microseconds=1), 1), (edge, 2),
                             (edge + timedelta(hours=1) - timedelta(microseconds=1), 4),
                             (edge + timedelta(hours=1), 8)):
        add_sale(db_session, buyer.id, moment, [(item, quantity, 100)])
    data = report(client, admin, **{"from": "1992-06-01T12:00:00Z", "to": "1992-06-01T13:00:00Z"})
    assert data["totals"] == {"transactions": 2, "quantity": 6, "revenue": 600}
    # The same instants written with an offset, or without one (read as UTC), select the same sales.
    for start, end in (("1992-06-01T19:00:00+07:00", "1992-06-01T20:00:00+07:00"),
                       ("1992-06-01T12:00:00", "1992-06-01 13:00:00")):
        assert report(client, admin, **{"from": start, "to": end})["totals"] == data["totals"]


def test_a_date_means_midnight_utc(client, admin, db_session):
    buyer, item = make_account(db_session), make_item(db_session, price=100)
    add_sale(db_session, buyer.id, utc(1993, 1, 2, 0, 0), [(item, 1, 100)])
    add_sale(db_session, buyer.id, utc(1993, 1, 1, 23, 59, 59), [(item, 2, 100)])
    assert report(client, admin, **{"from": "1993-01-02", "to": "1993-01-03"})["totals"]["quantity"] == 1
    assert report(client, admin, **{"from": "1993-01-01", "to": "1993-01-02"})["totals"]["quantity"] == 2


def test_an_empty_window_has_no_rows_and_zero_totals(client, admin):
    data = report(client, admin, **{"from": "1994-01-01", "to": "1994-02-01", "group_by": "user"})
    assert data["rows"] == [] and data["totals"] == {"transactions": 0, "quantity": 0, "revenue": 0}


def test_head_works_like_get(client, admin):
    response = client.head(URL, query_string={"from": "1994-01-01", "to": "1994-01-02"}, headers=admin.headers)
    assert response.status_code == 200


@pytest.mark.parametrize("params, field, code", [
    ({"from": "yesterday", "to": "1995-01-02"}, "from", "validation_error"),
    ({"from": "1995-01-01", "to": "1995-02-30"}, "to", "validation_error"),
    ({"from": "1995-13-01", "to": "1995-12-02"}, "from", "validation_error"),
    ({"from": "1995-01-01T25:00:00Z", "to": "1995-01-02"}, "from", "validation_error"),
    ({"from": "1995-01-02", "to": "1995-01-01"}, "to", "invalid_window"),
    ({"from": "1995-01-01", "to": "1995-01-01"}, "to", "invalid_window"),
    ({"from": "1995-01-01T10:00:00Z", "to": "1995-01-01T09:59:59Z"}, "to", "invalid_window"),
    ({"from": "1995-01-01", "to": "1996-01-03"}, "to", "window_too_large"),
    ({"from": "1995-01-01", "to": "1995-01-02", "group_by": "week"}, "group_by", "validation_error"),
    ({"from": "1995-01-01", "to": "1995-01-02", "tz": "Mars/Olympus"}, "tz", "validation_error"),
    ({"from": "1995-01-01", "to": "1995-01-02", "tz": "../../etc/passwd"}, "tz", "validation_error"),
    ({"to": "1995-01-02"}, "from", "validation_error"),
    ({"from": "1995-01-01"}, "to", "validation_error"),
    ({"from": "", "to": "1995-01-02"}, "from", "validation_error"),
    ({"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Jakarta"}, "from", "validation_error"),
])
def test_bad_input_is_422_naming_the_field(client, admin, params, field, code):
    details = assert_error(client.get(URL, query_string=params, headers=admin.headers), 422, code)
    assert field in details["fields"], details


def test_the_window_limit_is_the_setting(client, admin):
    # report_max_window_days is 366 by default: a leap year fits, one day more does not.
    assert len(report(client, admin, **{"from": "1996-01-01", "to": "1997-01-01"})["rows"]) == 366
    assert_error(client.get(URL, query_string={"from": "1996-01-01", "to": "1997-01-01T00:00:01Z"},
                            headers=admin.headers), 422, "window_too_large")


def test_a_customer_gets_403_and_no_session_401(client, customer):
    params = {"from": "1995-01-01", "to": "1995-01-02"}
    assert_error(client.get(URL, query_string=params, headers=customer.headers), 403, "forbidden")
    assert_error(client.get(URL, query_string=params), 401, "unauthorized")
    assert_error(client.get(URL, query_string=params, headers={"Authorization": "Bearer nope"}), 401)


def test_aggregates_run_on_the_replica_when_one_is_configured(client, admin, db_session, monkeypatch):
    """TOKO_REPORT_DATABASE_URL moves the aggregate to its own connection (here: the same server, so the
    replica sees what is committed and nothing of this test's open transaction)."""
    from common.db.session import session_scope
    from svc_report import sales
    from tests.conftest import TEST_DATABASE_URL

    with session_scope() as session:
        buyer, item = make_account(session), make_item(session, price=700)
        add_sale(session, buyer.id, utc(1979, 8, 1, 10), [(item, 3, 700)])
    add_sale(db_session, buyer.id, utc(1979, 8, 1, 11), [(db_session.get(Item, item.id), 1, 700)])
    params = {"from": "1979-08-01", "to": "1979-08-02"}
    assert report(client, admin, **params)["totals"] == {"transactions": 2, "quantity": 4, "revenue": 2800}
    replica = dataclasses.replace(sales.get_settings(), report_database_url=TEST_DATABASE_URL)
    monkeypatch.setattr(sales, "get_settings", lambda: replica)
    on_replica = report(client, admin, **params)
    assert on_replica["totals"] == {"transactions": 1, "quantity": 3, "revenue": 2100}
    # That server is no standby, so there is no lag to state (a real one: tests/cluster).
    assert on_replica["replication_lag_seconds"] is None


def test_threads_asking_at_once_for_the_replica_share_one_engine(monkeypatch):
    """gthread workers run reports side by side: the first aggregates of a process must not each build an
    engine (and a pool) of their own."""
    from common.db import session as engines
    from svc_report import sales

    replica = dataclasses.replace(sales.get_settings(), report_database_url="postgresql://replica.invalid/toko")
    monkeypatch.setattr(sales, "get_settings", lambda: replica)
    monkeypatch.setattr(engines, "_engines", {})
    made = []

    def slow_make_engine(url, **kwargs):
        time.sleep(0.05)  # wide enough a gap for every thread to find the cache empty without the lock
        made.append(real_make_engine(url, **kwargs))
        return made[-1]

    real_make_engine = engines.make_engine
    monkeypatch.setattr(engines, "make_engine", slow_make_engine)
    start = threading.Barrier(16)

    def bind(_):
        start.wait()
        with sales.aggregate_session(None) as reads:  # a replica is configured: the session is not used
            return reads.get_bind()

    with ThreadPoolExecutor(16) as pool:
        binds = set(pool.map(bind, range(16)))
    assert len(made) == 1 and binds == {made[0]}
    assert made[0].url.host == "replica.invalid"
    made[0].dispose()
