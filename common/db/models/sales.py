"""The sales projection svc_report keeps from transaction events (owned by svc_report).

Shaped like the transactions it mirrors, so the one sales statement runs on either (svc_report/sales.py).
A row holds the furthest state its transaction's events have reached, whatever order they came in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base


class ProjectedSale(Base):
    __tablename__ = "projected_sales"
    __table_args__ = (
        CheckConstraint("status IN ('awaiting_otp', 'paid', 'cancelled', 'expired')", name="status"),
        Index("ix_projected_sales_paid_at", "paid_at", postgresql_where=text("status = 'paid'")),
    )

    # The transaction's id, from its events.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    paid_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class ProjectedSaleLine(Base):
    __tablename__ = "projected_sale_lines"

    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("projected_sales.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
