"""Purchases over the real stack: gunicorn workers racing for stock, idempotency keys, step-up, expiry, cancel."""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select, update

from common.db.models import Item, OtpChallenge, Transaction, TransactionLine
from common.db.session import session_scope
from common.settings import get_settings
from svc_transaction.worker import make_worker
from tests.factories import committed_account, committed_item

TIMEOUT = 60


def buy(stack, account, lines, key=None, http=requests):
    headers = dict(account.headers)
    if key is not None:
        headers["Idempotency-Key"] = key
    return http.post(stack.url("transaction", "/v1/transactions"), json={"lines": lines}, headers=headers,
                     timeout=TIMEOUT)


def stock_of(item_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(Item.stock).where(Item.id == item_id))


def sold(item_id: int, statuses=("paid", "awaiting_otp")) -> int:
    """Units of an item held by live transactions, according to the database."""
    with session_scope() as session:
        return session.scalar(
            select(func.coalesce(func.sum(TransactionLine.quantity), 0))
            .join(Transaction, Transaction.id == TransactionLine.transaction_id)
            .where(TransactionLine.item_id == item_id, Transaction.status.in_(statuses)))


def verified_otp(user_id: int, transaction_id: int, status: str = "verified"):
    now = datetime.now(timezone.utc)
    with session_scope() as session:
        otp = OtpChallenge(user_id=user_id, purpose="confirm_transaction", reference=str(transaction_id),
                           code_hash=b"x" * 32, channel="email", status=status,
                           expires_at=now + timedelta(minutes=5), verified_at=now if status == "verified" else None)
        session.add(otp)
        session.flush()
        return otp.id


def make_overdue(transaction_id: int) -> None:
    with session_scope() as session:
        session.execute(update(Transaction).where(Transaction.id == transaction_id)
                        .values(confirm_by=func.now() - timedelta(seconds=1)))


def status_of(transaction_id: int) -> str:
    with session_scope() as session:
        return session.scalar(select(Transaction.status).where(Transaction.id == transaction_id))


def wait_for_status(transaction_id: int, wanted: str, timeout: float = 30) -> str:
    """Poll the database until the transaction reaches `wanted` or the deadline passes."""
    deadline = time.monotonic() + timeout
    status = status_of(transaction_id)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        status = status_of(transaction_id)
    return status


def in_parallel(calls, threads: int):
    """Run the callables on `threads` threads and return their results in order.

    The first wave is released together by a barrier, so the race starts with every thread in it.
    """
    first_wave = min(threads, len(calls))
    barrier = threading.Barrier(first_wave)

    def run(indexed):
        index, call = indexed
        if index < first_wave:
            barrier.wait(timeout=TIMEOUT)
        return call()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, enumerate(calls)))


@pytest.fixture(scope="module")
def customers(stack):
    return [committed_account() for _ in range(8)]


@pytest.fixture
def pricey_price():
    return get_settings().otp_threshold


def test_forty_buyers_of_ten_units_never_oversell(stack, customers):
    item = committed_item(price=25000, stock=10)
    calls = [lambda c=customers[n % 8]: buy(stack, c, [{"item_id": item, "quantity": 1}]) for n in range(40)]
    responses = in_parallel(calls, threads=40)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 10, 409: 30}, [r.text for r in responses if r.status_code not in (201, 409)]
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {"insufficient_stock"}
    assert stock_of(item) == 0 and sold(item) == 10
    assert len({r.json()["data"]["id"] for r in responses if r.status_code == 201}) == 10


def test_two_hundred_two_line_purchases_in_random_order_never_deadlock(stack, customers):
    initial = 150
    items = [committed_item(price=1000, stock=initial) for _ in range(4)]
    rng = random.Random(6)
    orders = []
    for _ in range(200):
        a, b = rng.sample(items, 2)  # random pair in random order: opposite lock orders if taken naively
        orders.append([{"item_id": a, "quantity": rng.randint(1, 3)}, {"item_id": b, "quantity": rng.randint(1, 3)}])
    assert sum(line["quantity"] for order in orders for line in order) > initial * len(items)  # some must fail
    calls = [lambda n=n: buy(stack, customers[n % 8], orders[n]) for n in range(200)]
    responses = in_parallel(calls, threads=32)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code not in (201, 409)]
    assert statuses[201] > 0 and statuses[409] > 0
    taken = Counter()
    for order, response in zip(orders, responses):
        if response.status_code == 201:
            assert {(l["item_id"], l["quantity"]) for l in response.json()["data"]["lines"]} == \
                {(l["item_id"], l["quantity"]) for l in order}
            for line in order:
                taken[line["item_id"]] += line["quantity"]
        else:
            assert response.json()["error"]["code"] == "insufficient_stock"
    for item in items:
        assert stock_of(item) == initial - taken[item] >= 0
        assert sold(item) == taken[item]
    assert "deadlock" not in stack.log("svc_transaction").lower()


