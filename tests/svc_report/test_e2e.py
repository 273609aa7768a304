"""Reports over the real stack: purchases made over HTTP, jobs done by svc_report_worker, a worker killed
mid-job, the CSV and the SVG, and every bad input.

Committed sales of these tests sit in years of their own (the 1980s), so their totals are exact even
though the run's database is shared.
"""
from __future__ import annotations

import calendar
import csv
import io
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from common.db.models import ReportJob, Transaction
from common.db.session import session_scope
from common.settings import get_settings
from tests.factories import committed_account, committed_item
from tests.svc_report.conftest import utc

TIMEOUT = 30
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def admin(stack):
    return committed_account("admin")


def get(stack, path, account=None, **params):
    return requests.get(stack.url("report", path), params=params, headers=account.headers if account else {},
                        timeout=TIMEOUT)


def queue(stack, admin, **body):
    response = requests.post(stack.url("report", "/v1/reports"), headers=admin.headers, timeout=TIMEOUT,
                             json={"kind": "sales", "group_by": "day", **body})
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(f"/v1/reports/{response.json()['data']['id']}")
    return response.json()["data"]["id"]


def job(stack, admin, job_id) -> dict:
    response = get(stack, f"/v1/reports/{job_id}", admin)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def wait_for(stack, admin, job_id, condition, timeout: float = TIMEOUT) -> dict:
    """Poll the job until `condition(job)` holds or the deadline passes; returns the last state."""
    deadline = time.monotonic() + timeout
    state = job(stack, admin, job_id)
    while not condition(state) and time.monotonic() < deadline:
        time.sleep(0.1)
        state = job(stack, admin, job_id)
    return state


def commit_sales(year: int) -> dict:
    """Paid sales in `year` (and unpaid ones that must not count), committed; returns what should count."""
    buyer = committed_account()
    tea, rice = committed_item(price=5000), committed_item(price=75000)
    sales = [  # (paid_at, status, [(item, quantity, unit_price)])
        (utc(year, 2, 1, 8), "paid", [(tea, 2, 5000), (rice, 1, 75000)]),
        (utc(year, 2, 1, 23, 59, 59), "paid", [(tea, 3, 5000)]),
        (utc(year, 2, 14, 0), "paid", [(rice, 2, 72000)]),
        (utc(year, 2, 27, 12), "paid", [(tea, 1, 5000)]),
        (utc(year, 2, 3), "cancelled", [(rice, 9, 75000)]),
        (None, "awaiting_otp", [(rice, 20, 75000)]),
        (None, "expired", [(tea, 40, 5000)]),
    ]
    with session_scope() as session:
        for paid_at, status, lines in sales:
            session.add(Transaction(
                user_id=buyer.id, status=status, total=sum(q * p for _, q, p in lines), paid_at=paid_at,
                cancelled_at=paid_at if status == "cancelled" else None,
                lines=[_line(item, quantity, price) for item, quantity, price in lines]))
    paid = [lines for _, status, lines in sales if status == "paid"]
    return {"from": f"{year}-02-01", "to": f"{year}-03-01", "tea": tea, "rice": rice,
            "totals": {"transactions": len(paid), "quantity": sum(q for lines in paid for _, q, _ in lines),
                       "revenue": sum(q * p for lines in paid for _, q, p in lines)},
            # Every day of the window has its row, zero where nothing sold.
            "days": {**{f"{year}-02-{d:02d}": 0 for d in range(1, calendar.monthrange(year, 2)[1] + 1)},
                     f"{year}-02-01": 5000 * 2 + 75000 + 5000 * 3, f"{year}-02-14": 144000,
                     f"{year}-02-27": 5000}}


def _line(item_id, quantity, price):
    from common.db.models import TransactionLine

    return TransactionLine(item_id=item_id, quantity=quantity, unit_price=price)


def test_live_report_equals_the_purchases_made_over_http(stack, admin):
    buyer = committed_account()
    threshold = get_settings().otp_threshold
    kopi, gula = committed_item(price=30000, stock=50), committed_item(price=17000, stock=50)
    returned, pricey = committed_item(price=9000, stock=50), committed_item(price=threshold, stock=5)

    def buy(lines):
        response = requests.post(stack.url("transaction", "/v1/transactions"), headers=buyer.headers,
                                 timeout=TIMEOUT, json={"lines": [{"item_id": i, "quantity": q} for i, q in lines]})
        assert response.status_code == 201, response.text
        return response.json()["data"]

    assert buy([(kopi, 2), (gula, 1)])["status"] == "paid"
    assert buy([(gula, 4)])["status"] == "paid"
    cancelled = buy([(returned, 3), (kopi, 5)])
    assert requests.delete(stack.url("transaction", f"/v1/transactions/{cancelled['id']}"),
                           headers=buyer.headers, timeout=TIMEOUT).status_code == 200
    assert buy([(pricey, 1), (kopi, 1)])["status"] == "awaiting_otp"  # never confirmed

    today = datetime.now(timezone.utc).date()
    window = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=2))}
    by_user = get(stack, "/v1/reports/sales", admin, group_by="user", **window)
    assert by_user.status_code == 200, by_user.text
    mine = [row for row in by_user.json()["data"]["rows"] if row["key"] == buyer.id]
    assert mine == [{"key": buyer.id, "transactions": 2, "quantity": 7, "revenue": 60000 + 17000 * 5,
                     "username": buyer.username}]
    rows = {row["key"]: row for row in get(stack, "/v1/reports/sales", admin, group_by="item", **window)
            .json()["data"]["rows"]}
    assert (rows[kopi]["transactions"], rows[kopi]["quantity"], rows[kopi]["revenue"]) == (1, 2, 60000)
    assert (rows[gula]["transactions"], rows[gula]["quantity"], rows[gula]["revenue"]) == (2, 5, 85000)
    assert returned not in rows and pricey not in rows


