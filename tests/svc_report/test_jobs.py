"""Report jobs in-process: the queue's API, the worker's claim, lease, retries, and the CSV and SVG."""
from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import ProgrammingError

from common.db.models import ReportJob
from svc_report import chart
from svc_report import export, worker
from svc_report.worker import ReportTick
from tests.factories import make_account, make_item
from tests.svc_report.conftest import add_sale, assert_error, utc

SVG = "{http://www.w3.org/2000/svg}"


def queue(client, account, **body):
    payload = {"kind": "sales", "from": "1997-05-01", "to": "1997-06-01", "group_by": "day", **body}
    return client.post("/v1/reports", json=payload, headers=account.headers)


def job_row(db_session, job_id: int) -> ReportJob:
    db_session.expire_all()
    return db_session.get(ReportJob, job_id)


@pytest.fixture
def sales(db_session):
    """May 1997: three paid sales over two days, and a cancelled one."""
    buyer = make_account(db_session)
    kopi, gula = make_item(db_session, price=30000), make_item(db_session, price=17000)
    add_sale(db_session, buyer.id, utc(1997, 5, 3, 9), [(kopi, 2, 30000), (gula, 1, 17000)])
    add_sale(db_session, buyer.id, utc(1997, 5, 3, 15), [(gula, 4, 17000)])
    add_sale(db_session, buyer.id, utc(1997, 5, 20, 1), [(kopi, 1, 30000)])
    add_sale(db_session, buyer.id, utc(1997, 5, 21, 1), [(kopi, 50, 30000)], status="cancelled")
    return {"buyer": buyer, "kopi": kopi, "gula": gula}


def test_post_queues_a_job_with_202_and_location(client, admin, db_session):
    response = queue(client, admin, **{"from": "1997-05-01T07:00:00+07:00", "tz": "Asia/Jakarta"})
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["data"]
    assert job["status"] == "queued" and job["kind"] == "sales" and job["attempts"] == 0
    assert response.headers["Location"].endswith(f"/v1/reports/{job['id']}")
    # Parameters are stored resolved: instants in UTC, so the worker computes exactly what was asked.
    assert job["params"] == {"from": "1997-05-01T00:00:00Z", "to": "1997-05-31T17:00:00Z", "group_by": "day",
                             "tz": "Asia/Jakarta"}
    assert job["requested_by"] == admin.id and job["result"] is None and job["error"] is None
    assert job["created_at"].endswith("Z") and job["links"] == {"self": f"/v1/reports/{job['id']}"}
    assert job_row(db_session, job["id"]).status == "queued"


@pytest.mark.parametrize("body, field, code", [
    ({"kind": "refunds"}, "kind", "validation_error"),
    ({"kind": None}, "kind", "validation_error"),
    ({"group_by": "month"}, "group_by", "validation_error"),
    ({"from": "1997-06-01", "to": "1997-05-01"}, "to", "invalid_window"),
    ({"from": "someday"}, "from", "validation_error"),
    ({"to": "1999-01-01"}, "to", "window_too_large"),
    ({"tz": "Nowhere/Town"}, "tz", "validation_error"),
    ({"extra": 1}, "extra", "validation_error"),
])
def test_bad_job_requests_are_422_and_queue_nothing(client, admin, db_session, body, field, code):
    before = db_session.scalar(select(func.count()).select_from(ReportJob))
    details = assert_error(queue(client, admin, **body), 422, code)
    assert field in details["fields"]
    assert db_session.scalar(select(func.count()).select_from(ReportJob)) == before


def test_kind_is_required(client, admin):
    response = client.post("/v1/reports", json={"from": "1997-05-01", "to": "1997-06-01"}, headers=admin.headers)
    assert "kind" in assert_error(response, 422, "validation_error")["fields"]


