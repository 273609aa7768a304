"""svc_otp_worker: delivers the outbox (otp_messages) through the configured sender."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.settings import get_settings
from common.worker import Worker
from svc_otp.sender import OutgoingMessage, Sender, make_sender, mask

log = logging.getLogger("toko.otp.worker")

# How long the worker sleeps when the outbox has nothing due: a code should arrive within about this.
POLL_SECONDS = 0.5

# One message per transaction: the row stays locked (and pending) until the outcome commits, so a worker
# killed while sending leaves it pending for the next claim, and at most that one message goes out twice.
_CLAIM = text("""
    SELECT m.id, m.channel, m.destination, m.body, m.attempts,
           (c.status = 'pending' AND c.expires_at > now()) IS TRUE AS live
    FROM otp_messages m LEFT JOIN otp_challenges c ON c.id = m.challenge_id
    WHERE m.status = 'pending' AND m.next_attempt_at <= now()
    ORDER BY m.next_attempt_at, m.id
    LIMIT 1
    FOR UPDATE OF m SKIP LOCKED
""")
_SENT = text("""
    UPDATE otp_messages SET status = 'sent', sent_at = now(), body = NULL, attempts = attempts + 1,
           last_error = NULL
    WHERE id = :id
""")
# The body holds the code: once a message cannot be sent any more, the code goes too.
_DROPPED = text("""
    UPDATE otp_messages SET status = 'failed', body = NULL, last_error = :error WHERE id = :id
""")
_FAILED = text("""
    UPDATE otp_messages
    SET attempts = attempts + 1, last_error = :error,
        status = CASE WHEN attempts + 1 >= :max THEN 'failed' ELSE 'pending' END,
        body = CASE WHEN attempts + 1 >= :max THEN NULL ELSE body END,
        next_attempt_at = now() + make_interval(secs => :delay)
    WHERE id = :id
    RETURNING status
""")


def backoff_seconds(attempts: int) -> int:
    """Delay before the next try after `attempts` failures: doubling, never past a code's lifetime."""
    s = get_settings()
    return min(s.otp_delivery_backoff_seconds * 2 ** (attempts - 1), s.otp_ttl_seconds)


def deliver_one(session: Session, sender: Sender) -> int:
    """Claim the next due message and send it; 1 when one was handled, 0 when none was due."""
    row = session.execute(_CLAIM).mappings().first()
    if row is None:
        return 0
    extra = {"message_id": row["id"], "channel": row["channel"], "destination": mask(row["destination"])}
    if not row["live"] or row["body"] is None:
        # The code was replaced, used, locked or expired before it left: sending it would only confuse.
        session.execute(_DROPPED, {"id": row["id"], "error": "not sent: the code is no longer valid"})
        log.info("otp message dropped: code no longer valid", extra=extra)
        return 1
    message = OutgoingMessage(row["id"], row["channel"], row["destination"], row["body"])
    try:
        sender.send(message)
    except Exception as exc:  # noqa: BLE001 - any gateway failure is retried, never fatal to the loop
        attempts = row["attempts"] + 1
        error = f"{type(exc).__name__}: {exc}"[:500]
        status = session.execute(
            _FAILED,
            {
                "id": row["id"],
                "error": error,
                "delay": backoff_seconds(attempts),
                "max": get_settings().otp_delivery_max_attempts,
            },
        ).scalar_one()
        log.warning(
            "otp delivery failed",
            extra={**extra, "attempts": attempts, "error": error, "gave_up": status == "failed"},
        )
        return 1
    session.execute(_SENT, {"id": row["id"]})
    log.info("otp message sent", extra={**extra, "sender": sender.name})
    return 1


def make_worker(sender: Sender | None = None) -> Worker:
    """The OTP delivery worker, sending through the sender the settings name unless one is given."""
    sender = sender or make_sender(get_settings())
    return Worker(
        "otp-delivery", lambda session: deliver_one(session, sender), service="otp", idle_seconds=POLL_SECONDS
    )
