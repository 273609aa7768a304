"""Operations over the real stack: stop or restart one service, reload gracefully, survive the database."""
from __future__ import annotations

import configparser
import subprocess
import time
from contextlib import contextmanager

import pytest
import requests

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from common.db.migrate import upgrade
from common.db.session import driver_url
from common.http import socket_path
from toko.launch import Supervisor
from common.settings import SERVICES, get_settings
from tests.e2e.load import Load
from tests.e2e.pgcluster import private_cluster, unavailable_reason
from tests.e2e.stack import ROOT, make_stack
from tests.factories import committed_account, committed_item, make_account


@pytest.fixture(scope="module")
def admin():
    return committed_account("admin")


def targets(stack, admin, services):
    """One real, database-backed request per service."""
    auth = admin.headers
    item_id = committed_item()
    paths = {
        "user": ("/v1/users/me", auth),
        "otp": ("/readyz", {}),
        "item": (f"/v1/items/{item_id}", {}),
        "transaction": ("/v1/transactions?per_page=5", auth),
        "report": ("/v1/reports?per_page=5", auth),
    }
    return [lambda http, s=s: http.get(stack.url(s, paths[s][0]), headers=paths[s][1], timeout=10)
            for s in services]


def child_pids(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def program_pid(stack, program: str) -> int:
    return int(stack.ctl("pid", program).stdout.strip())


@pytest.mark.parametrize("stopped", ["svc_report", "svc_item"])
def test_stopping_one_service_leaves_the_other_four_serving(stack, admin, stopped):
    others = [s for s in SERVICES if f"svc_{s}" != stopped]
    with Load(targets(stack, admin, others), threads=4) as load:
        load.wait_for(50)
        assert stack.ctl("stop", stopped).returncode == 0
        # nginx keeps the port: a stopped service answers 503 with Retry-After, not a refused connection.
        down = requests.get(stack.url(stopped.removeprefix("svc_"), "/healthz"), timeout=5)
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert down.json()["error"]["code"] == "service_unavailable"
        before = load.total
        load.wait_for(before + 200)
        assert stack.ctl("start", stopped).returncode == 0
    stack.wait_healthy([stopped.removeprefix("svc_")])
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors[:5])
    assert load.total >= 250


def test_restarting_one_service_under_load_on_the_others_causes_them_no_error(stack, admin):
    others = [s for s in SERVICES if s != "item"]
    with Load(targets(stack, admin, others), threads=4) as load:
        load.wait_for(50)
        assert stack.ctl("restart", "svc_item").returncode == 0
        stack.wait_healthy(["item"])
        load.wait_for(load.total + 100)
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors[:5])


def test_hup_reloads_workers_without_losing_a_request(stack, admin):
    master = program_pid(stack, "svc_item")
    old_workers = child_pids(master)
    assert old_workers
    with Load(targets(stack, admin, ["item"]), threads=6, fresh_connections=True) as load:
        load.wait_for(100)
        assert stack.ctl("signal", "HUP", "svc_item").returncode == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and child_pids(master) & old_workers:
            time.sleep(0.1)
        load.wait_for(load.total + 200)
    new_workers = child_pids(master)
    assert program_pid(stack, "svc_item") == master, "the master (and its socket) stayed"
    assert new_workers and not (new_workers & old_workers), "every worker was replaced"
    assert load.errors == [] and set(load.statuses) == {200}, (load.statuses, load.errors[:5])


def test_stop_waits_longer_than_gunicorn_lets_requests_finish():
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    graceful = get_settings().graceful_timeout
    for section in parser.sections():
        if section.startswith("program:svc_") and not section.endswith("_worker"):
            assert parser.getint(section, "stopwaitsecs") > graceful, section
            assert parser.getboolean(section, "stopasgroup") and parser.getboolean(section, "killasgroup")


