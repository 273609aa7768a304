"""User and session rules: plain functions taking a Session; callers commit."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db.models import User, UserSession
from common.errors import Conflict, Unprocessable
from common.security import hash_token, new_token
from common.settings import get_settings
from svc_user.passwords import hash_password

MIN_PASSWORD, MAX_PASSWORD = 8, 128


def check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise Unprocessable(details={"fields": {"password": [
            f"Length must be between {MIN_PASSWORD} and {MAX_PASSWORD} characters."]}})


def create_user(session: Session, *, username: str, email: str, password: str, phone: str | None = None,
                role: str = "customer") -> User:
    check_password_rules(password)
    email = email.strip().lower()
    taken = session.execute(select(User.username, User.email).where(
        (User.username == username) | (User.email == email))).first()
    if taken:
        field = "username" if taken.username == username else "email"
        raise Conflict(f"That {field} is already registered.", code="already_exists",
                       details={"field": field})
    user = User(username=username, email=email, phone=phone, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def start_session(session: Session, user: User, *, client_addr: str | None = None,
                  user_agent: str | None = None) -> tuple[str, UserSession]:
    """A new login for user: returns the bearer token (shown once) and its row."""
    settings = get_settings()
    now = session.execute(select(func.now())).scalar_one()
    token = new_token()
    row = UserSession(
        token_hash=hash_token(token), user_id=user.id, created_at=now, last_seen_at=now,
        expires_at=now + timedelta(seconds=settings.session_absolute_seconds),
        idle_expires_at=min(now + timedelta(seconds=settings.session_idle_seconds),
                            now + timedelta(seconds=settings.session_absolute_seconds)),
        client_addr=(client_addr or None) and client_addr[:64], user_agent=(user_agent or None) and user_agent[:512])
    session.add(row)
    session.flush()
    return token, row
