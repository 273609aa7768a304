"""Users and their login sessions (owned by svc_user; every service reads sessions)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (Boolean, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.db.base import Base, IdMixin, TimestampMixin

ROLES = ("customer", "admin")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('customer', 'admin')", name="role"),
        CheckConstraint("failed_logins >= 0", name="failed_logins"),
    )

    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), server_default="customer")
    verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Login throttling lives in the row so every worker of every process sees one count.
    failed_logins: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None]
    deactivated_at: Mapped[datetime | None]


class UserSession(IdMixin, Base):
    """A login: only the SHA-256 of the bearer token is stored."""

    __tablename__ = "sessions"
    __table_args__ = (Index(None, "user_id"),)

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    last_seen_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    idle_expires_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # the absolute expiry
    revoked_at: Mapped[datetime | None]
    client_addr: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
