"""What the contract fixes about HTTP itself, shared by the services and the edge (no web framework).

Also where the edge reaches each service: gunicorn binds, and nginx proxies to, one unix socket per
service. gunicorn.conf.py reads all it needs from here and from the settings, not from the nginx renderer.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.settings import get_settings

# The methods toko answers; any other is a 405 at every layer, and one metrics label for them all.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# nginx's own failures, as the contract's envelope: (status sent, code, message).
# 494 is nginx's internal status for a header line or header set over large_client_header_buffers.
# An unreachable upstream (502) is a service restarting or stopped: 503 with Retry-After, so clients retry.
EDGE_ERRORS = {
    400: (400, "bad_request", "The request is malformed."),
    404: (404, "not_found", "No service serves this path."),
    405: (405, "method_not_allowed", "The method is not allowed for this resource."),
    408: (408, "request_timeout", "The request took too long to arrive."),
    411: (411, "length_required", "The request needs a Content-Length."),
    413: (413, "payload_too_large", "The request body is too large."),
    414: (414, "uri_too_long", "The request line is too long."),
    494: (431, "request_header_fields_too_large", "The request headers are too large."),
    500: (500, "internal_error", "An internal error occurred."),
    501: (501, "not_implemented", "The request uses a feature this server does not implement."),
    502: (503, "service_unavailable", "The service is temporarily unavailable; try again shortly."),
    503: (503, "service_unavailable", "The service is temporarily unavailable; try again shortly."),
    504: (504, "gateway_timeout", "The service did not answer in time."),
    505: (505, "http_version_not_supported", "The HTTP version is not supported."),
}


def edge_error(status: int, reason: str) -> tuple[str, str]:
    """The envelope's code and message for an error the edge answers with `status` (its reason phrase
    names the code of a status nginx never sends)."""
    for sent, code, message in EDGE_ERRORS.values():
        if sent == status:
            return code, message
    return reason.lower().replace(" ", "_").replace("-", "_"), f"{reason}."


# sun_path holds 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107


def run_dir(root: Path | None = None) -> Path:
    """Where the services' sockets live: TOKO_RUN_DIR (var/run) under supervisor's directory."""
    return (root or Path.cwd()) / get_settings().run_dir


def socket_path(service: str, root: Path | None = None) -> Path:
    """The unix socket a service's gunicorn binds and nginx proxies to."""
    path = run_dir(root).resolve() / f"svc_{service}.sock"
    if len(os.fsencode(str(path))) > _SUN_PATH_MAX:
        raise SystemExit(
            f"the socket path {path} is longer than {_SUN_PATH_MAX} bytes: run toko from a shorter directory"
        )
    return path
