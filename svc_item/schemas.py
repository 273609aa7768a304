"""Request and response schemas of the item service, v1 and v2."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from common.ids import BIGINT_MAX
from common.settings import get_settings
from common.web.schemas import CursorArgs, FullMatch, PageArgs, StrictSchema, UtcDateTime

INT_MAX = 2**31 - 1  # items.stock is an INTEGER column
SORTS = ("id", "price", "-price", "name")

_price: dict[str, Any] = dict(
    strict=True,
    validate=validate.Range(min=0, max=BIGINT_MAX),
    metadata={"description": "Integer minor units of the shop's currency, >= 0."},
)
_stock: dict[str, Any] = dict(strict=True, validate=validate.Range(min=0, max=INT_MAX))
_category_id: dict[str, Any] = dict(
    strict=True,
    allow_none=True,
    validate=validate.Range(min=1, max=BIGINT_MAX),
    metadata={"description": "An existing category, or null."},
)
# A SKU is printed on labels and compared by eye: printable ASCII without spaces or line breaks, so no
# two SKUs differ only by something a person cannot see.
_sku: dict[str, Any] = dict(
    validate=FullMatch(r"^[!-~]{1,64}$", error="1 to 64 printable ASCII characters, no spaces."),
    metadata={"example": "TKO-001"},
)
_name: dict[str, Any] = dict(validate=validate.Length(min=1, max=200))
_description: dict[str, Any] = dict(validate=validate.Length(max=10_000))


# -- categories ------------------------------------------------------------------------------------


class CategoryWriteSchema(StrictSchema):
    """A whole category (POST, and PUT / POST /{id} which replace it)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(load_default="", **_description)


class CategoryPatchSchema(StrictSchema):
    """The named fields of a category to change."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    description = fields.String(**_description)


class CategorySchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class CategoryRefSchema(ma.Schema):
    """The category embedded in a v2 item."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)


# -- v1 items --------------------------------------------------------------------------------------


class ItemWriteSchema(StrictSchema):
    """A whole item (POST, and PUT / POST /{id} which replace it: omitted optional fields reset)."""

    sku = fields.String(required=True, **_sku)
    name = fields.String(required=True, **_name)
    price = fields.Integer(required=True, **_price)
    stock = fields.Integer(required=True, **_stock)
    category_id = fields.Integer(load_default=None, **_category_id)
    description = fields.String(load_default="", **_description)


class ItemPatchSchema(StrictSchema):
    """The named fields of an item to change; the others stay as they are."""

    sku = fields.String(**_sku)
    name = fields.String(**_name)
    price = fields.Integer(**_price)
    stock = fields.Integer(**_stock)
    category_id = fields.Integer(**_category_id)
    description = fields.String(**_description)


class ItemSchema(ma.Schema):
    """An item as v1 shows it: money as integer minor units in `price`."""

    id = fields.Integer(required=True)
    sku = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = fields.Integer(required=True)
    stock = fields.Integer(required=True)
    category_id = fields.Integer(required=True, allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class ItemListArgs(PageArgs):
    """v1 list: ?q=&category_id=&page=&per_page=."""

    q = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive substring of the name."},
    )
    category_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=BIGINT_MAX))


# -- v2 items --------------------------------------------------------------------------------------


class MoneySchema(ma.Schema):
    amount = fields.Integer(required=True, metadata={"description": "Integer minor units."})
    currency = fields.String(required=True, metadata={"example": "IDR"})


class Money(fields.Nested):
    """An integer amount of minor units shown as {"amount", "currency"}."""

    def __init__(self, **kwargs):
        super().__init__(MoneySchema, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return super()._serialize({"amount": value, "currency": get_settings().currency}, attr, obj, **kwargs)


class ItemV2Schema(ma.Schema):
    """An item as v2 shows it: its category embedded, money as an object."""

    id = fields.Integer(required=True)
    sku = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = Money(required=True)
    stock = fields.Integer(required=True)
    category = fields.Nested(CategoryRefSchema, required=True, allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class ItemBrowseArgs(CursorArgs):
    """v2 list: keyset pagination plus filters and a sort."""

    q = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Case-insensitive substring of the name."},
    )
    min_price = fields.Integer(load_default=None, validate=validate.Range(min=0, max=BIGINT_MAX))
    max_price = fields.Integer(load_default=None, validate=validate.Range(min=0, max=BIGINT_MAX))
    in_stock = fields.Boolean(
        load_default=None, metadata={"description": "true: stock > 0 only; false: sold out only."}
    )
    sort = fields.String(
        load_default="id",
        validate=validate.OneOf(SORTS),
        metadata={
            "description": "id (default), price, -price (price descending) or name; ties are broken by id "
            "in the same direction, so the cursor is exact under every sort."
        },
    )

    @ma.validates_schema
    def _price_range(self, data, **kwargs):
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ma.ValidationError("min_price must not exceed max_price.", "min_price")


class ItemBrowseAllArgs(ItemBrowseArgs):
    """v2 /v2/items also filters by category."""

    category_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=BIGINT_MAX))
