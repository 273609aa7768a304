"""The cap on report jobs one user may have queued or running: the 429 envelope, and parallel requests."""
from __future__ import annotations

import threading

from sqlalchemy import create_engine, delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from common.db.models import ReportJob
from common.db.session import driver_url
from common.errors import TooManyRequests
from common.settings import get_settings
from svc_report import jobs
from tests.factories import committed_account, make_account
from tests.svc_report.conftest import assert_error

WINDOW = {"kind": "sales", "from": "1996-01-01", "to": "1996-12-31", "group_by": "day"}


def test_past_the_cap_a_user_gets_429_with_retry_after_while_another_user_still_queues(
        client, db_session, environment):
    environment(TOKO_REPORT_MAX_ACTIVE_JOBS="2")
    first, second = make_account(db_session, "admin"), make_account(db_session, "admin")
    for _ in range(2):
        assert client.post("/v1/reports", json=WINDOW, headers=first.headers).status_code == 202
    refused = client.post("/v1/reports", json=WINDOW, headers=first.headers)
    details = assert_error(refused, 429, "too_many_jobs")
    assert refused.headers["Retry-After"] == str(details["retry_after"]) and details["retry_after"] >= 1
    assert details["active"] == 2 and details["limit"] == 2
    assert client.post("/v1/reports", json=WINDOW, headers=second.headers).status_code == 202
    # A finished job no longer counts: the user may queue again.
    db_session.execute(ReportJob.__table__.update()
                       .where(ReportJob.requested_by == first.id, ReportJob.status == "queued")
                       .values(status="done"))
    assert client.post("/v1/reports", json=WINDOW, headers=first.headers).status_code == 202


def test_parallel_requests_never_queue_more_than_the_cap(environment):
    environment(TOKO_REPORT_MAX_ACTIVE_JOBS="3")
    cap, attempts = 3, 16
    user = committed_account("admin")
    # Connections of their own, committing for real: the cap must hold across transactions.
    engine = create_engine(driver_url(get_settings().database_url), poolclass=NullPool)
    start = threading.Barrier(attempts)
    outcomes: list[str] = []

    def request() -> None:
        with Session(engine) as session:
            start.wait(10)
            try:
                jobs.enqueue(session, user.id, WINDOW["kind"], WINDOW)
                session.commit()
                outcomes.append("queued")
            except TooManyRequests:
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=request) for _ in range(attempts)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with Session(engine) as session:
            statuses = dict(session.execute(
                select(ReportJob.status, func.count()).where(ReportJob.requested_by == user.id)
                .group_by(ReportJob.status)).all())
        # A report worker of a running stack may finish some meanwhile, freeing room for as many more.
        finished = statuses.get("done", 0) + statuses.get("failed", 0)
        assert len(outcomes) == attempts
        assert cap <= outcomes.count("queued") <= cap + finished, (outcomes, statuses)
        assert statuses.get("queued", 0) + statuses.get("running", 0) <= cap, statuses
    finally:
        with Session(engine) as session, session.begin():
            session.execute(delete(ReportJob).where(ReportJob.requested_by == user.id))
        engine.dispose()
