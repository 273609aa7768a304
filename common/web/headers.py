"""Response headers every service sets: nosniff, no-store for private answers, and opt-in CORS."""

from __future__ import annotations

from flask import Response

from common.security import SESSION_COOKIE

_COOKIE = f"{SESSION_COOKIE}="
_READS = ("GET", "HEAD")
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
CORS_EXPOSED = "X-Request-ID, Retry-After, Location"


def has_credentials(req) -> bool:
    return "Authorization" in req.headers or _COOKIE in req.headers.get("Cookie", "")


def _has(headers, lower_name: str) -> bool:
    # `name in headers` builds an HTTPException (BadRequestKeyError) on every miss: a scan is cheaper.
    return any(key.lower() == lower_name for key, _ in headers)


def preflight(req, origins: frozenset) -> Response | None:
    """The answer to a CORS preflight from an allowed origin (None: not one, let routing answer)."""
    if req.method != "OPTIONS" or "Access-Control-Request-Method" not in req.headers:
        return None
    if req.headers.get("Origin") not in origins:
        return None
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def decorate(response: Response, req, *, public_reads: bool, origins: frozenset) -> None:
    headers = response.headers
    # add, not set: none of these is there yet (set scans for an old value first).
    headers.add("X-Content-Type-Options", "nosniff")
    # A token or a user's own data must never sit in a shared or browser cache. Only a service whose
    # reads are public (the catalogue) answers an anonymous read without no-store.
    if not _has(headers, "cache-control") and not (
        public_reads and req.method in _READS and not has_credentials(req) and not _has(headers, "set-cookie")
    ):
        headers.add("Cache-Control", "no-store")
    if origins:
        headers.add("Vary", "Origin")
        origin = req.headers.get("Origin")
        if origin in origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
