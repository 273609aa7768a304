"""Request and response schemas of the OTP service."""

from __future__ import annotations

from marshmallow import Schema, fields, utils, validate

from common.db.models.otp import OTP_PURPOSES
from common.web.schemas import FullMatch, StrictSchema, UtcDateTime

CHANNELS = ("sms", "email")
STATES = ("pending", "verified", "replaced", "locked", "expired")


class ReferenceField(fields.String):
    """A transaction id: the contract sends it as a string; a JSON integer is taken as its digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class OtpCreate(StrictSchema):
    purpose = fields.String(required=True, validate=validate.OneOf(OTP_PURPOSES))
    reference = ReferenceField(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={
            "description": "The transaction id, for (and only for) confirm_transaction.",
            "example": "42",
        },
    )


class OtpVerify(StrictSchema):
    code = fields.String(
        required=True,
        validate=FullMatch(r"^[0-9]{6}$", error="Six digits."),
        metadata={"example": "123456"},
    )


def _reference(obj) -> str | None:
    """No reference is shown as null (it is stored as '' so the one-live-code index covers it)."""
    return utils.get_value(obj, "reference") or None


class OtpCreated(Schema):
    id = fields.UUID(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(OTP_PURPOSES))
    reference = fields.Function(
        _reference, required=True, allow_none=True, metadata={"type": "string", "nullable": True}
    )
    channel = fields.String(
        required=True,
        validate=validate.OneOf(CHANNELS),
        metadata={"description": "sms when the account has a phone, else email."},
    )
    expires_at = UtcDateTime(required=True)
    debug_code = fields.String(
        metadata={
            "description": "The code itself: only when TOKO_ENV is development or test, never in production."
        }
    )


class OtpStatus(Schema):
    id = fields.UUID(required=True)
    purpose = fields.String(required=True, validate=validate.OneOf(OTP_PURPOSES))
    reference = fields.Function(
        _reference, required=True, allow_none=True, metadata={"type": "string", "nullable": True}
    )
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    status = fields.String(
        required=True,
        attribute="state",
        validate=validate.OneOf(STATES),
        metadata={
            "description": "pending (can be verified), verified (used), "
            "replaced (a newer code took its place), "
            "locked (too many wrong codes) or expired."
        },
    )
    attempts_left = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    expires_at = UtcDateTime(required=True)
    verified_at = UtcDateTime(required=True, allow_none=True)


class OtpVerified(Schema):
    id = fields.UUID(required=True)
    verified = fields.Constant(True, required=True, metadata={"type": "boolean"})
    purpose = fields.String(required=True, validate=validate.OneOf(OTP_PURPOSES))
    reference = fields.Function(
        _reference, required=True, allow_none=True, metadata={"type": "string", "nullable": True}
    )
    verified_at = UtcDateTime(required=True)
