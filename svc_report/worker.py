"""svc_report_worker: claims queued report jobs, computes them, stores the result.

A claim is committed before the work starts (status running, a lease, attempts + 1), so a worker that
dies mid-job leaves a row whose lease runs out; the next tick anywhere takes it again. While computing,
a heartbeat renews the lease. Every write after the claim is fenced by the attempt number, so a worker
that lost its lease can never overwrite the job's newer owner.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, cast

from sqlalchemy import CursorResult, text
from sqlalchemy.orm import Session

from common.db.session import get_engine
from common.errors import ApiError
from common.settings import get_settings
from common.worker import Worker
from svc_report.query import parse_sales_query
from svc_report.sales import sales_report

log = logging.getLogger("toko.report_worker")

# A job whose worker died once too often is given up rather than crash the next worker too.
_ABANDON = text("""
    UPDATE report_jobs SET status = 'failed', lease_expires_at = NULL, finished_at = now(),
           error = 'abandoned after ' || attempts || ' attempts: the worker stopped mid-job each time'
    WHERE id IN (SELECT id FROM report_jobs
                 WHERE status = 'running' AND lease_expires_at < now() AND attempts >= :max_attempts
                 FOR UPDATE SKIP LOCKED)
""")
_CLAIM = text("""
    UPDATE report_jobs
    SET status = 'running', attempts = attempts + 1, started_at = now(),
        lease_expires_at = now() + make_interval(secs => :lease)
    WHERE id = (SELECT id FROM report_jobs
                WHERE status = 'queued'
                   OR (status = 'running' AND lease_expires_at < now() AND attempts < :max_attempts)
                ORDER BY created_at, id
                FOR UPDATE SKIP LOCKED
                LIMIT 1)
    RETURNING id, kind, params, attempts
""")
_RENEW = text("""
    UPDATE report_jobs SET lease_expires_at = now() + make_interval(secs => :lease)
    WHERE id = :id AND status = 'running' AND attempts = :attempt
""")
_DONE = text("""
    UPDATE report_jobs SET status = 'done', result = CAST(:result AS jsonb), error = NULL,
           lease_expires_at = NULL, finished_at = now()
    WHERE id = :id AND status = 'running' AND attempts = :attempt
""")
_FAILED = text("""
    UPDATE report_jobs SET status = 'failed', error = :error, lease_expires_at = NULL, finished_at = now()
    WHERE id = :id AND status = 'running' AND attempts = :attempt
""")
_RETRY = text("""
    UPDATE report_jobs SET status = 'queued', error = :error, lease_expires_at = NULL
    WHERE id = :id AND status = 'running' AND attempts = :attempt
""")


class Heartbeat:
    """Renews a claimed job's lease from its own connection until stopped."""

    def __init__(self, job_id: int, attempt: int, lease_seconds: int):
        self.job_id, self.attempt, self.lease = job_id, attempt, lease_seconds
        self.interval = max(0.5, lease_seconds / 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"report-lease-{job_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with get_engine("report").begin() as conn:
                    renewed = conn.execute(
                        _RENEW, {"id": self.job_id, "attempt": self.attempt, "lease": self.lease}
                    ).rowcount
            except Exception as exc:  # noqa: BLE001 - a missed beat only shortens the lease
                log.warning("lease renewal failed", extra={"job_id": self.job_id, "error": str(exc)[:200]})
                continue
            if not renewed:
                return  # deleted, or taken over after a lost lease: nothing left to renew


def compute(session: Session, kind: str, params: dict) -> dict:
    """The same report function the live endpoint calls."""
    if kind != "sales":
        raise ApiError(f"Unknown report kind {kind!r}.", code="unknown_kind", status=422)
    query = parse_sales_query(params["from"], params["to"], params.get("group_by", "day"), params.get("tz"))
    return sales_report(session, query)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.code}: {exc.message}"
    cause = getattr(exc, "orig", None) or exc  # for a database error, the driver's, never the statement
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"[:500]


class ReportTick:
    """One tick: give up exhausted jobs, claim one, compute it, store the outcome."""

    def __init__(self, stopping: threading.Event | None = None):
        self.stopping = stopping or threading.Event()

    def __call__(self, session: Session) -> int:
        settings = get_settings()
        abandoned = cast(
            CursorResult, session.execute(_ABANDON, {"max_attempts": settings.report_max_attempts})
        ).rowcount
        claimed = session.execute(
            _CLAIM, {"lease": settings.report_lease_seconds, "max_attempts": settings.report_max_attempts}
        ).first()
        session.commit()  # the claim (and any give-ups) must be visible before the work starts
        if claimed is None:
            return abandoned
        job_id, kind, params, attempt = claimed
        log.info("report job claimed", extra={"job_id": job_id, "attempt": attempt})
        fence = {"id": job_id, "attempt": attempt}
        # The heartbeat stops before the outcome is written: its UPDATE would otherwise queue behind
        # this session's own uncommitted one.
        with Heartbeat(job_id, attempt, settings.report_lease_seconds):
            if settings.env == "test" and settings.report_test_delay_seconds:
                self.stopping.wait(settings.report_test_delay_seconds)
            error: Exception | None
            result: Any
            try:
                result, error, final = compute(session, kind, params), None, False
            except ApiError as exc:  # the job itself is wrong: retrying cannot help
                result, error, final = None, exc, True
            except Exception as exc:  # noqa: BLE001 - recorded on the job, retried up to the limit
                result, error, final = None, exc, attempt >= settings.report_max_attempts
        if error is not None:
            session.rollback()
            session.execute(_FAILED if final else _RETRY, {**fence, "error": _reason(error)})
            log.warning(
                "report job failed" if final else "report job attempt failed, will retry",
                extra={"job_id": job_id, "attempt": attempt, "error": _reason(error)},
            )
            return 1
        done = cast(CursorResult, session.execute(_DONE, {**fence, "result": json.dumps(result)}))
        if done.rowcount:
            log.info("report job done", extra={"job_id": job_id, "rows": len(result["rows"])})
        else:
            log.warning("report job result dropped: deleted or taken over", extra={"job_id": job_id})
        return 1


def make_worker() -> Worker:
    tick = ReportTick()
    worker = Worker("svc_report_worker", tick, service="report", idle_seconds=1.0)
    tick.stopping = worker.stopping
    return worker
