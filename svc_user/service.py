"""User and session rules: plain functions taking a Session; callers commit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from common.db.models import LoginFailure, User, UserSession
from common.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from common.events import record
from common.events.outbox import utc
from common.principal import Principal
from common.security import hash_token, new_token
from common.settings import get_settings
from svc_user.passwords import HashingBusy, admission, hash_password, needs_rehash, verify_password

MIN_PASSWORD, MAX_PASSWORD = 8, 128
BAD_LOGIN = "Wrong username or password."
EDITABLE = ("username", "email", "phone")
CONTACT = ("email", "phone")


def check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise Unprocessable(
            details={
                "fields": {
                    "password": [f"Length must be between {MIN_PASSWORD} and {MAX_PASSWORD} characters."]
                }
            }
        )


def _ensure_unique(
    session: Session, *, username: str | None, email: str | None, exclude_id: int | None = None
):
    """Name the field a duplicate would break; the unique constraints still settle races (409)."""
    for field, column, value in (
        ("username", func.lower(User.username), username and username.lower()),
        ("email", User.email, email),
    ):
        if value is None:
            continue
        stmt = select(User.id).where(column == value)
        if exclude_id is not None:
            stmt = stmt.where(User.id != exclude_id)
        if session.execute(stmt).first():
            raise Conflict(
                f"That {field} is already registered.", code="already_exists", details={"field": field}
            )


def create_user(
    session: Session,
    *,
    username: str,
    email: str,
    password: str,
    phone: str | None = None,
    role: str = "customer",
) -> User:
    check_password_rules(password)
    email = email.strip().lower()
    _ensure_unique(session, username=username, email=email)
    user = User(username=username, email=email, phone=phone, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    data = {key: getattr(user, key) for key in ("id", "username", "email", "phone", "role", "verified")}
    record(session, "user.registered", ("user", user.id), {**data, "created_at": utc(user.created_at)})
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


def update_user(
    session: Session,
    actor: Principal,
    user_id: int,
    changes: dict,
    *,
    replace: bool,
    current_session_id: int | None = None,
) -> User:
    """Apply PUT (replace) or PATCH (named fields) to a user, within the actor's rights."""
    user = get_visible_user(session, actor, user_id)
    if "role" in changes and changes["role"] != user.role and not actor.is_admin:
        raise Forbidden("Only an admin changes a role.", code="role_change_forbidden")
    if replace:
        changes.setdefault("phone", None)
    if "email" in changes:
        changes["email"] = changes["email"].strip().lower()
    _ensure_unique(session, username=changes.get("username"), email=changes.get("email"), exclude_id=user.id)
    new_contact = [f for f in CONTACT if f in changes and changes[f] != getattr(user, f)]
    # Codes go to the email and phone: whoever holds a session alone must not be able to redirect them.
    if (new_contact or "password" in changes) and (not actor.is_admin or actor.user_id == user.id):
        if not verify_password(user.password_hash, changes.get("current_password") or ""):
            raise Unprocessable(
                "The current password is wrong.",
                code="current_password_invalid",
                details={"fields": {"current_password": ["Wrong or missing."]}},
            )
    for field in EDITABLE + ("role",):
        if field in changes:
            setattr(user, field, changes[field])
    if new_contact:
        user.verified = False  # the new channel is not proven yet
    if "password" in changes:
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


@dataclass(frozen=True)
class LoginAttempt:
    """A password check that has been counted (as a failure until it succeeds) and may now run."""

    username: str  # lower-cased: the throttles, like the accounts, ignore case
    client_addr: str
    failure_id: int


THROTTLED = "Too many failed logins; try again later."
# Each throttle: (the failures it counts, its threshold's setting). Every count is taken under the attempt's
# username and address locks, so parallel attempts cannot all read a count below the threshold.
_THROTTLES = (
    ("username = :u AND client_addr = :a", "login_max_failures"),
    ("client_addr = :a", "login_addr_max_failures"),
    ("username = :u", "login_user_max_failures"),
)


