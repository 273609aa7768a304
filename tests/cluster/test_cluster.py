"""toko past one machine: three service hosts behind a balancing gateway, PgBouncer, a streaming replica.

The tests share one cluster and run in this order; the last one takes host A down for good.
"""
from __future__ import annotations

import http.client
import json
import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from common.db.session import driver_url
from common.settings import SERVICES
from tests.cluster.cluster import PGBOUNCER_MAX_DB_CONNECTIONS, PRIMARY_MAX_CONNECTIONS
from tests.cluster.conftest import MEASURED
from tests.factories import make_account, make_item

TIMEOUT = 30
TRANSIENT = (502, 503, 504)


@pytest.fixture(scope="module")
def primary(cluster):
    engine = create_engine(driver_url(cluster.primary_url), poolclass=NullPool)
    yield engine
    engine.dispose()


def committed(primary, make):
    with Session(primary, expire_on_commit=False) as session, session.begin():
        return make(session)


@pytest.fixture(scope="module")
def admin(primary):
    return committed(primary, lambda s: make_account(s, "admin"))


def buy(http, url, account, item_id, key=None):
    headers = {**account.headers, **({"Idempotency-Key": key} if key else {})}
    return http.post(url, json={"lines": [{"item_id": item_id, "quantity": 1}]}, headers=headers, timeout=TIMEOUT)


def test_a_session_from_a_login_on_host_a_works_on_host_b(cluster):
    a, b = cluster.hosts[0], cluster.hosts[1]
    user = {"username": "walker", "email": "walker@example.test", "password": "correct-horse-battery"}
    assert requests.post(a.url("user", "/v1/users"), json=user, timeout=TIMEOUT).status_code == 201
    login = requests.post(a.url("user", "/v1/sessions"), json={"username": "walker", "password": user["password"]},
                          timeout=TIMEOUT)
    assert login.status_code == 201, login.text
    auth = {"Authorization": f"Bearer {login.json()['data']['token']}"}
    me = requests.get(b.url("user", "/v1/users/me"), headers=auth, timeout=TIMEOUT)
    assert me.status_code == 200 and me.json()["data"]["username"] == "walker"
    assert requests.get(b.url("transaction", "/v1/transactions"), headers=auth, timeout=TIMEOUT).json()["data"] == []
    # Logging out on host B ends the session on host A too.
    assert requests.delete(b.url("user", "/v1/sessions/current"), headers=auth, timeout=TIMEOUT).status_code in (200, 204)
    assert requests.get(a.url("user", "/v1/users/me"), headers=auth, timeout=TIMEOUT).status_code == 401


