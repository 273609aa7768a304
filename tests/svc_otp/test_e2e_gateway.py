"""Delivery through an HTTP gateway over the real stack: retries with backoff, giving up, a kill mid-send.

The stack runs against its own database so that its svc_otp_worker, and no other stack's, owns the outbox.
The gateway is a real HTTP server in this process whose answers each test scripts per destination.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.stack import free_port
from tests.svc_otp.conftest import extra_stack, wait_for

BACKOFF = 1
MAX_ATTEMPTS = 3


class Gateway:
    """An SMS gateway: records every request; answers as scripted for the destination ('ok' by default)."""

    def __init__(self):
        self.port = free_port()
        self.calls: list[dict] = []
        self.plans: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.holding, self.release = threading.Event(), threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with gateway.lock:
                    gateway.calls.append({"at": time.monotonic(), "payload": payload,
                                          "key": self.headers.get("Idempotency-Key")})
                    plan = gateway.plans.get(payload["destination"]) or []
                    action = plan.pop(0) if plan else "ok"
                if action == "hold":  # accept the request, then keep the worker waiting for the answer
                    gateway.holding.set()
                    gateway.release.wait(30)
                status = 503 if action == "fail" else 202
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the worker died while waiting: nobody is listening any more

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/messages"

    def calls_to(self, destination: str) -> list[dict]:
        with self.lock:
            return [c for c in self.calls if c["payload"]["destination"] == destination]


@pytest.fixture(scope="module")
def gateway():
    gw = Gateway()
    gw.thread.start()
    yield gw
    gw.release.set()
    gw.server.shutdown()
    gw.server.server_close()


@pytest.fixture(scope="module")
def gw_stack(gateway, tmp_path_factory):
    with extra_stack(tmp_path_factory, "gw", TOKO_OTP_SENDER="http", TOKO_OTP_GATEWAY_URL=gateway.url,
                     TOKO_OTP_DELIVERY_BACKOFF_SECONDS=str(BACKOFF),
                     TOKO_OTP_DELIVERY_MAX_ATTEMPTS=str(MAX_ATTEMPTS)) as running:
        yield running


def phone() -> str:
    return f"+62{uuid.uuid4().int % 10 ** 10:010d}"


def test_a_gateway_failure_is_retried_with_growing_delays(gw_stack, gateway):
    stack, otps = gw_stack
    number = phone()
    gateway.plans[number] = ["fail", "fail"]
    account = otps.account(phone=number)
    data = otps.create(account).json()["data"]
    message = otps.wait_sent(data["id"])
    assert message["attempts"] == 3 and message["body"] is None and message["last_error"] is None
    calls = gateway.calls_to(number)
    assert len(calls) == 3
    assert {c["key"] for c in calls} == {f"toko-otp-message-{message['id']}"}  # the gateway can de-duplicate
    assert all(c["payload"]["channel"] == "sms" and data["debug_code"] in c["payload"]["body"] for c in calls)
    # The next try is never earlier than its backoff: 1 s after the first failure, 2 s after the second.
    gaps = [b["at"] - a["at"] for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= BACKOFF - 0.1 and gaps[1] >= 2 * BACKOFF - 0.1, gaps
    assert otps.verify(account, data["id"], data["debug_code"]).status_code == 200


def test_delivery_gives_up_after_the_last_attempt_and_drops_the_code(gw_stack, gateway):
    stack, otps = gw_stack
    number = phone()
    gateway.plans[number] = ["fail"] * 10
    data = otps.create(otps.account(phone=number)).json()["data"]
    message = wait_for(lambda: (m := otps.message(data["id"]))["status"] == "failed" and m, 30, "give up")
    assert message["attempts"] == MAX_ATTEMPTS and message["body"] is None
    assert message["last_error"] == "DeliveryError: gateway answered 503"
    assert len(gateway.calls_to(number)) == MAX_ATTEMPTS
    assert "otp delivery failed" in stack.log("svc_otp_worker")


def test_a_worker_killed_while_sending_loses_nothing(gw_stack, gateway):
    stack, otps = gw_stack
    number = phone()
    gateway.plans[number] = ["hold"]
    data = otps.create(otps.account(phone=number)).json()["data"]
    assert gateway.holding.wait(30), "the worker never reached the gateway"
    pid = stack.ctl("pid", "svc_otp_worker").stdout.strip()
    assert stack.ctl("signal", "KILL", "svc_otp_worker").returncode == 0
    gateway.release.set()
    # Supervisor starts a new worker; the dead one's transaction rolled back, so the message is still due.
    message = otps.wait_sent(data["id"])
    assert message["attempts"] == 1 and message["body"] is None
    calls = gateway.calls_to(number)
    assert len(calls) == 2 and calls[0]["key"] == calls[1]["key"] == f"toko-otp-message-{message['id']}"
    new_pid = wait_for(lambda: (p := stack.ctl("pid", "svc_otp_worker").stdout.strip()) not in ("", "0", pid)
                       and p, what="a new worker")
    assert new_pid != pid