# Enter before begin_login: when this process's password checks are all taken, the login is refused
# (HashingBusy) before it writes anything.
password_check = admission


def begin_login(session: Session, username: str, client_addr: str | None) -> LoginAttempt:
    """Count a login attempt before its password is checked, or raise TooManyRequests.

    The attempt is recorded as a failure first and forgiven when the password turns out right: the caller
    commits it before calling finish_login, so however many attempts run in parallel, no more passwords
    are checked than a threshold allows. An unknown username is counted exactly like a known one.
    """
    s = get_settings()
    key, addr = username.lower()[:64], (client_addr or "unknown")[:64]
    window = {"w": s.login_window_seconds}
    # Username lock first, then address: one order everywhere, so two attempts never wait on each other.
    for lock in (f"u:{key}", f"a:{addr}"):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": lock})
    waits = []
    for where, setting in _THROTTLES:
        # The threshold-th newest failure still in the window: while it counts, this scope is throttled.
        oldest_blocking = session.execute(
            text(f"""
            SELECT EXTRACT(EPOCH FROM at + make_interval(secs => :w) - now()) FROM login_failures
            WHERE {where} AND at > now() - make_interval(secs => :w)
            ORDER BY at DESC OFFSET :n LIMIT 1
        """),
            {"u": key, "a": addr, "n": getattr(s, setting) - 1, **window},
        ).scalar()
        if oldest_blocking is not None:
            waits.append(float(oldest_blocking))
    if waits:
        raise TooManyRequests(THROTTLED, code="login_throttled", retry_after=math.ceil(max(waits)))
    failure_id = session.execute(
        insert(LoginFailure).values(username=key, client_addr=addr).returning(LoginFailure.id)
    ).scalar_one()
    # Failures past the window count for nothing: a few are cleared on every attempt.
    session.execute(
        text("""
        DELETE FROM login_failures WHERE id IN (
            SELECT id FROM login_failures WHERE at < now() - make_interval(secs => :w)
            ORDER BY at LIMIT 100 FOR UPDATE SKIP LOCKED)
    """),
        window,
    )
    return LoginAttempt(key, addr, failure_id)


def finish_login(
    session: Session, attempt: LoginAttempt, password: str, *, user_agent: str | None
) -> Login | ApiError:
    """Check the password of a counted attempt and open a session, or return the error to answer with.

    Errors are returned, not raised: what this changes in the failure counts must be committed although
    the request fails.
    """
    user = session.scalars(select(User).where(func.lower(User.username) == attempt.username)).first()
    if user is not None and not user.is_active:
        user = None
    try:
        # An unknown username checks a dummy hash: the same answer in the same time as a wrong password.
        right = verify_password(user.password_hash if user is not None else None, password)
    except HashingBusy as busy:
        session.execute(delete(LoginFailure).where(LoginFailure.id == attempt.failure_id))
        return busy
    if not right or user is None:
        return Unauthorized(BAD_LOGIN, code="invalid_credentials")
    # The owner got in from this address: its failures against this account no longer count.
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.username == attempt.username, LoginFailure.client_addr == attempt.client_addr
        )
    )
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    token, row = start_session(session, user, client_addr=attempt.client_addr, user_agent=user_agent)
    return Login(token, row, user)


def start_session(
    session: Session, user: User, *, client_addr: str | None = None, user_agent: str | None = None
) -> tuple[str, UserSession]:
    """A new login for user: returns the bearer token (shown once) and its row."""
    settings = get_settings()
    now = session.execute(select(func.now())).scalar_one()
    token = new_token()
    absolute = now + timedelta(seconds=settings.session_absolute_seconds)
    row = UserSession(
        token_hash=hash_token(token),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=absolute,
        idle_expires_at=min(now + timedelta(seconds=settings.session_idle_seconds), absolute),
        client_addr=(client_addr or "")[:64] or None,
        user_agent=(user_agent or "")[:512] or None,
    )
    session.add(row)
    session.flush()
    return token, row


def end_session(session: Session, session_id: int) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