def test_list_is_newest_first_and_paginated(client, admin):
    ids = [queue(client, admin).get_json()["data"]["id"] for _ in range(3)]
    listed = client.get("/v1/reports?per_page=2", headers=admin.headers).get_json()["data"]
    assert [job["id"] for job in listed] == ids[::-1][:2]
    assert "result" not in listed[0]
    second = client.get("/v1/reports?per_page=2&page=2", headers=admin.headers).get_json()["data"]
    assert second[0]["id"] == ids[0]
    assert_error(client.get("/v1/reports?per_page=101", headers=admin.headers), 422)


def test_get_and_delete_a_job(client, admin):
    job_id = queue(client, admin).get_json()["data"]["id"]
    assert client.get(f"/v1/reports/{job_id}", headers=admin.headers).get_json()["data"]["id"] == job_id
    assert client.delete(f"/v1/reports/{job_id}", headers=admin.headers).status_code == 204
    assert_error(client.get(f"/v1/reports/{job_id}", headers=admin.headers), 404, "report_not_found")
    assert_error(client.delete(f"/v1/reports/{job_id}", headers=admin.headers), 404, "report_not_found")


@pytest.mark.parametrize("path", ["/v1/reports/987654321", "/v1/reports/987654321.csv",
                                  "/v1/reports/987654321/chart.svg", "/v1/reports/99999999999999999999",
                                  "/v1/reports/abc", "/v1/reports/0"])
def test_unknown_jobs_are_404(client, admin, path):
    assert_error(client.get(path, headers=admin.headers), 404)


@pytest.mark.parametrize("suffix", [".csv", "/chart.svg"])
def test_csv_and_chart_are_409_until_done(client, admin, db_session, suffix):
    job_id = queue(client, admin).get_json()["data"]["id"]
    assert assert_error(client.get(f"/v1/reports/{job_id}{suffix}", headers=admin.headers), 409,
                        "report_not_ready") == {"status": "queued"}
    db_session.execute(update(ReportJob).where(ReportJob.id == job_id).values(status="failed", error="boom"))
    assert assert_error(client.get(f"/v1/reports/{job_id}{suffix}", headers=admin.headers), 409,
                        "report_not_ready") == {"status": "failed"}


def test_every_route_is_admin_only(client, customer, admin):
    job_id = queue(client, admin).get_json()["data"]["id"]
    for method, path in (("get", "/v1/reports"), ("post", "/v1/reports"), ("get", f"/v1/reports/{job_id}"),
                         ("delete", f"/v1/reports/{job_id}"), ("get", f"/v1/reports/{job_id}.csv"),
                         ("get", f"/v1/reports/{job_id}/chart.svg")):
        kwargs = {"json": {"kind": "sales", "from": "1997-05-01", "to": "1997-06-01"}} if method == "post" else {}
        assert_error(getattr(client, method)(path, headers=customer.headers, **kwargs), 403, "forbidden")
        assert_error(getattr(client, method)(path, **kwargs), 401, "unauthorized")


# --- the worker ---------------------------------------------------------------------------------------

def test_the_worker_computes_the_same_report_as_the_live_endpoint(client, admin, db_session, sales):
    job_id = queue(client, admin, group_by="item").get_json()["data"]["id"]
    assert ReportTick()(db_session) == 1
    job = client.get(f"/v1/reports/{job_id}", headers=admin.headers).get_json()["data"]
    assert job["status"] == "done" and job["attempts"] == 1 and job["error"] is None
    assert job["started_at"] and job["finished_at"]
    live = client.get("/v1/reports/sales", query_string={"from": "1997-05-01", "to": "1997-06-01", "group_by": "item"},
                      headers=admin.headers).get_json()["data"]
    assert job["result"] == live
    assert live["totals"] == {"transactions": 3, "quantity": 8, "revenue": 90000 + 17000 * 5}
    assert job["links"]["csv"] == f"/v1/reports/{job_id}.csv"
    assert ReportTick()(db_session) == 0  # nothing left to do


