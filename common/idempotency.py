"""Idempotency keys as stored answers: the first answer to a (user, key) is kept and replayed.

Stripe's model: a key belongs to one user for `idempotency_ttl_seconds`; the same key with the same
request replays the first answer, with another request it is refused. The request is known by a
fingerprint of its scope (method and route) and its canonical body, so one key cannot replay one
endpoint's answer to another. This module knows rows, not HTTP: common.web.idempotency reads the
header and builds the responses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common.db.models import IdempotencyKey
from common.errors import BadRequest, Conflict, Unprocessable

MAX_KEY_LENGTH = 255

_table = cast(Table, IdempotencyKey.__table__)


@dataclass(frozen=True)
class Answer:
    """A stored answer: what a replay sends back."""

    status: int
    body: Any
    headers: dict = field(default_factory=dict)


def check_key(key: str) -> str:
    """The key itself, or 400 `invalid_idempotency_key`."""
    # Printable only: a control character could not be stored and would never be sent on purpose.
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            code="invalid_idempotency_key",
            details={"length": len(key)},
        )
    return key


def fingerprint(scope: str, payload: Any) -> str:
    """SHA-256 of the scope and the canonical payload: keys sorted, no whitespace."""
    raw = json.dumps({"scope": scope, "request": payload}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def claim(session: Session, user_id: int, key: str, digest: str, ttl_seconds: int) -> int | None:
    """Insert the key's row, or take over an expired one; None when a live row holds the key.

    Runs in the caller's transaction: a parallel request with the same key blocks on the unique index
    until this one commits, and then finds the answer stored.
    """
    stmt: Any = insert(_table).values(
        user_id=user_id, key=key, fingerprint=digest, expires_at=func.now() + timedelta(seconds=ttl_seconds)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_table.c.user_id, _table.c.key],
        set_={
            "fingerprint": stmt.excluded.fingerprint,
            "expires_at": stmt.excluded.expires_at,
            "created_at": func.now(),
            "response_status": None,
            "response_headers": None,
            "response_body": None,
        },
        where=_table.c.expires_at <= func.now(),
    ).returning(_table.c.id)
    return session.execute(stmt).scalar()


def stored_answer(session: Session, user_id: int, key: str, digest: str) -> Answer:
    """The answer a live key holds: 409 while its first request runs, 422 for another request."""
    row = session.execute(
        select(
            _table.c.fingerprint, _table.c.response_status, _table.c.response_headers, _table.c.response_body
        ).where(_table.c.user_id == user_id, _table.c.key == key)
    ).first()
    if row is None or row.response_status is None:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            code="idempotency_in_flight",
        )
    if row.fingerprint != digest:
        raise Unprocessable(
            "This Idempotency-Key was used with a different request; use a new key.",
            code="idempotency_key_reused",
        )
    return Answer(row.response_status, row.response_body, row.response_headers or {})


def record(session: Session, key_id: int, answer: Answer) -> None:
    """Keep the answer on the claimed row, in the same transaction as the work it answers for."""
    session.execute(
        update(_table)
        .where(_table.c.id == key_id)
        .values(response_status=answer.status, response_headers=answer.headers, response_body=answer.body)
    )


def delete_expired(session: Session, limit: int) -> int:
    """Forget up to `limit` keys past their expiry."""
    batch = (
        select(_table.c.id)
        .where(_table.c.expires_at <= func.now())
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return cast(CursorResult, session.execute(delete(_table).where(_table.c.id.in_(batch)))).rowcount