def test_live_totals_equal_the_committed_sales_of_their_window(stack, admin):
    sales = commit_sales(1981)
    data = get(stack, "/v1/reports/sales", admin, **{"from": sales["from"], "to": sales["to"]}).json()["data"]
    assert data["totals"] == sales["totals"]
    assert {row["key"]: row["revenue"] for row in data["rows"]} == sales["days"]


def test_a_queued_job_is_done_by_the_worker_with_its_csv_and_chart(stack, admin):
    sales = commit_sales(1982)
    job_id = queue(stack, admin, **{"from": sales["from"], "to": sales["to"]})
    state = wait_for(stack, admin, job_id, lambda j: j["status"] in ("done", "failed"))
    assert state["status"] == "done", state
    assert state["attempts"] == 1 and state["error"] is None
    live = get(stack, "/v1/reports/sales", admin, **{"from": sales["from"], "to": sales["to"]}).json()["data"]
    assert state["result"] == live and state["result"]["totals"] == sales["totals"]
    assert job_id in [j["id"] for j in get(stack, "/v1/reports", admin).json()["data"]]

    response = get(stack, f"/v1/reports/{job_id}.csv", admin)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0] == ["key", "transactions", "quantity", "revenue"]
    assert {row[0]: int(row[3]) for row in table[1:]} == sales["days"]

    response = get(stack, f"/v1/reports/{job_id}/chart.svg", admin)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"Sales revenue by day", "Revenue (IDR)", "Day", *sales["days"]} <= texts
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
    assert len(bars) == len(sales["days"])

    head = requests.head(stack.url("report", f"/v1/reports/{job_id}.csv"), headers=admin.headers, timeout=TIMEOUT)
    assert head.status_code == 200
    assert requests.delete(stack.url("report", f"/v1/reports/{job_id}"), headers=admin.headers,
                           timeout=TIMEOUT).status_code == 204
    assert get(stack, f"/v1/reports/{job_id}", admin).status_code == 404


def test_a_job_is_recovered_after_its_worker_is_killed_mid_job(stack, admin, tmp_path):
    """A worker holding a job (slowed by the test-only delay) is SIGKILLed; the supervised worker takes
    the job again once the dead worker's lease runs out."""
    sales = commit_sales(1983)
    assert stack.ctl("stop", "svc_report_worker").returncode == 0
    slow = None
    try:
        job_id = queue(stack, admin, **{"from": sales["from"], "to": sales["to"]})
        env = {**stack.env, "TOKO_REPORT_TEST_DELAY_SECONDS": "120", "TOKO_REPORT_LEASE_SECONDS": "2"}
        with open(tmp_path / "slow-worker.log", "wb") as log:
            slow = subprocess.Popen([str(ROOT / ".venv/bin/toko"), "worker", "report"], env=env, cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT)
        state = wait_for(stack, admin, job_id, lambda j: j["status"] != "queued")
        assert (state["status"], state["attempts"]) == ("running", 1), state
        # The heartbeat renews the 2-second lease while the job is held: it outlives its first lease.
        first_lease = lease_of(job_id)
        assert wait_until(lambda: lease_of(job_id) > first_lease + timedelta(seconds=1)), "lease never renewed"
        slow.send_signal(signal.SIGKILL)
        assert slow.wait(timeout=TIMEOUT) == -signal.SIGKILL
        assert job(stack, admin, job_id)["status"] == "running"  # left behind by the dead worker
        assert stack.ctl("start", "svc_report_worker").returncode == 0
        state = wait_for(stack, admin, job_id, lambda j: j["status"] in ("done", "failed"))
        assert state["status"] == "done" and state["attempts"] == 2, state
        assert state["result"]["totals"] == sales["totals"]
    finally:
        if slow is not None and slow.poll() is None:
            slow.kill()
            slow.wait()
        stack.ctl("start", "svc_report_worker")


def lease_of(job_id: int) -> datetime:
    with session_scope() as session:
        return session.scalar(select(ReportJob.lease_expires_at).where(ReportJob.id == job_id))


