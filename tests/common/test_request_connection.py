"""As deployed (no session supplied by the tests): the session lookup and a purchase on the request's bare
connection, a session that takes its transaction over, and what each commits."""
from __future__ import annotations

import socket
import struct
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from common.db.models import Item, Transaction, User, UserSession
from common.db.session import get_engine, session_scope
from tests.factories import committed_account, committed_item


@pytest.fixture
def deployed():
    """The apps exactly as gunicorn builds them: their own engine and sessions on the run's database."""
    from svc_transaction.app import create_app as transaction_app
    from svc_user.app import create_app as user_app

    return {"transaction": transaction_app().test_client(), "user": user_app().test_client()}


def stale(account) -> None:
    """Make the account's session due for its idle-expiry touch."""
    with session_scope() as session:
        session.execute(update(UserSession).where(UserSession.user_id == account.id)
                        .values(last_seen_at=func.now() - timedelta(minutes=5)))


def last_seen(account):
    with session_scope() as session:
        return session.scalar(select(UserSession.last_seen_at).where(UserSession.user_id == account.id))


def buy_when_due_for_a_touch(deployed, stock: int, quantity: int):
    """A purchase by a buyer whose session is due for its touch: (item, answer), the touch checked."""
    buyer, item = committed_account(), committed_item(stock=stock)
    stale(buyer)
    before = last_seen(buyer)
    answer = deployed["transaction"].post("/v1/transactions",
                                          json={"lines": [{"item_id": item, "quantity": quantity}]},
                                          headers=buyer.headers)
    assert last_seen(buyer) > before  # committed on its own, before the purchase began
    return item, answer


def test_a_purchase_after_a_touch_commits_both(deployed):
    item, answer = buy_when_due_for_a_touch(deployed, stock=5, quantity=2)
    assert answer.status_code == 201, answer.get_json()
    with session_scope() as session:
        assert session.scalar(select(Item.stock).where(Item.id == item)) == 3
        assert session.get(Transaction, answer.get_json()["data"]["id"]).status == "paid"


def test_a_refused_purchase_takes_nothing_and_keeps_the_touch(deployed):
    item, answer = buy_when_due_for_a_touch(deployed, stock=1, quantity=2)
    assert answer.status_code == 409
    with session_scope() as session:
        assert session.scalar(select(Item.stock).where(Item.id == item)) == 1


