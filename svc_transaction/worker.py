"""svc_transaction_worker: expires unconfirmed purchases (returning their stock) and old idempotency keys."""

from __future__ import annotations

from sqlalchemy.orm import Session

from common import idempotency
from common.settings import get_settings
from common.worker import Worker
from svc_transaction import service

# Rows per tick: small enough that one tick's locks and transaction stay short.
BATCH = 100


def tick(session: Session) -> int:
    """One batch of expiries and key deletions; the Worker commits it as one transaction."""
    return service.expire_overdue(session, BATCH) + idempotency.delete_expired(session, BATCH)


def make_worker() -> Worker:
    return Worker(
        "svc_transaction_worker",
        tick,
        service="transaction",
        idle_seconds=get_settings().transaction_worker_poll_seconds,
    )
