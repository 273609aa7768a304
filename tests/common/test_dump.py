"""Responses served by compiled dumps and orjson: the same content as marshmallow and Flask's encoder."""
import json
import logging
from datetime import datetime, timezone

import marshmallow as ma
import pytest
from flask import Flask, jsonify
from marshmallow import fields

from common.logs import JsonFormatter
from common.principal import Principal
from common.web.fast.dump import _compile, compile_dump
from common.web.fast.encoding import OrjsonProvider
from common.web.schemas import envelope
from svc_item.schemas import ItemSchema
from svc_transaction.schemas import TransactionSchema
from svc_transaction.service import get_transaction
from tests.factories import make_account, make_item


def stdlib_bytes(value) -> bytes:
    """What Flask's own provider sends for `value` (compact, ASCII only), with its trailing newline."""
    return (json.dumps(value, separators=(",", ":")) + "\n").encode()


@pytest.mark.parametrize("schema", [envelope(ItemSchema), envelope(TransactionSchema),
                                    envelope(TransactionSchema, many=True)])
def test_the_hot_response_schemas_compile_rather_than_fall_back(schema):
    assert _compile(schema()) is not None


class Inner(ma.Schema):
    n = fields.Integer()
    label = fields.String(data_key="name")


class Everything(ma.Schema):
    id = fields.Integer()
    text = fields.String(attribute="source_text")
    default = fields.Integer(dump_default=7)
    inner = fields.Nested(Inner, allow_none=True)
    inners = fields.List(fields.Nested(Inner))
    plain = fields.List(fields.Integer())
    method = fields.Method("_method")
    nothing = fields.Method()
    when = fields.DateTime()
    flag = fields.Boolean()
    raw = fields.Raw()

    def _method(self, obj):
        return "m"


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("obj", [
    {"id": 1, "source_text": "a", "inner": {"n": "2", "label": b"x"}, "inners": [{"n": 3}, None], "plain": ["4"],
     "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "flag": 1, "raw": {"k": [1]}},
    {"id": None, "inner": None, "inners": None},
    {},
    Obj(id=5, source_text=6, inner=Obj(n=1), inners=[], flag=False),
    Obj(),
    {"items": 1},  # a mapping's missing key falls back to an attribute lookup, as marshmallow does
])
def test_compiled_dump_equals_marshmallow_key_order_included(obj):
    schema = Everything()
    got, expected = compile_dump(schema)(obj), schema.dump(obj)
    assert got == expected and list(got) == list(expected)


def test_a_schema_with_dump_hooks_is_left_to_marshmallow():
    class Hooked(ma.Schema):
        n = fields.Integer()

        @ma.post_dump
        def _double(self, data, **kwargs):
            return {"n": data["n"] * 2}

    schema = Hooked()
    assert compile_dump(schema) == schema.dump
    assert compile_dump(schema)({"n": 2}) == {"n": 4}


def test_a_many_schema_dumps_a_list():
    schema = Inner(many=True)
    assert compile_dump(schema)([{"n": 1}, {"n": 2}]) == schema.dump([{"n": 1}, {"n": 2}])


def test_item_read_is_byte_for_byte_what_marshmallow_and_flask_would_send(make_client, db_session):
    item = make_item(db_session, name="Kopi Gayo 250 g")
    response = make_client("item").get(f"/v1/items/{item.id}")
    assert response.status_code == 200
    expected = envelope(ItemSchema)().dump({"data": item})  # a fresh instance: marshmallow's own dump
    assert response.get_data() == stdlib_bytes(expected)


def test_purchase_is_byte_for_byte_what_marshmallow_and_flask_would_send(make_client, db_session):
    buyer, item = make_account(db_session), make_item(db_session, price=2500, stock=5)
    for key in (None, "k-1", "k-1"):  # plain, keyed, and the keyed replay
        headers = {**buyer.headers, **({"Idempotency-Key": key} if key else {})}
        response = make_client("transaction").post("/v1/transactions", headers=headers,
                                                   json={"lines": [{"item_id": item.id, "quantity": 1}]})
        assert response.status_code == 201, response.get_data(as_text=True)
        body = response.get_json()
        principal = Principal(0, buyer.id, buyer.username, "customer", True, None, None, None)
        txn = get_transaction(db_session, principal, body["data"]["id"])
        expected = envelope(TransactionSchema)().dump({"data": txn})
        if response.headers.get("Idempotent-Replayed"):  # the stored answer comes back from jsonb, keys reordered
            assert body == expected
        else:
            assert response.get_data() == stdlib_bytes(expected)


@pytest.fixture
def app():
    app = Flask("t")
    app.json = OrjsonProvider(app)
    return app


def test_non_ascii_text_is_the_same_json_in_utf8(app):
    value = {"name": "Kopi \u2615 Gayo", "emoji": "\U0001f600", "n": 2**63 - 1, "none": None, "t": True}
    with app.app_context():
        body = jsonify(value).get_data()
    assert json.loads(body) == value
    assert body == (json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize("value", [
    {"when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)},  # Flask writes an HTTP date, not ISO
    {"big": 2**70},  # past orjson's 64 bits
    {1: "int key"},
    ["\udc80"],  # a lone surrogate
])
def test_what_orjson_would_write_differently_goes_through_flasks_encoder(app, value):
    with app.app_context():
        fast = jsonify(value).get_data()
        flask_own = Flask("u")
        flask_own.json.sort_keys = False
    with flask_own.app_context():
        slow = jsonify(value).get_data()
    assert json.loads(fast) == json.loads(slow)


def test_log_timestamp_is_iso_utc_with_milliseconds():
    formatter = JsonFormatter("item")
    for created in (0.0, 1_700_000_000.9999, 1_700_000_001.0005, 1_700_000_001.25):
        record = logging.makeLogRecord({"msg": "x", "created": created})
        line = json.loads(formatter.format(record))
        expected = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
        assert line["ts"] == expected.replace("+00:00", "Z")


def test_log_line_survives_unusual_values():
    record = logging.makeLogRecord({"msg": "x", "big": 2**70, "bad": "\udc80", "obj": object()})
    line = json.loads(JsonFormatter("item").format(record))
    assert line["big"] == 2**70 and line["bad"] == "\udc80" and line["obj"].startswith("<object")