def test_a_keyed_purchase_runs_in_the_session_that_took_the_connection_over(deployed):
    buyer, item = committed_account(), committed_item(stock=5)
    body, headers = {"lines": [{"item_id": item, "quantity": 1}]}, {**buyer.headers, "Idempotency-Key": "k"}
    first = deployed["transaction"].post("/v1/transactions", json=body, headers=headers)
    again = deployed["transaction"].post("/v1/transactions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    with session_scope() as session:
        assert session.scalar(select(Item.stock).where(Item.id == item)) == 4


def test_a_write_through_the_session_after_the_lookup_is_committed(deployed):
    account = committed_account()
    stale(account)
    answer = deployed["user"].patch(f"/v1/users/{account.id}", json={"email": f"new-{account.username}@example.test",
                                                          "current_password": account.password},
                                    headers=account.headers)
    assert answer.status_code == 200, answer.get_json()
    with session_scope() as session:
        assert session.get(User, account.id).email == f"new-{account.username}@example.test"


# -- the same path on a lent connection (the in-process suite's) ------------------------------------------


def lent_stale_account(db_session):
    """An account inside the test's transaction, due for its touch; returns (account, last_seen_at)."""
    from tests.factories import make_account

    account = make_account(db_session)
    db_session.execute(update(UserSession).where(UserSession.user_id == account.id)
                       .values(last_seen_at=func.now() - timedelta(minutes=5)))
    seen = db_session.scalar(select(UserSession.last_seen_at).where(UserSession.user_id == account.id))
    return account, seen


def test_on_a_lent_connection_the_touch_and_a_refused_purchase_are_savepoints(make_client, db_session,
                                                                              environment):
    from tests.factories import make_item

    # The events' bell borrows a pooled connection 20 ms after a write: none may ring while the pool is
    # watched (TOKO_EVENTS_BELL_MS=0, and time for one rung by an earlier test to end).
    environment(TOKO_EVENTS_BELL_MS="0")
    time.sleep(0.1)
    account, before = lent_stale_account(db_session)
    item, short = make_item(db_session, stock=5).id, make_item(db_session, stock=1).id
    pool = get_engine("transaction").pool
    checked_out = pool.checkedout()
    lines = [{"item_id": item, "quantity": 1}, {"item_id": short, "quantity": 2}]
    client = make_client("transaction")
    answer = client.post("/v1/transactions", json={"lines": lines}, headers=account.headers)
    assert answer.status_code == 409
    assert pool.checkedout() == checked_out  # nothing came from the pool: the test's connection served it
    assert not db_session.get_bind().in_nested_transaction()  # the request left no savepoint open
    # The touch was released into the test's transaction before the purchase; the purchase rolled back.
    seen = db_session.scalar(select(UserSession.last_seen_at).where(UserSession.user_id == account.id))
    assert seen > before
    assert db_session.scalar(select(Item.stock).where(Item.id == item)) == 5


def test_on_a_lent_connection_a_keyed_purchase_after_the_touch_commits_into_the_test(make_client, db_session):
    from tests.factories import make_item

    account, before = lent_stale_account(db_session)
    item = make_item(db_session, stock=5).id
    client = make_client("transaction")
    body, headers = {"lines": [{"item_id": item, "quantity": 2}]}, {**account.headers, "Idempotency-Key": "k"}
    first = client.post("/v1/transactions", json=body, headers=headers)
    again = client.post("/v1/transactions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert db_session.scalar(select(Item.stock).where(Item.id == item)) == 3
    paid = first.get_json()["data"]["id"]
    assert db_session.scalar(select(Transaction.status).where(Transaction.id == paid)) == "paid"


# -- round trips, counted on the wire ----------------------------------------------------------------------


class QueryCounter:
    """A loopback proxy in front of the run's PostgreSQL that records every query message clients send.

    psycopg2 speaks the simple query protocol, so each 'Q' message (BEGIN, a statement, COMMIT, a
    SAVEPOINT) is one round trip, whichever layer sent it: the driver, SQLAlchemy or toko's own code.
    """

    def __init__(self):
        self.sent: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", 5432))
            threading.Thread(target=self._forward, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._forward, args=(server, client, False), daemon=True).start()

    def _forward(self, source, target, from_client):
        pending, started = b"", not from_client
        try:
            while data := source.recv(65536):
                if not from_client:
                    target.sendall(data)
                    continue
                pending += data
                while True:
                    if not started:  # the startup message: a length, no type byte
                        if len(pending) < 4 or len(pending) < (size := struct.unpack("!I", pending[:4])[0]):
                            break
                        pending, started = pending[size:], True
                        continue
                    if len(pending) < 5 or len(pending) < 1 + (size := struct.unpack("!I", pending[1:5])[0]):
                        break
                    kind, body, pending = pending[:1], pending[5:1 + size], pending[1 + size:]
                    if kind == b"Q":
                        with self._lock:
                            self.sent.append(" ".join(body.rstrip(b"\0").decode().split())[:60])
                # Recorded before it is sent on: the answer, and the caller's next step, come after.
                target.sendall(data)
        except OSError:
            pass
        finally:
            target.close()

    def during(self, call):
        """(the answer, the queries it sent)."""
        with self._lock:
            self.sent.clear()
        answer = call()
        with self._lock:
            return answer, list(self.sent)

    def close(self):
        self._listener.close()


@pytest.fixture
def on_the_wire(database_url, environment):
    """The item and transaction services as deployed, their connections counted by a QueryCounter."""
    from svc_item.app import create_app as item_app
    from svc_transaction.app import create_app as transaction_app

    counter = QueryCounter()
    proxied = make_url(database_url).set(port=counter.port, query={"sslmode": "disable"})
    # No bell: its NOTIFY, rung from a thread of its own 20 ms after a write, would land in a count.
    environment(DATABASE_URL=proxied.render_as_string(hide_password=False), TOKO_EVENTS_BELL_MS="0")
    try:
        yield counter, item_app().test_client(), transaction_app().test_client()
    finally:
        for service in (None, "item", "transaction"):
            get_engine(service).dispose()
        counter.close()


def test_the_hot_paths_send_no_more_round_trips_than_their_statements_need(on_the_wire):
    counter, items, transactions = on_the_wire
    buyer, item = committed_account(), committed_item(stock=100, price=100)
    body = {"lines": [{"item_id": item, "quantity": 1}]}

    def buy(**headers):
        return lambda: transactions.post("/v1/transactions", json=body, headers={**buyer.headers, **headers})

    for read in (f"/v1/items/{item}", "/v1/items?per_page=5", "/v2/items?limit=5", "/v1/categories"):
        items.get(read)  # warm: the pool's connection is made (and its statement timeout set) once
        answer, sent = counter.during(lambda: items.get(read))  # noqa: B023
        assert answer.status_code == 200 and len(sent) == 1 and sent[0].startswith("SELECT"), (read, sent)
    buy()()
    answer, sent = counter.during(buy())
    # BEGIN, the session lookup, the stock taken, the sale written, its events (the outbox), COMMIT.
    assert answer.status_code == 201 and len(sent) == 6 and (sent[0], sent[-1]) == ("BEGIN", "COMMIT"), sent
    assert sent[-2].startswith("INSERT INTO outbox_events"), sent
    stale(buyer)
    answer, sent = counter.during(buy())
    # The touch commits on its own first: BEGIN, lookup, touch, COMMIT, then the purchase's five.
    assert answer.status_code == 201 and len(sent) == 9 and sent.count("COMMIT") == 2, sent
    answer, sent = counter.during(buy(**{"Idempotency-Key": "wire"}))
    # The key's claim and answer, and the savepoint around the work, add four.
    assert answer.status_code == 201 and len(sent) == 10, sent
