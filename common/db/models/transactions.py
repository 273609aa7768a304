"""Purchases, their lines and idempotency keys (owned by svc_transaction)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.db.base import Base, IdMixin, TimestampMixin

TRANSACTION_STATES = ("awaiting_otp", "paid", "cancelled", "expired")


class Transaction(IdMixin, TimestampMixin, Base):
    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint("status IN ('awaiting_otp', 'paid', 'cancelled', 'expired')", name="status"),
        CheckConstraint("total >= 0", name="total"),
        Index(None, "user_id", "id"),
        Index(
            "ix_transactions_awaiting_expiry", "confirm_by", postgresql_where=text("status = 'awaiting_otp'")
        ),
        Index("ix_transactions_paid_at", "paid_at", postgresql_where=text("status = 'paid'")),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), server_default="IDR")
    paid_at: Mapped[datetime | None]
    confirm_by: Mapped[datetime | None]  # awaiting_otp only: when it expires
    cancelled_at: Mapped[datetime | None]
    # The OTP that confirmed it; unique, so one code confirms one purchase once.
    confirm_otp_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("otp_challenges.id"), unique=True)

    lines: Mapped[list["TransactionLine"]] = relationship(
        back_populates="transaction", lazy="selectin", order_by="TransactionLine.id"
    )


class TransactionLine(IdMixin, Base):
    __tablename__ = "transaction_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint("unit_price >= 0", name="unit_price"),
        UniqueConstraint("transaction_id", "item_id"),
        Index(None, "item_id"),
    )

    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)

    transaction: Mapped[Transaction] = relationship(back_populates="lines")


class IdempotencyKey(IdMixin, Base):
    """Stripe-style idempotency: the first answer to a (user, key) is replayed (common.idempotency)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index(None, "expires_at"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_headers: Mapped[dict | None] = mapped_column(JSONB)
    response_body: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[datetime]
