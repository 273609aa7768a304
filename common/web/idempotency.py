"""`@idempotent`: an Idempotency-Key makes any authenticated endpoint safe to retry.

The view under it does the work and leaves the commit to the decorator, which commits the work and
the stored answer together: a retry finds either both or neither. Without the header the view runs as
it is and is committed the same way.
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

import orjson
from flask import current_app, request

from common import idempotency
from common.errors import ApiError
from common.settings import get_settings
from common.web.api import Blueprint
from common.web.auth import require_principal
from common.web.db import commit, db
from common.web.errors import error_body, error_response

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# For the success responses of an endpoint that wears @idempotent (`blp.response(..., headers=...)`).
REPLAY_HEADERS = {
    REPLAYED: {
        "description": "`true` when this is a stored answer replayed.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def idempotent(
    *,
    canonical: Callable[[Any], Any] = lambda body: body,
    stored_errors: tuple[int, ...] = (409, 422),
    kept_headers: tuple[str, ...] = ("Location",),
    stored: str = "",
):
    """Store the view's answer under the caller's Idempotency-Key and replay it for the same request.

    Wear it below `blp.arguments` and above `blp.response`: it sees the parsed body and the finished
    response. `canonical` maps the parsed body to what makes two requests the same (by default the
    body itself). Answers stored: every 2xx, and the refusals in `stored_errors` — outcomes the work
    decided from the state of the data. A malformed request (refused before the view runs) or a server
    error stores nothing, so the client may retry with the same key. `stored` names, for the
    documentation, what those answers are.
    """
    hours = get_settings().idempotency_ttl_seconds / 3600
    parameter = {
        "in": "header",
        "name": HEADER,
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
        "description": (
            f"Makes a retry safe. Per user, for {hours:g} h: the same key with the same request replays the "
            f"first answer (same status, body and Location, header `{REPLAYED}: true`) and does nothing "
            "again; with another request → 422 `idempotency_key_reused`; a duplicate sent while the first "
            "is running waits for it and replays it (409 `idempotency_in_flight` if it cannot). The answers "
            f"stored are {stored or 'the successes and ' + ', '.join(map(str, stored_errors))}; a malformed "
            "request (refused before the work runs) or a server error stores nothing. Over "
            f"{idempotency.MAX_KEY_LENGTH} characters or empty → 400 `invalid_idempotency_key`."
        ),
    }

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            raw = request.environ.get("HTTP_IDEMPOTENCY_KEY")  # the Idempotency-Key header
            if raw is None:
                response = view(*args, **kwargs)
                commit()
                return response
            session = db()
            key = idempotency.check_key(raw)
            user_id = require_principal().user_id
            scope = f"{request.method} {request.url_rule.rule if request.url_rule else request.path}"
            payload = {"args": [canonical(arg) for arg in args], "path": kwargs}
            digest = idempotency.fingerprint(scope, payload)
            key_id = idempotency.claim(session, user_id, key, digest, get_settings().idempotency_ttl_seconds)
            if key_id is None:
                return _replay(idempotency.stored_answer(session, user_id, key, digest))
            try:
                with session.begin_nested():
                    response = view(*args, **kwargs)
            except ApiError as error:
                if error.status not in stored_errors:
                    raise
                headers = _kept(error.headers, kept_headers)
                answer = idempotency.Answer(
                    error.status, error_body(error.code, error.message, error.details), headers
                )
                response = error_response(
                    answer.status, error.code, error.message, error.details, error.headers
                )
            else:
                if not 200 <= response.status_code < 300:
                    return response  # nothing stored: the teardown rolls the claim back
                answer = idempotency.Answer(
                    response.status_code,
                    orjson.loads(response.get_data()),
                    _kept(response.headers, kept_headers),
                )
            idempotency.record(session, key_id, answer)
            commit()
            return response

        return Blueprint.doc(parameters=[parameter])(wrapper)

    return decorator


def _kept(headers, names: tuple[str, ...]) -> dict:
    return {name: headers[name] for name in names if name in headers}


def _replay(answer: idempotency.Answer):
    response = current_app.json.response(answer.body)
    response.status_code = answer.status
    response.headers.update(answer.headers)
    response.headers[REPLAYED] = "true"
    return response
