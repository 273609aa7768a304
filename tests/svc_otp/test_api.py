"""The OTP rules, in process: each test runs in a transaction that is rolled back."""
from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from common.settings import get_settings
from svc_otp.service import hash_code
from tests.factories import make_account, make_awaiting_transaction
from tests.helpers import error


@pytest.fixture
def client(make_client):
    return make_client("otp")


@pytest.fixture
def account(db_session):
    return make_account(db_session)


def create(client, account, purpose="verify_account", **extra):
    return client.post("/v1/otps", json={"purpose": purpose, **extra}, headers=account.headers)


def verify(client, account, otp_id, code):
    return client.post(f"/v1/otps/{otp_id}/verify", json={"code": code}, headers=account.headers)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** 6:06d}"


def challenge_row(db_session, otp_id):
    return db_session.execute(text("SELECT * FROM otp_challenges WHERE id = :id"),
                              {"id": otp_id}).mappings().one()


def state(client, account, otp_id) -> str:
    return client.get(f"/v1/otps/{otp_id}", headers=account.headers).get_json()["data"]["status"]


def verified(db_session, account) -> bool:
    return db_session.execute(text("SELECT verified FROM users WHERE id = :u"), {"u": account.id}).scalar()


def message_row(db_session, otp_id):
    return db_session.execute(text("SELECT * FROM otp_messages WHERE challenge_id = :id"),
                              {"id": otp_id}).mappings().one()


def test_request_returns_the_challenge_and_queues_its_message(client, account, db_session):
    response = create(client, account)
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()["data"]
    assert set(data) == {"id", "purpose", "reference", "expires_at", "channel", "debug_code"}
    assert data["purpose"] == "verify_account" and data["reference"] is None and data["channel"] == "email"
    assert re.fullmatch(r"[0-9]{6}", data["debug_code"])
    assert data["expires_at"].endswith("Z")
    assert response.headers["Location"].endswith(f"/v1/otps/{data['id']}")

    row = challenge_row(db_session, data["id"])
    assert row["status"] == "pending" and row["attempts"] == 0 and row["user_id"] == account.id
    assert (row["expires_at"] - row["created_at"]) == timedelta(seconds=get_settings().otp_ttl_seconds)
    message = message_row(db_session, data["id"])
    assert message["status"] == "pending" and message["channel"] == "email"
    assert message["destination"] == f"{account.username}@example.test"
    assert data["debug_code"] in message["body"]


def test_code_is_stored_only_as_a_hash_bound_to_its_challenge(client, account, db_session):
    data = create(client, account).get_json()["data"]
    code, stored = data["debug_code"], bytes(challenge_row(db_session, data["id"])["code_hash"])
    secret = get_settings().otp_secret
    assert stored == hash_code(secret, uuid.UUID(data["id"]), account.id, "verify_account", "", code)
    assert code.encode() not in stored and stored != hashlib.sha256(code.encode()).digest()
    # The same code for another challenge, user or purpose hashes differently: no replay across challenges.
    assert stored != hash_code(secret, uuid.uuid4(), account.id, "verify_account", "", code)
    assert stored != hash_code(secret, uuid.UUID(data["id"]), account.id + 1, "verify_account", "", code)
    assert stored != hash_code(secret, uuid.UUID(data["id"]), account.id, "confirm_transaction", "", code)


def test_account_with_a_phone_gets_an_sms(client, account, db_session):
    db_session.execute(text("UPDATE users SET phone = '+6281234567890' WHERE id = :u"), {"u": account.id})
    data = create(client, account).get_json()["data"]
    assert data["channel"] == "sms"
    message = message_row(db_session, data["id"])
    assert (message["channel"], message["destination"]) == ("sms", "+6281234567890")


def test_confirm_transaction_takes_the_transaction_id_as_reference(client, account, db_session):
    first, second = (make_awaiting_transaction(db_session, account.id) for _ in range(2))
    response = create(client, account, "confirm_transaction", reference=str(first))
    assert response.status_code == 201
    assert response.get_json()["data"]["reference"] == str(first)
    # A JSON integer is read as the same id.
    as_number = create(client, account, "confirm_transaction", reference=second)
    assert as_number.get_json()["data"]["reference"] == str(second)