@contextmanager
def stack_on_a_private_database(tmp_path_factory):
    """A stack whose database lives in a PostgreSQL cluster of its own, which the test may stop."""
    with private_cluster() as cluster:
        url = f"{cluster.server_url()}/toko"
        engine = create_engine(driver_url(f"{cluster.server_url()}/postgres"), isolation_level="AUTOCOMMIT",
                               poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text("CREATE DATABASE toko"))
        upgrade(url)
        engine = create_engine(driver_url(url), poolclass=NullPool)
        with Session(engine) as session, session.begin():
            admin = make_account(session, "admin")
        with make_stack(tmp_path_factory.mktemp("private_pg_stack"), url) as stack:
            yield cluster, stack, admin


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_every_service_and_worker_recovers_from_a_database_restart(tmp_path_factory):
    with stack_on_a_private_database(tmp_path_factory) as (cluster, stack, admin):
        assert requests.get(stack.url("user", "/v1/users/me"), headers=admin.headers, timeout=10).status_code == 200
        workers = [p for p in stack.ctl("status").stdout.split() if p.startswith("svc_") and p.endswith("_worker")]
        assert workers
        worker_pids = {w: program_pid(stack, w) for w in workers}
        cluster.stop()
        try:
            for service in SERVICES:
                started = time.monotonic()
                ready = requests.get(stack.url(service, "/readyz"), timeout=15)
                assert time.monotonic() - started < 5, "answered quickly, no hang"
                assert ready.status_code == 503
                assert ready.json()["error"]["code"] == "database_unavailable"
            down = requests.get(stack.url("user", "/v1/users/me"), headers=admin.headers, timeout=15)
            assert down.status_code == 503 and down.headers["Retry-After"]
        finally:
            cluster.start()
            cluster.wait_ready()
        # The first request after the database is back succeeds, on every service.
        for service in SERVICES:
            assert requests.get(stack.url(service, "/readyz"), timeout=10).status_code == 200, service
        assert requests.get(stack.url("user", "/v1/users/me"), headers=admin.headers, timeout=10).status_code == 200
        for worker, pid in worker_pids.items():
            assert program_pid(stack, worker) == pid, f"{worker} survived without a restart"


def supervisor_rpc(stack):
    """The XML-RPC interface supervisorctl talks to, over the stack's supervisor socket."""
    return Supervisor(stack.home / "supervisord.conf").rpc()


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_lets_an_in_flight_request_finish(stack):
    """A request the service is working on when `supervisorctl stop` starts is answered, not cut."""
    import threading

    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from common.db.session import get_engine
    from svc_user.service import create_user
    from tests.conftest import unique

    name = unique("flight")
    answer: list = []
    with Session(get_engine()) as blocker:
        # An uncommitted user of that name: the service's INSERT waits on the unique index inside the request.
        create_user(blocker, username=name, email=f"{name}-held@example.test", password="in-flight-password")
        blocker.flush()
        request = threading.Thread(target=lambda: answer.append(requests.post(
            stack.url("user", "/v1/users"), timeout=60,
            json={"username": name, "email": f"{name}@example.test", "password": "in-flight-password"})))
        request.start()

        def waiting() -> bool:  # a transaction of its own: pg_stat_activity is a snapshot per transaction
            with get_engine().connect() as conn:
                return conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE usename = 'toko_user' "
                                         "AND wait_event_type = 'Lock'")).first() is not None

        assert wait_until(waiting, 30), "the request is waiting inside the service"
        # supervisorctl's own RPC, without starting a supervisorctl process: on a loaded machine that alone
        # can outlast the statement_timeout the request is waiting under.
        stopping = threading.Thread(target=supervisor_rpc(stack).stopProcess, args=("svc_user",))
        stopping.start()
        try:
            # gunicorn closes and removes its socket as soon as SIGTERM reaches it.
            assert wait_until(lambda: not socket_path("user", stack.home).exists(), 20), "svc_user is stopping"
            time.sleep(0.5)
            blocker.rollback()  # the request goes on, inside a worker that is stopping
            request.join(timeout=60)
            assert answer and answer[0].status_code == 201, answer and answer[0].text
        finally:
            stopping.join(timeout=60)
            assert stack.ctl("start", "svc_user").returncode == 0
            stack.wait_healthy(["user"])


def test_a_request_still_arriving_when_its_service_stops_is_answered_not_cut(stack):
    """nginx holds a request until its body is whole, so a service that stops meanwhile has not seen it:
    the client gets an answer either way, never a cut connection."""
    import json
    import socket
    import threading

    from tests.conftest import unique

    name = unique("arriving")
    body = json.dumps({"username": name, "email": f"{name}@example.test", "password": "in-flight-password"}).encode()
    conn = socket.create_connection(("127.0.0.1", stack.ports["user"]), timeout=30)
    conn.sendall(b"POST /v1/users HTTP/1.1\r\nHost: toko\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
    stopping = threading.Thread(target=stack.ctl, args=("stop", "svc_user"))
    stopping.start()
    try:
        assert wait_until(lambda: not socket_path("user", stack.home).exists(), 20), "svc_user is stopping"
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
        # A worker that is stopping still answers on a connection nginx kept alive to it (201); once none
        # is left, nginx answers for the service: retry.
        assert answer.startswith((b"HTTP/1.1 201", b"HTTP/1.1 503")), answer[:200]
        if answer.startswith(b"HTTP/1.1 503"):
            assert b"\r\nRetry-After: 1\r\n" in answer and b'"service_unavailable"' in answer
    finally:
        conn.close()
        stopping.join(timeout=60)
        assert stack.ctl("start", "svc_user").returncode == 0
        stack.wait_healthy(["user"])
