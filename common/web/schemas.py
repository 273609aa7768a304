"""Schemas every service shares: the envelopes, UTC timestamps, pagination arguments."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import marshmallow as ma
from marshmallow import fields, validate

from common.settings import get_settings


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC with a trailing Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class FullMatch(validate.Regexp):
    """A pattern the whole value must match, written `^...$` as OpenAPI (ECMA-262) reads it.

    Python's `$` also matches before a final newline, so `re.match` would let `admin\n` pass for `admin`:
    the value is checked with `fullmatch` instead.
    """

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value


class StrictSchema(ma.Schema):
    """Request schema: unknown fields are an error, never silently applied."""

    class Meta:
        unknown = ma.RAISE


class ErrorBody(ma.Schema):
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(ma.Schema):
    """The one error envelope, on every status >= 400."""

    error = fields.Nested(ErrorBody, required=True)


class CursorMeta(ma.Schema):
    limit = fields.Integer(required=True)
    next_cursor = fields.String(allow_none=True, required=True)


@lru_cache(maxsize=None)
def envelope(schema: type[ma.Schema], many: bool = False, cursor: bool = False) -> type[ma.Schema]:
    """`{"data": <schema>}` (or a list of it; with cursor, plus v2's `meta`) as a named schema class."""
    base = schema.__name__.removesuffix("Schema")
    attrs = {
        "data": fields.List(fields.Nested(schema), required=True)
        if many
        else fields.Nested(schema, required=True)
    }
    suffix = "Page" if cursor else ("List" if many else "")
    if cursor:
        attrs["meta"] = fields.Nested(CursorMeta, required=True)
    return type(f"{base}{suffix}Envelope", (ma.Schema,), attrs)


class PageSize(validate.Range):
    """1 to TOKO_MAX_PAGE_SIZE, the bound read when a request is checked or the OpenAPI document written."""

    def __init__(self) -> None:
        super().__init__(min=1)

    @property
    def max(self) -> int:
        return get_settings().max_page_size

    @max.setter
    def max(self, _value: object) -> None:
        """Range's constructor sets a fixed bound; this one follows the settings."""


def page_size_field() -> fields.Integer:
    """A per_page/limit argument: TOKO_DEFAULT_PAGE_SIZE when absent, at most TOKO_MAX_PAGE_SIZE."""
    return fields.Integer(load_default=lambda: get_settings().default_page_size, validate=PageSize())


class PageArgs(StrictSchema):
    """v1 offset pagination: ?page=&per_page=."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = page_size_field()


class CursorArgs(StrictSchema):
    """v2 keyset pagination: ?cursor=&limit=."""

    # Documented as base64url (what every cursor is); anything else is still answered 400 invalid_cursor.
    cursor = fields.String(
        load_default=None,
        validate=validate.Length(max=2048),
        metadata={
            "pattern": "^[A-Za-z0-9_-]*$",
            "description": "next_cursor of the previous page, as it came.",
        },
    )
    limit = page_size_field()


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