def test_confirm_transaction_only_for_the_caller_s_own_awaiting_transaction(client, account, db_session):
    other = make_account(db_session)
    theirs = make_awaiting_transaction(db_session, other.id)
    paid = make_awaiting_transaction(db_session, account.id)
    db_session.execute(text("UPDATE transactions SET status = 'paid', confirm_by = NULL WHERE id = :t"), {"t": paid})
    for reference in (str(theirs), str(paid), "999999999999", str(2**63), "9" * 19):
        error(create(client, account, "confirm_transaction", reference=reference), 404, "not_found")
    assert db_session.execute(text("SELECT count(*) FROM otp_challenges WHERE user_id = :u"),
                              {"u": account.id}).scalar_one() == 0  # nothing sent, no budget spent
    mine = make_awaiting_transaction(db_session, account.id)
    assert create(client, account, "confirm_transaction", reference=str(mine)).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"purpose": "confirm_transaction"}, "reference"),
    ({"purpose": "confirm_transaction", "reference": ""}, "reference"),
    ({"purpose": "confirm_transaction", "reference": "abc"}, "reference"),
    ({"purpose": "confirm_transaction", "reference": "-1"}, "reference"),
    ({"purpose": "confirm_transaction", "reference": True}, "reference"),
    ({"purpose": "verify_account", "reference": "42"}, "reference"),
    ({"purpose": "reset_password"}, "purpose"),
    ({}, "purpose"),
    ({"purpose": "verify_account", "extra": 1}, "extra"),
])
def test_bad_requests_name_the_field(client, account, body, field):
    response = client.post("/v1/otps", json=body, headers=account.headers)
    body = error(response, 422, "validation_error")
    assert field in body["details"]["fields"]


def test_requests_need_a_session_and_json(client, account):
    error(client.post("/v1/otps", json={"purpose": "nope"}), 401, "unauthorized")
    form = {**account.headers, "Content-Type": "application/x-www-form-urlencoded"}
    error(client.post("/v1/otps", data="purpose=verify_account", headers=form), 415, "unsupported_media_type")
    error(client.post("/v1/otps", data="{", headers={**account.headers, "Content-Type": "application/json"}),
          400, "bad_request")


def test_a_new_request_replaces_the_live_code(client, account, db_session):
    first = create(client, account).get_json()["data"]
    other = create(client, account, "confirm_transaction",
                   reference=str(make_awaiting_transaction(db_session, account.id))).get_json()["data"]
    second = create(client, account).get_json()["data"]
    assert challenge_row(db_session, first["id"])["status"] == "replaced"
    assert challenge_row(db_session, other["id"])["status"] == "pending"  # another purpose is untouched
    error(verify(client, account, first["id"], first["debug_code"]), 410, "otp_replaced")
    assert state(client, account, first["id"]) == "replaced"
    assert verify(client, account, second["id"], second["debug_code"]).status_code == 200


def test_requests_are_throttled_per_user(client, account, db_session):
    limit, window = get_settings().otp_requests_per_window, get_settings().otp_request_window_seconds
    for i in range(limit):
        reference = str(make_awaiting_transaction(db_session, account.id))
        assert create(client, account, "confirm_transaction", reference=reference).status_code == 201
    response = create(client, account)
    body = error(response, 429, "otp_throttled")
    assert 1 <= int(response.headers["Retry-After"]) <= window
    assert body["details"]["retry_after"] == int(response.headers["Retry-After"])
    # Another user is not affected.
    assert create(client, make_account(db_session)).status_code == 201
    # The window slides: once the old requests age out, the user may ask again.
    db_session.execute(text("""UPDATE otp_challenges SET created_at = created_at - make_interval(secs => :w)
                               WHERE user_id = :u"""), {"w": window, "u": account.id})
    assert create(client, account).status_code == 201


