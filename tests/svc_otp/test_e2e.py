"""The OTP service over the real stack (gunicorn under supervisor, svc_otp_worker delivering)."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import requests

from common.settings import get_settings
from svc_otp.worker import POLL_SECONDS
from tests.svc_otp.conftest import Otps, wait_for, wrong


@pytest.fixture(scope="module")
def otps(stack, database_url):
    client = Otps(stack, database_url)
    yield client
    client.close()


def parallel(n: int, call):
    """Run call(i) in n threads released together; return the results in order."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i):
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_verify_account_end_to_end(otps, stack):
    account = otps.account()
    response = otps.create(account)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.headers["Location"].endswith(f"/v1/otps/{data['id']}")
    assert data["channel"] == "email" and len(data["debug_code"]) == 6
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    ttl = get_settings().otp_ttl_seconds
    assert timedelta(seconds=ttl - 30) < expires - datetime.now(timezone.utc) <= timedelta(seconds=ttl + 5)

    # svc_otp_worker delivers it: the message is marked sent and the code leaves the database.
    message = otps.wait_sent(data["id"])
    assert message["body"] is None and message["attempts"] == 1 and message["sent_at"] is not None
    assert message["destination"] == f"{account.username}@example.test"
    assert f'"message_id": {message["id"]}' in stack.log("svc_otp_worker")

    assert not otps.user_verified(account)
    verified = otps.verify(account, data["id"], data["debug_code"])
    assert verified.status_code == 200, verified.text
    assert verified.json()["data"]["verified"] is True and verified.json()["data"]["id"] == data["id"]
    assert otps.user_verified(account)

    again = otps.verify(account, data["id"], data["debug_code"])
    assert again.status_code == 409 and again.json()["error"]["code"] == "otp_used"


def test_confirm_transaction_code_is_sent_by_sms(otps):
    account = otps.account(phone=f"+62{uuid.uuid4().int % 10 ** 10:010d}")
    reference = otps.awaiting(account)
    data = otps.create(account, "confirm_transaction", reference=reference).json()["data"]
    assert (data["channel"], data["reference"]) == ("sms", reference)
    message = otps.wait_sent(data["id"])
    assert message["channel"] == "sms" and message["destination"].startswith("+62")
    assert otps.verify(account, data["id"], data["debug_code"]).status_code == 200
    assert not otps.user_verified(account)


def test_requests_are_throttled_with_retry_after(otps):
    account, limit = otps.account(), get_settings().otp_requests_per_window
    for i in range(limit):
        assert otps.create(account, "confirm_transaction", reference=otps.awaiting(account)).status_code == 201
    refused = otps.create(account, "confirm_transaction", reference=otps.awaiting(account))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "otp_throttled"
    assert 1 <= int(refused.headers["Retry-After"]) <= get_settings().otp_request_window_seconds
    assert otps.create(otps.account()).status_code == 201  # others are not affected


def test_parallel_requests_leave_one_live_code_and_respect_the_throttle(otps):
    account, limit = otps.account(), get_settings().otp_requests_per_window
    results = parallel(3 * limit, lambda i: otps.create(account))
    statuses = Counter(r.status_code for r in results)
    assert statuses == {201: limit, 429: 2 * limit}, [r.text for r in results if r.status_code >= 500]
    rows = otps.sql("SELECT status, count(*) AS n FROM otp_challenges WHERE user_id = :u GROUP BY status",
                    u=account.id)
    assert {r["status"]: r["n"] for r in rows} == {"pending": 1, "replaced": limit - 1}
    live = otps.sql("SELECT id FROM otp_challenges WHERE user_id = :u AND status = 'pending'", u=account.id)
    newest = [r.json()["data"] for r in results if r.status_code == 201]
    winner = next(d for d in newest if d["id"] == str(live[0]["id"]))
    assert otps.verify(account, winner["id"], winner["debug_code"]).status_code == 200


def test_resend_replaces_the_old_code(otps):
    account = otps.account()
    old = otps.create(account).json()["data"]
    new = otps.create(account).json()["data"]
    dead = otps.verify(account, old["id"], old["debug_code"])
    assert dead.status_code == 410 and dead.json()["error"]["code"] == "otp_replaced"
    assert otps.status(account, old["id"]).json()["data"]["status"] == "replaced"
    assert otps.wait_sent(new["id"])["body"] is None
    assert otps.verify(account, new["id"], new["debug_code"]).status_code == 200
    # The old message either left before the resend or was dropped unsent; its code is gone either way.
    old_message = wait_for(lambda: (m := otps.message(old["id"]))["status"] != "pending" and m)
    assert old_message["body"] is None


