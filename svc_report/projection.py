"""The sales projection: svc_report's copy of every transaction's furthest state, kept from its events.

The events of one transaction may arrive more than once and in any order (a broker redelivers; the test
switch shuffles), so a row only moves forward: awaiting_otp, then paid, then cancelled or expired. A paid
event adds a sale, a cancellation of a paid transaction takes it away again (the report counts `paid`
rows only, by `paid_at`, as it does on the shared tables); an awaiting_otp or expired transaction never
counts. The same events in any order leave the same rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.db.models.transactions import TRANSACTION_STATES
from common.events.consumer import Consumer, ConsumerWorker, Event

CONSUMER = "svc_report_projector"
TYPES = ("transaction.created", "transaction.paid", "transaction.cancelled", "transaction.expired")


def _stage(status: str) -> str:
    return f"CASE {status} WHEN 'awaiting_otp' THEN 0 WHEN 'paid' THEN 1 ELSE 2 END"


_UPSERT = text(f"""
    INSERT INTO projected_sales (id, user_id, status, paid_at) VALUES (:id, :user_id, :status, :paid_at)
    ON CONFLICT (id) DO UPDATE SET status = excluded.status, paid_at = excluded.paid_at, updated_at = now()
    WHERE {_stage("excluded.status")} > {_stage("projected_sales.status")}
""")
# A transaction's lines never change after its purchase: the first event to arrive brings them.
_LINES = text("""
    INSERT INTO projected_sale_lines (transaction_id, item_id, quantity, unit_price)
    SELECT :id, l.item_id, l.quantity, l.unit_price
    FROM unnest(CAST(:item_ids AS bigint[]), CAST(:quantities AS integer[]), CAST(:prices AS bigint[]))
         AS l(item_id, quantity, unit_price)
    ON CONFLICT DO NOTHING
""")


def _integer(value) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def apply_transaction(session: Session, event: Event) -> None:
    """Bring the transaction's row up to the state its event shows; a malformed event raises."""
    data = event.data
    status = data["status"]
    if status not in TRANSACTION_STATES:
        raise ValueError(f"unknown status {status!r}")
    transaction_id = _integer(data["id"])
    if event.aggregate_id != str(transaction_id):
        raise ValueError(f"data is transaction {transaction_id}, the event's aggregate {event.aggregate_id}")
    paid_at = datetime.fromisoformat(data["paid_at"]) if data.get("paid_at") else None
    if status == "paid" and paid_at is None:
        raise ValueError("a paid transaction without paid_at")
    lines = data["lines"]
    if not lines:
        raise ValueError("a transaction without lines")
    session.execute(
        _UPSERT,
        {"id": transaction_id, "user_id": _integer(data["user_id"]), "status": status, "paid_at": paid_at},
    )
    session.execute(
        _LINES,
        {
            "id": transaction_id,
            "item_ids": [_integer(line["item_id"]) for line in lines],
            "quantities": [_integer(line["quantity"]) for line in lines],
            "prices": [_integer(line["unit_price"]) for line in lines],
        },
    )


def projector() -> Consumer:
    return Consumer(CONSUMER, {kind: apply_transaction for kind in TYPES})


def make_worker() -> ConsumerWorker:
    """svc_report_projector, the supervisor program that keeps the projection."""
    return ConsumerWorker(projector(), service="report")