def test_csv_has_a_header_row_and_one_line_per_key(client, admin, db_session, sales):
    job_id = queue(client, admin, group_by="item").get_json()["data"]["id"]
    ReportTick()(db_session)
    response = client.get(f"/v1/reports/{job_id}.csv", headers=admin.headers)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f"sales-report-{job_id}.csv" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    kopi, gula = sales["kopi"], sales["gula"]
    assert table == [["key", "name", "sku", "transactions", "quantity", "revenue"],
                     [str(kopi.id), kopi.name, kopi.sku, "2", "3", "90000"],
                     [str(gula.id), gula.name, gula.sku, "2", "5", "85000"]]


def test_csv_defuses_spreadsheet_formulas_in_names(client, admin, db_session):
    buyer = make_account(db_session)
    item = make_item(db_session, name="=HYPERLINK(\"http://evil\")")
    add_sale(db_session, buyer.id, utc(1997, 5, 9), [(item, 1, 100)])
    job_id = queue(client, admin, group_by="item").get_json()["data"]["id"]
    ReportTick()(db_session)
    rows = list(csv.reader(io.StringIO(client.get(f"/v1/reports/{job_id}.csv", headers=admin.headers)
                                       .get_data(as_text=True))))
    assert rows[1][1] == "'=HYPERLINK(\"http://evil\")"


def test_chart_is_an_svg_bar_chart_with_axes_and_labels(client, admin, db_session, sales):
    job_id = queue(client, admin).get_json()["data"]["id"]
    ReportTick()(db_session)
    response = client.get(f"/v1/reports/{job_id}/chart.svg", headers=admin.headers)
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Sales revenue by day" in texts and "Revenue (IDR)" in texts and "Day" in texts
    assert "1997-05-03" in texts and "1997-05-20" in texts  # x tick labels: the keys
    assert {"0", "50k", "100k", "150k"} <= set(texts)  # y ticks: round values from zero past the top bar (145,000)
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == chart.BAR]
    assert len(bars) == 31  # every day of May, zero where nothing sold
    bars = [b for b in bars if float(b.get("height")) > 0]
    assert [b.find(f"{SVG}title").text for b in bars] == ["1997-05-03: 145,000", "1997-05-20: 30,000"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] > heights[1] > 0 and heights[0] / heights[1] == pytest.approx(145000 / 30000, rel=0.01)
    assert len([line for line in root.iter(f"{SVG}line") if line.get("stroke-width") == "1.5"]) == 2  # axes


def test_chart_of_an_empty_report_says_so(client, admin, db_session):
    job_id = queue(client, admin, **{"from": "1998-01-01", "to": "1998-01-02"}).get_json()["data"]["id"]
    ReportTick()(db_session)
    svg = client.get(f"/v1/reports/{job_id}/chart.svg", headers=admin.headers).get_data(as_text=True)
    assert "No paid sales in this window" in svg
    ET.fromstring(svg)


def finished_report_selling(client, admin, db_session, name: str) -> int:
    """A finished by-item report job over one sale of an item called `name`; its id."""
    buyer = make_account(db_session)
    item = make_item(db_session, name=name)
    add_sale(db_session, buyer.id, utc(1997, 5, 9), [(item, 1, 100)])
    job_id = queue(client, admin, group_by="item").get_json()["data"]["id"]
    ReportTick()(db_session)
    return job_id


@pytest.mark.parametrize("name", ["tab\u000bvertical", "esc\u001b[31mred", "bell\u0007\u0001\u001f end",
                                  "\ufffe\uffff nonchars"])
def test_chart_is_well_formed_whatever_control_characters_a_name_holds(client, admin, db_session, name):
    job_id = finished_report_selling(client, admin, db_session, name)
    svg = client.get(f"/v1/reports/{job_id}/chart.svg", headers=admin.headers).get_data(as_text=True)
    root = ET.fromstring(svg)  # raises on a character XML forbids
    assert any(name.split()[-1][-3:] in (t.text or "") for t in root.iter(f"{SVG}text"))  # the label is kept


