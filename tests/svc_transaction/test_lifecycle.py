"""Confirm, cancel, reading and the expiry worker, in process."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from common.db.models import IdempotencyKey, Item, Transaction
from common.settings import get_settings
from svc_transaction import worker
from tests.factories import make_item
from tests.svc_transaction.conftest import assert_error, make_otp


def stock(db_session, item_id) -> int:
    return db_session.scalar(select(Item.stock).where(Item.id == item_id))


def purchase(client, account, item, quantity=1):
    response = client.post("/v1/transactions", json={"lines": [{"item_id": item.id, "quantity": quantity}]},
                           headers=account.headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["data"]


@pytest.fixture
def pricey(db_session):
    """An item whose single unit reaches the OTP threshold."""
    return make_item(db_session, price=get_settings().otp_threshold, stock=10)


def overdue(db_session, transaction_id):
    db_session.execute(update(Transaction).where(Transaction.id == transaction_id)
                       .values(confirm_by=func.now() - timedelta(seconds=1)))


def confirm(client, account, transaction_id, otp_id):
    return client.post(f"/v1/transactions/{transaction_id}/confirm", json={"otp_id": str(otp_id)},
                       headers=account.headers)


# --- confirm ------------------------------------------------------------------------------------------

def test_a_verified_otp_for_the_transaction_pays_it_once(client, db_session, buyer, pricey):
    txn = purchase(client, buyer, pricey, 2)
    assert txn["status"] == "awaiting_otp"
    otp = make_otp(db_session, buyer.id, txn["id"])
    response = confirm(client, buyer, txn["id"], otp)
    assert response.status_code == 200, response.get_data(as_text=True)
    paid = response.get_json()["data"]
    assert paid["status"] == "paid" and paid["paid_at"] and paid["id"] == txn["id"]
    assert paid["lines"] == txn["lines"] and paid["total"] == txn["total"]
    assert db_session.get(Transaction, txn["id"]).confirm_otp_id == otp
    assert stock(db_session, pricey.id) == 8
    details = assert_error(confirm(client, buyer, txn["id"], otp), 409, "transaction_not_awaiting_otp")
    assert details["status"] == "paid"


def test_an_unverified_otp_is_refused(client, db_session, buyer, pricey):
    txn = purchase(client, buyer, pricey)
    for status in ("pending", "locked", "replaced"):
        otp = make_otp(db_session, buyer.id, txn["id"], status=status)
        assert_error(confirm(client, buyer, txn["id"], otp), 422, "otp_not_verified")
    assert client.get(f"/v1/transactions/{txn['id']}", headers=buyer.headers).get_json()["data"]["status"] \
        == "awaiting_otp"


def test_an_otp_made_for_something_else_is_a_mismatch(client, db_session, buyer, other, pricey):
    txn = purchase(client, buyer, pricey)
    second = purchase(client, buyer, pricey)
    someone_elses = purchase(client, other, pricey)
    for otp in (make_otp(db_session, buyer.id, second["id"]),
                make_otp(db_session, buyer.id, txn["id"], purpose="verify_account"),
                make_otp(db_session, other.id, txn["id"]),
                make_otp(db_session, other.id, someone_elses["id"]),
                uuid.uuid4()):
        details = assert_error(confirm(client, buyer, txn["id"], otp), 422, "otp_mismatch")
        assert "otp_id" in details["fields"]
    assert db_session.get(Transaction, txn["id"]).status == "awaiting_otp"


def test_confirming_a_paid_or_cancelled_transaction_is_409(client, db_session, buyer, pricey):
    cheap = purchase(client, buyer, make_item(db_session, price=1, stock=1))
    otp = make_otp(db_session, buyer.id, cheap["id"])
    assert_error(confirm(client, buyer, cheap["id"], otp), 409, "transaction_not_awaiting_otp")
    txn = purchase(client, buyer, pricey)
    assert client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers).status_code == 200
    otp = make_otp(db_session, buyer.id, txn["id"])
    assert assert_error(confirm(client, buyer, txn["id"], otp), 409,
                        "transaction_not_awaiting_otp")["status"] == "cancelled"


def test_confirming_after_the_window_is_410(client, db_session, buyer, pricey):
    txn = purchase(client, buyer, pricey)
    otp = make_otp(db_session, buyer.id, txn["id"])
    overdue(db_session, txn["id"])
    assert_error(confirm(client, buyer, txn["id"], otp), 410, "transaction_expired")
    worker.tick(db_session)
    assert_error(confirm(client, buyer, txn["id"], otp), 410, "transaction_expired")


def test_only_the_buyer_confirms(client, db_session, buyer, other, admin, pricey):
    txn = purchase(client, buyer, pricey)
    otp = make_otp(db_session, buyer.id, txn["id"])
    assert_error(confirm(client, other, txn["id"], otp), 404, "not_found")
    assert_error(confirm(client, admin, txn["id"], otp), 403, "forbidden")
    assert_error(confirm(client, buyer, 10**15, otp), 404, "not_found")
    assert confirm(client, buyer, txn["id"], otp).status_code == 200


@pytest.mark.parametrize("body", [{}, {"otp_id": "not-a-uuid"}, {"otp_id": 5},
                                  {"otp_id": str(uuid.uuid4()), "code": "123456"}])
def test_a_malformed_confirm_is_422(client, buyer, pricey, body):
    txn = purchase(client, buyer, pricey)
    response = client.post(f"/v1/transactions/{txn['id']}/confirm", json=body, headers=buyer.headers)
    assert_error(response, 422, "validation_error")


# --- cancel -------------------------------------------------------------------------------------------

def test_cancel_returns_the_stock_once_and_keeps_the_record(client, db_session, buyer):
    a, b = make_item(db_session, stock=5), make_item(db_session, stock=5)
    response = client.post("/v1/transactions", headers=buyer.headers, json={
        "lines": [{"item_id": a.id, "quantity": 2}, {"item_id": b.id, "quantity": 5}]})
    txn = response.get_json()["data"]
    assert (stock(db_session, a.id), stock(db_session, b.id)) == (3, 0)
    cancelled = client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers)
    assert cancelled.status_code == 200
    data = cancelled.get_json()["data"]
    assert data["status"] == "cancelled" and data["cancelled_at"] and data["lines"] == txn["lines"]
    assert data["paid_at"] == txn["paid_at"]
    assert (stock(db_session, a.id), stock(db_session, b.id)) == (5, 5)
    again = client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers)
    assert assert_error(again, 409, "transaction_not_cancellable")["status"] == "cancelled"
    assert (stock(db_session, a.id), stock(db_session, b.id)) == (5, 5)
    assert client.get(f"/v1/transactions/{txn['id']}", headers=buyer.headers).get_json()["data"]["status"] \
        == "cancelled"


def test_cancel_releases_a_reservation(client, db_session, buyer, pricey):
    txn = purchase(client, buyer, pricey, 3)
    assert client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers).status_code == 200
    assert stock(db_session, pricey.id) == 10


def test_a_removed_item_still_gets_its_stock_back(client, db_session, buyer):
    item = make_item(db_session, stock=5)
    txn = purchase(client, buyer, item, 2)
    db_session.execute(update(Item).where(Item.id == item.id).values(deleted_at=func.now()))
    assert client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers).status_code == 200
    assert stock(db_session, item.id) == 5


def test_only_the_buyer_or_an_admin_cancels(client, db_session, buyer, other, admin):
    item = make_item(db_session, stock=5)
    txn = purchase(client, buyer, item)
    assert_error(client.delete(f"/v1/transactions/{txn['id']}", headers=other.headers), 404, "not_found")
    assert_error(client.delete(f"/v1/transactions/{txn['id']}"), 401, "unauthorized")
    assert stock(db_session, item.id) == 4
    by_admin = client.delete(f"/v1/transactions/{txn['id']}", headers=admin.headers)
    assert by_admin.status_code == 200 and by_admin.get_json()["data"]["user_id"] == buyer.id
    assert stock(db_session, item.id) == 5


def test_an_expired_or_overdue_transaction_cannot_be_cancelled(client, db_session, buyer, pricey):
    txn = purchase(client, buyer, pricey, 2)
    overdue(db_session, txn["id"])
    details = assert_error(client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers),
                           409, "transaction_not_cancellable")
    assert details["status"] == "expired"
    assert stock(db_session, pricey.id) == 8
    worker.tick(db_session)
    assert stock(db_session, pricey.id) == 10
    assert_error(client.delete(f"/v1/transactions/{txn['id']}", headers=buyer.headers),
                 409, "transaction_not_cancellable")
    assert stock(db_session, pricey.id) == 10


# --- the worker ---------------------------------------------------------------------------------------

def test_the_worker_expires_overdue_reservations_and_returns_stock_once(client, db_session, buyer, pricey):
    due = purchase(client, buyer, pricey, 2)
    waiting = purchase(client, buyer, pricey, 3)
    paid = purchase(client, buyer, make_item(db_session, price=1, stock=1))
    overdue(db_session, due["id"])
    overdue(db_session, paid["id"])  # confirm_by is ignored unless awaiting_otp
    assert stock(db_session, pricey.id) == 5
    assert worker.tick(db_session) >= 1
    db_session.expire_all()
    assert db_session.get(Transaction, due["id"]).status == "expired"
    assert db_session.get(Transaction, waiting["id"]).status == "awaiting_otp"
    assert db_session.get(Transaction, paid["id"]).status == "paid"
    assert stock(db_session, pricey.id) == 7
    worker.tick(db_session)
    assert stock(db_session, pricey.id) == 7
    shown = client.get(f"/v1/transactions/{due['id']}", headers=buyer.headers).get_json()["data"]
    assert shown["status"] == "expired" and shown["paid_at"] is None


def test_the_worker_forgets_expired_idempotency_keys(client, db_session, buyer):
    item = make_item(db_session, stock=5)
    for key in ("stale", "live"):
        client.post("/v1/transactions", json={"lines": [{"item_id": item.id, "quantity": 1}]},
                    headers={**buyer.headers, "Idempotency-Key": key})
    db_session.execute(update(IdempotencyKey).where(IdempotencyKey.user_id == buyer.id,
                                                    IdempotencyKey.key == "stale")
                       .values(expires_at=func.now() - timedelta(seconds=1)))
    worker.tick(db_session)
    keys = db_session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.user_id == buyer.id)).all()
    assert keys == ["live"]
    assert stock(db_session, item.id) == 3


def test_make_worker_is_the_transaction_worker():
    made = worker.make_worker()
    assert made.service == "transaction" and made.tick is worker.tick
    assert made.idle_seconds == get_settings().transaction_worker_poll_seconds


# --- reading ------------------------------------------------------------------------------------------

def test_list_shows_your_own_newest_first_with_pages(client, db_session, buyer, other):
    item = make_item(db_session, stock=50)
    mine = [purchase(client, buyer, item)["id"] for _ in range(3)]
    purchase(client, other, item)
    listed = client.get("/v1/transactions", headers=buyer.headers).get_json()["data"]
    assert [t["id"] for t in listed] == mine[::-1]
    page2 = client.get("/v1/transactions?page=2&per_page=2", headers=buyer.headers).get_json()["data"]
    assert [t["id"] for t in page2] == [mine[0]]
    assert listed[0]["lines"][0]["item_id"] == item.id
    assert_error(client.get(f"/v1/transactions?user_id={other.id}", headers=buyer.headers), 403, "forbidden")
    own = client.get(f"/v1/transactions?user_id={buyer.id}", headers=buyer.headers).get_json()["data"]
    assert [t["id"] for t in own] == mine[::-1]
    assert client.head("/v1/transactions", headers=buyer.headers).status_code == 200


def test_an_admin_lists_everyone_or_one_user(client, db_session, buyer, other, admin):
    item = make_item(db_session, stock=50)
    a, b = purchase(client, buyer, item)["id"], purchase(client, other, item)["id"]
    everyone = [t["id"] for t in client.get("/v1/transactions?per_page=100", headers=admin.headers)
                .get_json()["data"]]
    assert everyone.index(b) < everyone.index(a)
    only = client.get(f"/v1/transactions?user_id={other.id}", headers=admin.headers).get_json()["data"]
    assert [t["id"] for t in only] == [b]
    cancelled = client.delete(f"/v1/transactions/{a}", headers=buyer.headers).get_json()["data"]["id"]
    by_status = client.get(f"/v1/transactions?user_id={buyer.id}&status=cancelled", headers=admin.headers)
    assert [t["id"] for t in by_status.get_json()["data"]] == [cancelled]


@pytest.mark.parametrize("query", ["per_page=101", "per_page=0", "page=0", "user_id=abc", "user_id=0",
                                   "status=lost"])
def test_bad_list_arguments_are_422(client, buyer, query):
    assert_error(client.get(f"/v1/transactions?{query}", headers=buyer.headers), 422, "validation_error")


def test_get_one_is_for_the_buyer_and_admins(client, db_session, buyer, other, admin):
    txn = purchase(client, buyer, make_item(db_session, stock=5))
    assert client.get(f"/v1/transactions/{txn['id']}", headers=buyer.headers).get_json()["data"] == txn
    assert client.get(f"/v1/transactions/{txn['id']}", headers=admin.headers).get_json()["data"] == txn
    assert_error(client.get(f"/v1/transactions/{txn['id']}", headers=other.headers), 404, "not_found")
    assert_error(client.get(f"/v1/transactions/{txn['id']}"), 401, "unauthorized")
    assert_error(client.get("/v1/transactions/999999999999", headers=buyer.headers), 404, "not_found")
    assert_error(client.get(f"/v1/transactions/{2**63}", headers=buyer.headers), 404, "not_found")
    assert_error(client.get("/v1/transactions/abc", headers=buyer.headers), 404, "not_found")
    assert_error(client.put(f"/v1/transactions/{txn['id']}", headers=buyer.headers, json={}),
                 405, "method_not_allowed")


def test_the_openapi_document_describes_the_routes(client):
    spec = client.get("/openapi.json").get_json()
    post = spec["paths"]["/v1/transactions"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    assert {"201", "400", "401", "409", "422"} <= set(post["responses"])
    assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
    confirm_doc = spec["paths"]["/v1/transactions/{transaction_id}/confirm"]["post"]
    assert {"200", "403", "404", "409", "410", "422"} <= set(confirm_doc["responses"])
    assert post["security"]
