"""Every `error.code` a service answers with: its status, which services use it, and what it means.

The OpenAPI documents are built from this table (the code enum of each error response, the table in the
Error schema's description) and a test checks it against every code the source raises.
"""

from __future__ import annotations

from typing import NamedTuple

ANY = "*"  # a code the shared web layer may answer on every service


class Code(NamedTuple):
    status: int
    services: tuple[str, ...]
    meaning: str


CODES: dict[str, Code] = {
    # The shared web layer: werkzeug's statuses, the database, the schema.
    "bad_request": Code(400, (ANY,), "The request is malformed, e.g. its body is not valid JSON."),
    "unauthorized": Code(401, (ANY,), "No valid session: log in and send the token."),
    "forbidden": Code(403, (ANY,), "The session's user may not do this (an admin's operation)."),
    "not_found": Code(404, (ANY,), "No such resource or path."),
    "method_not_allowed": Code(405, (ANY,), "The path does not take this method (see the Allow header)."),
    "not_acceptable": Code(406, (ANY,), "The requested representation is not available."),
    "conflict": Code(409, (ANY,), "The request conflicts with existing data (details name the constraint)."),
    "gone": Code(410, (ANY,), "The resource has expired."),
    "length_required": Code(411, (ANY,), "The request needs a Content-Length."),
    "precondition_failed": Code(412, (ANY,), "A precondition header did not hold."),
    "payload_too_large": Code(413, (ANY,), "The body exceeds TOKO_MAX_BODY_BYTES."),
    "uri_too_long": Code(414, (ANY,), "The request line is too long."),
    "unsupported_media_type": Code(415, (ANY,), "Send the body as application/json."),
    "range_not_satisfiable": Code(416, (ANY,), "The requested range is not available."),
    "validation_error": Code(422, (ANY,), "A field breaks a rule; details.fields says which and why."),
    "precondition_required": Code(428, (ANY,), "The request must be conditional."),
    "too_many_requests": Code(429, (ANY,), "Too many requests; wait Retry-After seconds."),
    "request_header_fields_too_large": Code(431, (ANY,), "The request's headers are too large."),
    "internal_error": Code(500, (ANY,), "A bug: details.request_id finds it in the log."),
    "not_implemented": Code(501, (ANY,), "The server does not support this."),
    "service_unavailable": Code(503, (ANY,), "The service is temporarily unavailable; retry."),
    "database_unavailable": Code(503, (ANY,), "The database is down or slow; retry after Retry-After."),
    "schema_out_of_date": Code(
        503, (ANY,), "The database is behind the code's migrations: run `toko migrate`."
    ),
    # user
    "already_exists": Code(409, ("user", "item"), "The username, email, sku or category name is taken."),
    "role_change_forbidden": Code(403, ("user",), "Only an admin changes a role."),
    "current_password_invalid": Code(
        422, ("user",), "A new password, email or phone of one's own needs the right current_password."
    ),
    "busy": Code(503, ("user",), "Every password check of the worker is taken; retry after Retry-After."),
    "invalid_credentials": Code(401, ("user",), "Wrong username or password."),
    "login_throttled": Code(429, ("user",), "Too many failed logins; wait Retry-After seconds."),
    "registration_throttled": Code(
        429, ("user",), "Too many registrations from this address; wait Retry-After seconds."
    ),
    "last_admin": Code(409, ("user",), "The last admin cannot be demoted or deleted."),
    # otp
    "already_verified": Code(409, ("otp",), "The account is already verified."),
    "otp_throttled": Code(429, ("otp",), "Too many codes requested; wait Retry-After seconds."),
    "otp_used": Code(409, ("otp",), "The code was already used."),
    "otp_locked": Code(429, ("otp",), "Too many wrong codes: the OTP is locked; request a new one."),
    "otp_replaced": Code(410, ("otp",), "A newer code replaced this one."),
    "otp_expired": Code(410, ("otp",), "The code has expired; request a new one."),
    "otp_invalid": Code(422, ("otp",), "Wrong code; details say how many attempts are left."),
    # item
    "invalid_cursor": Code(400, ("item",), "The cursor is garbled, forged, or from another query."),
    # transaction
    "unknown_item": Code(422, ("transaction",), "Some lines name items that are not in the catalogue."),
    "insufficient_stock": Code(409, ("transaction",), "Not enough stock for some lines; nothing was taken."),
    "invalid_idempotency_key": Code(
        400, ("transaction",), "The Idempotency-Key header is empty, too long or not printable."
    ),
    "idempotency_in_flight": Code(
        409, ("transaction",), "A request with this Idempotency-Key is still running; retry shortly."
    ),
    "idempotency_key_reused": Code(422, ("transaction",), "The Idempotency-Key was used with another body."),
    "transaction_expired": Code(
        410, ("transaction",), "The confirmation window closed; the stock was released."
    ),
    "transaction_not_awaiting_otp": Code(409, ("transaction",), "The transaction is not waiting for an OTP."),
    "otp_mismatch": Code(422, ("transaction",), "The OTP was not issued to confirm this transaction."),
    "otp_not_verified": Code(422, ("transaction",), "Verify the OTP first (POST /v1/otps/{id}/verify)."),
    "transaction_not_cancellable": Code(409, ("transaction",), "The transaction can no longer be cancelled."),
    # report
    "invalid_window": Code(422, ("report",), "'from' must be before 'to'."),
    "window_too_large": Code(422, ("report",), "The window is longer than TOKO_REPORT_MAX_WINDOW_DAYS."),
    "report_not_found": Code(404, ("report",), "No such report job."),
    "report_not_ready": Code(409, ("report",), "The report job is queued, running or failed, not done."),
    "unknown_kind": Code(422, ("report",), "A report job of a kind the worker does not know."),
    "too_many_jobs": Code(
        429, ("report",), "The user already has TOKO_REPORT_MAX_ACTIVE_JOBS report jobs queued or running."
    ),
}


def codes_for(service: str, status: int | None = None) -> list[str]:
    """The codes a service may answer (with one status), its own first."""
    found = [
        code
        for code, c in CODES.items()
        if (service in c.services or ANY in c.services) and (status is None or c.status == status)
    ]
    return sorted(found, key=lambda code: (ANY in CODES[code].services, code))


def table(service: str) -> str:
    """A Markdown table of the service's codes."""
    rows = [
        f"| `{code}` | {CODES[code].status} | {CODES[code].meaning} |"
        for code in sorted(codes_for(service), key=lambda code: (CODES[code].status, code))
    ]
    return "\n".join(["| code | status | meaning |", "|---|---|---|", *rows])
