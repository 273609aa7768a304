"""Request bodies through the compiled fast path: marshmallow's own answer, or marshmallow asked."""
from __future__ import annotations

import marshmallow as ma
import pytest
from marshmallow import fields, validate

from common.web.fast.load import REFER, FastLoad, _compile, compiled_load, compiled_load_schemas
from svc_transaction.schemas import PurchaseCreate


def marshmallow_load(schema, data):
    try:
        return type(schema).load(schema, data)
    except ma.ValidationError as error:
        return error.messages


class Everything(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    n = fields.Integer(validate=validate.Range(min=0, max=10, max_inclusive=False))
    s = fields.String(data_key="name", validate=[validate.Length(min=1, max=3), validate.OneOf(["a", "bb"])])
    flag = fields.Boolean(load_default=False)
    tags = fields.List(fields.String(), validate=validate.Length(max=2))
    when = fields.DateTime()
    price = fields.Decimal(allow_none=True)
    inner = fields.Nested(PurchaseCreate)


BODIES = [
    {}, {"n": 0}, {"n": 9}, {"n": 10}, {"n": -1}, {"n": True}, {"n": 1.0}, {"n": "1"}, {"n": None},
    {"name": "a"}, {"name": "bb"}, {"name": "c"}, {"name": ""}, {"name": 1}, {"s": "a"},
    {"flag": True}, {"flag": 1}, {"flag": "true"}, {"tags": []}, {"tags": ["x", "y"]}, {"tags": ["x", "y", "z"]},
    {"tags": ["x", 1]}, {"tags": "x"}, {"when": "2026-01-02T03:04:05Z"}, {"when": "yesterday"},
    {"price": "1.50"}, {"price": None}, {"price": []}, {"extra": 1}, [], "text", None,
    {"inner": {"lines": [{"item_id": 1, "quantity": 2}]}}, {"inner": {"lines": []}}, {"inner": []},
    {"inner": {"lines": [{"item_id": 1, "quantity": 2}, {"item_id": 1, "quantity": 1}]}},
]
LINES = [
    [{"item_id": 1, "quantity": 1}], [{"item_id": 2**63 - 1, "quantity": 2**31 - 1}],
    [{"item_id": 2**63, "quantity": 1}], [{"item_id": 0, "quantity": 1}], [{"item_id": 1, "quantity": 0}],
    [{"item_id": 1}], [{"item_id": 1, "quantity": 1, "price": 5}], [{"item_id": "1", "quantity": 1}],
    [{"item_id": 1, "quantity": False}], [{"item_id": 1, "quantity": 1.5}], [None], [[]],
    [{"item_id": i, "quantity": 1} for i in range(1, 101)], [{"item_id": i, "quantity": 1} for i in range(1, 102)],
    [{"item_id": 3, "quantity": 1}, {"item_id": 3, "quantity": 2}], [],
]


@pytest.mark.parametrize("body", BODIES + [{"lines": lines} for lines in LINES] + [{"lines": None}, {"lines": {}}])
def test_the_fast_path_answers_only_what_marshmallow_answers_the_same(body):
    for schema in (Everything(), PurchaseCreate()):
        fast = _compile(schema)
        assert fast is not None
        got = fast(body)
        if got is not REFER:
            assert got == type(schema).load(schema, body)


def test_well_formed_bodies_take_the_fast_path():
    fast = _compile(PurchaseCreate())
    assert fast({"lines": LINES[0]}) == {"lines": [{"item_id": 1, "quantity": 1}]}
    assert _compile(Everything())({"n": 3, "name": "bb", "tags": ["x"]}) == {
        "n": 3, "s": "bb", "flag": False, "tags": ["x"]}


@pytest.mark.parametrize("body", [{"lines": lines} for lines in LINES] + BODIES)
def test_errors_are_marshmallows_own(body):
    schema = compiled_load(PurchaseCreate())
    assert isinstance(schema.load, FastLoad)
    try:
        got = schema.load(body)
    except ma.ValidationError as error:
        got = error.messages
    assert got == marshmallow_load(PurchaseCreate(), body)


def test_schemas_with_load_hooks_keep_marshmallows_load():
    class Hooked(ma.Schema):
        n = fields.Integer()

        @ma.post_load
        def double(self, data, **kwargs):
            return {"n": data["n"] * 2}

    schema = Hooked()
    assert compiled_load(schema) is schema and not isinstance(schema.load, FastLoad)
    assert schema.load({"n": 2}) == {"n": 4}


def test_every_request_schema_of_the_services_has_a_fast_path():
    for service in ("user", "otp", "item", "transaction", "report"):
        __import__(f"svc_{service}.app")
    names = {type(schema).__name__ for schema in compiled_load_schemas}
    assert {"PurchaseCreate"} <= names
