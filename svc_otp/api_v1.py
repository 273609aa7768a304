"""v1 views of the OTP service: parse, call service.py, serialize."""

from __future__ import annotations

from flask import url_for

from common.settings import get_settings
from common.web import Blueprint, commit, db, require_principal
from common.web.schemas import PageArgs, envelope
from svc_otp import service
from svc_otp.schemas import OtpCreate, OtpCreated, OtpStatus, OtpVerified, OtpVerify

otps = Blueprint(
    "otps",
    __name__,
    url_prefix="/v1/otps",
    description=(
        "One-time passwords: a 6-digit code delivered by SMS (or email when the account has no phone), "
        "single-use, short-lived and throttled. Purposes: verify_account, confirm_transaction."
    ),
)


@otps.route("", methods=["POST"])
@otps.auth
@otps.arguments(OtpCreate)
@otps.response(201, envelope(OtpCreated))
@otps.errors(404, 409, 429)
def create_otp(body):
    """Request a code.

    `confirm_transaction` needs the transaction id as `reference`: only the caller's own transaction that
    is `awaiting_otp` (anything else, someone else's, unknown or already paid, is 404 and sends nothing);
    `verify_account` takes none. A new request for the same purpose and reference replaces the live code
    (the old one dies). The code is delivered by svc_otp_worker. Errors: 404 `not_found` (the reference);
    409 `already_verified` (verify_account on a verified account);
    429 `otp_throttled` with `Retry-After` when the account asked for too many codes recently.
    """
    principal = require_principal()
    issued = service.request_otp(db(), principal.user_id, body["purpose"], body.get("reference"))
    commit()
    data = {
        "id": issued.challenge.id,
        "purpose": issued.challenge.purpose,
        "reference": issued.challenge.reference,
        "channel": issued.challenge.channel,
        "expires_at": issued.challenge.expires_at,
    }
    if get_settings().reveals_debug_codes:
        data["debug_code"] = issued.code
    return {"data": data}, 201, {"Location": url_for("otps.get_otp", otp_id=issued.challenge.id)}


@otps.route("", methods=["GET"])
@otps.auth
@otps.arguments(PageArgs, location="query")
@otps.response(200, envelope(OtpStatus, many=True))
def list_otps(args):
    """Your codes, newest first: their state, expiry and attempts left (never the codes)."""
    return {"data": service.list_otps(db(), require_principal().user_id, **args)}


@otps.route("/<uuid:otp_id>", methods=["GET"])
@otps.auth
@otps.response(200, envelope(OtpStatus))
@otps.errors(404)
def get_otp(otp_id):
    """One of your codes: its state, expiry and attempts left (another user's answers 404)."""
    return {"data": service.get_otp(db(), require_principal().user_id, otp_id)}


@otps.route("/<uuid:otp_id>/verify", methods=["POST"])
@otps.auth
@otps.arguments(OtpVerify)
@otps.response(200, envelope(OtpVerified))
@otps.errors(404, 409, 410, 422, 429)
def verify_otp(body, otp_id):
    """Submit a code.

    A correct code → 200 (a verify_account code also marks the account verified). Errors:
    422 `otp_invalid` with `details.attempts_left` (the last wrong attempt locks the code);
    429 `otp_locked` once the attempts are used up (request a new code; `Retry-After` says when one may be
    requested); 410 `otp_expired` past expiry, 410 `otp_replaced` when a newer code replaced this one;
    409 `otp_used` when it was already verified; 404 for an unknown id or another user's code.
    """
    return {"data": service.verify_otp(db(), require_principal().user_id, otp_id, code=body["code"])}