def test_a_host_sees_the_client_address_the_gateway_saw(cluster, primary):
    """Each host's nginx believes the front gateway's X-Real-IP (TOKO_TRUSTED_PROXIES), so a login records the
    client's address, not the gateway's, whichever host serves it."""
    account = committed(primary, make_account)
    for _ in cluster.hosts:
        conn = http.client.HTTPConnection(cluster.bridge_ip, cluster.gateway_port, timeout=TIMEOUT,
                                          source_address=(cluster.client_ip, 0))
        conn.request("POST", "/v1/sessions", body=json.dumps({"username": account.username,
                                                              "password": account.password}),
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().status == 201
        conn.close()
    with primary.connect() as conn:
        addresses = conn.execute(text("SELECT client_addr FROM sessions WHERE user_id = :u AND client_addr IS NOT NULL"),
                                 {"u": account.id}).scalars().all()
    assert addresses == [cluster.client_ip] * len(cluster.hosts) and cluster.client_ip != cluster.bridge_ip


def _log_size(cluster, server) -> int:
    return len(cluster.server_log(server))


def test_report_aggregates_run_on_the_replica_and_state_its_lag(cluster, primary, admin):
    buyer = committed(primary, make_account)
    item_id = committed(primary, lambda s: make_item(s, price=2500, stock=10).id)
    marks = {server: _log_size(cluster, server) for server in (cluster.primary, cluster.replica)}
    buys = [buy(requests, cluster.gateway_url("/v1/transactions"), buyer, item_id, str(uuid.uuid4()))
            for _ in range(3)]
    assert [r.status_code for r in buys] == [201, 201, 201]
    today = datetime.now(timezone.utc).date()
    params = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=2)), "group_by": "item"}
    lags, deadline = [], time.monotonic() + 30
    while True:
        answer = requests.get(cluster.gateway_url("/v1/reports/sales"), params=params, headers=admin.headers,
                              timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        report = answer.json()["data"]
        lags.append(report["replication_lag_seconds"])
        row = [r for r in report["rows"] if r["key"] == item_id]
        if row and row[0]["quantity"] == 3:
            break
        assert time.monotonic() < deadline, "the replica never showed the purchases"
        time.sleep(0.1)
    assert row[0]["revenue"] == 7500
    assert all(isinstance(lag, (int, float)) and lag >= 0 for lag in lags), lags
    # A queued report is computed by svc_report_worker, on the replica too.
    job = requests.post(cluster.gateway_url("/v1/reports"), json={"kind": "sales", **params}, headers=admin.headers,
                        timeout=TIMEOUT)
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 60
    while (done := requests.get(cluster.gateway_url(job.headers["Location"]), headers=admin.headers,
                                timeout=TIMEOUT).json()["data"])["status"] != "done":
        assert done["status"] in ("queued", "running") and time.monotonic() < deadline, done
        time.sleep(0.2)
    assert done["result"]["replication_lag_seconds"] is not None
    # Which server ran the aggregates: every statement is in each server's log.
    primary_log, replica_log = (cluster.server_log(s)[marks[s]:] for s in (cluster.primary, cluster.replica))
    assert replica_log.count("WITH per_tx AS") >= 2
    assert primary_log.count("WITH per_tx AS") == 0
    assert "INSERT INTO transactions" in primary_log and "INSERT INTO transactions" not in replica_log
    with cluster.connect(cluster.primary) as conn, conn.cursor() as cur:
        cur.execute("SELECT application_name, state, extract(epoch FROM replay_lag) FROM pg_stat_replication")
        streaming = cur.fetchall()
    assert len(streaming) == 1 and streaming[0][1] == "streaming"
    MEASURED.append(f"report on the replica: replication_lag_seconds over {len(lags)} reports while it caught up "
                    f"with 3 purchases: {lags}; the job's: {done['result']['replication_lag_seconds']}; "
                    f"pg_stat_replication.replay_lag on the primary: {streaming[0][2]} s")


def test_reports_fail_alone_while_the_replica_is_down(cluster, primary, admin):
    buyer = committed(primary, make_account)
    item_id = committed(primary, lambda s: make_item(s, price=1000, stock=10).id)
    params = {"from": "2020-01-01", "to": "2020-01-02"}
    cluster.replica.stop()
    try:
        down = requests.get(cluster.gateway_url("/v1/reports/sales"), params=params, headers=admin.headers,
                            timeout=TIMEOUT)
        assert down.status_code == 503 and down.json()["error"]["code"] == "database_unavailable", down.text
        assert buy(requests, cluster.gateway_url("/v1/transactions"), buyer, item_id, "k1").status_code == 201
    finally:
        cluster.start_replica()
    deadline = time.monotonic() + 30
    while (up := requests.get(cluster.gateway_url("/v1/reports/sales"), params=params, headers=admin.headers,
                              timeout=TIMEOUT)).status_code != 200:
        assert time.monotonic() < deadline, up.text
        time.sleep(0.2)


def _primary_backends(cluster) -> int:
    with cluster.connect(cluster.primary) as conn, conn.cursor() as cur:
        # The services' roles: what PgBouncer opened for them (the tests' own connections are postgres').
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND usename LIKE 'toko\\_%' AND pid <> pg_backend_pid()")
        return cur.fetchone()[0]


def test_three_hosts_fit_under_max_connections_through_pgbouncer_and_would_not_directly(cluster, admin):
    """Every thread of every service on every host holds a connection; PgBouncer shares a few."""
    targets = [(host, service, path) for host in cluster.hosts for service, path in (
        ("user", "/v1/users/me"), ("otp", "/v1/otps"), ("item", "/v1/items?per_page=5"),
        ("transaction", "/v1/transactions"), ("report", "/v1/reports"))]
    statuses, errors, stop = Counter(), [], threading.Event()

    def client(offset: int) -> None:
        http = requests.Session()
        n = offset
        while not stop.is_set():
            host, service, path = targets[n % len(targets)]
            n += 1
            try:
                statuses[http.get(host.url(service, path), headers=admin.headers, timeout=TIMEOUT).status_code] += 1
            except requests.RequestException as exc:
                errors.append(str(exc)[:200])

    clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(targets) * 4)]
    peak = {"pgbouncer clients": 0, "pgbouncer servers": 0, "primary backends": 0}
    for thread in clients:
        thread.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            toko_clients = [c for c in cluster.pgbouncer_show("CLIENTS") if c["user"].startswith("toko_")]
            peak["pgbouncer clients"] = max(peak["pgbouncer clients"], len(toko_clients))
            servers = [s for s in cluster.pgbouncer_show("SERVERS") if s["database"] == "toko"]
            peak["pgbouncer servers"] = max(peak["pgbouncer servers"], len(servers))
            peak["primary backends"] = max(peak["primary backends"], _primary_backends(cluster))
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=TIMEOUT)
    assert not errors and set(statuses) == {200}, (statuses, errors[:5])
    # Transaction pooling hands each transaction any server connection: nothing toko sent may outlive its
    # transaction there (a session-level SET, a prepared statement, a session advisory lock, LISTEN). The SETs
    # of the parameters PgBouncer itself tracks per client are PgBouncer's doing, and safe.
    statements = [line.split("statement: ", 1)[1] for line in cluster.server_log(cluster.primary).splitlines()
                  if "] toko_" in line and "statement: " in line]
    tracked = r"(application_name|client_encoding|datestyle|timezone|standard_conforming_strings)\b"
    session_state = [s for s in statements
                     if re.match(rf"(?i)\s*(SET (?!LOCAL )(?!{tracked})|PREPARE|LISTEN|DECLARE .* WITH HOLD)", s)
                     or re.search(r"(?i)pg_advisory_lock|pg_try_advisory_lock", s)]
    assert len(statements) > 1000 and session_state == [], session_state[:5]
    # What the settings allow: every service's workers x threads, on every host, plus the background workers.
    workers, threads = (int(cluster.hosts[0].env[name]) for name in ("TOKO_WORKERS", "TOKO_THREADS"))
    settings_demand = len(cluster.hosts) * len(SERVICES) * workers * threads
    assert peak["pgbouncer clients"] > PRIMARY_MAX_CONNECTIONS
    # PgBouncer's own count holds its cap; the primary may see one more for a moment, a backend PgBouncer
    # has just closed that is still exiting, and stays under max_connections.
    assert peak["pgbouncer servers"] <= PGBOUNCER_MAX_DB_CONNECTIONS < PRIMARY_MAX_CONNECTIONS
    assert peak["primary backends"] < PRIMARY_MAX_CONNECTIONS
    # The same connections opened directly: the primary refuses what does not fit.
    opened, refused = [], 0
    roles = [f"toko_{s}" for s in SERVICES]
    try:
        for n in range(peak["pgbouncer clients"]):
            try:
                opened.append(psycopg2.connect(host="127.0.0.1", port=cluster.primary.port, dbname="toko",
                                               user=roles[n % len(roles)], connect_timeout=5))
            except psycopg2.OperationalError as exc:
                assert "too many clients" in str(exc) or "remaining connection slots" in str(exc), exc
                refused += 1
    finally:
        for conn in opened:
            conn.close()
    assert refused > 0 and len(opened) < PRIMARY_MAX_CONNECTIONS
    MEASURED.append(
        f"connections: {len(cluster.hosts)} hosts x {len(SERVICES)} services x {workers} workers x {threads} threads = "
        f"{settings_demand} request threads; under load ({sum(statuses.values())} requests, all 200) PgBouncer "
        f"held up to {peak['pgbouncer clients']} client connections of the services and the primary up to "
        f"{peak['primary backends']} backends, PgBouncer up to {peak['pgbouncer servers']} server connections "
        f"(max_connections {PRIMARY_MAX_CONNECTIONS}, PgBouncer's "
        f"max_db_connections {PGBOUNCER_MAX_DB_CONNECTIONS}); the same {peak['pgbouncer clients']} directly: "
        f"{len(opened)} opened, {refused} refused")


