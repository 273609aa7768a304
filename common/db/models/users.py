"""Users and their login sessions (owned by svc_user; every service reads sessions)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.db.base import Base, IdMixin, TimestampMixin

ROLES = ("customer", "admin")
# 3 to 64 ASCII letters, digits, dots, underscores or dashes; PostgreSQL's `$` is the string's end alone.
USERNAME_RULE = "^[A-Za-z0-9._-]{3,64}$"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('customer', 'admin')", name="role"),
        # The API's rule, kept by the database for every writer: no space, line break or lookalike.
        CheckConstraint(f"username ~ '{USERNAME_RULE}'", name="username"),
        # `Dwi` and `dwi` are one account: uniqueness (and the login lookup) ignore case.
        Index("uq_users_username_lower", func.lower(text("username")), unique=True),
    )

    username: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), server_default="customer")
    verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
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


class LoginFailure(IdMixin, Base):
    """One failed (or still running) password check, counted by the three login throttles.

    Rows, not counters, so a window slides: a failure stops counting once it is older than the window.
    `username` is lower-cased and need not name an account: unknown usernames are throttled alike.
    A `running` row is a check in progress, whose transaction holds the row's lock until it settles the
    row (a failure) or deletes it; one left running and unlocked was cut off by a fault and counts for
    nothing.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "username", "at"), Index(None, "client_addr", "at"), Index(None, "at"))

    username: Mapped[str] = mapped_column(String(64))
    client_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    running: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Registration(IdMixin, Base):
    """One registration that reached the uniqueness check (an account made or a name found taken).

    Counted per client address within a sliding window, like the login failures.
    """

    __tablename__ = "registrations"
    __table_args__ = (Index(None, "client_addr", "at"), Index(None, "at"))

    client_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(server_default=text("now()"))
