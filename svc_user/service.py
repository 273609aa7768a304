"""User and session rules: plain functions taking a Session; callers commit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from common.db.models import LoginFailure, Registration, User, UserSession
from common.db.session import committed
from common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from common.events import record
from common.events.outbox import utc
from common.paging import offset_page
from common.principal import Principal
from common.security import hash_token, new_token
from common.settings import get_settings
from svc_user.passwords import HashingBusy, admission, hash_password, needs_rehash, verify_password

MIN_PASSWORD, MAX_PASSWORD = 8, 128
BAD_LOGIN = "Wrong username or password."
EDITABLE = ("username", "email", "phone")
CONTACT = ("email", "phone")


def _lock(session: Session, *keys: str) -> None:
    """Transaction-scoped advisory locks, taken in the order given (one order everywhere: no deadlock)."""
    for key in keys:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def _blocked_for(
    session: Session, table: str, where: str, params: dict, limit: int, window: int
) -> float | None:
    """Seconds until a scope counts fewer than `limit` rows in the window, or None when it already does.

    The limit-th newest row still in the window: while it counts, the scope is throttled. Call it under
    the scope's lock, and insert the attempt's own row in the same transaction, so parallel attempts
    cannot all read a count below the limit.
    """
    return session.execute(
        text(f"""
        SELECT EXTRACT(EPOCH FROM at + make_interval(secs => :w) - now()) FROM {table}
        WHERE {where} AND at > now() - make_interval(secs => :w)
        ORDER BY at DESC OFFSET :n LIMIT 1
    """),
        {**params, "n": limit - 1, "w": window},
    ).scalar()


def _forget_old(session: Session, table: str, window: int) -> None:
    """Rows past the window count for nothing: a few are cleared on every attempt."""
    session.execute(
        text(f"""
        DELETE FROM {table} WHERE id IN (
            SELECT id FROM {table} WHERE at < now() - make_interval(secs => :w)
            ORDER BY at LIMIT 100 FOR UPDATE SKIP LOCKED)
    """),
        {"w": window},
    )


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


REGISTRATION_THROTTLED = "Too many registrations from this address; try again later."


def register(session: Session, client_addr: str | None, **fields) -> User:
    """Register a customer, counted against the client address's registrations; commits.

    A name or email found taken counts too (its 409 is committed with the count), so the throttle also
    bounds how many names and emails one address can test.
    """

    def work() -> User:
        s = get_settings()
        addr = (client_addr or "unknown")[:64]
        _lock(session, f"r:{addr}")
        wait = _blocked_for(
            session,
            "registrations",
            "client_addr = :a",
            {"a": addr},
            s.registration_addr_max,
            s.registration_window_seconds,
        )
        if wait is not None:
            raise TooManyRequests(
                REGISTRATION_THROTTLED, code="registration_throttled", retry_after=math.ceil(wait)
            )
        session.execute(insert(Registration).values(client_addr=addr))
        _forget_old(session, "registrations", s.registration_window_seconds)
        with session.begin_nested():  # a refused registration rolls back to here and keeps its count
            return create_user(session, **fields)

    return committed(session, work)


def list_users(session: Session, *, page: int, per_page: int) -> list[User]:
    stmt = select(User).where(User.is_active).order_by(User.id)
    return list(session.scalars(offset_page(stmt, page=page, per_page=per_page)))


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
    if changes.get("role", "admin") != "admin":
        _keep_an_admin(session, user.id)
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


LAST_ADMIN = "The last admin cannot be demoted or deleted."


def _keep_an_admin(session: Session, user_id: int) -> None:
    """Refuse (409 last_admin) to end the user's admin role when no other active admin would remain.

    Every active admin's row is locked first (in id order), so two admins demoting or deleting each other
    at once cannot both pass: the second counts after the first has committed.
    """
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active).order_by(User.id).with_for_update()
    ).all()
    if user_id in admins and len(admins) == 1:
        raise Conflict(LAST_ADMIN, code="last_admin")


def deactivate_user(session: Session, actor: Principal, user_id: int) -> None:
    user = get_visible_user(session, actor, user_id)
    _keep_an_admin(session, user.id)
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
# Each throttle: (the failures it counts, running checks included, its threshold's setting). Every count is
# taken under the attempt's username and address locks, so parallel attempts cannot all read a count below
# the threshold.
_THROTTLES = (
    ("username = :u AND client_addr = :a", "login_max_failures"),
    ("client_addr = :a", "login_addr_max_failures"),
    ("username = :u", "login_user_max_failures"),
)


# Enter before begin_login: when this process's password checks are all taken, the login is refused
# (HashingBusy) before it writes anything.
password_check = admission
CUT_OFF = "The login was interrupted; try again."


def log_in(
    session: Session, username: str, password: str, *, client_addr: str | None, user_agent: str | None
) -> Login:
    """Log in, in two committed steps: count the attempt, then check the password under its lock.

    The first commit makes the attempt visible to parallel ones before its password is checked, so no
    more passwords are checked than a threshold allows; the second settles it. A fault in between leaves
    the attempt running and unlocked, which counts for nothing: a database blip never counts as a failure.
    """
    with password_check():
        attempt = committed(session, lambda: begin_login(session, username, client_addr))
        return committed(session, lambda: finish_login(session, attempt, password, user_agent=user_agent))


def begin_login(session: Session, username: str, client_addr: str | None) -> LoginAttempt:
    """Count a login attempt before its password is checked, or raise TooManyRequests.

    The attempt is recorded as a running check: the caller commits it before calling finish_login, which
    locks it while the password is checked and then settles it as a failure or forgives it. An unknown
    username is counted exactly like a known one.
    """
    s = get_settings()
    key, addr = username.lower()[:64], (client_addr or "unknown")[:64]
    # Username lock first, then address: one order everywhere, so two attempts never wait on each other.
    _lock(session, f"u:{key}", f"a:{addr}")
    # A running check that nobody holds was cut off (its transaction died): it counts for nothing. A check
    # still between its two commits is deleted too, and its finish_login then finds it gone and checks no
    # password, so no check ever runs uncounted.
    session.execute(
        text("""
        DELETE FROM login_failures WHERE id IN (
            SELECT id FROM login_failures WHERE running AND (username = :u OR client_addr = :a)
            FOR UPDATE SKIP LOCKED)
    """),
        {"u": key, "a": addr},
    )
    waits = []
    for where, setting in _THROTTLES:
        wait = _blocked_for(
            session,
            "login_failures",
            where,
            {"u": key, "a": addr},
            getattr(s, setting),
            s.login_window_seconds,
        )
        if wait is not None:
            waits.append(float(wait))
    if waits:
        raise TooManyRequests(THROTTLED, code="login_throttled", retry_after=math.ceil(max(waits)))
    failure_id = session.execute(
        insert(LoginFailure).values(username=key, client_addr=addr, running=True).returning(LoginFailure.id)
    ).scalar_one()
    _forget_old(session, "login_failures", s.login_window_seconds)
    return LoginAttempt(key, addr, failure_id)


def finish_login(session: Session, attempt: LoginAttempt, password: str, *, user_agent: str | None) -> Login:
    """Check the password of a counted attempt and open a session, or raise the error to answer with.

    The attempt's row stays locked until the caller commits: a wrong password settles it as a failure, a
    right one (or a check that could not run) deletes it. What this changes must be committed although the
    request fails (`committed`).
    """
    held = session.execute(
        select(LoginFailure.id)
        .where(LoginFailure.id == attempt.failure_id, LoginFailure.running)
        .with_for_update()
    ).first()
    if held is None:  # taken for cut off before this lock: checking now would be a check uncounted
        raise ServiceUnavailable(CUT_OFF, headers={"Retry-After": "1"})
    user = session.scalars(select(User).where(func.lower(User.username) == attempt.username)).first()
    if user is not None and not user.is_active:
        user = None
    try:
        # An unknown username checks a dummy hash: the same answer in the same time as a wrong password.
        right = verify_password(user.password_hash if user is not None else None, password)
    except HashingBusy:
        session.execute(delete(LoginFailure).where(LoginFailure.id == attempt.failure_id))
        raise
    if not right or user is None:
        session.execute(
            update(LoginFailure).where(LoginFailure.id == attempt.failure_id).values(running=False)
        )
        raise Unauthorized(BAD_LOGIN, code="invalid_credentials")
    # The owner got in from this address: its failures against this account no longer count. Other checks
    # still running are theirs to settle (and locked by them: waiting for them could deadlock).
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.username == attempt.username,
            LoginFailure.client_addr == attempt.client_addr,
            (LoginFailure.id == attempt.failure_id) | ~LoginFailure.running,
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