def purchases_moved(cluster) -> set[str]:
    """The gateway's own retries: request ids of purchases logged at two hosts (one host's nginx answered
    503 for its stopped service, or the request was cut by a crash, and another host answered it)."""
    # Each host's nginx writes the one access line of every request it took (behind it the app writes
    # none). An error page's internal redirect is logged as a GET of the error page, so a purchase is
    # known by the host that answered it, and the same request id at another host is the attempt it moved from.
    logged = {n: host.requests_logged("gateway") for n, host in enumerate(cluster.hosts)}
    posts = {line.get("request_id") for lines in logged.values() for line in lines
             if line.get("method") == "POST" and line.get("path") == "/v1/transactions"}
    hosts_of: dict[str, set] = {}
    for n, lines in logged.items():
        for line in lines:
            if line.get("request_id") in posts:
                hosts_of.setdefault(line["request_id"], set()).add(n)
    return {request_id for request_id, seen in hosts_of.items() if len(seen) > 1}


def moved_since(cluster, before: set[str], expected: int, timeout: float = 5) -> int:
    """How many purchases moved since `before`, once nginx has flushed its buffered lines (every second)."""
    deadline = time.monotonic() + timeout
    while True:
        moved = len(purchases_moved(cluster) - before)
        if moved >= expected or time.monotonic() > deadline:
            return moved
        time.sleep(0.25)


