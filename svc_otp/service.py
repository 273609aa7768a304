"""OTP rules: issue, verify and describe challenges. Plain functions taking a Session; callers commit,
but a verification commits its outcome (a wrong code stays counted)."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.db.models.otp import OTP_PURPOSES
from common.db.queues import QueueRow, waiting
from common.db.session import committed
from common.errors import Conflict, Gone, NotFound, TooManyRequests, Unprocessable
from common.ids import is_id
from common.paging import page_window
from common.settings import get_settings

CODE_DIGITS = 6
# A transaction id as the transaction service shows it: a positive bigint.
_TRANSACTION_ID = re.compile(r"[1-9][0-9]{0,18}")
# Namespace of the per-user advisory lock that serializes OTP requests (first key of the two-key form).
_REQUEST_LOCK_NAMESPACE = 5002


@dataclass(frozen=True)
class Challenge:
    """A challenge as the API shows it."""

    id: uuid.UUID
    user_id: int
    purpose: str
    reference: str
    channel: str
    status: str
    attempts: int
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None
    expired: bool

    @property
    def attempts_left(self) -> int:
        return max(0, get_settings().otp_max_attempts - self.attempts)

    @property
    def state(self) -> str:
        """The status a client sees: 'expired' for a pending challenge past its expiry."""
        return "expired" if self.status == "pending" and self.expired else self.status


@dataclass(frozen=True)
class Issued:
    """A new challenge and its clear code (returned to the caller, never stored in clear)."""

    challenge: Challenge
    code: str


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hasher(secret: str, challenge_id: uuid.UUID, user_id: int, purpose: str, reference: str):
    """HMAC-SHA256 of a code bound to its challenge: a stored hash is useless for any other challenge."""
    keyed = hmac.new(
        secret.encode(),
        f"toko-otp/v1|{challenge_id}|{user_id}|{purpose}|{reference}|".encode(),
        hashlib.sha256,
    )

    def digest(code: str) -> bytes:
        h = keyed.copy()
        h.update(code.encode())
        return h.digest()

    return digest


def hash_code(
    secret: str, challenge_id: uuid.UUID, user_id: int, purpose: str, reference: str, code: str
) -> bytes:
    """The stored hash of one code of one challenge."""
    return code_hasher(secret, challenge_id, user_id, purpose, reference)(code)


def normalize_reference(purpose: str, reference: str | None) -> str:
    """The stored reference ('' for none), or 422 naming the field."""
    if purpose not in OTP_PURPOSES:
        raise Unprocessable(details={"fields": {"purpose": [f"Must be one of: {', '.join(OTP_PURPOSES)}."]}})
    reference = (reference or "").strip()
    if purpose == "confirm_transaction":
        if not reference:
            raise Unprocessable(
                "confirm_transaction needs the transaction id as reference.",
                details={"fields": {"reference": ["Required for confirm_transaction."]}},
            )
        if not _TRANSACTION_ID.fullmatch(reference):
            raise Unprocessable(
                "The reference must be a transaction id.",
                details={"fields": {"reference": ["Must be a transaction id."]}},
            )
    elif reference:
        raise Unprocessable(
            f"{purpose} takes no reference.",
            details={"fields": {"reference": [f"Must be absent for {purpose}."]}},
        )
    return reference


def _throttle_wait(session: Session, user_id: int) -> int:
    """Seconds until this user may request another code (0: now), counted from their recent challenges."""
    s = get_settings()
    count, oldest, now = session.execute(
        text("""
        SELECT count(*), min(created_at), now() FROM otp_challenges
        WHERE user_id = :u AND created_at > now() - make_interval(secs => :w)
    """),
        {"u": user_id, "w": s.otp_request_window_seconds},
    ).one()
    if count < s.otp_requests_per_window:
        return 0
    # The window slides: a slot frees when the oldest request in it ages out.
    return max(1, math.ceil((oldest - now).total_seconds() + s.otp_request_window_seconds))


def _body(purpose: str, reference: str, code: str) -> str:
    minutes = max(1, get_settings().otp_ttl_seconds // 60)
    what = (
        f"confirm purchase #{reference}" if purpose == "confirm_transaction" else "verify your toko account"
    )
    return f"Your toko code to {what} is {code}. It expires in {minutes} min. Never share it."


def _awaits_this_users_code(session: Session, user_id: int, reference: str) -> bool:
    transaction_id = int(reference)
    return (
        is_id(transaction_id)
        and session.execute(
            text("""
        SELECT 1 FROM transactions WHERE id = :t AND user_id = :u AND status = 'awaiting_otp'
    """),
            {"t": transaction_id, "u": user_id},
        ).first()
        is not None
    )


def request_otp(session: Session, user_id: int, purpose: str, reference: str | None = None) -> Issued:
    """Issue a code for (user, purpose, reference), replacing any live one, and queue its delivery."""
    s = get_settings()
    reference = normalize_reference(purpose, reference)
    # One request per user at a time: the throttle count and the one-live-code replacement below are
    # then exact under any concurrency, and two parallel requests never collide on uq_otp_challenges_live.
    session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:u))"),
        {"ns": _REQUEST_LOCK_NAMESPACE, "u": str(user_id)},
    )
    user = session.execute(
        text("SELECT email, phone, verified FROM users WHERE id = :u AND is_active"), {"u": user_id}
    ).one_or_none()
    if user is None:
        raise NotFound("No such user.")
    if purpose == "verify_account" and user.verified:
        raise Conflict("This account is already verified.", code="already_verified")
    if purpose == "confirm_transaction" and not _awaits_this_users_code(session, user_id, reference):
        # Before the throttle: a junk reference sends nothing and spends none of the user's budget.
        raise NotFound("No transaction of yours is awaiting a code under this reference.")
    wait = _throttle_wait(session, user_id)
    if wait:
        raise TooManyRequests(
            "Too many codes requested; try again later.", code="otp_throttled", retry_after=wait
        )
    session.execute(
        text("""
        UPDATE otp_challenges SET status = 'replaced'
        WHERE user_id = :u AND purpose = :p AND reference = :r AND status = 'pending'
    """),
        {"u": user_id, "p": purpose, "r": reference},
    )
    channel, destination = ("sms", user.phone) if user.phone else ("email", user.email)
    challenge_id = uuid.uuid4()
    code = new_code()
    row = (
        session.execute(
            text("""
        INSERT INTO otp_challenges (id, user_id, purpose, reference, code_hash, channel, expires_at)
        VALUES (:id, :u, :p, :r, :h, :c, now() + make_interval(secs => :ttl))
        RETURNING id, user_id, purpose, reference, channel, status, attempts, created_at, expires_at,
                  verified_at, false AS expired
    """),
            {
                "id": challenge_id,
                "u": user_id,
                "p": purpose,
                "r": reference,
                "c": channel,
                "h": hash_code(s.otp_secret, challenge_id, user_id, purpose, reference, code),
                "ttl": s.otp_ttl_seconds,
            },
        )
        .mappings()
        .one()
    )
    # The outbox row commits with the challenge or not at all: no code without its message, and back.
    session.execute(
        text("""
        INSERT INTO otp_messages (challenge_id, channel, destination, body) VALUES (:id, :c, :d, :b)
    """),
        {"id": challenge_id, "c": channel, "d": destination, "b": _body(purpose, reference, code)},
    )
    return Issued(Challenge(**row), code)


_SELECT = """
    SELECT id, user_id, purpose, reference, channel, status, attempts, created_at, expires_at, verified_at,
           code_hash, expires_at <= now() AS expired
    FROM otp_challenges WHERE id = :id AND user_id = :u
