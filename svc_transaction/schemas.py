"""Request and response schemas of the transaction service."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from common.db.models.transactions import TRANSACTION_STATES
from common.ids import BIGINT_MAX
from common.web.schemas import PageArgs, StrictSchema, UtcDateTime

# Bounds of the columns behind the fields: a value past them is a 422, never a database error.
MAX_QUANTITY = 2**31 - 1
MAX_LINES = 100


class PurchaseLine(StrictSchema):
    """One line of a purchase: which item and how many. Prices come from the catalogue."""

    item_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=BIGINT_MAX))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_QUANTITY))


class PurchaseCreate(StrictSchema):
    """A purchase. Unknown fields (a price, a total) are refused: only the catalogue sets prices.

    An item may appear on one line only; a second line for the same item is a 422 naming it, so the
    lines of the answer are exactly the lines of the request.
    """

    lines = fields.List(
        fields.Nested(PurchaseLine),
        required=True,
        validate=validate.Length(min=1, max=MAX_LINES, error="Send between {min} and {max} lines."),
    )

    @ma.validates_schema
    def _one_line_per_item(self, data, **kwargs):
        seen: dict[int, int] = {}
        duplicates = {}
        for index, line in enumerate(data.get("lines") or []):
            if line["item_id"] in seen:
                duplicates[str(index)] = {
                    "item_id": [
                        f"Item {line['item_id']} is already on line {seen[line['item_id']]}; "
                        "put its whole quantity on one line."
                    ]
                }
            else:
                seen[line["item_id"]] = index
        if duplicates:
            raise ma.ValidationError({"lines": duplicates})


class ConfirmBody(StrictSchema):
    otp_id = fields.UUID(
        required=True,
        metadata={"description": "A verified confirm_transaction OTP whose reference is this transaction."},
    )


class TransactionListArgs(PageArgs):
    user_id = fields.Integer(
        strict=False,
        validate=validate.Range(min=1, max=BIGINT_MAX),
        metadata={"description": "Admin only: this user's transactions."},
    )
    status = fields.String(validate=validate.OneOf(TRANSACTION_STATES))


class TransactionLineSchema(ma.Schema):
    item_id = fields.Integer(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True, metadata={"description": "Catalogue price, minor units."})
    subtotal = fields.Method(
        "_subtotal", metadata={"type": "integer", "description": "quantity × unit_price"}
    )

    def _subtotal(self, line) -> int:
        return line.quantity * line.unit_price


class TransactionSchema(ma.Schema):
    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(TRANSACTION_STATES))
    total = fields.Integer(required=True, metadata={"description": "Minor units."})
    currency = fields.String(required=True)
    lines = fields.List(
        fields.Nested(TransactionLineSchema),
        required=True,
        metadata={"description": "One line per item, in item id order."},
    )
    created_at = UtcDateTime(required=True)
    paid_at = UtcDateTime(allow_none=True, required=True)
    confirm_by = UtcDateTime(
        allow_none=True,
        required=True,
        metadata={"description": "awaiting_otp: confirm before this or it expires."},
    )
    cancelled_at = UtcDateTime(allow_none=True, required=True)
