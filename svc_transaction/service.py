"""Purchases: stock taken and sale recorded in one PostgreSQL transaction; step-up, cancel, expiry.

Lock order, the same everywhere so that no two purchases, cancels or expiries can deadlock:
an idempotency key row first (keyed purchases, taken by the web layer), then the transaction row
(confirm, cancel, expiry), then item rows in ascending id order. A purchase never waits on a
transaction row.
"""

from __future__ import annotations

import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, NoReturn, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from common.db.models import Item, OtpChallenge, Transaction, TransactionLine
from common.db.queues import QueueRow, waiting
from common.db.session import driver_sql, run
from common.errors import Conflict, Forbidden, Gone, NotFound, Unprocessable
from common.events import record
from common.events.outbox import utc
from common.paging import offset_page
from common.principal import Principal
from common.settings import get_settings

REFUNDABLE = ("paid", "awaiting_otp")

_items = cast(Table, Item.__table__)
_TAKE_STOCK = (
    update(_items)
    .where(
        _items.c.id == bindparam("b_id"), _items.c.stock >= bindparam("b_q"), _items.c.deleted_at.is_(None)
    )
    .values(stock=_items.c.stock - bindparam("b_q"))
    .returning(_items.c.price, func.now().label("now"))
)
# The sale and its lines in one round trip; lines in item id order, like the stock was taken.
_RECORD = text("""
    WITH t AS (
        INSERT INTO transactions (user_id, status, total, currency, paid_at, confirm_by)
        VALUES (:user_id, :status, :total, :currency, :paid_at, :confirm_by)
        RETURNING id, created_at
    ), l AS (
        INSERT INTO transaction_lines (transaction_id, item_id, quantity, unit_price)
        SELECT t.id, v.item_id, v.quantity, v.unit_price
        FROM t, unnest(CAST(:item_ids AS bigint[]), CAST(:quantities AS integer[]), CAST(:prices AS bigint[]))
             WITH ORDINALITY AS v(item_id, quantity, unit_price, n)
        ORDER BY v.n
    )
    SELECT id, created_at FROM t
""")
_TAKE_STOCK_SQL, _RECORD_SQL = driver_sql(_TAKE_STOCK), driver_sql(_RECORD)
_RETURN_STOCK = (
    update(_items).where(_items.c.id == bindparam("b_id")).values(stock=_items.c.stock + bindparam("b_q"))
)


# --- purchases ---------------------------------------------------------------------------------------


@dataclass
class SaleLine:
    item_id: int
    quantity: int
    unit_price: int


@dataclass
class Sale:
    """A purchase as its one statement recorded it, carried to the serializer.

    Plain values, not ORM objects: nothing here is loaded or tracked by the session, and building
    instrumented instances cost more than the rest of the purchase's Python.
    """

    id: int
    user_id: int
    status: str
    total: int
    currency: str
    created_at: datetime
    paid_at: datetime | None
    confirm_by: datetime | None
    lines: list[SaleLine]
    cancelled_at: None = None


def purchase(connection: Connection, user_id: int, lines: list[dict]) -> Sale:
    """Take the stock of every line and record the sale, or take nothing (409/422).

    It works on a connection in the caller's transaction, not a session: no ORM entity is involved, and
    its statements go straight to the driver.
    """
    settings = get_settings()
    # Rows are locked in item id order: two purchases of the same items queue instead of deadlocking.
    ordered = sorted(enumerate(lines), key=lambda pair: pair[1]["item_id"])
    taken: list[tuple[dict, int]] = []
    now: Any = None  # the database's clock, from the first stock update
    for index, line in ordered:
        with closing(
            run(connection, _TAKE_STOCK_SQL, {"b_id": line["item_id"], "b_q": line["quantity"]})
        ) as cursor:
            row = cursor.fetchone()
        if row is None:
            _refuse(connection, ordered, {done["item_id"]: done["quantity"] for done, _ in taken}, index)
        price, now = row
        taken.append((line, price))
    total = sum(line["quantity"] * price for line, price in taken)
    step_up = total >= settings.otp_threshold
    values = {
        "user_id": user_id,
        "total": total,
        "currency": settings.currency,
        "status": "awaiting_otp" if step_up else "paid",
        "paid_at": None if step_up else now,
        "confirm_by": now + timedelta(seconds=settings.transaction_confirm_seconds) if step_up else None,
    }
    with closing(
        run(
            connection,
            _RECORD_SQL,
            {
                **values,
                "item_ids": [line["item_id"] for line, _ in taken],
                "quantities": [line["quantity"] for line, _ in taken],
                "prices": [price for _, price in taken],
            },
        )
    ) as cursor:
        sale_id, created_at = cursor.fetchone()
    sale = Sale(
        id=sale_id,
        created_at=created_at,
        **values,
        lines=[SaleLine(line["item_id"], line["quantity"], price) for line, price in taken],
    )
    paid = ("transaction.created", "transaction.paid")
    record(connection, "transaction.created" if step_up else paid, ("transaction", sale.id), shown(sale))
    return sale