def test_five_parallel_requests_with_one_key_make_one_transaction(stack):
    buyer = committed_account()
    item = committed_item(price=5000, stock=10)
    lines = [{"item_id": item, "quantity": 3}]
    responses = in_parallel([lambda: buy(stack, buyer, lines, key="pay-once")] * 5, threads=5)
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert all(r.headers.get("Idempotent-Replayed") in (None, "true") for r in responses)
    assert len({r.text for r in responses if "Idempotent-Replayed" in r.headers}) == 1
    assert stock_of(item) == 7
    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Transaction.user_id == buyer.id)) == 1


def test_replay_reuse_and_a_bad_key_over_http(stack):
    buyer = committed_account()
    item = committed_item(price=5000, stock=10)
    first = buy(stack, buyer, [{"item_id": item, "quantity": 1}], key="k-1")
    replay = buy(stack, buyer, [{"item_id": item, "quantity": 1}], key="k-1")
    assert first.status_code == replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    assert replay.headers["Location"] == first.headers["Location"]
    reused = buy(stack, buyer, [{"item_id": item, "quantity": 2}], key="k-1")
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    too_long = buy(stack, buyer, [{"item_id": item, "quantity": 1}], key="k" * 256)
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "invalid_idempotency_key"
    assert stock_of(item) == 9


def test_step_up_purchase_is_paid_once_confirmed(stack, pricey_price):
    buyer, stranger = committed_account(), committed_account()
    item = committed_item(price=pricey_price, stock=5)
    created = buy(stack, buyer, [{"item_id": item, "quantity": 2}])
    txn = created.json()["data"]
    assert created.status_code == 201 and txn["status"] == "awaiting_otp" and txn["confirm_by"]
    assert stock_of(item) == 3
    url = stack.url("transaction", f"/v1/transactions/{txn['id']}/confirm")
    other = buy(stack, buyer, [{"item_id": item, "quantity": 1}]).json()["data"]

    unverified = requests.post(url, json={"otp_id": str(verified_otp(buyer.id, txn["id"], "pending"))},
                               headers=buyer.headers, timeout=TIMEOUT)
    assert unverified.status_code == 422 and unverified.json()["error"]["code"] == "otp_not_verified"
    mismatch = requests.post(url, json={"otp_id": str(verified_otp(buyer.id, other["id"]))},
                             headers=buyer.headers, timeout=TIMEOUT)
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "otp_mismatch"
    otp = str(verified_otp(buyer.id, txn["id"]))
    not_theirs = requests.post(url, json={"otp_id": otp}, headers=stranger.headers, timeout=TIMEOUT)
    assert not_theirs.status_code == 404

    confirmed = requests.post(url, json={"otp_id": otp}, headers=buyer.headers, timeout=TIMEOUT)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["data"]["status"] == "paid" and confirmed.json()["data"]["paid_at"]
    twice = requests.post(url, json={"otp_id": otp}, headers=buyer.headers, timeout=TIMEOUT)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "transaction_not_awaiting_otp"
    shown = requests.get(stack.url("transaction", f"/v1/transactions/{txn['id']}"), headers=buyer.headers,
                         timeout=TIMEOUT).json()["data"]
    assert shown["status"] == "paid" and stock_of(item) == 2


def test_the_worker_expires_an_unconfirmed_purchase_and_returns_its_stock_once(stack, pricey_price):
    assert "RUNNING" in stack.ctl("status", "svc_transaction_worker").stdout
    buyer = committed_account()
    item = committed_item(price=pricey_price, stock=5)
    txn = buy(stack, buyer, [{"item_id": item, "quantity": 2}]).json()["data"]
    assert txn["status"] == "awaiting_otp" and stock_of(item) == 3
    otp = str(verified_otp(buyer.id, txn["id"]))
    make_overdue(txn["id"])
    assert wait_for_status(txn["id"], "expired") == "expired"
    assert stock_of(item) == 5
    # Another pass finds nothing left to return.
    make_worker().run_once()
    assert stock_of(item) == 5
    late = requests.post(stack.url("transaction", f"/v1/transactions/{txn['id']}/confirm"), json={"otp_id": otp},
                         headers=buyer.headers, timeout=TIMEOUT)
    assert late.status_code == 410 and late.json()["error"]["code"] == "transaction_expired"
    cancel = requests.delete(stack.url("transaction", f"/v1/transactions/{txn['id']}"), headers=buyer.headers,
                             timeout=TIMEOUT)
    assert cancel.status_code == 409 and stock_of(item) == 5


