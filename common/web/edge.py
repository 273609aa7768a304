"""What the app learns from toko's own nginx, and only from it.

gunicorn listens on a unix socket that only toko's nginx reaches; for such a peer WSGI's REMOTE_ADDR
is not an IP address (gunicorn leaves it empty). Then, and only then, the headers nginx sets are
trusted: X-Real-IP (the client's address, overwritten by nginx whatever a client sent) and
X-Forwarded-Prefix (the gateway's /_<service> prefix). A request that reached the app any other way
(a TCP peer, the test client) is taken at its word of REMOTE_ADDR and no prefix.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

_PREFIX = re.compile(r"^/_[a-z]+$")


@lru_cache(maxsize=4096)  # asked on every request, mostly for the same few peers
def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def through_edge(environ: dict) -> bool:
    """The request came through toko's own nginx (a unix-socket peer)."""
    return not _is_ip(environ.get("REMOTE_ADDR") or "")


def client_address(environ: dict) -> str | None:
    """The client's address: REMOTE_ADDR when it is an IP address, else the X-Real-IP nginx set."""
    remote = environ.get("REMOTE_ADDR") or ""
    if _is_ip(remote):
        return remote
    real = (environ.get("HTTP_X_REAL_IP") or "").strip()
    return real if _is_ip(real) else None


class EdgePrefix:
    """WSGI middleware: behind the gateway's /_<service>/, URLs the app builds keep that prefix."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX", "")
        if prefix and _PREFIX.match(prefix) and through_edge(environ):
            environ["SCRIPT_NAME"] = prefix + environ.get("SCRIPT_NAME", "")
        return self.app(environ, start_response)