def test_the_gateway_retries_a_post_only_under_an_idempotency_key(cluster, primary, admin):
    """Host A's user and transaction services down: one request in three goes to A first."""
    a = cluster.hosts[0]
    buyer = committed(primary, make_account)
    item_id = committed(primary, lambda s: make_item(s, price=1000, stock=100).id)
    fail_timeout = 2.5  # the cluster's TOKO_GATEWAY_FAIL_TIMEOUT_SECONDS (2) and a margin
    moved_before = purchases_moved(cluster)
    a.ctl("stop", "svc_user", "svc_transaction", check=True)
    try:
        time.sleep(fail_timeout)
        plain = [requests.post(cluster.gateway_url("/v1/sessions"), json={"username": "nobody", "password": "x" * 12},
                               timeout=TIMEOUT) for _ in range(len(cluster.hosts))]
        time.sleep(fail_timeout)
        keyed = [buy(requests, cluster.gateway_url("/v1/transactions"), buyer, item_id, str(uuid.uuid4()))
                 for _ in range(len(cluster.hosts))]
        time.sleep(fail_timeout)
        reads = [requests.get(cluster.gateway_url("/v1/users/me"), headers=admin.headers, timeout=TIMEOUT)
                 for _ in range(len(cluster.hosts))]
    finally:
        a.ctl("start", "svc_user", "svc_transaction", check=True)
    # The plain POST that reached host A was not tried again elsewhere: its client sees the failure.
    # (A's own nginx answers 503 for its stopped service, in the envelope.)
    assert sorted(r.status_code for r in plain) == [401, 401, 503], [r.text for r in plain]
    assert [r.json()["error"]["code"] for r in plain if r.status_code == 503] == ["service_unavailable"]
    assert [r.status_code for r in keyed] == [201, 201, 201], [r.text for r in keyed]
    # The one sent to A first: A's nginx answered 503 (in A's log), another host the purchase.
    assert moved_since(cluster, moved_before, expected=1) == 1
    assert [r.status_code for r in reads] == [200, 200, 200]
    a.wait_healthy()


def test_one_key_sent_to_every_host_at_once_charges_once(cluster, primary):
    """As when a client's retry, or a gateway's, reaches another host while the first is still working."""
    buyer = committed(primary, make_account)
    item_id = committed(primary, lambda s: make_item(s, price=1000, stock=5).id)
    key, barrier = str(uuid.uuid4()), threading.Barrier(len(cluster.hosts))
    answers = [None] * len(cluster.hosts)

    def send(n: int) -> None:
        barrier.wait(timeout=TIMEOUT)
        answers[n] = buy(requests, cluster.hosts[n].gateway_url("/v1/transactions"), buyer, item_id, key)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(cluster.hosts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)
    # Later retries, one per host, replay the answer.
    answers += [buy(requests, host.gateway_url("/v1/transactions"), buyer, item_id, key) for host in cluster.hosts]
    done = [a for a in answers if a.status_code == 201]
    assert all(a.status_code == 201 or a.json()["error"]["code"] == "idempotency_in_flight" for a in answers)
    assert len({a.json()["data"]["id"] for a in done}) == 1 and len(done) >= len(cluster.hosts)
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in done) == len(done) - 1
    with primary.connect() as conn:
        assert conn.execute(text("SELECT stock FROM items WHERE id = :i"), {"i": item_id}).scalar_one() == 4
        assert conn.execute(text("SELECT count(*) FROM transaction_lines WHERE item_id = :i"),
                            {"i": item_id}).scalar_one() == 1


