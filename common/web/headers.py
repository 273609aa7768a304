"""Response headers every service sets: nosniff, no-store for private answers, and opt-in CORS."""

from __future__ import annotations

import time

from flask import Response

from common.security import SESSION_COOKIE

_COOKIE = f"{SESSION_COOKIE}="
_READS = ("GET", "HEAD")
# Anonymous reads a service declares public may be a second old: a shared cache (the edge) may keep them.
PUBLIC_CACHE = "public, max-age=1"
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID"
CORS_EXPOSED = "X-Request-ID, Retry-After, Location"


def has_credentials(req) -> bool:
    # The environ, not req.headers: werkzeug builds a KeyError for each header a request lacks.
    environ = req.environ
    return "HTTP_AUTHORIZATION" in environ or _COOKIE in environ.get("HTTP_COOKIE", "")


def preflight(req, origins: frozenset) -> Response | None:
    """The answer to a CORS preflight from an allowed origin (None: not one, let routing answer)."""
    if req.method != "OPTIONS" or "HTTP_ACCESS_CONTROL_REQUEST_METHOD" not in req.environ:
        return None
    if req.environ.get("HTTP_ORIGIN") not in origins:
        return None
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def decorate(response: Response, req, *, public_reads: tuple[str, ...], origins: frozenset) -> None:
    headers = response.headers
    # One pass over the few headers the view set (`name in headers` builds a KeyError on every miss).
    present = {key.lower() for key, _ in headers}
    # add, not set: none of these is there yet (set scans for an old value first).
    headers.add("X-Content-Type-Options", "nosniff")
    # A token or a user's own data must never sit in a shared or browser cache. Only a service whose
    # reads are public (the catalogue) answers an anonymous read without no-store; a catalogue read that
    # succeeded may be kept a second, with an ETag that If-None-Match turns into a 304 without a body.
    if "cache-control" not in present:
        anonymous_read = (
            public_reads and req.method in _READS and not has_credentials(req) and "set-cookie" not in present
        )
        if not anonymous_read:
            headers.add("Cache-Control", "no-store")
        elif response.status_code == 200 and req.path.startswith(public_reads):
            headers.add("Cache-Control", PUBLIC_CACHE)
            # A browser that kept this anonymous answer must not reuse it once it holds a session.
            headers.add("Vary", "Cookie, Authorization")
            # For the edge alone (nginx never passes X-Accel-* on): keep it until the end of this second.
            # nginx counts a max-age in whole seconds and serves an entry through the second after it,
            # which could show a stock level almost two seconds old.
            headers.add("X-Accel-Expires", f"@{int(time.time())}")
            response.add_etag()
            response.make_conditional(req)
    if origins:
        headers.add("Vary", "Origin")
        origin = req.environ.get("HTTP_ORIGIN")
        if origin in origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
