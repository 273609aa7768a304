"""The outbox write: one INSERT in the caller's transaction, whatever it is doing.

An event is `{"id", "type", "version": 1, "aggregate": {"type", "id"}, "occurred_at", "data"}`. The row
gets its position from the database (the writer's transaction id and a sequence number) and its
`occurred_at` from the transaction's clock, so it commits or rolls back with the change it describes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from common.db.session import run
from common.events import bell
from common.events.bell import CHANNEL

__all__ = ["CHANNEL", "record", "utc"]

VERSION = 1

# Several types for one aggregate and one state (a purchase paid at once is created and paid) go in one
# statement, in the order given: their sequence numbers follow it.
_INSERT = (
    "INSERT INTO outbox_events (id, type, aggregate_type, aggregate_id, data) "
    "SELECT e.id, e.type, %(aggregate_type)s, %(aggregate_id)s, CAST(%(data)s AS jsonb) "
    "FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(types)s AS text[])) WITH ORDINALITY AS e(id, type, n) "
    "ORDER BY e.n"
)


def record(
    db: Session | Connection, type: str | Sequence[str], aggregate: tuple[str, Any], data: dict
) -> list[uuid.UUID]:
    """Write the event (or events, one per type, of the same aggregate and data) in `db`'s transaction.

    `aggregate` is (type, id); `data` must be JSON-ready and hold no secret. Returns the events' ids.
    """
    connection = db.connection() if isinstance(db, Session) else db
    types = [type] if isinstance(type, str) else list(type)
    ids = [uuid.uuid4() for _ in types]
    params = {
        "ids": [str(i) for i in ids],
        "types": types,
        "aggregate_type": aggregate[0],
        "aggregate_id": str(aggregate[1]),
        "data": orjson.dumps(data).decode(),
    }
    with closing(run(connection, _INSERT, params)):
        pass
    bell.ring_soon(connection.engine)
    return ids


def utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a trailing Z, as the API shows times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
