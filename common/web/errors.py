"""One error module, one JSON shape: every failure becomes the contract's envelope."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InvalidRequestError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from common.errors import ApiError

log = logging.getLogger("toko.errors")

# werkzeug's status → the contract's snake_case code.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    411: "length_required",
    412: "precondition_failed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    428: "precondition_required",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "service_unavailable",
}
MESSAGES = {
    400: "The request is malformed.",
    404: "The resource was not found.",
    405: "The method is not allowed for this resource.",
    413: "The request body is too large.",
    415: "Send the body as application/json.",
    422: "The request breaks a rule.",
    500: "An internal error occurred.",
    503: "The service is temporarily unavailable.",
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """The contract's error envelope."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None
):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _validation_details(messages) -> dict:
    """Flatten webargs' {location: {field: [msg]}} into {"fields": {field: [msg]}}."""
    fields: dict = {}
    if isinstance(messages, dict):
        for location, errors in messages.items():
            if isinstance(errors, dict):
                fields.update(errors)
            else:
                fields[location] = errors
    return {"fields": fields}


def handle_api_error(error: ApiError):
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    details: dict = {}
    if "messages" in data:
        details = _validation_details(data["messages"])
        message = "The request body is not valid JSON." if status == 400 else MESSAGES.get(status)
    else:
        message = MESSAGES.get(status) or error.description or error.name
    headers = dict(data.get("headers") or {})
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    if status >= 500:
        return _internal(error)
    return error_response(status, HTTP_CODES.get(status, "error"), message or error.name, details, headers)


def handle_integrity_error(error: IntegrityError):
    constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
    log.info("integrity error", extra={"constraint": constraint})
    return error_response(
        409,
        "conflict",
        "The request conflicts with existing data.",
        {"constraint": constraint} if constraint else {},
    )


def handle_data_error(error: DataError):
    return error_response(422, "validation_error", "A value is out of range or of the wrong type.")


def database_unavailable():
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable; try again shortly.",
        headers={"Retry-After": "1"},
    )


def handle_operational_error(error: SQLAlchemyError):
    # The database is down, restarting, dropped the connection or timed out: answer fast, let the
    # client retry.
    log.warning("database unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
    return database_unavailable()


def handle_dbapi_error(error: DBAPIError):
    if error.connection_invalidated:
        return handle_operational_error(error)
    return _internal(error)


# The pool's words when every connection it checked out in a row was found closed by the server (it
# tries three): the database is dropping connections, not a fault in the code.
_POOL_EXHAUSTED = "This connection is closed"


def handle_invalid_request(error: InvalidRequestError):
    if str(error) == _POOL_EXHAUSTED:
        return handle_operational_error(error)
    return _internal(error)


def _internal(error: BaseException):
    log.error("unhandled error", exc_info=error)
    return error_response(
        500, "internal_error", MESSAGES[500], {"request_id": getattr(g, "request_id", None)}
    )


def handle_unexpected(error: Exception):
    if isinstance(error, HTTPException):
        return handle_http_exception(error)
    original = getattr(error, "original_exception", None)
    return _internal(original or error)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(IntegrityError, handle_integrity_error)
    app.register_error_handler(DataError, handle_data_error)
    app.register_error_handler(OperationalError, handle_operational_error)
    # psycopg2 reports a connection the server closed as InterfaceError ("connection already closed")
    # or as a DatabaseError SQLAlchemy marks invalidated; an exhausted pool is the database being slow:
    # all of them are a retryable 503.
    app.register_error_handler(InterfaceError, handle_operational_error)
    app.register_error_handler(PoolTimeout, handle_operational_error)
    app.register_error_handler(DBAPIError, handle_dbapi_error)
    app.register_error_handler(InvalidRequestError, handle_invalid_request)
    app.register_error_handler(Exception, handle_unexpected)