"""


def _challenge(row) -> Challenge:
    return Challenge(**{k: v for k, v in row.items() if k != "code_hash"})


def list_otps(session: Session, user_id: int, *, page: int, per_page: int) -> list[Challenge]:
    """The caller's challenges, newest first (user_id, created_at is indexed)."""
    rows = session.execute(
        text(
            _SELECT.replace("WHERE id = :id AND user_id = :u", "WHERE user_id = :u")
            + " ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset"
        ),
        {"u": user_id, **page_window(page=page, per_page=per_page)},
    ).mappings()
    return [_challenge(row) for row in rows]


def get_otp(session: Session, user_id: int, otp_id: uuid.UUID) -> Challenge:
    """The caller's challenge, or 404 (another user's is indistinguishable from none)."""
    row = session.execute(text(_SELECT), {"id": otp_id, "u": user_id}).mappings().one_or_none()
    if row is None:
        raise NotFound("No such OTP.")
    return _challenge(row)


def verify_otp(session: Session, user_id: int, otp_id: uuid.UUID, *, code: str) -> Challenge:
    """Check a submitted code and commit the outcome, a refused code's counted attempt included.

    The row lock makes the check and its outcome one step per challenge: parallel submissions queue on
    it, so exactly one correct code wins and every wrong one is counted (the attempts can never pass
    the limit). A wrong code must stay counted although the request fails (`committed`).
    """
    return committed(session, lambda: _verify(session, user_id, otp_id, code))


