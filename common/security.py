"""Session tokens: opaque 256-bit random values, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

SESSION_COOKIE = "toko_session"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
