"""Each change writes its event in its own transaction: exactly once, none on rollback or replay."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text, update

from common.db.models import Transaction
from common.db.session import get_engine
from common.settings import get_settings
from svc_transaction import service as transactions
from svc_transaction import worker
from tests.conftest import unique
from tests.events.conftest import events_of, types_of
from tests.factories import PASSWORD, make_account, make_item
from tests.svc_transaction.conftest import make_otp


@pytest.fixture
def buyer(db_session):
    return make_account(db_session)


@pytest.fixture
def shop(make_client):
    return make_client("transaction")


def buy(shop, account, item, quantity=1, **headers):
    response = shop.post("/v1/transactions", json={"lines": [{"item_id": item.id, "quantity": quantity}]},
                         headers={**account.headers, **headers})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["data"]


def test_a_purchase_paid_at_once_writes_created_and_paid_with_the_transaction_as_shown(shop, db_session, buyer):
    item = make_item(db_session, price=1500, stock=5)
    shown = buy(shop, buyer, item, 2)
    events = events_of(db_session, "transaction", shown["id"])
    assert [e["type"] for e in events] == ["transaction.created", "transaction.paid"]
    assert all(e["data"] == shown and e["version"] == 1 for e in events)
    # One statement, in the purchase's own transaction: one transaction id, created before paid.
    assert events[0]["tx_id"] == events[1]["tx_id"] and events[0]["seq"] < events[1]["seq"]
    assert shown["status"] == "paid" and shown["lines"][0]["subtotal"] == 3000


def test_a_purchase_awaiting_its_code_writes_created_then_paid_once_confirmed(shop, db_session, buyer):
    item = make_item(db_session, price=get_settings().otp_threshold, stock=5)
    shown = buy(shop, buyer, item)
    assert shown["status"] == "awaiting_otp"
    assert types_of(db_session, "transaction", shown["id"]) == ["transaction.created"]
    response = shop.post(f"/v1/transactions/{shown['id']}/confirm",
                         json={"otp_id": str(make_otp(db_session, buyer.id, shown["id"]))}, headers=buyer.headers)
    assert response.status_code == 200
    events = events_of(db_session, "transaction", shown["id"])
    assert [e["type"] for e in events] == ["transaction.created", "transaction.paid"]
    assert events[0]["data"] == shown and events[1]["data"] == response.get_json()["data"]
    # A refused second confirmation changes nothing, so it writes nothing.
    again = shop.post(f"/v1/transactions/{shown['id']}/confirm",
                      json={"otp_id": str(make_otp(db_session, buyer.id, shown["id"]))}, headers=buyer.headers)
    assert again.status_code == 409
    assert len(events_of(db_session, "transaction", shown["id"])) == 2


def test_a_cancellation_writes_cancelled_and_a_refused_one_nothing(shop, db_session, buyer):
    shown = buy(shop, buyer, make_item(db_session, price=100, stock=5))
    cancelled = shop.delete(f"/v1/transactions/{shown['id']}", headers=buyer.headers)
    assert cancelled.status_code == 200
    assert shop.delete(f"/v1/transactions/{shown['id']}", headers=buyer.headers).status_code == 409
    events = events_of(db_session, "transaction", shown["id"])
    assert [e["type"] for e in events] == ["transaction.created", "transaction.paid", "transaction.cancelled"]
    assert events[-1]["data"] == cancelled.get_json()["data"]


def test_the_expiry_worker_writes_expired_for_each_transaction_it_expires(shop, db_session, buyer):
    item = make_item(db_session, price=get_settings().otp_threshold, stock=5)
    first, second = buy(shop, buyer, item), buy(shop, buyer, item)
    db_session.execute(update(Transaction).where(Transaction.id.in_([first["id"], second["id"]]))
                       .values(confirm_by=func.now()))
    assert worker.tick(db_session) >= 2
    for shown in (first, second):
        events = events_of(db_session, "transaction", shown["id"])
        assert [e["type"] for e in events] == ["transaction.created", "transaction.expired"]
        now_shown = shop.get(f"/v1/transactions/{shown['id']}", headers=buyer.headers).get_json()["data"]
        assert now_shown["status"] == "expired" and events[-1]["data"] == now_shown
    assert worker.tick(db_session) == 0
    assert len(events_of(db_session, "transaction", first["id"])) == 2


def test_an_idempotent_replay_writes_no_event(shop, db_session, buyer):
    item = make_item(db_session, price=100, stock=5)
    key = {"Idempotency-Key": unique("key-")}
    first, again = buy(shop, buyer, item, **key), buy(shop, buyer, item, **key)
    assert again["id"] == first["id"]
    assert types_of(db_session, "transaction", first["id"]) == ["transaction.created", "transaction.paid"]
    count = db_session.scalar(text("SELECT count(*) FROM outbox_events WHERE data->>'user_id' = :u"),
                              {"u": str(buyer.id)})
    assert count == 2


def test_a_refused_purchase_writes_no_event(shop, db_session, buyer):
    plenty, short = make_item(db_session, stock=5), make_item(db_session, stock=1)
    before = db_session.scalar(select(func.count()).select_from(text("outbox_events")))
    response = shop.post("/v1/transactions", headers=buyer.headers, json={
        "lines": [{"item_id": plenty.id, "quantity": 1}, {"item_id": short.id, "quantity": 2}]})
    assert response.status_code == 409
    assert db_session.scalar(select(func.count()).select_from(text("outbox_events"))) == before


def test_a_rolled_back_purchase_leaves_no_event_and_a_committed_one_leaves_its_own(database_url):
    engine = get_engine()
    with engine.begin() as conn:
        user_id = conn.execute(text(
            "INSERT INTO users (username, email, password_hash) VALUES (:u, :u || '@example.test', 'x') "
            "RETURNING id"), {"u": unique("rb")}).scalar_one()
        item_id = conn.execute(text(
            "INSERT INTO items (sku, name, price, stock) VALUES (:s, 'x', 10, 10) RETURNING id"),
            {"s": unique("RB-")}).scalar_one()
    with engine.connect() as conn:
        with conn.begin() as txn:
            rolled_back = transactions.purchase(conn, user_id, [{"item_id": item_id, "quantity": 1}])
            txn.rollback()
        with conn.begin():
            kept = transactions.purchase(conn, user_id, [{"item_id": item_id, "quantity": 1}])
        assert types_of(conn, "transaction", rolled_back.id) == []
        assert types_of(conn, "transaction", kept.id) == ["transaction.created", "transaction.paid"]


def test_an_admin_s_catalogue_changes_write_item_events(make_client, db_session):
    items = make_client("item")
    admin = make_account(db_session, "admin")
    created = items.post("/v1/items", json={"sku": unique("EV-"), "name": "Kopi", "price": 100, "stock": 3},
                         headers=admin.headers)
    assert created.status_code == 201
    item = created.get_json()["data"]
    changed = items.patch(f"/v1/items/{item['id']}", json={"price": 120}, headers=admin.headers)
    assert changed.status_code == 200
    assert items.delete(f"/v1/items/{item['id']}", headers=admin.headers).status_code == 204
    assert items.delete(f"/v1/items/{item['id']}", headers=admin.headers).status_code == 404
    events = events_of(db_session, "item", item["id"])
    assert [e["type"] for e in events] == ["item.created", "item.changed", "item.deleted"]
    assert events[0]["data"] == item and events[1]["data"] == changed.get_json()["data"]
    assert events[2]["data"] == {"id": item["id"], "sku": item["sku"]}


def test_stock_a_purchase_takes_travels_in_the_transaction_events_not_as_item_changed(shop, db_session, buyer):
    item = make_item(db_session, price=100, stock=5)
    buy(shop, buyer, item)
    assert types_of(db_session, "item", item.id) == []


def test_a_registration_writes_user_registered_without_any_secret(make_client, db_session):
    users = make_client("user")
    name = unique("reg")
    response = users.post("/v1/users", json={"username": name, "email": f"{name}@example.test",
                                             "password": PASSWORD})
    assert response.status_code == 201
    shown = response.get_json()["data"]
    [event] = events_of(db_session, "user", shown["id"])
    assert event["type"] == "user.registered" and event["data"] == shown
    assert PASSWORD not in json.dumps(event["data"]) and "hash" not in json.dumps(event["data"])


def test_a_purchase_sends_no_notify_of_its_own_the_bell_rings_after_it(database_url, environment):
    """A NOTIFY inside the purchase would take the database-wide notify lock at its commit."""
    import select

    import psycopg2

    from common.events import CHANNEL

    listener = psycopg2.connect(database_url)
    listener.autocommit = True
    listener.cursor().execute(f"LISTEN {CHANNEL}")

    def rung(within: float) -> bool:
        if select.select([listener], [], [], within)[0]:
            listener.poll()
        found = bool(listener.notifies)
        listener.notifies.clear()
        return found

    engine = get_engine()
    with engine.begin() as conn:
        user_id = conn.execute(text(
            "INSERT INTO users (username, email, password_hash) VALUES (:u, :u || '@example.test', 'x') "
            "RETURNING id"), {"u": unique("nt")}).scalar_one()
        item_id = conn.execute(text(
            "INSERT INTO items (sku, name, price, stock) VALUES (:s, 'x', 10, 10) RETURNING id"),
            {"s": unique("NT-")}).scalar_one()
    try:
        rung(0.3)  # whatever earlier tests rang
        for bell_ms, expected in (("0", False), ("20", True)):
            environment(TOKO_EVENTS_BELL_MS=bell_ms)
            with engine.begin() as conn:
                transactions.purchase(conn, user_id, [{"item_id": item_id, "quantity": 1}])
            assert rung(1.0) is expected, bell_ms
    finally:
        listener.close()
