"""Authentication every service shares: one indexed lookup of the shared sessions table."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta
from functools import wraps

from flask import g, request
from sqlalchemy import text

from common.db.session import driver_sql, run
from common.errors import Forbidden, Unauthorized
from common.principal import Principal
from common.security import SESSION_COOKIE, hash_token
from common.settings import get_settings
from common.web.db import commit, connection

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The token from POST /v1/sessions."},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
}

_LOOKUP = text("""
    SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.idle_expires_at, s.expires_at,
           u.username, u.role, u.verified, now() AS now
    FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE s.token_hash = :h AND s.revoked_at IS NULL AND u.is_active
      AND s.expires_at > now() AND s.idle_expires_at > now()
""")
_LOOKUP_SQL = driver_sql(_LOOKUP)
# Refresh the idle expiry at most once per touch interval, and never wait for a row another request
# is touching: concurrent requests on one session must not queue behind each other.
_TOUCH = text("""
    UPDATE sessions SET last_seen_at = now(),
           idle_expires_at = LEAST(now() + make_interval(secs => :idle), expires_at)
    WHERE id = (SELECT id FROM sessions WHERE id = :id FOR UPDATE SKIP LOCKED)
    RETURNING idle_expires_at
""")


def request_token() -> str | None:
    header = request.environ.get("HTTP_AUTHORIZATION", "")  # the environ: no KeyError built on a miss
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def _load() -> Principal | None:
    token = request_token()
    if not token or len(token) > 512:
        return None
    conn = connection()
    # Straight to the driver: no entities are involved and this runs on every authenticated request.
    with closing(run(conn, _LOOKUP_SQL, {"h": hash_token(token)})) as cursor:
        row = cursor.fetchone()
    if row is None:
        return None
    (
        session_id,
        user_id,
        created_at,
        last_seen_at,
        idle_expires_at,
        expires_at,
        username,
        role,
        verified,
        now,
    ) = row
    settings = get_settings()
    if now - last_seen_at >= timedelta(seconds=settings.session_touch_seconds):
        touched = conn.execute(_TOUCH, {"id": session_id, "idle": settings.session_idle_seconds}).scalar()
        idle_expires_at = touched or idle_expires_at
        # Release the session row at once; otherwise the lookup simply opens the request's transaction.
        commit()
    return Principal(session_id, user_id, username, role, verified, created_at, expires_at, idle_expires_at)


def current_principal() -> Principal | None:
    """The caller, or None when the request carries no valid session (looked up once per request)."""
    ctx = g._get_current_object()  # one proxy lookup: this runs several times on every request
    try:
        return ctx._principal
    except AttributeError:
        principal = ctx._principal = _load()
        if principal is not None:
            ctx.user_id = principal.user_id
        return principal


def require_principal(admin: bool = False) -> Principal:
    principal = current_principal()
    if principal is None:
        raise Unauthorized("A valid session is required: log in with POST /v1/sessions.")
    if admin and not principal.is_admin:
        raise Forbidden("This needs the admin role.")
    return principal


def login_required(func=None, *, admin: bool = False):
    """Refuse the view with 401 (no valid session) or 403 (not an admin, when admin=True)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            require_principal(admin=admin)
            return view(*args, **kwargs)

        return wrapper

    return decorator(func) if func is not None else decorator
