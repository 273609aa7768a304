"""Lookalike usernames, the registration throttle, the last admin, and logins through a database blip."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from common.db.migrate import upgrade
from common.db.session import driver_url, get_engine
from common.errors import Conflict
from common.principal import Principal
from common.settings import get_settings
from svc_user import service
from tests.conftest import unique
from tests.e2e.pgcluster import private_cluster, unavailable_reason
from tests.factories import PASSWORD, make_account


@pytest.fixture
def client(make_client):
    return make_client("user")


def body(username=None, **over):
    return {"username": username or unique("reg"), "email": f"{unique('m')}@example.test",
            "password": PASSWORD, **over}


@pytest.mark.parametrize("username", ["admin\n", "admin\r\n", "ad\nmin", " admin", "admin "])
def test_a_username_with_a_line_break_or_space_anywhere_is_refused(client, username):
    answer = client.post("/v1/users", json=body(username))
    assert answer.status_code == 422, answer.get_json()
    assert "username" in answer.get_json()["error"]["details"]["fields"]


def test_a_phone_with_a_final_newline_is_refused(client):
    answer = client.post("/v1/users", json=body(phone="+6281234567\n"))
    assert answer.status_code == 422 and "phone" in answer.get_json()["error"]["details"]["fields"]


def test_the_database_refuses_a_username_that_breaks_the_rule(db_session):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError, match="ck_users_username"):
        with db_session.begin_nested():
            db_session.execute(text("INSERT INTO users (username, email, password_hash) "
                                    "VALUES (E'admin\\n', 'lookalike@example.test', 'x')"))


# -- the registration throttle ----------------------------------------------------------------------------


def in_process_app():
    """The user service in process, each request in its own committed session (as gunicorn runs it)."""
    from svc_user.app import create_app

    app = create_app()
    app.config["TESTING"] = True
    return app


def test_parallel_registrations_from_one_address_never_pass_the_limit(environment):
    environment(TOKO_REGISTRATION_ADDR_MAX="5")
    app = in_process_app()
    addr = "203.0.113.50"
    answers: list[tuple[int, dict]] = []
    start = threading.Barrier(12)

    def attempt():
        with app.test_client() as http:
            start.wait()
            r = http.post("/v1/users", json=body(), environ_base={"REMOTE_ADDR": addr})
            answers.append((r.status_code, r))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(code for code, _ in answers)
    assert statuses == [201] * 5 + [429] * 7, statuses
    refused = next(r for code, r in answers if code == 429)
    assert refused.get_json()["error"]["code"] == "registration_throttled"
    assert 1 <= int(refused.headers["Retry-After"]) <= get_settings().registration_window_seconds
    with app.test_client() as http:
        assert http.post("/v1/users", json=body(), environ_base={"REMOTE_ADDR": addr}).status_code == 429
        other = http.post("/v1/users", json=body(), environ_base={"REMOTE_ADDR": "198.51.100.50"})
        assert other.status_code == 201  # another address still registers


def test_a_name_found_taken_counts_so_the_throttle_bounds_the_existence_oracle(client, environment):
    environment(TOKO_REGISTRATION_ADDR_MAX="3")
    taken = unique("taken")
    assert client.post("/v1/users", json=body(taken)).status_code == 201
    assert [client.post("/v1/users", json=body(taken)).status_code for _ in range(3)] == [409, 409, 429]


def test_registrations_older_than_the_window_no_longer_count(client, environment, db_session):
    environment(TOKO_REGISTRATION_ADDR_MAX="2")
    assert [client.post("/v1/users", json=body()).status_code for _ in range(3)] == [201, 201, 429]
    db_session.execute(text("UPDATE registrations SET at = at - make_interval(secs => :s)"),
                       {"s": get_settings().registration_window_seconds + 1})
    assert client.post("/v1/users", json=body()).status_code == 201


# -- the last admin ---------------------------------------------------------------------------------------


@pytest.fixture
def only_admin(db_session):
    """An admin who is the only active one (the others are demoted inside the test's transaction)."""
    db_session.execute(text("UPDATE users SET role = 'customer' WHERE role = 'admin'"))
    return make_account(db_session, "admin")


@pytest.mark.parametrize("how", ["patch", "put", "delete"])
def test_the_last_admin_cannot_be_demoted_or_deleted(client, db_session, only_admin, how):
    url = f"/v1/users/{only_admin.id}"
    if how == "patch":
        answer = client.patch(url, json={"role": "customer"}, headers=only_admin.headers)
    elif how == "put":
        answer = client.put(url, json={"username": only_admin.username, "email": f"{only_admin.username}"
                                       "@example.test", "role": "customer"}, headers=only_admin.headers)
    else:
        answer = client.delete(url, headers=only_admin.headers)
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["error"]["code"] == "last_admin"
    me = client.get("/v1/users/me", headers=only_admin.headers)
    assert me.status_code == 200 and me.get_json()["data"]["role"] == "admin"
    second = make_account(db_session, "admin")
    assert client.patch(url, json={"role": "customer"}, headers=second.headers).status_code == 200
    assert client.delete(f"/v1/users/{second.id}", headers=second.headers).status_code == 409


def as_admin(account) -> Principal:
    now = datetime.now(timezone.utc)
    return Principal(0, account.id, account.username, "admin", True, now, now, now)


def test_two_admins_demoting_each_other_at_once_cannot_both_succeed():
    """The second demotion counts the admins after the first has committed, not before."""
    from tests.conftest import scratch_database

    with scratch_database(f"{get_engine().url.database}_admins") as url:
        engine = create_engine(driver_url(url), poolclass=NullPool)
        try:
            with Session(engine) as setup, setup.begin():
                a, b = make_account(setup, "admin"), make_account(setup, "admin")
            first, second = Session(engine), Session(engine)
            service.update_user(first, as_admin(a), b.id, {"role": "customer"}, replace=False)
            outcome: list[object] = []

            def demote_a():
                try:
                    service.update_user(second, as_admin(b), a.id, {"role": "customer"}, replace=False)
                    second.commit()
                    outcome.append("demoted")
                except Conflict as refused:
                    second.rollback()
                    outcome.append(refused.code)

            racer = threading.Thread(target=demote_a)
            racer.start()
            time.sleep(0.5)  # the racer now counts the admins while the first demotion is not committed
            first.commit()
            racer.join(10)
            assert outcome == ["last_admin"]
            with engine.connect() as conn:
                roles = dict(conn.execute(text("SELECT id, role FROM users")).all())
            assert roles == {a.id: "admin", b.id: "customer"}
            first.close()
            second.close()
        finally:
            engine.dispose()


# -- a database blip ---------------------------------------------------------------------------------------


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_a_database_blip_never_counts_correct_logins_as_failures(environment, monkeypatch):
    """Connections killed every 30 ms for 10 s while six threads log in right; then one login at once."""
    import svc_user.passwords

    # Production's hashing, six checks at once: the checks take long enough for kills to land in them.
    environment(TOKO_ARGON2_PROFILE="owasp", TOKO_ARGON2_MAX_CONCURRENT="6", TOKO_ARGON2_WAIT_MS="2000")
    monkeypatch.setattr(svc_user.passwords, "_turns", None)
    svc_user.passwords.hasher.cache_clear()
    try:
        blip(environment)
    finally:
        svc_user.passwords.hasher.cache_clear()
        svc_user.passwords.dummy_hash.cache_clear()


def blip(environment):
    with private_cluster() as cluster:
        admin_engine = create_engine(driver_url(f"{cluster.server_url()}/postgres"),
                                     isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin_engine.connect() as conn:
            conn.execute(text("CREATE DATABASE toko"))
        url = f"{cluster.server_url()}/toko"
        upgrade(url)
        # The service as deployed against the private cluster: its own engine, a connection per thread.
        environment(DATABASE_URL=url, TOKO_DB_POOL_SIZE="8", TOKO_DB_CONNECT_TIMEOUT="3")
        engine = get_engine("user")
        with Session(engine) as setup, setup.begin():
            owner = make_account(setup)
        from svc_user.app import create_app

        app = create_app()
        app.config["TESTING"] = True
        credentials = {"username": owner.username, "password": PASSWORD}
        addr = {"REMOTE_ADDR": "203.0.113.80"}
        stop = threading.Event()
        seen: dict[int, int] = {}
        lock = threading.Lock()

        def log_in_again_and_again():
            with app.test_client() as http:
                while not stop.is_set():
                    status = http.post("/v1/sessions", json=credentials, environ_base=addr).status_code
                    with lock:
                        seen[status] = seen.get(status, 0) + 1

        def kill_connections():
            killer = admin_engine.connect()
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    killer.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE datname = 'toko' AND pid <> pg_backend_pid()"))
                    time.sleep(0.03)
            finally:
                killer.close()

        threads = [threading.Thread(target=log_in_again_and_again) for _ in range(6)]
        for t in threads:
            t.start()
        kill_connections()
        stop.set()
        for t in threads:
            t.join(30)
        try:
            assert seen.get(503, 0) > 0, seen  # the blip was felt
            assert 429 not in seen, seen
            with app.test_client() as http:
                after = http.post("/v1/sessions", json=credentials, environ_base=addr)
            assert after.status_code == 201, (after.get_json(), seen)
            print("statuses during the blip:", seen)
        finally:
            engine.dispose()
            admin_engine.dispose()
