"""User and session rules: plain functions taking a Session; callers commit."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from common.db.models import User, UserSession
from common.errors import ApiError, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized, Unprocessable
from common.security import hash_token, new_token
from common.settings import get_settings
from common.web.auth import Principal
from svc_user.passwords import hash_password, needs_rehash, verify_password

MIN_PASSWORD, MAX_PASSWORD = 8, 128
BAD_LOGIN = "Wrong username or password."
EDITABLE = ("username", "email", "phone")


def check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise Unprocessable(details={"fields": {"password": [
            f"Length must be between {MIN_PASSWORD} and {MAX_PASSWORD} characters."]}})


def _ensure_unique(session: Session, *, username: str | None, email: str | None, exclude_id: int | None = None):
    """Name the field a duplicate would break; the unique constraints still settle races (409)."""
    for field, column, value in (("username", User.username, username), ("email", User.email, email)):
        if value is None:
            continue
        stmt = select(User.id).where(column == value)
        if exclude_id is not None:
            stmt = stmt.where(User.id != exclude_id)
        if session.execute(stmt).first():
            raise Conflict(f"That {field} is already registered.", code="already_exists", details={"field": field})


def create_user(session: Session, *, username: str, email: str, password: str, phone: str | None = None,
                role: str = "customer") -> User:
    check_password_rules(password)
    email = email.strip().lower()
    _ensure_unique(session, username=username, email=email)
    user = User(username=username, email=email, phone=phone, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def list_users(session: Session, stmt_page) -> list[User]:
    return list(session.scalars(stmt_page(select(User).where(User.is_active).order_by(User.id))))


def get_visible_user(session: Session, actor: Principal, user_id: int) -> User:
    """The user, when the actor is that user or an admin; otherwise 404 (its existence is private)."""
    if not actor.is_admin and actor.user_id != user_id:
        raise NotFound("No such user.")
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("No such user.")
    return user


def update_user(session: Session, actor: Principal, user_id: int, changes: dict, *, replace: bool,
                current_session_id: int | None = None) -> User:
    """Apply PUT (replace) or PATCH (named fields) to a user, within the actor's rights."""
    user = get_visible_user(session, actor, user_id)
    if "role" in changes and changes["role"] != user.role and not actor.is_admin:
        raise Forbidden("Only an admin changes a role.", code="role_change_forbidden")
    if replace:
        changes.setdefault("phone", None)
    if "email" in changes:
        changes["email"] = changes["email"].strip().lower()
    _ensure_unique(session, username=changes.get("username"), email=changes.get("email"), exclude_id=user.id)
    for field in EDITABLE + ("role",):
        if field in changes:
            setattr(user, field, changes[field])
    if "password" in changes:
        if not actor.is_admin or actor.user_id == user.id:
            if not verify_password(user.password_hash, changes.get("current_password") or ""):
                raise Unprocessable("The current password is wrong.", code="current_password_invalid",
                                    details={"fields": {"current_password": ["Wrong or missing."]}})
        check_password_rules(changes["password"])
        user.password_hash = hash_password(changes["password"])
        # Every other login dies at once; the caller's own session survives its own password change.
        keep = current_session_id if actor.user_id == user.id else None
        revoke_user_sessions(session, user.id, keep=keep)
    session.flush()
    return user


def deactivate_user(session: Session, actor: Principal, user_id: int) -> None:
    user = get_visible_user(session, actor, user_id)
    user.is_active = False
    user.deactivated_at = func.now()
    revoke_user_sessions(session, user.id)
    session.flush()


def revoke_user_sessions(session: Session, user_id: int, *, keep: int | None = None) -> None:
    stmt = update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep)
    session.execute(stmt.values(revoked_at=func.now()))


@dataclass
class Login:
    token: str
    row: UserSession
    user: User


def _lock_seconds(failures: int) -> int:
    """Grows with every failure past the threshold: base, 2x, 4x … capped at one hour."""
    s = get_settings()
    over = max(0, failures - s.login_max_failures)
    return min(3600, s.login_lock_base_seconds * 2 ** min(over, 12))


def _retry_after(locked_until: datetime, now: datetime) -> int:
    return max(1, math.ceil((locked_until - now).total_seconds()))


def login(session: Session, username: str, password: str, *, client_addr: str | None,
          user_agent: str | None) -> Login | ApiError:
    """Check the password and open a session, or return the error to answer with.

    A wrong password is returned, not raised: its failure count must be committed although the request
    fails. Failures are counted in the user's row, so every worker of every process sees one count.
    """
    now = session.execute(select(func.now())).scalar_one()
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None or not user.is_active:
        verify_password(None, password)  # as slow as a real check: no user enumeration by timing
        raise Unauthorized(BAD_LOGIN, code="invalid_credentials")
    if user.locked_until and user.locked_until > now:
        raise TooManyRequests("Too many failed logins; try again later.", code="login_throttled",
                              retry_after=_retry_after(user.locked_until, now))
    if not verify_password(user.password_hash, password):
        s = get_settings()
        # Atomic in the row: parallel failures on many workers all count.
        failures, locked_until = session.execute(text("""
            UPDATE users SET failed_logins = failed_logins + 1,
                   locked_until = CASE WHEN failed_logins + 1 >= :max
                                       THEN now() + make_interval(secs => :lock) ELSE locked_until END
            WHERE id = :id RETURNING failed_logins, locked_until
        """), {"id": user.id, "max": s.login_max_failures, "lock": _lock_seconds(user.failed_logins + 1)}).one()
        if locked_until and locked_until > now:
            return TooManyRequests("Too many failed logins; try again later.", code="login_throttled",
                                   retry_after=_retry_after(locked_until, now))
        return Unauthorized(BAD_LOGIN, code="invalid_credentials")
    if user.failed_logins or user.locked_until:
        user.failed_logins, user.locked_until = 0, None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, row = start_session(session, user, client_addr=client_addr, user_agent=user_agent)
    return Login(token, row, user)


def start_session(session: Session, user: User, *, client_addr: str | None = None,
                  user_agent: str | None = None) -> tuple[str, UserSession]:
    """A new login for user: returns the bearer token (shown once) and its row."""
    settings = get_settings()
    now = session.execute(select(func.now())).scalar_one()
    token = new_token()
    absolute = now + timedelta(seconds=settings.session_absolute_seconds)
    row = UserSession(
        token_hash=hash_token(token), user_id=user.id, created_at=now, last_seen_at=now, expires_at=absolute,
        idle_expires_at=min(now + timedelta(seconds=settings.session_idle_seconds), absolute),
        client_addr=(client_addr or "")[:64] or None, user_agent=(user_agent or "")[:512] or None)
    session.add(row)
    session.flush()
    return token, row


def end_session(session: Session, session_id: int) -> None:
    session.execute(update(UserSession).where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
                    .values(revoked_at=func.now()))