def test_host_a_stops_while_clients_buy_through_the_gateway(cluster, primary, admin):
    """Host A stops every program (as an operator would), then host C crashes (every process killed at
    once, requests in flight included); host B serves on. Reads are all answered, every purchase lands once."""
    a, c = cluster.hosts[0], cluster.hosts[2]
    moved_before = purchases_moved(cluster)
    stock = 150
    item_id = committed(primary, lambda s: make_item(s, price=1000, stock=stock).id)
    buyers = [committed(primary, make_account) for _ in range(6)]
    reads, read_errors, lags = Counter(), [], []
    today = datetime.now(timezone.utc).date()
    report = f"/v1/reports/sales?from={today}&to={today + timedelta(days=1)}&group_by=item"
    outcomes: dict[str, tuple[int, dict, float]] = {}
    attempts: Counter = Counter()
    replayed, stop = [], threading.Event()
    lock = threading.Lock()

    def reader(n: int) -> None:
        http = requests.Session()
        paths = [(f"/v1/items/{item_id}", {}), ("/v1/users/me", admin.headers), ("/v1/transactions", admin.headers),
                 ("/v2/items?limit=5", {}), (report, admin.headers)]
        while not stop.is_set():
            path, headers = paths[n % len(paths)]
            n += 1
            try:
                answer = http.get(cluster.gateway_url(path), headers=headers, timeout=TIMEOUT)
                with lock:
                    reads[answer.status_code] += 1
                    if path == report and answer.status_code == 200:
                        lags.append(answer.json()["data"]["replication_lag_seconds"])
            except requests.RequestException as exc:
                with lock:
                    read_errors.append(str(exc)[:200])

    def buyer(account) -> None:
        http = requests.Session()
        while not stop.is_set():
            key = str(uuid.uuid4())
            # The client's side of the bargain: the same key until an answer that is not a transient failure.
            for _ in range(30):
                with lock:
                    attempts[key] += 1
                try:
                    answer = buy(http, cluster.gateway_url("/v1/transactions"), account, item_id, key)
                except requests.RequestException:
                    time.sleep(0.2)
                    continue
                if answer.status_code in TRANSIENT or (answer.status_code == 409 and
                                                       answer.json()["error"]["code"] == "idempotency_in_flight"):
                    time.sleep(0.2)
                    continue
                with lock:
                    outcomes[key] = (answer.status_code, answer.json(), time.monotonic())
                    if answer.headers.get("Idempotent-Replayed") == "true":
                        replayed.append(key)
                break
            time.sleep(0.2)

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(4)]
    threads += [threading.Thread(target=buyer, args=(b,), daemon=True) for b in buyers]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3)
        a_down = time.monotonic()
        reads_before = sum(reads.values())
        a.ctl("stop", "all", check=True)
        stop_took = time.monotonic() - a_down
        time.sleep(2)
        c_down = time.monotonic()
        c.crash()
        time.sleep(6)
        reads_during = sum(reads.values()) - reads_before
        during = time.monotonic() - a_down
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert all("RUNNING" not in line for line in a.ctl("status").stdout.splitlines())
    assert not read_errors and set(reads) == {200}, (reads, read_errors[:5])
    assert lags and all(lag is not None and lag >= 0 for lag in lags), lags
    paid = {key: body["data"]["id"] for key, (status, body, _) in outcomes.items() if status == 201}
    sold_out = [key for key, (status, body, _) in outcomes.items()
                if status == 409 and body["error"]["code"] == "insufficient_stock"]
    assert len(paid) + len(sold_out) == len(outcomes), Counter(s for s, _, _ in outcomes.values())
    assert len(set(paid.values())) == len(paid)
    paid_after_a = sum(1 for key in paid if outcomes[key][2] > a_down)
    answered_after_c = sum(1 for _, _, at in outcomes.values() if at > c_down)
    assert paid_after_a > 0 and answered_after_c > 0
    with primary.connect() as conn:
        charged = conn.execute(text(
            "SELECT t.id FROM transactions t JOIN transaction_lines l ON l.transaction_id = t.id "
            "WHERE l.item_id = :i"), {"i": item_id}).scalars().all()
        left = conn.execute(text("SELECT stock FROM items WHERE id = :i"), {"i": item_id}).scalar_one()
    # Every purchase a client was told about is charged once, and nothing else is.
    assert sorted(charged) == sorted(paid.values())
    assert left == stock - len(paid) >= 0
    retried = sum(1 for key in outcomes if attempts[key] > 1)
    moved = len(purchases_moved(cluster) - moved_before)
    MEASURED.append(
        f"host A stopped (supervisorctl stop all, {stop_took:.1f} s), then host C crashed: reads "
        f"{sum(reads.values())} answered, all 200, 0 failed ({reads_during} in the {during:.0f} s from A's stop "
        f"on); purchases {len(outcomes)} answered ({answered_after_c} after C crashed): {len(paid)} paid "
        f"({paid_after_a} after A began stopping), {len(sold_out)} refused for stock; {retried} retried by "
        f"their client with the same key ({len(replayed)} answered as replays); transactions charged "
        f"{len(charged)} for {len(paid)} paid (duplicate charges: {len(charged) - len(paid)}); {moved} purchases "
        f"reached one host and were answered by another (the gateway's retries under their key, seen in the hosts' "
        f"logs); "
        f"stock {stock} -> {left}; the {len(lags)} sales reports read meanwhile stated a replication lag of "
        f"{min(lags)} to {max(lags)} s ({sum(1 for lag in lags if lag > 0)} above 0)")