def _verify(session: Session, user_id: int, otp_id: uuid.UUID, code: str) -> Challenge:
    s = get_settings()
    row = (
        session.execute(text(_SELECT + " FOR UPDATE"), {"id": otp_id, "u": user_id}).mappings().one_or_none()
    )
    if row is None:
        raise NotFound("No such OTP.")
    challenge = _challenge(row)
    if challenge.status == "verified":
        raise Conflict("This code was already used.", code="otp_used")
    if challenge.status == "locked":
        raise TooManyRequests(
            "Too many wrong codes: this OTP is locked. Request a new one.",
            code="otp_locked",
            retry_after=max(1, _throttle_wait(session, user_id)),
            details={"attempts_left": 0},
        )
    if challenge.status == "replaced":
        raise Gone("A newer code replaced this one. Use the latest code.", code="otp_replaced")
    if challenge.expired:
        raise Gone("This code has expired. Request a new one.", code="otp_expired")
    expected = hash_code(s.otp_secret, challenge.id, user_id, challenge.purpose, challenge.reference, code)
    if not hmac.compare_digest(bytes(row["code_hash"]), expected):
        updated = session.execute(
            text("""
            UPDATE otp_challenges
            SET attempts = attempts + 1,
                status = CASE WHEN attempts + 1 >= :max THEN 'locked' ELSE status END
            WHERE id = :id RETURNING attempts, status
        """),
            {"id": challenge.id, "max": s.otp_max_attempts},
        ).one()
        left = max(0, s.otp_max_attempts - updated.attempts)
        message = (
            "Wrong code. No attempts left: this OTP is now locked."
            if updated.status == "locked"
            else "Wrong code."
        )
        raise Unprocessable(message, code="otp_invalid", details={"attempts_left": left})
    verified_at = session.execute(
        text("""
        UPDATE otp_challenges SET status = 'verified', verified_at = now()
        WHERE id = :id AND status = 'pending' RETURNING verified_at
    """),
        {"id": challenge.id},
    ).scalar_one()
    if challenge.purpose == "verify_account":
        # The one write outside svc_otp's tables (an ownership exception, granted column by column).
        session.execute(
            text("UPDATE users SET verified = true, updated_at = now() WHERE id = :u"), {"u": user_id}
        )
    return Challenge(**{**challenge.__dict__, "status": "verified", "verified_at": verified_at})


def queue_depths(session: Session) -> list[QueueRow]:
    """Codes waiting to be sent by svc_otp_worker: how many, and how long the oldest has waited."""
    return [waiting(session, "otp_messages", "pending")]