@pytest.mark.parametrize("name", ["=1+1", "+1", "-1", "@SUM(A1)", " =1+1", "\u000b=1+1", "\t=cmd", "\n=cmd"])
def test_csv_no_cell_starts_a_formula(client, admin, db_session, name):
    job_id = finished_report_selling(client, admin, db_session, name)
    rows = list(csv.reader(io.StringIO(client.get(f"/v1/reports/{job_id}.csv", headers=admin.headers)
                                       .get_data(as_text=True))))
    assert rows[1][1] == "'" + name


def test_a_job_past_two_to_the_63_completes_exactly(client, admin, db_session):
    buyer, item = make_account(db_session), make_item(db_session, price=5 * 10**18)
    add_sale(db_session, buyer.id, utc(1997, 5, 9), [(item, 1, 5 * 10**18)])
    add_sale(db_session, buyer.id, utc(1997, 5, 9), [(item, 1, 5 * 10**18)])
    job_id = queue(client, admin, **{"from": "1997-05-09", "to": "1997-05-10"}).get_json()["data"]["id"]
    ReportTick()(db_session)
    job = client.get(f"/v1/reports/{job_id}", headers=admin.headers).get_json()["data"]
    assert job["status"] == "done" and job["result"]["totals"]["revenue"] == 10**19
    rows = list(csv.reader(io.StringIO(client.get(f"/v1/reports/{job_id}.csv", headers=admin.headers)
                                       .get_data(as_text=True))))
    assert rows[1][-1] == str(10**19)
    ET.fromstring(client.get(f"/v1/reports/{job_id}/chart.svg", headers=admin.headers).get_data())


def test_chart_escapes_names(client, admin, db_session):
    buyer = make_account(db_session)
    item = make_item(db_session, name="<script>alert(1)</script> & co")
    add_sale(db_session, buyer.id, utc(1997, 5, 9), [(item, 1, 100)])
    job_id = queue(client, admin, group_by="item").get_json()["data"]["id"]
    ReportTick()(db_session)
    svg = client.get(f"/v1/reports/{job_id}/chart.svg", headers=admin.headers).get_data(as_text=True)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)


def test_nice_ticks_cover_the_top_value_with_round_steps():
    assert chart.nice_ticks(119000) == [0, 25000, 50000, 75000, 100000, 125000]
    assert chart.nice_ticks(100) == [0, 20, 40, 60, 80, 100]
    assert chart.nice_ticks(3) == [0, 1, 2, 3]
    assert chart.nice_ticks(0) == [0, 1]
    assert [chart.compact(v) for v in (0, 950, 1500, 2_000_000, 2_500_000_000)] == ["0", "950", "1.5k", "2M", "2.5B"]


def test_a_job_left_running_by_a_dead_worker_is_taken_again(client, admin, db_session, sales):
    job_id = queue(client, admin).get_json()["data"]["id"]
    db_session.execute(update(ReportJob).where(ReportJob.id == job_id).values(
        status="running", attempts=1, lease_expires_at=func.now() - timedelta(seconds=1)))
    assert ReportTick()(db_session) == 1
    job = job_row(db_session, job_id)
    assert job.status == "done" and job.attempts == 2 and job.lease_expires_at is None
    assert job.result["totals"]["transactions"] == 3


def test_a_running_job_with_a_live_lease_is_left_alone(client, admin, db_session):
    job_id = queue(client, admin).get_json()["data"]["id"]
    db_session.execute(update(ReportJob).where(ReportJob.id == job_id).values(
        status="running", attempts=1, lease_expires_at=func.now() + timedelta(minutes=5)))
    assert ReportTick()(db_session) == 0
    job = job_row(db_session, job_id)
    assert job.status == "running" and job.attempts == 1


def test_a_job_whose_worker_died_too_often_fails_with_the_reason(client, admin, db_session):
    job_id = queue(client, admin).get_json()["data"]["id"]
    db_session.execute(update(ReportJob).where(ReportJob.id == job_id).values(
        status="running", attempts=3, lease_expires_at=func.now() - timedelta(seconds=1)))
    assert ReportTick()(db_session) == 1
    job = job_row(db_session, job_id)
    assert job.status == "failed" and job.attempts == 3 and job.finished_at is not None
    assert job.error.startswith("abandoned after 3 attempts")


