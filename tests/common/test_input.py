"""Absurd input and a lost database connection: an envelope (400, 422, 503), never a 500."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from common.db.session import driver_url
from common.errors import Unauthorized
from common.settings import get_settings
from common.web import Blueprint, create_app, db
from svc_item.service import cursor_after


def assert_client_error(response, statuses=(400, 422)):
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:300])
    assert set(response.get_json()) == {"error"}


@pytest.mark.parametrize("depth", [33, 900, 1000, 100_000])
@pytest.mark.parametrize("where", ["body", "field"])
def test_json_nested_deep_is_a_400(make_client, depth, where):
    client = make_client("user")
    nested = "[" * depth + "]" * depth
    body = nested if where == "body" else '{"username": %s, "password": "x"}' % nested
    for path in ("/v1/sessions", "/v1/users"):
        response = client.post(path, data=body, content_type="application/json")
        assert_client_error(response, (400,))


def test_json_nested_a_little_is_still_read(make_client):
    client = make_client("user")
    response = client.post("/v1/sessions", json={"username": [[[["x"]]]], "password": "x"})
    assert response.status_code == 422 and "username" in response.get_json()["error"]["details"]["fields"]


@pytest.mark.parametrize("number", ["9" * 5001, "-" + "9" * 5001, "9" * 5001 + ".5", "1e99999", "9" * 4000])
def test_numbers_thousands_of_digits_long_are_a_400_or_422(make_client, number):
    client = make_client("user")
    for body in ('{"username": "someone", "email": "a@example.test", "password": "long-enough", "phone": %s}',
                 '{"username": %s, "password": "x"}'):
        response = client.post("/v1/users", data=body % number, content_type="application/json")
        assert_client_error(response)
    response = make_client("transaction").post(
        "/v1/transactions", data='{"lines": [{"item_id": %s, "quantity": %s}]}' % (number, number),
        content_type="application/json")
    assert response.status_code in (400, 401, 422)


@pytest.mark.parametrize("position, sort", [
    (["a\x00b", 1], "name"), (["\ud800", 1], "name"), ([10 ** 30], "id"), ([10 ** 30, 1], "price"),
    ([[1]], "id"), ([{"a": 1}], "id"), ([True], "id"), ([1.5], "id"), ([], "id"), ([1, 2, 3], "id"),
    ([None], "id"), (["1"], "id")])
def test_a_cursor_forged_with_the_development_secret_is_a_400(make_client, position, sort):
    # The development secret is in the source: anyone can sign a cursor with it.
    assert get_settings().secret_key == "dev-insecure-secret-change-me"
    cursor = cursor_after(position, sort=sort)
    response = make_client("item").get("/v2/items", query_string={"cursor": cursor, "sort": sort})
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.get_json()["error"]["code"] == "invalid_cursor"


# -- the database drops the connection while the view runs --------------------------------------------------

def _terminate(pid: int) -> None:
    admin = create_engine(driver_url(get_settings().database_url), poolclass=NullPool,
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(100):
            if not conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).first():
                break
            threading.Event().wait(0.05)
    admin.dispose()


@pytest.fixture
def dropping_app(database_url):
    """A service whose views lose their database connection midway (a failover, a pooler restart)."""
    blp = Blueprint("dropping", __name__)

    @blp.route("/drop-then-401")
    def drop_then_401():
        _terminate(db().execute(text("SELECT pg_backend_pid()")).scalar())
        raise Unauthorized("No.")  # the answer is made; only the transaction's rollback is left

    @blp.route("/drop-then-query")
    def drop_then_query():
        _terminate(db().execute(text("SELECT pg_backend_pid()")).scalar())
        db().execute(text("SELECT 1"))
        return {"data": "unreachable"}

    app = create_app("item", [blp])
    app.config["TESTING"] = True
    return app


@pytest.mark.parametrize("path", ["/drop-then-401", "/drop-then-query"])
def test_a_connection_lost_mid_request_is_a_503_envelope(dropping_app, path, caplog):
    from common.web.metrics import REQUESTS

    counted = REQUESTS.labels("item", "GET", path, "503")
    before = counted._value.get()
    client = dropping_app.test_client()
    with caplog.at_level("INFO"):
        response = client.get(path, headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"] == "lost-1"
    access = [r for r in caplog.records if r.name == "toko.access"]
    assert [r.status for r in access] == [503], "logged with the status the client got"
    assert counted._value.get() == before + 1, "counted with the status the client got"
    # The next request gets a working connection.
    assert client.get("/readyz").status_code == 200
