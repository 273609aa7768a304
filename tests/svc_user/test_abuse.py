"""Accounts against abuse, in-process: the three login throttles, case-insensitive usernames, contact changes."""
from __future__ import annotations

import dataclasses

import threading

import pytest
from sqlalchemy import func, select, text

import svc_user.passwords
import svc_user.service
from common.db.models import LoginFailure, User
from common.settings import get_settings
from tests.conftest import unique
from tests.factories import PASSWORD, make_account

ATTACKER, OWNER_HOME = "203.0.113.7", "198.51.100.20"


@pytest.fixture
def client(make_client):
    return make_client("user")


@pytest.fixture
def settings(monkeypatch):
    """Change settings for this test only, as the user service reads them."""

    def change(**values):
        changed = dataclasses.replace(get_settings(), **values)
        for module in (svc_user.service, svc_user.passwords):
            monkeypatch.setattr(module, "get_settings", lambda: changed)
        monkeypatch.setattr(svc_user.passwords, "_turns", None)  # sized from the settings on first use
        return changed

    return change


def register(client, name=None, **over):
    name = name or unique("cust")
    response = client.post("/v1/users", json={"username": name, "email": f"{unique('m')}@example.test",
                                              "password": PASSWORD, **over})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def login(client, username, password=PASSWORD, addr=ATTACKER):
    return client.post("/v1/sessions", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def statuses(client, username, n, addr=ATTACKER, password="wrong-password"):
    return [login(client, username, password, addr).status_code for _ in range(n)]


def test_past_five_failures_the_pair_is_throttled_and_the_owner_still_logs_in_elsewhere(client):
    name = register(client)["username"]
    assert statuses(client, name, 5) == [401] * 5
    locked = login(client, name)  # even the right password, from that address
    assert locked.status_code == 429 and locked.get_json()["error"]["code"] == "login_throttled"
    assert 1 <= int(locked.headers["Retry-After"]) <= get_settings().login_window_seconds
    assert login(client, name, addr=OWNER_HOME).status_code == 201  # the owner, from a clean address
    other = register(client)["username"]
    assert login(client, other).status_code == 201  # the same address, another account


def test_an_unknown_username_is_throttled_exactly_like_a_known_one(client):
    known = register(client)["username"]
    answers = {}
    for name in (known, unique("ghost")):
        answers[name] = [(r.status_code, r.get_json(), r.headers.get("Retry-After"))
                         for r in (login(client, name, "wrong-password") for _ in range(7))]
    assert answers[known] == list(answers.values())[1]
    assert [a[0] for a in answers[known]] == [401] * 5 + [429] * 2


def test_one_address_is_throttled_across_usernames_past_twenty(client):
    names = [register(client)["username"] for _ in range(8)]
    for name in names[:5]:
        assert statuses(client, name, 4) == [401] * 4  # 20 failures, never 5 on one account
    blocked = login(client, names[6])  # a fresh account, the right password, from that address
    assert blocked.status_code == 429 and blocked.headers["Retry-After"]
    assert login(client, names[6], addr=OWNER_HOME).status_code == 201


def test_a_username_is_throttled_across_addresses_at_a_higher_threshold(client, settings):
    settings(login_user_max_failures=12)
    name = register(client)["username"]
    for i in range(3):  # a spread-out attack, under each address's own thresholds
        assert statuses(client, name, 4, addr=f"192.0.2.{i + 1}") == [401] * 4
    assert login(client, name, addr=OWNER_HOME).status_code == 429  # even the owner: 12 reached
    assert login(client, unique("ghost"), addr="192.0.2.1").status_code != 429


def test_below_the_username_threshold_the_owner_is_never_locked_out(client, settings):
    settings(login_user_max_failures=12)
    name = register(client)["username"]
    for i in range(11):
        assert login(client, name, "wrong-password", addr=f"192.0.2.{i + 1}").status_code == 401
    assert login(client, name, addr=OWNER_HOME).status_code == 201


def test_failures_older_than_the_window_no_longer_count(client, db_session):
    name = register(client)["username"]
    assert statuses(client, name, 5) == [401] * 5
    assert login(client, name).status_code == 429
    window = get_settings().login_window_seconds
    db_session.execute(text("UPDATE login_failures SET at = at - make_interval(secs => :s) WHERE username = :u"),
                       {"s": window + 1, "u": name.lower()})
    assert login(client, name).status_code == 201


def test_a_success_forgives_the_pair_and_old_failures_are_cleared(client, db_session):
    name = register(client)["username"]
    assert statuses(client, name, 4) == [401] * 4
    assert login(client, name).status_code == 201
    assert statuses(client, name, 5) == [401] * 5  # a fresh count after the owner's login
    db_session.execute(text("UPDATE login_failures SET at = at - interval '1 day'"))
    login(client, unique("ghost"), "wrong-password")
    assert db_session.scalar(select(func.count()).select_from(LoginFailure)
                             .where(LoginFailure.at < func.now() - text("interval '1 hour'"))) == 0


def test_x_real_ip_counts_only_when_the_peer_is_toko_s_own_proxy(client):
    """Over TCP (REMOTE_ADDR is an IP) a client's X-Real-IP is ignored; through the socket it is the address."""
    name = register(client)["username"]
    for i in range(5):
        spoofed = client.post("/v1/sessions", json={"username": name, "password": "wrong-password"},
                              headers={"X-Real-IP": f"10.9.9.{i}"}, environ_base={"REMOTE_ADDR": ATTACKER})
        assert spoofed.status_code == 401
    assert login(client, name).status_code == 429  # every attempt counted against ATTACKER
    via_proxy = {"REMOTE_ADDR": ""}
    for _ in range(5):
        assert client.post("/v1/sessions", json={"username": name, "password": "wrong-password"},
                           headers={"X-Real-IP": "192.0.2.99"}, environ_base=via_proxy).status_code == 401
    assert client.post("/v1/sessions", json={"username": name, "password": PASSWORD},
                       headers={"X-Real-IP": "192.0.2.99"}, environ_base=via_proxy).status_code == 429
    assert client.post("/v1/sessions", json={"username": name, "password": PASSWORD},
                       headers={"X-Real-IP": "192.0.2.100"}, environ_base=via_proxy).status_code == 201


def test_client_address_rule():
    from common.web.edge import client_address

    cases = [({"REMOTE_ADDR": "192.0.2.1", "HTTP_X_REAL_IP": "10.0.0.1"}, "192.0.2.1"),
             ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "10.0.0.1"}, "10.0.0.1"),
             ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "2001:db8::1"}, "2001:db8::1"),
             ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "not-an-address"}, None),
             ({"REMOTE_ADDR": ""}, None),
             ({"REMOTE_ADDR": "::1"}, "::1")]
    for environ, expected in cases:
        assert client_address(environ) == expected, environ


