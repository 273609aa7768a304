"""Request and response schemas of the user service."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from common.db.models.users import ROLES
from common.web.schemas import FullMatch, StrictSchema, UtcDateTime

# Whole-value matches: `admin\n` is not `admin`.
USERNAME = FullMatch(r"^[A-Za-z0-9_.-]{3,64}$", error="3 to 64 letters, digits, dots, dashes or underscores.")
PHONE = FullMatch(r"^\+?[0-9]{6,20}$", error="6 to 20 digits, optionally starting with +.")
# Long enough for any passphrase, short enough that hashing it cannot be used to burn CPU.
PASSWORD = validate.Length(min=8, max=128)


class UserSchema(Schema):
    id = fields.Integer(required=True)
    username = fields.String(required=True)
    email = fields.String(required=True)
    phone = fields.String(allow_none=True, required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    verified = fields.Boolean(required=True)
    created_at = UtcDateTime(required=True)


class UserCreate(StrictSchema):
    """Registration: a customer account. Role, id and hashes are not accepted here."""

    username = fields.String(required=True, validate=USERNAME)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, validate=PASSWORD, load_only=True)
    phone = fields.String(load_default=None, allow_none=True, validate=PHONE)


class UserReplace(StrictSchema):
    """PUT / POST /v1/users/{id}: the whole editable record. `role` is for admins only."""

    username = fields.String(required=True, validate=USERNAME)
    email = fields.Email(required=True, validate=validate.Length(max=254))
    phone = fields.String(load_default=None, allow_none=True, validate=PHONE)
    role = fields.String(validate=validate.OneOf(ROLES))
    password = fields.String(validate=PASSWORD, load_only=True)
    current_password = fields.String(validate=validate.Length(max=128), load_only=True)


class UserPatch(StrictSchema):
    """PATCH /v1/users/{id}: only the named fields change."""

    username = fields.String(validate=USERNAME)
    email = fields.Email(validate=validate.Length(max=254))
    phone = fields.String(allow_none=True, validate=PHONE)
    role = fields.String(validate=validate.OneOf(ROLES))
    password = fields.String(validate=PASSWORD, load_only=True)
    current_password = fields.String(validate=validate.Length(max=128), load_only=True)


class LoginSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024), load_only=True)


class SessionCreated(Schema):
    token = fields.String(required=True)
    expires_at = UtcDateTime(required=True)
    user = fields.Nested(UserSchema, required=True)


class SessionSchema(Schema):
    created_at = UtcDateTime(required=True)
    expires_at = UtcDateTime(required=True, metadata={"description": "Absolute expiry."})
    idle_expires_at = UtcDateTime(required=True, metadata={"description": "Expiry if left idle."})
    user = fields.Nested(UserSchema, required=True)
