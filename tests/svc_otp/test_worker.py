"""The delivery worker and its senders, in process (each test rolled back)."""
from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import text

from common.logs import JsonFormatter
from common.settings import SettingsError, get_settings, load_settings
from common.worker import Worker
from svc_otp import service
from svc_otp.sender import DeliveryError, HttpGatewaySender, LogSender, OutgoingMessage, make_sender, mask
from svc_otp.worker import backoff_seconds, deliver_one, make_worker
from tests.factories import make_account


class Recording:
    """A sender that keeps what it was given (a gateway that always accepts)."""

    name = "recording"

    def __init__(self):
        self.sent: list[OutgoingMessage] = []

    def send(self, message):
        self.sent.append(message)


class Refusing:
    """A gateway that is down."""

    name = "refusing"

    def __init__(self):
        self.calls = 0

    def send(self, message):
        self.calls += 1
        raise DeliveryError("gateway answered 503")


@pytest.fixture
def issued(db_session):
    """A fresh code whose message is the first one due (older than anything else in the outbox)."""
    account = make_account(db_session)
    issued = service.request_otp(db_session, account.id, "verify_account")
    _make_due(db_session, issued.challenge.id)
    return issued


def _make_due(db_session, challenge_id):
    db_session.execute(text("""UPDATE otp_messages SET next_attempt_at = now() - interval '10 years'
                               WHERE challenge_id = :id"""), {"id": challenge_id})


def message(db_session, challenge_id):
    return db_session.execute(text("""SELECT *, next_attempt_at - now() AS delay FROM otp_messages
                                      WHERE challenge_id = :id"""), {"id": challenge_id}).mappings().one()


def test_a_due_message_is_sent_and_its_body_cleared(db_session, issued):
    sender = Recording()
    assert deliver_one(db_session, sender) == 1
    assert sender.sent[0].body and issued.code in sender.sent[0].body
    row = message(db_session, issued.challenge.id)
    assert row["status"] == "sent" and row["body"] is None and row["sent_at"] is not None
    assert row["attempts"] == 1 and row["last_error"] is None


def test_a_failed_send_is_retried_with_backoff_then_given_up(db_session, issued):
    sender, s = Refusing(), get_settings()
    for attempt in range(1, s.otp_delivery_max_attempts):
        assert deliver_one(db_session, sender) == 1
        row = message(db_session, issued.challenge.id)
        assert row["status"] == "pending" and row["attempts"] == attempt
        assert row["body"] and row["last_error"] == "DeliveryError: gateway answered 503"
        assert row["delay"].total_seconds() == backoff_seconds(attempt)
        _make_due(db_session, issued.challenge.id)
    deliver_one(db_session, sender)
    row = message(db_session, issued.challenge.id)
    assert row["status"] == "failed" and row["body"] is None
    assert row["attempts"] == s.otp_delivery_max_attempts
    assert sender.calls == s.otp_delivery_max_attempts


def test_backoff_doubles_and_never_outlives_a_code():
    s = get_settings()
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [s.otp_delivery_backoff_seconds * k for k in (1, 2, 4)]
    assert backoff_seconds(40) == s.otp_ttl_seconds


def test_a_message_not_yet_due_waits(db_session, issued):
    db_session.execute(text("UPDATE otp_messages SET next_attempt_at = now() + interval '1 hour' "
                            "WHERE challenge_id = :id"), {"id": issued.challenge.id})
    sender = Recording()
    while deliver_one(db_session, sender):  # drain whatever else is due; ours must not be among it
        pass
    assert all(m.id != message(db_session, issued.challenge.id)["id"] for m in sender.sent)
    assert message(db_session, issued.challenge.id)["status"] == "pending"


@pytest.mark.parametrize("kill", [
    "UPDATE otp_challenges SET status = 'replaced' WHERE id = :id",
    "UPDATE otp_challenges SET status = 'locked' WHERE id = :id",
    "UPDATE otp_challenges SET expires_at = now() - interval '1 second' WHERE id = :id",
])
def test_a_dead_codes_message_is_dropped_not_sent(db_session, issued, kill):
    db_session.execute(text(kill), {"id": issued.challenge.id})
    sender = Recording()
    assert deliver_one(db_session, sender) == 1
    assert sender.sent == []
    row = message(db_session, issued.challenge.id)
    assert row["status"] == "failed" and row["body"] is None and "no longer valid" in row["last_error"]


def _log_line(caplog, sender, message_):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="toko.otp.delivery"):
        sender.send(message_)
    (record,) = caplog.records
    return JsonFormatter("otp").format(record)


def test_log_sender_withholds_the_code_and_address_in_production(caplog):
    msg = OutgoingMessage(7, "email", "dwi@example.test", "Your toko code is 493817.")
    line = _log_line(caplog, LogSender(reveal_body=False), msg)
    assert "493817" not in line and "dwi@example.test" not in line
    assert json.loads(line)["destination"] == "d***@example.test"
    revealed = _log_line(caplog, LogSender(reveal_body=True), msg)
    assert "493817" in revealed and "dwi@example.test" in revealed


def test_mask_keeps_only_a_hint():
    assert mask("+6281234567890") == "**********7890"
    assert mask("someone@example.test") == "s***@example.test"


def test_the_sender_is_chosen_by_settings():
    assert isinstance(make_sender(load_settings({"TOKO_ENV": "test"})), LogSender)
    assert make_sender(load_settings({"TOKO_ENV": "development"})).reveal_body is True
    production = load_settings({"TOKO_ENV": "production", "TOKO_SECRET_KEY": "k" * 40,
                                "TOKO_OTP_SECRET": "o" * 40})
    assert make_sender(production).reveal_body is False
    http = make_sender(load_settings({"TOKO_OTP_SENDER": "http",
                                      "TOKO_OTP_GATEWAY_URL": "https://sms.example/x"}))
    assert isinstance(http, HttpGatewaySender) and http.url == "https://sms.example/x"


@pytest.mark.parametrize("env", [
    {"TOKO_OTP_SENDER": "pigeon"},
    {"TOKO_OTP_SENDER": "http"},
    {"TOKO_OTP_SENDER": "http", "TOKO_OTP_GATEWAY_URL": "ftp://x"},
    {"TOKO_OTP_DELIVERY_MAX_ATTEMPTS": "0"},
])
def test_bad_delivery_settings_fail_fast(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_unreachable_gateway_is_a_delivery_error_without_the_body():
    from tests.e2e.stack import free_port

    sender = HttpGatewaySender(f"http://127.0.0.1:{free_port()}/send", timeout=2)
    with pytest.raises(DeliveryError) as info:
        sender.send(OutgoingMessage(1, "sms", "+62811", "code 555123"))
    assert "555123" not in str(info.value)


def test_make_worker_is_the_otp_worker():
    worker = make_worker(Recording())
    assert isinstance(worker, Worker) and worker.service == "otp" and worker.name == "otp-delivery"