def test_usernames_are_unique_whatever_their_case_and_login_ignores_it(client, db_session):
    name = unique("Dwi")
    register(client, name)
    clash = client.post("/v1/users", json={"username": name.lower(), "email": f"{unique('m')}@example.test",
                                           "password": PASSWORD})
    assert clash.status_code == 409
    assert login(client, name.upper()).status_code == 201
    admin = make_account(db_session, "admin", username=unique("admin"))
    customer = make_account(db_session)
    rename = client.patch(f"/v1/users/{customer.id}", json={"username": admin.username.upper()},
                          headers=customer.headers)
    assert rename.status_code == 409
    own_case = client.patch(f"/v1/users/{customer.id}", json={"username": customer.username.upper()},
                            headers=customer.headers)
    assert own_case.status_code == 200


def test_the_database_refuses_a_username_differing_only_in_case(db_session):
    from sqlalchemy.exc import IntegrityError

    name = unique("Case")
    make_account(db_session, username=name)
    with pytest.raises(IntegrityError):
        with db_session.begin_nested():
            db_session.add(User(username=name.swapcase(), email=f"{unique('m')}@example.test", password_hash="x"))
            db_session.flush()


@pytest.mark.parametrize("field, value", [("email", "new-{}@example.test"), ("phone", "+6281234567890")])
def test_changing_own_contact_needs_the_password_and_unverifies(client, db_session, field, value):
    alice = make_account(db_session)
    db_session.execute(text("UPDATE users SET verified = true, phone = '+628111' WHERE id = :i"), {"i": alice.id})
    value = value.format(unique())
    for body in ({field: value}, {field: value, "current_password": "wrong-password"}):
        refused = client.patch(f"/v1/users/{alice.id}", json=body, headers=alice.headers)
        assert refused.status_code in (403, 422), refused.get_json()
    put_body = {"username": alice.username, "email": f"{alice.username}@example.test", "phone": "+628111",
                field: value}
    assert client.put(f"/v1/users/{alice.id}", json=put_body, headers=alice.headers).status_code in (403, 422)
    me = client.get("/v1/users/me", headers=alice.headers).get_json()["data"]
    assert me[field] != value and me["verified"] is True
    ok = client.patch(f"/v1/users/{alice.id}", json={field: value, "current_password": PASSWORD},
                      headers=alice.headers)
    assert ok.status_code == 200
    assert ok.get_json()["data"][field] == value and ok.get_json()["data"]["verified"] is False


