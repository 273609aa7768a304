"""Production mode over the real stack: no debug code, and the clear code nowhere in the database or logs.

The stack runs with TOKO_ENV=production, real secrets and each service connected as its own database role,
against its own database (so its worker, with the production log sender, is the one delivering). The test
never sees the codes: it recovers each one from its stored hash with the OTP secret, by trying all 10^6,
then proves the recovered code is the real one by verifying with it and searches for it everywhere.
"""
from __future__ import annotations

import hashlib
import re
import secrets

import pytest

from svc_otp.service import code_hasher
from tests.svc_otp.conftest import extra_stack, wrong

OTP_SECRET = secrets.token_hex(20)  # 40 characters, unique to the run


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    with extra_stack(tmp_path_factory, "prod", TOKO_ENV="production", TOKO_SECRET_KEY=secrets.token_hex(20),
                     TOKO_OTP_SECRET=OTP_SECRET, TOKO_ARGON2_PROFILE="owasp", TOKO_DB_ROLES="on") as running:
        yield running


def recover_code(row: dict) -> str:
    """The code whose keyed hash is stored in the challenge row."""
    digest = code_hasher(OTP_SECRET, row["id"], row["user_id"], row["purpose"], row["reference"])
    target = bytes(row["code_hash"])
    for n in range(10 ** 6):
        code = f"{n:06d}"
        if digest(code) == target:
            return code
    raise AssertionError("no code matches the stored hash")


def test_production_never_reveals_or_stores_the_clear_code(prod):
    stack, otps = prod
    account = otps.account()
    responses = [otps.create(account), otps.create(account, "confirm_transaction", reference=otps.awaiting(account))]
    for response in responses:
        assert response.status_code == 201, response.text
        assert "debug_code" not in response.json()["data"] and "debug_code" not in response.text
    ids = [r.json()["data"]["id"] for r in responses]
    messages = [otps.wait_sent(otp_id) for otp_id in ids]
    challenges = [otps.challenge(otp_id) for otp_id in ids]
    codes = [recover_code(row) for row in challenges]

    # The recovered codes are the real ones: the service accepts them (and the account is verified, a
    # write svc_otp's database role is granted on users.verified alone).
    assert otps.verify(account, ids[1], wrong(codes[1])).status_code == 422
    assert otps.verify(account, ids[0], codes[0]).status_code == 200
    assert otps.verify(account, ids[1], codes[1]).status_code == 200
    assert otps.user_verified(account)
    assert "debug_code" not in otps.status(account, ids[0]).text

    for code, challenge, message in zip(codes, challenges, messages):
        stored = bytes(challenge["code_hash"])
        assert code.encode() not in stored and stored != hashlib.sha256(code.encode()).digest()
        for row in (otps.challenge(challenge["id"]), otps.message(challenge["id"])):
            assert all(code not in value for value in row.values() if isinstance(value, str)), row
        assert otps.message(challenge["id"])["body"] is None

    # Every log file of the stack: the codes appear in none (as a number of their own), nor do addresses.
    logs = {path.name: path.read_text(errors="replace") for path in (stack.home / "var/log").rglob("*")
            if path.is_file()}
    assert "svc_otp_worker.log" in logs and "svc_otp.log" in logs
    for name, content in logs.items():
        for code in codes:
            assert not re.search(rf"(?<![0-9]){code}(?![0-9])", content), f"code found in {name}"
    worker_log = logs["svc_otp_worker.log"]
    for message in messages:
        assert f'"message_id": {message["id"]}' in worker_log
    assert "otp message delivered to the log" in worker_log
    assert f"{account.username}@example.test" not in worker_log
