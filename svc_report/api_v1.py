"""v1 views of the report service (admin only): parse, call the report modules, serialize."""

from __future__ import annotations

from flask import Response, jsonify, url_for

from common.web import Blueprint, commit, db, require_principal
from common.web.schemas import PageArgs, envelope
from svc_report import export, jobs, sales
from svc_report.query import parse_sales_query
from svc_report.schemas import LiveSalesArgs, ReportCreate, ReportJobSchema, ReportJobSummary, SalesAnswer

reports = Blueprint(
    "reports",
    __name__,
    url_prefix="/v1/reports",
    description="Sales reports from the shared tables (admin only). Revenue is recognised when a "
    "transaction is paid: only status `paid` counts, bucketed by `paid_at`, in [from, to).",
)


@reports.route("/sales", methods=["GET"])
@reports.auth(admin=True)
@reports.arguments(LiveSalesArgs, location="query")
@reports.response(200, SalesAnswer)
@reports.errors(422)
def sales_report(args):
    """The live sales report: rows per day, item or buyer, and totals, from one snapshot.

    `group_by=day` has a row for every day of the window, zero where nothing sold. Sums are exact at any
    size (past 2^63 too). `source=events` answers from the sales projection kept from transaction events;
    `meta` says which source answered and how far behind the newest event it may be.
    """
    query = parse_sales_query(args["from_"], args["to"], args["group_by"], args["tz"])
    document, meta = sales.sales_answer(db(), query, args["source"])
    # The service already builds the documented JSON document; dumping thousands of rows field by field
    # through marshmallow would cost more than the HTTP layer itself, so it is sent as it is.
    return jsonify({"data": document, "meta": meta})


@reports.route("", methods=["POST"])
@reports.auth(admin=True)
@reports.arguments(ReportCreate)
@reports.response(202, envelope(ReportJobSchema))
@reports.errors(422, 429)
def create_report(body):
    """Queue a report; svc_report_worker computes it. Poll the `Location` until `done`.

    A user may have TOKO_REPORT_MAX_ACTIVE_JOBS (5) jobs queued or running; past them, 429 `too_many_jobs`.
    """
    params = {"from": body["from_"], "to": body["to"], "group_by": body["group_by"], "tz": body["tz"]}
    job = jobs.enqueue(db(), require_principal().user_id, body["kind"], params)
    commit()
    return {"data": job}, 202, {"Location": url_for("reports.get_report", job_id=job.id)}


@reports.route("", methods=["GET"])
@reports.auth(admin=True)
@reports.arguments(PageArgs, location="query")
@reports.response(200, envelope(ReportJobSummary, many=True))
def list_reports(args):
    """Queued reports, newest first (without their results)."""
    return {"data": jobs.list_jobs(db(), **args)}


@reports.route("/<int:job_id>", methods=["GET"])
@reports.auth(admin=True)
@reports.response(200, envelope(ReportJobSchema))
@reports.errors(404)
def get_report(job_id):
    """A report job: queued, running, done (with `result`) or failed (with `error`)."""
    return {"data": jobs.get_job(db(), job_id)}


@reports.route("/<int:job_id>", methods=["DELETE"])
@reports.auth(admin=True)
@reports.response(204)
@reports.errors(404)
def delete_report(job_id):
    """Remove a report job, in whatever state."""
    jobs.delete_job(db(), job_id)
    commit()
    return "", 204


@reports.route("/<int:job_id>.csv", methods=["GET"])
@reports.auth(admin=True)
@reports.doc(
    responses={
        "200": {
            "description": "The rows, with a header row.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }
)
@reports.errors(404, 409)
def report_csv(job_id):
    """A done report's rows as CSV; 409 until it is done.

    A text cell that would start a spreadsheet formula (`=`, `+`, `-`, `@`, a tab or line break, also after
    leading blanks or control characters) is prefixed with `'`.
    """
    result = jobs.finished_result(jobs.get_job(db(), job_id))
    return Response(
        export.report_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="sales-report-{job_id}.csv"'},
    )


@reports.route("/<int:job_id>/chart.svg", methods=["GET"])
@reports.auth(admin=True)
@reports.doc(
    responses={
        "200": {
            "description": "Revenue per key as a bar chart.",
            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
        }
    }
)
@reports.errors(404, 409)
def report_chart(job_id):
    """A done report's revenue as an SVG bar chart; 409 until it is done.

    Well-formed XML whatever the names hold: characters XML forbids (control characters) show as U+FFFD.
    """
    result = jobs.finished_result(jobs.get_job(db(), job_id))
    return Response(
        export.report_chart(result),
        mimetype="image/svg+xml",
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
    )