def test_wrong_codes_count_down_then_lock(otps):
    account = otps.account()
    data = otps.create(account).json()["data"]
    limit = get_settings().otp_max_attempts
    lefts = []
    for _ in range(limit):
        response = otps.verify(account, data["id"], wrong(data["debug_code"]))
        assert response.status_code == 422 and response.json()["error"]["code"] == "otp_invalid"
        lefts.append(response.json()["error"]["details"]["attempts_left"])
    assert lefts == list(range(limit - 1, -1, -1))
    locked = otps.verify(account, data["id"], data["debug_code"])  # even the right code is refused now
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "otp_locked"
    assert int(locked.headers["Retry-After"]) >= 1
    status = otps.status(account, data["id"]).json()["data"]
    assert status["status"] == "locked" and status["attempts_left"] == 0
    assert not otps.user_verified(account)


def test_parallel_correct_codes_succeed_exactly_once(otps):
    account = otps.account()
    data = otps.create(account).json()["data"]
    results = parallel(20, lambda i: otps.verify(account, data["id"], data["debug_code"]))
    statuses = Counter(r.status_code for r in results)
    assert statuses == {200: 1, 409: 19}, statuses
    assert all(r.json()["error"]["code"] == "otp_used" for r in results if r.status_code == 409)
    assert otps.user_verified(account)


def test_parallel_wrong_codes_never_pass_the_limit(otps):
    account = otps.account()
    data = otps.create(account).json()["data"]
    limit = get_settings().otp_max_attempts
    results = parallel(20, lambda i: otps.verify(account, data["id"], wrong(data["debug_code"])))
    invalid = [r.json()["error"]["details"]["attempts_left"] for r in results if r.status_code == 422]
    assert sorted(invalid) == list(range(limit)), [r.status_code for r in results]
    assert Counter(r.status_code for r in results)[429] == 20 - limit
    row = otps.challenge(data["id"])
    assert row["attempts"] == limit and row["status"] == "locked"


def test_expired_code_is_gone(otps):
    account = otps.account()
    data = otps.create(account).json()["data"]
    otps.sql("UPDATE otp_challenges SET expires_at = now() - interval '1 second' WHERE id = :id",
             id=data["id"])
    expired = otps.verify(account, data["id"], data["debug_code"])
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "otp_expired"
    assert otps.status(account, data["id"]).json()["data"]["status"] == "expired"
    assert not otps.user_verified(account)


def test_another_users_otp_is_not_found(otps, stack):
    owner, stranger = otps.account(), otps.account()
    data = otps.create(owner).json()["data"]
    for response in (otps.verify(stranger, data["id"], data["debug_code"]), otps.status(stranger, data["id"]),
                     otps.verify(owner, uuid.uuid4(), "123456"), otps.verify(owner, "nope", "123456")):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    anonymous = requests.post(stack.url("otp", f"/v1/otps/{data['id']}/verify"), json={"code": "1"},
                              timeout=10)
    assert anonymous.status_code == 401
    assert otps.challenge(data["id"])["attempts"] == 0
    assert otps.verify(owner, data["id"], data["debug_code"]).status_code == 200


def _worker_state(stack) -> str:
    return stack.ctl("status", "svc_otp_worker").stdout.split()[1]


def test_messages_wait_while_the_worker_is_stopped_and_go_out_when_it_returns(otps, stack):
    assert stack.ctl("stop", "svc_otp_worker").returncode == 0
    try:
        assert _worker_state(stack) == "STOPPED"
        accounts = [otps.account() for _ in range(4)]
        created = [otps.create(a).json()["data"] for a in accounts]
        # A running worker would deliver within a poll or two; stopped, nothing leaves the outbox.
        time.sleep(6 * POLL_SECONDS)
        for data in created:
            message = otps.message(data["id"])
            assert message["status"] == "pending" and message["attempts"] == 0
            assert data["debug_code"] in message["body"]
    finally:
        assert stack.ctl("start", "svc_otp_worker").returncode == 0
    assert _worker_state(stack) == "RUNNING"
    for data in created:
        assert otps.wait_sent(data["id"])["body"] is None
    # Delivery late or not, the codes work.
    assert otps.verify(accounts[0], created[0]["id"], created[0]["debug_code"]).status_code == 200


def test_delivery_survives_a_worker_restart(otps, stack):
    accounts = [otps.account() for _ in range(3)]
    before = [otps.create(a).json()["data"] for a in accounts]
    assert stack.ctl("restart", "svc_otp_worker").returncode == 0
    after = [otps.create(a, "confirm_transaction", reference=otps.awaiting(a)).json()["data"] for a in accounts]
    for data in before + after:
        assert otps.wait_sent(data["id"])["body"] is None
    assert _worker_state(stack) == "RUNNING"
