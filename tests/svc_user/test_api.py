"""The user service in-process: registration, accounts, login, sessions, throttling."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from common.db.models import User, UserSession
from common.security import hash_token
from tests.conftest import unique
from tests.factories import PASSWORD, make_account


@pytest.fixture
def client(make_client):
    return make_client("user")


def register(client, **over):
    name = over.pop("username", None) or unique("cust")
    body = {"username": name, "email": f"{name}@example.test", "password": PASSWORD, **over}
    return client.post("/v1/users", json=body)


def login(client, username, password=PASSWORD):
    return client.post("/v1/sessions", json={"username": username, "password": password})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_register_returns_the_user_without_secrets(client):
    response = register(client, phone="+628123456789")
    assert response.status_code == 201
    user = response.get_json()["data"]
    assert set(user) == {"id", "username", "email", "phone", "role", "verified", "created_at"}
    assert user["role"] == "customer" and user["verified"] is False and user["created_at"].endswith("Z")
    assert response.headers["Location"].endswith(f"/v1/users/{user['id']}")
    assert "password" not in response.get_data(as_text=True)


def test_password_is_stored_as_argon2id(client, db_session):
    user_id = register(client).get_json()["data"]["id"]
    stored = db_session.get(User, user_id).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


@pytest.mark.parametrize("field", ["username", "email"])
def test_duplicates_are_409(client, field):
    first = register(client).get_json()["data"]
    other = unique("cust")
    body = {"username": other, "email": f"{other}@example.test", "password": PASSWORD}
    body[field] = first[field].upper() if field == "email" else first[field]
    response = client.post("/v1/users", json=body)
    assert response.status_code == 409
    assert response.get_json()["error"]["details"]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({"password": "short"}, "password"),
    ({"password": "x" * 129}, "password"),
    ({"email": "not-an-email"}, "email"),
    ({"username": "a b"}, "username"),
    ({"phone": "call me"}, "phone"),
    ({"role": "admin"}, "role"),
    ({"id": 1}, "id"),
    ({"password_hash": "$argon2id$..."}, "password_hash"),
    ({"verified": True}, "verified"),
])
def test_bad_registrations_are_422_naming_the_field(client, body, field):
    response = register(client, **body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["fields"]


def test_long_passwords_are_not_truncated(client):
    name = unique("long")
    password = "p" * 64 + "A"
    assert register(client, username=name, password=password).status_code == 201
    assert login(client, name, "p" * 64 + "B").status_code == 401
    assert login(client, name, password).status_code == 201


def test_login_gives_token_and_cookie(client, db_session):
    name = unique("cust")
    register(client, username=name)
    response = login(client, name)
    assert response.status_code == 201
    data = response.get_json()["data"]
    assert data["user"]["username"] == name and data["expires_at"].endswith("Z")
    cookie = response.headers["Set-Cookie"]
    assert f"toko_session={data['token']}" in cookie
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in cookie
    assert "Secure" not in cookie  # only in production
    row = db_session.scalars(select(UserSession).where(UserSession.token_hash == hash_token(data["token"]))).one()
    assert len(data["token"]) >= 43  # 256 bits, url-safe base64
    assert row.expires_at > row.created_at


def test_each_login_gets_a_new_token(client):
    name = unique("cust")
    register(client, username=name)
    assert login(client, name).get_json()["data"]["token"] != login(client, name).get_json()["data"]["token"]


def test_wrong_password_and_unknown_user_look_the_same(client):
    name = unique("cust")
    register(client, username=name)
    wrong = login(client, name, "wrong-password")
    unknown = login(client, unique("ghost"), "wrong-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()


def test_me_and_current_session(client, db_session):
    account = make_account(db_session)
    me = client.get("/v1/users/me", headers=bearer(account.token))
    assert me.status_code == 200 and me.get_json()["data"]["id"] == account.id
    current = client.get("/v1/sessions/current", headers=bearer(account.token)).get_json()["data"]
    assert current["user"]["id"] == account.id and current["expires_at"].endswith("Z")
    assert "token" not in current


def test_cookie_authenticates_too(client, db_session):
    account = make_account(db_session)
    client.set_cookie("toko_session", account.token)
    assert client.get("/v1/users/me").get_json()["data"]["id"] == account.id


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer forged-token"}, {"Authorization": "Basic eA=="},
                                     {"Authorization": "Bearer " + "x" * 600}])
def test_no_or_forged_token_is_401(client, headers):
    response = client.get("/v1/users/me", headers=headers)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_expired_and_revoked_sessions_are_401(client, db_session):
    idle = make_account(db_session)
    absolute = make_account(db_session)
    revoked = make_account(db_session)
    for account, values in ((idle, {"idle_expires_at": "2000-01-01T00:00:00Z"}),
                            (absolute, {"expires_at": "2000-01-01T00:00:00Z"}),
                            (revoked, {"revoked_at": "2000-01-01T00:00:00Z"})):
        db_session.execute(update(UserSession).where(UserSession.token_hash == hash_token(account.token))
                           .values(**values))
        assert client.get("/v1/users/me", headers=account.headers).status_code == 401


def test_idle_expiry_is_refreshed_without_a_write_on_every_request(client, db_session):
    account = make_account(db_session)
    row = db_session.scalars(select(UserSession).where(UserSession.token_hash == hash_token(account.token))).one()
    old = "2001-01-01T00:00:00Z"
    db_session.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=old))
    client.get("/v1/users/me", headers=account.headers)
    db_session.expire_all()
    touched = db_session.get(UserSession, row.id)
    assert touched.last_seen_at.year > 2001 and touched.idle_expires_at > touched.last_seen_at
    # A second request inside the touch interval leaves the row as it is.
    seen = touched.last_seen_at
    client.get("/v1/users/me", headers=account.headers)
    db_session.expire_all()
    assert db_session.get(UserSession, row.id).last_seen_at == seen


def test_logout_kills_the_token(client, db_session):
    account = make_account(db_session)
    response = client.delete("/v1/sessions/current", headers=account.headers)
    assert response.status_code == 204
    assert "toko_session=;" in response.headers["Set-Cookie"]
    assert client.get("/v1/users/me", headers=account.headers).status_code == 401


def test_users_can_read_and_change_only_themselves(client, db_session):
    alice, bob = make_account(db_session), make_account(db_session)
    assert client.get(f"/v1/users/{bob.id}", headers=alice.headers).status_code == 404
    assert client.patch(f"/v1/users/{bob.id}", json={"phone": "+62811111111"}, headers=alice.headers).status_code == 404
    assert client.delete(f"/v1/users/{bob.id}", headers=alice.headers).status_code == 404
    assert client.get("/v1/users", headers=alice.headers).status_code == 403
    changed = client.patch(f"/v1/users/{alice.id}", json={"phone": "+62811111111", "current_password": PASSWORD},
                           headers=alice.headers)
    assert changed.status_code == 200 and changed.get_json()["data"]["phone"] == "+62811111111"


def test_unknown_and_non_numeric_ids_are_404(client, db_session):
    admin = make_account(db_session, "admin")
    for path in ("/v1/users/999999999", "/v1/users/abc", "/v1/users/99999999999999999999999"):
        assert client.get(path, headers=admin.headers).status_code == 404


def test_a_customer_cannot_make_themself_admin(client, db_session):
    alice = make_account(db_session)
    for method in ("patch", "put"):
        body = {"role": "admin"} if method == "patch" else {"username": alice.username,
                                                           "email": f"{alice.username}@example.test", "role": "admin"}
        response = getattr(client, method)(f"/v1/users/{alice.id}", json=body, headers=alice.headers)
        assert response.status_code == 403
    assert client.get("/v1/users/me", headers=alice.headers).get_json()["data"]["role"] == "customer"
    for field in ("id", "password_hash", "verified"):
        assert client.patch(f"/v1/users/{alice.id}", json={field: 1}, headers=alice.headers).status_code == 422


def test_admin_reads_all_and_changes_roles(client, db_session):
    admin, alice = make_account(db_session, "admin"), make_account(db_session)
    listed = client.get("/v1/users?per_page=100", headers=admin.headers)
    assert listed.status_code == 200 and isinstance(listed.get_json()["data"], list)
    promoted = client.patch(f"/v1/users/{alice.id}", json={"role": "admin"}, headers=admin.headers)
    assert promoted.get_json()["data"]["role"] == "admin"
    assert client.get("/v1/users?per_page=101", headers=admin.headers).status_code == 422


def test_put_replaces_and_post_on_id_too(client, db_session):
    alice = make_account(db_session)
    client.patch(f"/v1/users/{alice.id}", json={"phone": "+62811111111", "current_password": PASSWORD},
                 headers=alice.headers)
    body = {"username": alice.username, "email": f"new-{alice.username}@example.test",
            "current_password": PASSWORD}
    replaced = client.put(f"/v1/users/{alice.id}", json=body, headers=alice.headers).get_json()["data"]
    assert replaced["email"] == body["email"] and replaced["phone"] is None  # replaced, not merged
    assert client.post(f"/v1/users/{alice.id}", json=body, headers=alice.headers).status_code == 200
    assert client.put(f"/v1/users/{alice.id}", json={"username": alice.username},
                      headers=alice.headers).status_code == 422


def test_password_change_needs_the_current_one_and_revokes_other_sessions(client, db_session):
    alice = make_account(db_session)
    other_login = login(client, alice.username).get_json()["data"]["token"]
    wrong = client.patch(f"/v1/users/{alice.id}", json={"password": "new-password-1"}, headers=alice.headers)
    assert wrong.status_code == 422
    ok = client.patch(f"/v1/users/{alice.id}", json={"password": "new-password-1", "current_password": PASSWORD},
                      headers=alice.headers)
    assert ok.status_code == 200
    assert client.get("/v1/users/me", headers=bearer(other_login)).status_code == 401
    assert client.get("/v1/users/me", headers=alice.headers).status_code == 200
    assert login(client, alice.username).status_code == 401
    assert login(client, alice.username, "new-password-1").status_code == 201


def test_deactivation_revokes_at_once(client, db_session):
    admin, alice = make_account(db_session, "admin"), make_account(db_session)
    assert client.delete(f"/v1/users/{alice.id}", headers=admin.headers).status_code == 204
    assert client.get("/v1/users/me", headers=alice.headers).status_code == 401
    assert login(client, alice.username).status_code == 401
    assert client.get(f"/v1/users/{alice.id}", headers=admin.headers).status_code == 404


def test_login_rehashes_when_the_parameters_change(client, db_session):
    from argon2 import PasswordHasher

    from svc_user.passwords import hasher

    name = unique("cust")
    user_id = register(client, username=name).get_json()["data"]["id"]
    old = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(PASSWORD)  # earlier parameters
    db_session.execute(update(User).where(User.id == user_id).values(password_hash=old))
    assert login(client, name).status_code == 201
    db_session.expire_all()
    rehashed = db_session.get(User, user_id).password_hash
    assert rehashed != old and not hasher().check_needs_rehash(rehashed)
    assert "m=19456,t=2,p=1" in old and "m=7168,t=5,p=1" in hasher("owasp").hash(PASSWORD)