def test_correct_code_verifies_once_and_marks_the_account_verified(client, account, db_session):
    data = create(client, account).get_json()["data"]
    response = verify(client, account, data["id"], data["debug_code"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()["data"]
    assert body["id"] == data["id"] and body["verified"] is True and body["purpose"] == "verify_account"
    assert verified(db_session, account) is True
    error(verify(client, account, data["id"], data["debug_code"]), 409, "otp_used")
    status = client.get(f"/v1/otps/{data['id']}", headers=account.headers).get_json()["data"]
    assert status["status"] == "verified" and status["verified_at"]
    # A verified account needs no second verification code.
    error(create(client, account), 409, "already_verified")


def test_confirm_transaction_code_does_not_touch_the_account(client, account, db_session):
    reference = str(make_awaiting_transaction(db_session, account.id))
    data = create(client, account, "confirm_transaction", reference=reference).get_json()["data"]
    assert verify(client, account, data["id"], data["debug_code"]).status_code == 200
    assert verified(db_session, account) is False


def test_wrong_codes_count_down_then_lock(client, account, db_session):
    data = create(client, account).get_json()["data"]
    attempts = get_settings().otp_max_attempts
    for left in range(attempts - 1, -1, -1):
        body = error(verify(client, account, data["id"], wrong(data["debug_code"])), 422, "otp_invalid")
        assert body["details"]["attempts_left"] == left
    assert challenge_row(db_session, data["id"])["status"] == "locked"
    response = verify(client, account, data["id"], data["debug_code"])
    error(response, 429, "otp_locked")
    assert int(response.headers["Retry-After"]) >= 1
    status = client.get(f"/v1/otps/{data['id']}", headers=account.headers).get_json()["data"]
    assert status["status"] == "locked" and status["attempts_left"] == 0
    assert challenge_row(db_session, data["id"])["attempts"] == attempts


def test_a_malformed_code_is_not_an_attempt(client, account, db_session):
    data = create(client, account).get_json()["data"]
    for code in ("12345", "1234567", "12a456", 123456):
        body = error(verify(client, account, data["id"], code), 422, "validation_error")
        assert "code" in body["details"]["fields"]
    assert challenge_row(db_session, data["id"])["attempts"] == 0


def test_expired_code_is_gone(client, account, db_session):
    data = create(client, account).get_json()["data"]
    db_session.execute(text("UPDATE otp_challenges SET expires_at = now() - interval '1 second' "
                            "WHERE id = :id"), {"id": data["id"]})
    error(verify(client, account, data["id"], data["debug_code"]), 410, "otp_expired")
    assert state(client, account, data["id"]) == "expired"
    assert challenge_row(db_session, data["id"])["attempts"] == 0


def test_another_users_or_unknown_otp_is_not_found(client, account, db_session):
    data = create(client, account).get_json()["data"]
    stranger = make_account(db_session)
    error(verify(client, stranger, data["id"], data["debug_code"]), 404, "not_found")
    error(client.get(f"/v1/otps/{data['id']}", headers=stranger.headers), 404, "not_found")
    for bad in (uuid.uuid4(), "not-a-uuid", "123"):
        error(verify(client, account, bad, "123456"), 404, "not_found")
        error(client.get(f"/v1/otps/{bad}", headers=account.headers), 404, "not_found")
    assert challenge_row(db_session, data["id"])["attempts"] == 0  # the stranger's guess did not count
    error(client.post(f"/v1/otps/{data['id']}/verify", json={"code": "x"}), 401, "unauthorized")


def test_status_of_a_live_code(client, account, db_session):
    reference = str(make_awaiting_transaction(db_session, account.id))
    data = create(client, account, "confirm_transaction", reference=reference).get_json()["data"]
    response = client.get(f"/v1/otps/{data['id']}", headers=account.headers)
    status = response.get_json()["data"]
    assert status["status"] == "pending" and status["attempts_left"] == get_settings().otp_max_attempts
    assert status["reference"] == reference and status["expires_at"] == data["expires_at"]
    assert "debug_code" not in status
    assert client.head(f"/v1/otps/{data['id']}", headers=account.headers).status_code == 200


def test_production_never_reveals_the_code(client, account, monkeypatch):
    from common import settings as settings_module

    production = settings_module.load_settings({"TOKO_ENV": "production", "TOKO_SECRET_KEY": "k" * 40,
                                                "TOKO_OTP_SECRET": "o" * 40, "DATABASE_URL": "postgresql://x@127.0.0.1/x"})
    monkeypatch.setattr("svc_otp.api_v1.get_settings", lambda: production)
    data = create(client, account).get_json()["data"]
    assert "debug_code" not in data and set(data) == {"id", "purpose", "reference", "expires_at", "channel"}


def test_openapi_documents_the_routes_and_their_errors(client):
    spec = client.get("/openapi.json").get_json()
    verify_op = spec["paths"]["/v1/otps/{otp_id}/verify"]["post"]
    assert {"200", "401", "404", "409", "410", "422", "429"} <= set(verify_op["responses"])
    assert "otp_replaced" in verify_op["description"]
    create_op = spec["paths"]["/v1/otps"]["post"]
    assert {"201", "401", "409", "422", "429"} <= set(create_op["responses"]) and create_op["security"]
    assert "/v1/otps/{otp_id}" in spec["paths"]


def test_list_shows_only_your_own_codes(client, db_session):
    from tests.factories import make_account

    alice, bob = make_account(db_session), make_account(db_session)
    def ask(account):
        reference = str(make_awaiting_transaction(db_session, account.id))
        return client.post("/v1/otps", json={"purpose": "confirm_transaction", "reference": reference},
                           headers=account.headers)

    first, second = ask(alice), ask(alice)
    ask(bob)
    listed = client.get("/v1/otps", headers=alice.headers)
    assert listed.status_code == 200
    ids = [o["id"] for o in listed.get_json()["data"]]
    # One test transaction gives both the same created_at, so only membership is checked here.
    assert sorted(ids) == sorted([second.get_json()["data"]["id"], first.get_json()["data"]["id"]])
    assert all("code" not in o and "debug_code" not in o for o in listed.get_json()["data"])
    assert client.get("/v1/otps").status_code == 401


def test_a_code_with_a_final_newline_is_malformed_not_a_wrong_guess(client, account, db_session):
    created = create(client, account).get_json()["data"]
    code = created["debug_code"]
    answer = client.post(f"/v1/otps/{created['id']}/verify", json={"code": code + "\n"}, headers=account.headers)
    assert answer.status_code == 422 and "code" in answer.get_json()["error"]["details"]["fields"]
    assert challenge_row(db_session, created["id"])["attempts"] == 0
