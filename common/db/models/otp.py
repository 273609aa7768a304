"""One-time password challenges and their delivery outbox (owned by svc_otp)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base, IdMixin

OTP_PURPOSES = ("verify_account", "confirm_transaction")
OTP_STATES = ("pending", "verified", "replaced", "locked")
MESSAGE_STATES = ("pending", "sent", "failed")


class OtpChallenge(Base):
    __tablename__ = "otp_challenges"
    __table_args__ = (
        CheckConstraint("purpose IN ('verify_account', 'confirm_transaction')", name="purpose"),
        CheckConstraint("status IN ('pending', 'verified', 'replaced', 'locked')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # At most one live code per user, purpose and reference: a resend replaces, never adds.
        Index(
            "uq_otp_challenges_live",
            "user_id",
            "purpose",
            "reference",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index(None, "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(32))
    # '' when the purpose has no reference, so the uniqueness above also covers it.
    reference: Mapped[str] = mapped_column(String(64), server_default="")
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]


class OtpMessage(IdMixin, Base):
    """The outbox: written with the challenge, delivered by svc_otp_worker."""

    __tablename__ = "otp_messages"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_otp_messages_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )

    challenge_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("otp_challenges.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str] = mapped_column(String(254))
    # Carries the code only until sent; cleared on delivery.
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    sent_at: Mapped[datetime | None]
