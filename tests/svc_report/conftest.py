"""Fixtures and helpers for the report service's tests.

The run's database is shared with end-to-end tests that commit purchases made now, so every report
test puts its sales in a window of its own, years in the past.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy.orm import Session

from common.db.models import Transaction, TransactionLine
from tests.helpers import error_details as assert_error  # noqa: F401 (the tests import it here)


@pytest.fixture
def client(make_client):
    return make_client("report")




def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def add_sale(session: Session, user_id: int, paid_at: datetime | None, lines, *, status: str = "paid") -> Transaction:
    """A transaction as svc_transaction records it: `lines` are (item, quantity, unit_price)."""
    total = sum(quantity * price for _, quantity, price in lines)
    txn = Transaction(user_id=user_id, status=status, total=total, paid_at=paid_at,
                      cancelled_at=paid_at if status == "cancelled" else None,
                      lines=[TransactionLine(item_id=item.id, quantity=quantity, unit_price=price)
                             for item, quantity, price in lines])
    session.add(txn)
    session.flush()
    return txn