def shown(txn: Transaction | Sale) -> dict:
    """The transaction as the API shows it (TransactionSchema), the data of its events."""
    return {
        "id": txn.id,
        "user_id": txn.user_id,
        "status": txn.status,
        "total": txn.total,
        "currency": txn.currency,
        "lines": [
            {
                "item_id": line.item_id,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "subtotal": line.quantity * line.unit_price,
            }
            for line in txn.lines
        ],
        "created_at": utc(txn.created_at),
        "paid_at": utc(txn.paid_at),
        "confirm_by": utc(txn.confirm_by),
        "cancelled_at": utc(txn.cancelled_at),
    }


def _refuse(
    connection: Connection, ordered: list[tuple[int, dict]], taken: dict[int, int], failed_index: int
) -> NoReturn:
    """Explain why a line could not be filled: unknown or removed items (422), else short stock (409)."""
    ids = [line["item_id"] for _, line in ordered]
    rows = {
        r.id: r
        for r in connection.execute(select(Item.id, Item.stock, Item.deleted_at).where(Item.id.in_(ids)))
    }
    missing = [
        (i, line) for i, line in ordered if line["item_id"] not in rows or rows[line["item_id"]].deleted_at
    ]
    if missing:
        raise Unprocessable(
            "Some lines name items that are not in the catalogue.",
            code="unknown_item",
            details={
                "fields": {
                    "lines": {
                        str(i): {
                            "item_id": [
                                f"Item {line['item_id']} does not exist or was removed from the catalogue."
                            ]
                        }
                        for i, line in missing
                    }
                },
                "item_ids": [line["item_id"] for _, line in missing],
            },
        )
    short = []
    for i, line in ordered:
        # This transaction already took the earlier lines; what was there is what it sees plus that.
        available = rows[line["item_id"]].stock + taken.get(line["item_id"], 0)
        if available < line["quantity"] or i == failed_index:
            short.append(
                {
                    "index": i,
                    "item_id": line["item_id"],
                    "requested": line["quantity"],
                    "available": available,
                }
            )
    raise Conflict(
        "Not enough stock for some lines; nothing was taken.",
        code="insufficient_stock",
        details={"lines": short},
    )


# --- reading -----------------------------------------------------------------------------------------


def list_transactions(
    session: Session,
    principal: Principal,
    *,
    page: int,
    per_page: int,
    user_id: int | None = None,
    status: str | None = None,
) -> list[Transaction]:
    """Newest first: the caller's own, or anyone's (optionally one user's) for an admin."""
    stmt = select(Transaction).order_by(Transaction.id.desc())
    if not principal.is_admin:
        if user_id is not None and user_id != principal.user_id:
            raise Forbidden("Only an admin lists another user's transactions.")
        user_id = principal.user_id
    if user_id is not None:
        stmt = stmt.where(Transaction.user_id == user_id)
    if status is not None:
        stmt = stmt.where(Transaction.status == status)
    return list(session.scalars(offset_page(stmt, page=page, per_page=per_page)))


def get_transaction(session: Session, principal: Principal, transaction_id: int) -> Transaction:
    txn = session.get(Transaction, transaction_id)
    if txn is None or not (principal.is_admin or txn.user_id == principal.user_id):
        raise NotFound("No such transaction.")
    return txn


def _lock(session: Session, principal, transaction_id: int):
    """The transaction row, locked until commit, with the database clock; 404 unless visible."""
    row = session.execute(
        select(Transaction, func.now().label("now"), (Transaction.confirm_by <= func.now()).label("overdue"))
        .where(Transaction.id == transaction_id)
        .with_for_update(of=Transaction)
    ).first()
    if row is None or not (principal.is_admin or row.Transaction.user_id == principal.user_id):
        raise NotFound("No such transaction.")
    return row.Transaction, row.now, bool(row.overdue)


