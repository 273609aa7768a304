"""The client's address, as far as toko's own edge can vouch for it."""
from __future__ import annotations

import ipaddress

from flask import request


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address() -> str | None:
    """The TCP peer, or the address toko's own nginx forwarded in X-Real-IP.

    gunicorn sets REMOTE_ADDR to '' for a unix-socket peer; only toko's nginx reaches a service's socket,
    and it always overwrites X-Real-IP with its own TCP peer. A request over TCP has an IP address as its
    REMOTE_ADDR: then X-Real-IP is whatever the client chose to send and is ignored.
    """
    peer = _ip(request.environ.get("REMOTE_ADDR") or "")
    if peer is not None:
        return peer
    return _ip(request.headers.get("X-Real-IP", ""))
