"""The queue of report jobs: requests are validated and queued here, computed by the worker.

`report_jobs` is the one table the report service writes.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from common.db.models import ReportJob
from common.errors import Conflict, NotFound, TooManyRequests
from common.ids import is_id
from common.paging import offset_page
from common.settings import get_settings
from svc_report.query import invalid, parse_sales_query

KINDS = ("sales",)
# Namespace of the per-user advisory lock that serializes queueing (first key of the two-key form).
_ENQUEUE_LOCK_NAMESPACE = 5005
# A job's run time depends on its window and the data: a client over the cap is told to come back later.
_RETRY_AFTER_SECONDS = 30
ACTIVE = ("queued", "running")


def enqueue(session: Session, requested_by: int, kind: str, params: dict) -> ReportJob:
    """Validate a report request now (bad input never reaches the queue) and queue it."""
    if kind not in KINDS:
        raise invalid({"kind": [f"Must be one of: {', '.join(KINDS)}."]})
    query = parse_sales_query(params["from"], params["to"], params.get("group_by") or "day", params.get("tz"))
    _check_active_jobs(session, requested_by)
    job = ReportJob(kind=kind, params=query.as_params(), requested_by=requested_by)
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def _check_active_jobs(session: Session, user_id: int) -> None:
    """429 when the user already has the cap of jobs queued or running.

    One enqueue per user at a time (an advisory lock held to the end of the transaction, which needs no
    grant on users): the count then sees every job committed before it, so parallel requests never
    queue more than the cap.
    """
    cap = get_settings().report_max_active_jobs
    session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:u))"),
        {"ns": _ENQUEUE_LOCK_NAMESPACE, "u": str(user_id)},
    )
    active = session.execute(
        select(func.count())
        .select_from(ReportJob)
        .where(ReportJob.requested_by == user_id, ReportJob.status.in_(ACTIVE))
    ).scalar_one()
    if active >= cap:
        raise TooManyRequests(
            f"You have {active} report jobs queued or running; at most {cap} are allowed at once.",
            code="too_many_jobs",
            retry_after=_RETRY_AFTER_SECONDS,
            details={"active": active, "limit": cap},
        )


def queue_depths(session: Session) -> list[tuple[str, str, int, float]]:
    """Jobs queued and running: how many, and the age of the oldest (a running one's since it started)."""
    found = {
        status: (count, float(oldest))
        for status, count, oldest in session.execute(
            text("""
            SELECT status, count(*),
                   extract(epoch FROM now() - min(CASE WHEN status = 'running'
                                                       THEN coalesce(started_at, created_at)
                                                       ELSE created_at END))
            FROM report_jobs WHERE status IN ('queued', 'running') GROUP BY status
        """)
        )
    }
    return [("report_jobs", status, *found.get(status, (0, 0.0))) for status in ACTIVE]


def list_jobs(session: Session, *, page: int, per_page: int) -> list[ReportJob]:
    """Jobs, newest first."""
    stmt = select(ReportJob).order_by(ReportJob.created_at.desc(), ReportJob.id.desc())
    return list(session.scalars(offset_page(stmt, page=page, per_page=per_page)))


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