# --- step-up, cancel, expiry -----------------------------------------------------------------------


def confirm(session: Session, principal, transaction_id: int, otp_id: uuid.UUID) -> Transaction:
    """Pay an awaiting_otp transaction with a verified confirm_transaction OTP made for it."""
    txn, now, overdue = _lock(session, principal, transaction_id)
    if txn.user_id != principal.user_id:
        raise Forbidden("Only the buyer confirms a purchase.")
    if txn.status == "expired" or (txn.status == "awaiting_otp" and overdue):
        raise Gone(
            "The confirmation window has closed; the stock was released.",
            code="transaction_expired",
            details={"confirm_by": txn.confirm_by.isoformat() if txn.confirm_by else None},
        )
    if txn.status != "awaiting_otp":
        raise Conflict(
            f"The transaction is {txn.status}, not awaiting_otp.",
            code="transaction_not_awaiting_otp",
            details={"status": txn.status},
        )
    otp = session.get(OtpChallenge, otp_id)
    if (
        otp is None
        or otp.user_id != txn.user_id
        or otp.purpose != "confirm_transaction"
        or otp.reference != str(txn.id)
    ):
        raise Unprocessable(
            "This OTP was not issued to confirm this transaction.",
            code="otp_mismatch",
            details={"fields": {"otp_id": ["Not a confirm_transaction OTP for this transaction."]}},
        )
    if otp.status != "verified":
        raise Unprocessable(
            "Verify the OTP first (POST /v1/otps/{id}/verify).",
            code="otp_not_verified",
            details={"fields": {"otp_id": ["This OTP is not verified."]}},
        )
    txn.status, txn.paid_at, txn.confirm_otp_id = "paid", now, otp.id
    session.flush()
    record(session, "transaction.paid", ("transaction", txn.id), shown(txn))
    return txn


def cancel(session: Session, principal, transaction_id: int) -> Transaction:
    """Cancel a paid or awaiting_otp transaction and return its stock; the record stays."""
    txn, now, overdue = _lock(session, principal, transaction_id)
    if txn.status not in REFUNDABLE or (txn.status == "awaiting_otp" and overdue):
        status = "expired" if txn.status == "awaiting_otp" else txn.status
        raise Conflict(
            f"The transaction is {status} and cannot be cancelled.",
            code="transaction_not_cancellable",
            details={"status": status},
        )
    # The status condition under the row lock is what makes the return happen once.
    return_stock(session, ((line.item_id, line.quantity) for line in txn.lines))
    txn.status, txn.cancelled_at = "cancelled", now
    session.flush()
    record(session, "transaction.cancelled", ("transaction", txn.id), shown(txn))
    return txn


def return_stock(session: Session, quantities: Iterable[tuple[int, int]]) -> None:
    """Put stock back, one row per item in ascending id order (the purchase lock order)."""
    per_item: dict[int, int] = {}
    for item_id, quantity in quantities:
        per_item[item_id] = per_item.get(item_id, 0) + quantity
    if per_item:
        session.execute(_RETURN_STOCK, [{"b_id": i, "b_q": per_item[i]} for i in sorted(per_item)])


def expire_overdue(session: Session, limit: int) -> int:
    """Expire up to `limit` awaiting_otp transactions past confirm_by and return their stock."""
    ids = list(
        session.scalars(
            select(Transaction.id)
            .where(Transaction.status == "awaiting_otp", Transaction.confirm_by <= func.now())
            .order_by(Transaction.confirm_by)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return 0
    return_stock(
        session,
        session.execute(
            select(TransactionLine.item_id, TransactionLine.quantity).where(
                TransactionLine.transaction_id.in_(ids)
            )
        ),
    )
    table = cast(Table, Transaction.__table__)
    session.execute(
        update(table).where(table.c.id.in_(ids), table.c.status == "awaiting_otp").values(status="expired")
    )
    expired = session.scalars(
        select(Transaction)
        .where(Transaction.id.in_(ids))
        .order_by(Transaction.id)
        .execution_options(populate_existing=True)
    ).all()
    for txn in expired:
        record(session, "transaction.expired", ("transaction", txn.id), shown(txn))
    return len(ids)


def queue_depths(session: Session) -> list[QueueRow]:
    """Purchases awaiting their code (svc_transaction_worker expires them): how many, the oldest's age."""
    return [waiting(session, "transactions", "awaiting_otp")]
