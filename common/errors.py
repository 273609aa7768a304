"""Domain errors: each carries the HTTP status and the contract's snake_case code.

Service layers raise these; common.web.errors turns them (and everything else) into the envelope.
"""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict | None = None,
        headers: dict | None = None,
        status: int | None = None,
    ):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.details = details or {}
        self.headers = headers or {}
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "The request is malformed."


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "The resource was not found."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class Gone(ApiError):
    status, code, message = 410, "gone", "The resource has expired."


class Unprocessable(ApiError):
    status, code, message = 422, "validation_error", "The request breaks a rule."


class TooManyRequests(ApiError):
    status, code, message = 429, "too_many_requests", "Too many attempts; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **kw):
        headers = dict(kw.pop("headers", None) or {})
        headers["Retry-After"] = str(max(1, int(retry_after)))
        details = dict(kw.pop("details", None) or {})
        details.setdefault("retry_after", max(1, int(retry_after)))
        super().__init__(message, headers=headers, details=details, **kw)


class ServiceUnavailable(ApiError):
    status, code, message = 503, "service_unavailable", "The service is temporarily unavailable."