def test_an_unchanged_contact_needs_no_password(client, db_session):
    alice = make_account(db_session)
    db_session.execute(text("UPDATE users SET verified = true WHERE id = :i"), {"i": alice.id})
    body = {"username": alice.username, "email": f"{alice.username}@example.test", "phone": None}
    answer = client.put(f"/v1/users/{alice.id}", json=body, headers=alice.headers)
    assert answer.status_code == 200 and answer.get_json()["data"]["verified"] is True


def test_an_admin_changes_another_user_s_contact_without_their_password(client, db_session):
    admin, alice = make_account(db_session, "admin"), make_account(db_session)
    answer = client.patch(f"/v1/users/{alice.id}", json={"phone": "+6289999999"}, headers=admin.headers)
    assert answer.status_code == 200 and answer.get_json()["data"]["verified"] is False


def test_when_every_hash_slot_is_busy_a_login_gets_503_quickly_and_counts_nothing(client, settings, db_session):
    settings(argon2_max_concurrent=1, argon2_wait_ms=100)
    name = register(client)["username"]
    held, release = threading.Event(), threading.Event()

    def hold():
        with svc_user.passwords._turn():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        busy = login(client, name)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert busy.get_json()["error"]["code"] == "busy"
    finally:
        release.set()
        holder.join()
    assert db_session.scalar(select(func.count()).select_from(LoginFailure)
                             .where(LoginFailure.username == name.lower())) == 0
    assert login(client, name).status_code == 201


def test_past_as_many_waiting_logins_as_hashing_slots_a_login_is_refused_without_waiting(client, settings):
    settings(argon2_max_concurrent=1, argon2_wait_ms=5000)
    name = register(client)["username"]
    hashing, waiting, release = threading.Event(), threading.Event(), threading.Event()

    def hold(started):
        with svc_user.passwords._turn():
            started.set()
            release.wait(10)

    holder = threading.Thread(target=hold, args=(hashing,))
    holder.start()
    assert hashing.wait(5)
    waiter = threading.Thread(target=hold, args=(waiting,))  # admitted, waits for the slot
    waiter.start()
    try:
        import time

        started = time.monotonic()
        busy = login(client, name)
        assert busy.status_code == 503 and time.monotonic() - started < 2  # not the 5 s wait
    finally:
        release.set()
        holder.join()
        waiter.join()
    assert waiting.is_set()  # the waiter got its turn once the slot freed
