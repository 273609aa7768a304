"""The queue of report jobs: requests are validated and queued here, computed by the worker.

`report_jobs` is the one table the report service writes.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.db.models import ReportJob
from common.errors import Conflict, NotFound
from common.ids import is_id
from svc_report.query import invalid, parse_sales_query

KINDS = ("sales",)


def enqueue(session: Session, requested_by: int, kind: str, params: dict) -> ReportJob:
    """Validate a report request now (bad input never reaches the queue) and queue it."""
    if kind not in KINDS:
        raise invalid({"kind": [f"Must be one of: {', '.join(KINDS)}."]})
    query = parse_sales_query(params["from"], params["to"], params.get("group_by") or "day", params.get("tz"))
    job = ReportJob(kind=kind, params=query.as_params(), requested_by=requested_by)
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def list_jobs(session: Session, page: int, per_page: int) -> list[ReportJob]:
    """Jobs, newest first."""
    stmt = select(ReportJob).order_by(ReportJob.created_at.desc(), ReportJob.id.desc())
    return list(session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))


def get_job(session: Session, job_id: int) -> ReportJob:
    job = session.get(ReportJob, job_id) if is_id(job_id) else None
    if job is None:
        raise NotFound("No such report.", code="report_not_found")
    return job


def delete_job(session: Session, job_id: int) -> None:
    """Remove a job in any state; a worker computing it finds its row gone and drops the result."""
    if (
        not is_id(job_id)
        or session.execute(delete(ReportJob).where(ReportJob.id == job_id).returning(ReportJob.id)).first()
        is None
    ):
        raise NotFound("No such report.", code="report_not_found")


def finished_result(job: ReportJob) -> dict:
    """The result of a done job; 409 while it is queued, running or failed."""
    if job.status != "done" or job.result is None:
        raise Conflict(
            f"The report is {job.status}, not done.", code="report_not_ready", details={"status": job.status}
        )
    return job.result