def test_cancel_returns_the_stock_once(stack):
    buyer = committed_account()
    a, b = committed_item(price=1000, stock=10), committed_item(price=2000, stock=10)
    txn = buy(stack, buyer, [{"item_id": b, "quantity": 4}, {"item_id": a, "quantity": 2}]).json()["data"]
    assert (stock_of(a), stock_of(b)) == (8, 6)
    url = stack.url("transaction", f"/v1/transactions/{txn['id']}")
    responses = in_parallel([lambda: requests.delete(url, headers=buyer.headers, timeout=TIMEOUT)] * 6, threads=6)
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    cancelled = next(r for r in responses if r.status_code == 200).json()["data"]
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"] and cancelled["id"] == txn["id"]
    assert (stock_of(a), stock_of(b)) == (10, 10)
    again = requests.delete(url, headers=buyer.headers, timeout=TIMEOUT)
    assert again.status_code == 409 and again.json()["error"]["code"] == "transaction_not_cancellable"
    assert (stock_of(a), stock_of(b)) == (10, 10)
    kept = requests.get(url, headers=buyer.headers, timeout=TIMEOUT).json()["data"]
    assert kept["status"] == "cancelled" and kept["lines"] == txn["lines"]


def test_cancel_racing_the_expiry_worker_returns_the_stock_once(stack, pricey_price):
    buyer = committed_account()
    item = committed_item(price=pricey_price, stock=20)
    txns = [buy(stack, buyer, [{"item_id": item, "quantity": 2}]).json()["data"]["id"] for _ in range(8)]
    assert stock_of(item) == 4
    for txn in txns:
        make_overdue(txn)
    url = stack.url("transaction", "/v1/transactions/{}")
    responses = in_parallel([lambda t=t: requests.delete(url.format(t), headers=buyer.headers, timeout=TIMEOUT)
                             for t in txns], threads=8)
    # Past confirm_by a reservation is expired whether or not the worker got there first.
    assert {r.status_code for r in responses} == {409}
    assert {r.json()["error"]["details"]["status"] for r in responses} == {"expired"}
    assert [wait_for_status(txn, "expired") for txn in txns] == ["expired"] * len(txns)
    assert stock_of(item) == 20


def test_the_bad_inputs_of_the_issue(stack, customers):
    buyer, stranger = customers[0], customers[1]
    item = committed_item(price=1000, stock=5)
    removed = committed_item(price=1000, stock=5)
    with session_scope() as session:
        session.execute(update(Item).where(Item.id == removed).values(deleted_at=func.now()))
    for lines, code in (([], "validation_error"),
                        ([{"item_id": item, "quantity": 0}], "validation_error"),
                        ([{"item_id": item, "quantity": -1}], "validation_error"),
                        ([{"item_id": item, "quantity": 1, "unit_price": 1}], "validation_error"),
                        ([{"item_id": item, "quantity": 1}, {"item_id": item, "quantity": 1}], "validation_error"),
                        ([{"item_id": removed, "quantity": 1}], "unknown_item"),
                        ([{"item_id": removed + 10**9, "quantity": 1}], "unknown_item")):
        response = buy(stack, buyer, lines)
        assert response.status_code == 422 and response.json()["error"]["code"] == code, (lines, response.text)
    assert stock_of(item) == 5 and stock_of(removed) == 5
    txn = buy(stack, buyer, [{"item_id": item, "quantity": 1}]).json()["data"]
    for method in ("get", "delete"):
        response = requests.request(method, stack.url("transaction", f"/v1/transactions/{txn['id']}"),
                                    headers=stranger.headers, timeout=TIMEOUT)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    anonymous = requests.post(stack.url("transaction", "/v1/transactions"), json={"lines": []}, timeout=TIMEOUT)
    assert anonymous.status_code == 401
    not_json = requests.post(stack.url("transaction", "/v1/transactions"), data="lines=1",
                             headers={**buyer.headers, "Content-Type": "text/plain"}, timeout=TIMEOUT)
    assert not_json.status_code == 415
    assert stock_of(item) == 4
