"""The edge: nginx owns every port a client reaches, and every error it makes is toko's envelope."""
from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from common.db.models import UserSession as SessionRow
from common.db.session import session_scope
from common.http import socket_path
from toko.gateway import find_nginx, render_config
from common.settings import SERVICES, load_settings
from tests.e2e.stack import free_port
from tests.tools import missing
from tests.factories import PASSWORD, committed_account

pytestmark = pytest.mark.skipif(find_nginx() is None, reason=missing("nginx", "nginx", "the edge is not tested"))


def raw(port: int | Path, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are (no client library fixing them up) and read the answer to the end.

    A path is a unix socket: a service's gunicorn, where nginx is not in front of it."""
    if isinstance(port, Path):
        conn = socket.socket(socket.AF_UNIX)
        conn.settimeout(timeout)
        conn.connect(str(port))
    else:
        conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with conn:
        conn.sendall(data)
        answer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
    return answer


def parse(answer: bytes) -> tuple[int, dict, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def assert_envelope(status: int, headers: dict, body: bytes, expected_status: int, code: str) -> None:
    import json

    assert status == expected_status, (status, headers, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    assert json.loads(body)["error"]["code"] == code
    assert headers.get("x-request-id"), headers
    assert headers.get("x-content-type-options") == "nosniff"
    assert "/" not in headers.get("server", ""), "no server version"
    assert b"<html" not in body.lower()


def ports(stack):
    return [("item", stack.ports["item"]), ("gateway", int(stack.env["TOKO_GATEWAY_PORT"]))]


@pytest.mark.parametrize("case", ["garbage", "bad_header", "broken_chunk", "uri_too_long", "headers_too_large",
                                  "body_too_large"])
def test_every_error_of_the_web_server_is_an_envelope(stack, case):
    long_path = "/v1/items/" + "a" * 9000
    big_header = "X-Big: " + "b" * 9000
    requests_ = {
        "garbage": (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        "bad_header": (b"GET /v1/items HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
        "broken_chunk": (b"POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400, "bad_request"),
        "uri_too_long": (f"GET {long_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414, "uri_too_long"),
        "headers_too_large": (f"GET /v1/items HTTP/1.1\r\nHost: x\r\n{big_header}\r\n\r\n".encode(), 431,
                              "request_header_fields_too_large"),
        "body_too_large": (b"POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 5000000\r\n\r\n{", 413, "payload_too_large"),
    }
    data, status, code = requests_[case]
    for _, port in ports(stack):
        assert_envelope(*parse(raw(port, data)), status, code)


# (method, path, extra header lines, status through nginx, status at gunicorn's socket, code there, code here)
REFUSED = {
    "many_header_fields": ("GET", "/v1/items", "".join(f"X-Field-{n}: v\r\n" for n in range(120)), 431, 431,
                           "request_header_fields_too_large", "request_header_fields_too_large"),
    "control_byte_in_a_value": ("GET", "/v1/items", "X-Note: a\x01b\r\n", 400, 400, "bad_request", "bad_request"),
    "two_letter_method": ("AB", "/v1/items", "", 405, 400, "method_not_allowed", "bad_request"),
    "long_method": ("A" * 25, "/v1/items", "", 405, 400, "method_not_allowed", "bad_request"),
    "made_up_method": ("FROB", "/nowhere", "", 405, 405, "method_not_allowed", "method_not_allowed"),
    "made_up_method_on_a_route": ("FROB", "/v1/items", "", 405, 405, "method_not_allowed", "method_not_allowed"),
    # nginx refuses a method that is not a token of capitals itself, before it reads the headers.
    "lowercase_method": ("get", "/v1/items", "", 400, 400, "bad_request", "bad_request"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_gunicorn_or_nginx_refuses_is_an_envelope_on_every_port_and_at_the_socket(stack, case):
    method, path, extra, edge_status, socket_status, edge_code, socket_code = REFUSED[case]
    request_id = f"refused-{case.replace('_', '-')}"
    data = f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {request_id}\r\n{extra}\r\n".encode()
    for port in [*stack.ports.values(), int(stack.env["TOKO_GATEWAY_PORT"])]:
        status, headers, body = parse(raw(port, data))
        assert_envelope(status, headers, body, edge_status, edge_code)
        assert headers.get("cache-control") == "no-store", headers
        if case != "lowercase_method":
            assert headers["x-request-id"] == request_id, headers
    status, headers, body = parse(raw(socket_path("item", stack.home), data))
    assert_envelope(status, headers, body, socket_status, socket_code)
    assert headers.get("cache-control") == "no-store", headers
    if case != "lowercase_method":
        lines = stack.access_lines(request_id, count=len(stack.ports) + 1)
        assert [line["method"] for line in lines] == [method] * (len(stack.ports) + 1), "logged as sent"


def test_a_service_down_behind_its_port_answers_503_with_retry_after(stack):
    assert stack.ctl("stop", "svc_report").returncode == 0
    try:
        for url in (stack.url("report", "/v1/reports"), stack.gateway_url("/v1/reports"),
                    stack.gateway_url("/_report/healthz")):
            response = requests.get(url, headers={"X-Request-ID": "down-1"}, timeout=5)
            assert_envelope(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                            response.content, 503, "service_unavailable")
            assert response.headers["Retry-After"] == "1"
            assert response.headers["X-Request-ID"] == "down-1"
    finally:
        assert stack.ctl("start", "svc_report").returncode == 0
        stack.wait_healthy(["report"])


def test_responses_name_no_server_version(stack):
    for service in SERVICES:
        response = requests.get(stack.url(service, "/healthz"), timeout=5)
        assert response.headers.get("Server") == "nginx", response.headers
    for path in ("/healthz", "/v1/items", "/nowhere"):
        response = requests.get(stack.gateway_url(path), timeout=5)
        assert response.headers.get("Server") == "nginx", response.headers


def test_the_client_address_is_the_tcp_peer_never_a_header(stack):
    account = committed_account(password=PASSWORD)
    for url in (stack.url("user", "/v1/sessions"), stack.gateway_url("/v1/sessions")):
        response = requests.post(url, json={"username": account.username, "password": PASSWORD},
                                 headers={"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "203.0.113.9"},
                                 timeout=10)
        assert response.status_code == 201, response.text
    with session_scope() as session:
        addresses = session.scalars(select(SessionRow.client_addr).where(
            SessionRow.user_id == account.id, SessionRow.client_addr.is_not(None))).all()
    assert addresses == ["127.0.0.1", "127.0.0.1"]


def test_the_request_id_is_the_clients_when_well_formed_else_a_new_one(stack):
    for url in (stack.url("item", "/v1/items?per_page=1"), stack.gateway_url("/v1/items?per_page=1"),
                stack.gateway_url("/nowhere")):
        assert requests.get(url, headers={"X-Request-ID": "edge-42"}, timeout=5).headers["X-Request-ID"] == "edge-42"
        fresh = requests.get(url, headers={"X-Request-ID": "bad id\tx"}, timeout=5).headers["X-Request-ID"]
        assert fresh != "bad id\tx" and len(fresh) >= 16
    # nginx's workers flush their buffers separately: the lines may come in any order.
    assert sorted(line["service"] for line in stack.access_lines("edge-42", count=3)) == ["edge", "item", "item"]


def test_nginx_writes_one_access_line_per_request_with_what_the_app_knows(stack):
    account = committed_account()
    response = requests.get(stack.url("transaction", "/v1/transactions/999999999"), timeout=10,
                            headers={**account.headers, "X-Request-ID": "access-1"})
    assert response.status_code == 404
    assert not [name for name in response.headers if name.lower().startswith("x-toko-")]
    time.sleep(2)  # past nginx's flush: a second line would be there too
    (line,) = stack.access_lines("access-1")
    assert line["service"] == "transaction" and line["logger"] == "toko.access"
    assert line["route"].startswith("/v1/transactions/<") and line["route"].endswith("transaction_id>")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/transactions/999999999", 404)
    assert line["user_id"] == str(account.id) and line["duration_s"] >= 0
    assert "access-1" not in stack.log("svc_transaction"), "the app writes no second line"


def test_gunicorn_listens_only_on_its_unix_socket(stack):
    for service in SERVICES:
        path = socket_path(service, stack.home)
        assert path.is_socket()
        assert path.stat().st_mode & 0o077 == 0, "only toko's own user reaches the socket"


# -- a gateway timeout needs a service that never answers: nginx alone, in front of a silent socket -----------

@pytest.fixture
def silent_edge(tmp_path):
    root = Path(tmp_path)
    (root / "var" / "run").mkdir(parents=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(socket_path("item", root)))
    listener.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])  # read nothing, answer nothing
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    env = {f"TOKO_{s.upper()}_PORT": str(free_port()) for s in SERVICES}
    env.update(TOKO_GATEWAY_PORT=str(free_port()), TOKO_EDGE_READ_TIMEOUT="1")
    settings = load_settings(env)
    var = root / "var" / "gateway"
    var.mkdir()
    (var / "nginx.conf").write_text(render_config(settings, var, root))
    nginx = subprocess.Popen([find_nginx(), "-c", str(var / "nginx.conf"), "-e", "stderr"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", settings.port_for("item")), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield settings
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        listener.close()
        for conn in held:
            conn.close()


def test_a_service_that_does_not_answer_in_time_gets_a_504_envelope(silent_edge):
    response = requests.get(f"http://127.0.0.1:{silent_edge.port_for('item')}/v1/items", timeout=10)
    assert_envelope(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                    response.content, 504, "gateway_timeout")
    response = requests.get(f"http://127.0.0.1:{silent_edge.gateway_port}/v1/items", timeout=10)
    assert response.status_code == 504 and response.json()["error"]["code"] == "gateway_timeout"


@pytest.mark.parametrize("body", ["[" * 1000 + "]" * 1000, '{"username": ' + "9" * 5001 + ', "password": "x"}',
                                  '{"username": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_absurd_json_is_a_400_through_the_real_stack(stack, body):
    for url in (stack.url("user", "/v1/sessions"), stack.gateway_url("/v1/sessions")):
        response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 400, (response.status_code, response.text[:200])
        assert response.json()["error"]["code"] == "bad_request"


def _metric(stack, series: str) -> float:
    for line in requests.get(stack.url("user", "/metrics"), timeout=10).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_logins_while_the_database_drops_connections_get_envelopes_logged_as_answered(stack):
    """Backends terminated under load (a failover, a pooler restart): JSON with the status the log and
    the metrics record too, never gunicorn's HTML 500."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from common.db.session import driver_url

    series = 'toko_http_requests_total{method="POST",route="/v1/sessions",service="user",status="503"}'
    before = _metric(stack, series)
    admin = create_engine(driver_url(stack.env["DATABASE_URL"]), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    statuses, problems, stop = [], [], threading.Event()

    def log_in(n: int) -> None:
        http = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            response = http.post(stack.url("user", "/v1/sessions"), timeout=15,
                                 json={"username": f"nobody-{n}-{i}", "password": "wrong-password"})
            statuses.append(response.status_code)
            if not response.headers.get("Content-Type", "").startswith("application/json"):
                problems.append(response.text[:200])
            elif response.status_code == 503 and response.headers.get("Retry-After") != "1":
                problems.append(dict(response.headers))

    def kill() -> None:
        with admin.connect() as conn:
            while not stop.is_set():
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE usename = 'toko_user' AND datname = current_database()"))
                time.sleep(0.05)

    threads = [threading.Thread(target=log_in, args=(n,)) for n in range(4)] + [threading.Thread(target=kill)]
    for thread in threads:
        thread.start()
    time.sleep(8)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    admin.dispose()
    assert problems == [] and 500 not in statuses, (problems[:3], sorted(set(statuses)))
    assert set(statuses) <= {401, 429, 503} and len(statuses) > 20, sorted(set(statuses))
    deadline = time.monotonic() + 10  # the counter is written by the worker that answered
    while _metric(stack, series) - before != statuses.count(503) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metric(stack, series) - before == statuses.count(503), "every 503 is counted as a 503"