def test_a_job_that_cannot_be_computed_fails_at_once_with_the_reason(client, admin, db_session):
    job = ReportJob(kind="sales", params={"from": "1997-06-01", "to": "1997-05-01", "group_by": "day", "tz": "UTC"})
    db_session.add(job)
    db_session.flush()
    assert ReportTick()(db_session) == 1
    job = job_row(db_session, job.id)
    assert job.status == "failed" and job.attempts == 1 and job.error.startswith("invalid_window:")
    body = client.get(f"/v1/reports/{job.id}", headers=admin.headers).get_json()["data"]
    assert body["status"] == "failed" and body["error"] == job.error and body["result"] is None


def test_an_error_is_retried_up_to_the_limit_then_fails(db_session):
    job = ReportJob(kind="sales", params={"to": "1997-05-01"})  # a stored job missing its 'from'
    db_session.add(job)
    db_session.flush()
    statuses = []
    for _ in range(3):
        assert ReportTick()(db_session) == 1
        row = job_row(db_session, job.id)
        statuses.append((row.status, row.attempts))
    assert statuses == [("queued", 1), ("queued", 2), ("failed", 3)]
    assert row.error == "KeyError: 'from'" and row.finished_at is not None


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_new_owner(client, admin, db_session):
    job_id = queue(client, admin).get_json()["data"]["id"]
    # Attempt 2 belongs to another worker now; attempt 1's late result and late failure are both dropped.
    db_session.execute(update(ReportJob).where(ReportJob.id == job_id).values(
        status="running", attempts=2, lease_expires_at=func.now() + timedelta(minutes=1)))
    late = {"id": job_id, "attempt": 1}
    assert db_session.execute(worker._DONE, {**late, "result": "{}"}).rowcount == 0
    assert db_session.execute(worker._FAILED, {**late, "error": "late"}).rowcount == 0
    assert db_session.execute(worker._RENEW, {**late, "lease": 60}).rowcount == 0
    assert job_row(db_session, job_id).status == "running"
    assert db_session.execute(worker._DONE, {"id": job_id, "attempt": 2, "result": "{}"}).rowcount == 1


def test_reports_and_jobs_work_under_the_report_role_which_cannot_write_sales(client, admin, db_session, sales):
    """svc_report's own database role reads the other services' tables and writes only report_jobs."""
    db_session.execute(text("SET LOCAL ROLE toko_report"))
    job_id = queue(client, admin, group_by="user").get_json()["data"]["id"]
    assert ReportTick()(db_session) == 1
    result = client.get(f"/v1/reports/{job_id}", headers=admin.headers).get_json()["data"]["result"]
    assert result["rows"][0]["username"] == sales["buyer"].username
    with pytest.raises(ProgrammingError, match="permission denied"):
        with db_session.begin_nested():
            db_session.execute(text("UPDATE transactions SET total = total WHERE id = 0"))


def test_chart_of_many_items_shows_the_top_ones_and_says_so():
    rows = [{"key": n, "name": f"thing {n}", "sku": f"S{n}", "transactions": 1, "quantity": 1,
             "revenue": 1000 - n} for n in range(40)]
    result = {"kind": "sales", "from": "1997-05-01T00:00:00Z", "to": "1997-05-01T17:00:00Z", "group_by": "item",
              "tz": "Asia/Jakarta", "currency": "IDR", "rows": rows,
              "totals": {"transactions": 40, "quantity": 40, "revenue": sum(r["revenue"] for r in rows)}}
    root = ET.fromstring(export.report_chart(result))
    titles = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect") if r.get("fill") == chart.BAR]
    assert titles == [f"thing {n}: {1000 - n:,}" for n in range(30)]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    # The window is shown in the report's zone: 07:00 to midnight in Jakarta.
    assert "1997-05-01 07:00:00 to 1997-05-02 Asia/Jakarta (end excluded), paid transactions" in texts
    assert "Total 39,220 IDR in 40 transactions; the top 30 of 40 items by revenue" in texts
