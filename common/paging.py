"""v1 offset and v2 keyset pagination, and the cursors of the latter (no web framework: services use it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any, Sequence

from sqlalchemy import Select, literal, tuple_

from common.errors import BadRequest
from common.jsontext import loads, unstorable
from common.settings import get_settings


def page_window(*, page: int, per_page: int) -> dict[str, int]:
    """The LIMIT and OFFSET of v1's ?page=&per_page=, as the parameters `limit` and `offset` of SQL text."""
    return {"limit": per_page, "offset": (page - 1) * per_page}


def offset_page(stmt: Select, *, page: int, per_page: int) -> Select:
    """Apply ?page=&per_page= to an ordered select."""
    window = page_window(page=page, per_page=per_page)
    return stmt.limit(window["limit"]).offset(window["offset"])


class CursorCodec:
    """Opaque, tamper-safe cursors: base64url(JSON) + HMAC-SHA256, bound to the query they came from."""

    def __init__(self, secret: str | None = None, purpose: str = "cursor"):
        self._key = hashlib.sha256(f"{purpose}:{secret or get_settings().secret_key}".encode()).digest()

    def _sign(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()[:16]

    def encode(self, position: Sequence[Any], query: dict) -> str:
        raw = json.dumps({"p": list(position), "q": _fingerprint(query)}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw + self._sign(raw)).decode().rstrip("=")

    def decode(self, token: str, query: dict) -> list:
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            raw, signature = blob[:-16], blob[-16:]
            if len(blob) <= 16 or not hmac.compare_digest(signature, self._sign(raw)):
                raise ValueError("bad signature")
            payload = loads(raw)
            if payload["q"] != _fingerprint(query):
                raise ValueError("cursor from another query")
            position = payload["p"]
            # Signed is not sane: whoever holds the secret (the development one is public) can sign
            # anything, so only flat lists of storable scalars reach a query.
            if (
                not isinstance(position, list)
                or unstorable(position)
                or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in position)
            ):
                raise ValueError("not a position")
            return position
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise BadRequest(
                "The cursor is invalid or belongs to another query.", code="invalid_cursor"
            ) from None


def _fingerprint(query: dict) -> str:
    canonical = json.dumps(
        {k: query[k] for k in sorted(query) if query[k] is not None}, default=str, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def keyset_after(columns: Sequence, values: Sequence, descending: bool = False):
    """Rows strictly after `values` in the order of `columns` (all ascending, or all descending).

    A row-value comparison, which PostgreSQL turns into one range scan of a matching composite index.
    """
    left = tuple_(*columns)
    right = tuple_(*[literal(v, type_=c.type) for c, v in zip(columns, values, strict=True)])
    return left < right if descending else left > right