def wait_until(condition, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


BAD_LIVE = [
    ({"from": "not-a-date", "to": "1984-01-02"}, "validation_error"),
    ({"from": "1984-01-01", "to": "1984-02-31"}, "validation_error"),
    ({"from": "1984-02-01", "to": "1984-01-01"}, "invalid_window"),
    ({"from": "1984-01-01", "to": "1984-01-01"}, "invalid_window"),
    ({"from": "1984-01-01", "to": "1985-06-01"}, "window_too_large"),
    ({"from": "1984-01-01", "to": "1984-01-02", "group_by": "hour"}, "validation_error"),
    ({"from": "1984-01-01", "to": "1984-01-02", "tz": "Atlantis/Capital"}, "validation_error"),
    ({"to": "1984-01-02"}, "validation_error"),
]


@pytest.mark.parametrize("params, code", BAD_LIVE)
def test_bad_live_report_input_is_422_over_http(stack, admin, params, code):
    response = get(stack, "/v1/reports/sales", admin, **params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["details"]["fields"]


@pytest.mark.parametrize("body, code", [
    ({"kind": "refunds", "from": "1984-01-01", "to": "1984-01-02"}, "validation_error"),
    ({"from": "1984-01-01", "to": "1984-01-02"}, "validation_error"),
    ({"kind": "sales", "from": "1984-01-02", "to": "1984-01-01"}, "invalid_window"),
    ({"kind": "sales", "from": "1984-01-01", "to": "1986-01-01"}, "window_too_large"),
    ({"kind": "sales", "from": "soon", "to": "1984-01-01"}, "validation_error"),
    ({"kind": "sales", "from": "1984-01-01", "to": "1984-01-02", "group_by": "item", "colour": "red"},
     "validation_error"),
])
def test_bad_job_requests_are_422_over_http(stack, admin, body, code):
    response = requests.post(stack.url("report", "/v1/reports"), json=body, headers=admin.headers, timeout=TIMEOUT)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_malformed_and_non_json_bodies_over_http(stack, admin):
    url = stack.url("report", "/v1/reports")
    headers = {**admin.headers, "Content-Type": "application/json"}
    assert requests.post(url, data="{nope", headers=headers, timeout=TIMEOUT).status_code == 400
    response = requests.post(url, data="kind=sales", timeout=TIMEOUT,
                             headers={**admin.headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"


def test_unknown_jobs_and_unfinished_results_over_http(stack, admin):
    for path in ("/v1/reports/987654321", "/v1/reports/987654321.csv", "/v1/reports/987654321/chart.svg",
                 "/v1/reports/nope"):
        response = get(stack, path, admin)
        assert response.status_code == 404 and response.json()["error"]["code"] in ("report_not_found", "not_found")
    assert requests.delete(stack.url("report", "/v1/reports/987654321"), headers=admin.headers,
                           timeout=TIMEOUT).status_code == 404
    # A failed job and one held under a long lease: neither has a CSV or a chart.
    with session_scope() as session:
        failed = ReportJob(kind="sales", status="failed", error="boom", attempts=3,
                           params={"from": "1984-01-01T00:00:00Z", "to": "1984-01-02T00:00:00Z",
                                   "group_by": "day", "tz": "UTC"})
        held = ReportJob(kind="sales", status="running", attempts=1, params=failed.params,
                         lease_expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
        session.add_all([failed, held])
        session.flush()
        ids = {"failed": failed.id, "running": held.id}
    try:
        for status, job_id in ids.items():
            for suffix in (".csv", "/chart.svg"):
                response = get(stack, f"/v1/reports/{job_id}{suffix}", admin)
                assert response.status_code == 409, response.text
                assert response.json()["error"] == {"code": "report_not_ready", "message": response.json()["error"]["message"],
                                                    "details": {"status": status}}
        assert job(stack, admin, ids["failed"])["error"] == "boom"
    finally:
        for job_id in ids.values():
            requests.delete(stack.url("report", f"/v1/reports/{job_id}"), headers=admin.headers, timeout=TIMEOUT)


def test_customers_get_403_and_strangers_401_on_every_route(stack, admin):
    customer = committed_account()
    job_id = queue(stack, admin, **{"from": "1984-01-01", "to": "1984-01-02"})
    routes = [("GET", "/v1/reports/sales?from=1984-01-01&to=1984-01-02"), ("GET", "/v1/reports"),
              ("POST", "/v1/reports"), ("GET", f"/v1/reports/{job_id}"), ("DELETE", f"/v1/reports/{job_id}"),
              ("GET", f"/v1/reports/{job_id}.csv"), ("GET", f"/v1/reports/{job_id}/chart.svg")]
    for method, path in routes:
        body = {"kind": "sales", "from": "1984-01-01", "to": "1984-01-02"} if method == "POST" else None
        for headers, status in ((customer.headers, 403), ({}, 401)):
            response = requests.request(method, stack.url("report", path), json=body, headers=headers, timeout=TIMEOUT)
            assert response.status_code == status, (method, path, response.text)
            assert response.json()["error"]["code"] == {403: "forbidden", 401: "unauthorized"}[status]
    assert wait_for(stack, admin, job_id, lambda j: j["status"] == "done")["status"] == "done"
