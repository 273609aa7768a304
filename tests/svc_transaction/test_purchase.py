"""POST /v1/transactions in process: prices, atomic stock, step-up threshold, bad input, idempotency keys."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from common.db.models import IdempotencyKey, Item, Transaction
from common.settings import get_settings
from tests.factories import make_account, make_item
from tests.svc_transaction.conftest import assert_error


def buy(client, account, lines, **headers):
    return client.post("/v1/transactions", json={"lines": lines}, headers={**account.headers, **headers})


def stock(db_session, item) -> int:
    return db_session.scalar(select(Item.stock).where(Item.id == item.id))


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_purchase_prices_from_the_catalogue_and_takes_stock(client, db_session, buyer):
    rice, oil = make_item(db_session, price=75000, stock=10), make_item(db_session, price=38000, stock=5)
    response = buy(client, buyer, [{"item_id": oil.id, "quantity": 2}, {"item_id": rice.id, "quantity": 3}])
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()["data"]
    assert response.headers["Location"].endswith(f"/v1/transactions/{data['id']}")
    assert data["user_id"] == buyer.id and data["status"] == "paid"
    assert data["total"] == 3 * 75000 + 2 * 38000
    assert data["currency"] == get_settings().currency
    # One line per item, in item id order.
    assert data["lines"] == [
        {"item_id": rice.id, "quantity": 3, "unit_price": 75000, "subtotal": 225000},
        {"item_id": oil.id, "quantity": 2, "unit_price": 38000, "subtotal": 76000},
    ]
    assert data["created_at"].endswith("Z") and data["paid_at"] == data["created_at"]
    assert data["confirm_by"] is None and data["cancelled_at"] is None
    assert (stock(db_session, rice), stock(db_session, oil)) == (7, 3)
    assert "Idempotent-Replayed" not in response.headers


def test_the_whole_stock_can_be_bought(client, db_session, buyer):
    item = make_item(db_session, stock=4)
    assert buy(client, buyer, [{"item_id": item.id, "quantity": 4}]).status_code == 201
    assert stock(db_session, item) == 0


def test_total_at_the_threshold_waits_for_an_otp_with_stock_reserved(client, db_session, buyer):
    settings = get_settings()
    item = make_item(db_session, price=settings.otp_threshold // 2, stock=5)
    cheap = make_item(db_session, price=settings.otp_threshold - 1, stock=5)
    response = buy(client, buyer, [{"item_id": item.id, "quantity": 2}])
    data = response.get_json()["data"]
    assert response.status_code == 201 and data["status"] == "awaiting_otp"
    assert data["paid_at"] is None
    assert parse(data["confirm_by"]) - parse(data["created_at"]) == timedelta(
        seconds=settings.transaction_confirm_seconds)
    assert stock(db_session, item) == 3
    below = buy(client, buyer, [{"item_id": cheap.id, "quantity": 1}]).get_json()["data"]
    assert below["status"] == "paid" and below["confirm_by"] is None


def test_not_enough_stock_for_one_line_takes_nothing(client, db_session, buyer):
    plenty, short = make_item(db_session, stock=10), make_item(db_session, stock=2)
    before = db_session.scalar(select(Transaction.id).order_by(Transaction.id.desc()).limit(1))
    response = buy(client, buyer, [{"item_id": short.id, "quantity": 3}, {"item_id": plenty.id, "quantity": 4}])
    details = assert_error(response, 409, "insufficient_stock")
    assert details["lines"] == [{"index": 0, "item_id": short.id, "requested": 3, "available": 2}]
    assert (stock(db_session, plenty), stock(db_session, short)) == (10, 2)
    assert db_session.scalar(select(Transaction.id).order_by(Transaction.id.desc()).limit(1)) == before


def test_every_short_line_is_named(client, db_session, buyer):
    first, second = make_item(db_session, stock=1), make_item(db_session, stock=0)
    response = buy(client, buyer, [{"item_id": second.id, "quantity": 1}, {"item_id": first.id, "quantity": 5}])
    lines = assert_error(response, 409, "insufficient_stock")["lines"]
    assert sorted((line["index"], line["available"]) for line in lines) == [(0, 0), (1, 1)]
    assert stock(db_session, first) == 1


@pytest.mark.parametrize("removed", [False, True])
def test_unknown_or_removed_items_are_422_naming_the_line(client, db_session, buyer, removed):
    live = make_item(db_session, stock=5)
    if removed:
        gone = make_item(db_session, stock=5)
        db_session.execute(update(Item).where(Item.id == gone.id).values(deleted_at=Item.created_at))
        missing_id = gone.id
    else:
        missing_id = db_session.scalar(select(Item.id).order_by(Item.id.desc()).limit(1)) + 1000
    response = buy(client, buyer, [{"item_id": live.id, "quantity": 1}, {"item_id": missing_id, "quantity": 1}])
    details = assert_error(response, 422, "unknown_item")
    assert list(details["fields"]["lines"]) == ["1"] and details["item_ids"] == [missing_id]
    assert stock(db_session, live) == 5


@pytest.mark.parametrize("body, field", [
    ({"lines": []}, "lines"),
    ({}, "lines"),
    ({"lines": "x"}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": 0}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": -2}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": 1.5}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": "2"}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": 2**31}]}, "lines"),
    ({"lines": [{"item_id": 0, "quantity": 1}]}, "lines"),
    ({"lines": [{"item_id": 2**63, "quantity": 1}]}, "lines"),
    ({"lines": [{"item_id": None, "quantity": 1}]}, "lines"),
    ({"lines": [{"quantity": 1}]}, "lines"),
    ({"lines": [{"item_id": 1}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": 1, "unit_price": 1}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": 1, "price": 1}]}, "lines"),
    ({"lines": [{"item_id": 1, "quantity": 1}], "total": 1}, "total"),
    ({"lines": [{"item_id": n, "quantity": 1} for n in range(1, 102)]}, "lines"),
    ({"lines": [None]}, "lines"),
])
def test_malformed_purchases_are_422_naming_the_field(client, buyer, body, field):
    response = client.post("/v1/transactions", json=body, headers=buyer.headers)
    details = assert_error(response, 422, "validation_error")
    assert field in details["fields"]


def test_the_same_item_on_two_lines_is_422_naming_the_second(client, db_session, buyer):
    item = make_item(db_session, stock=5)
    response = buy(client, buyer, [{"item_id": item.id, "quantity": 1}, {"item_id": item.id, "quantity": 2}])
    details = assert_error(response, 422, "validation_error")
    assert list(details["fields"]["lines"]) == ["1"]
    assert stock(db_session, item) == 5


def test_not_json_unparseable_and_anonymous(client, buyer):
    assert_error(client.post("/v1/transactions", data="lines", content_type="text/plain", headers=buyer.headers),
                 415, "unsupported_media_type")
    assert_error(client.post("/v1/transactions", data="{", content_type="application/json",
                             headers=buyer.headers), 400, "bad_request")
    assert_error(client.post("/v1/transactions", json={"lines": [{"item_id": 1, "quantity": 1}]}),
                 401, "unauthorized")
    assert_error(client.post("/v1/transactions", json={"lines": []},
                             headers={"Authorization": "Bearer nope"}), 401, "unauthorized")


# --- Idempotency-Key ---------------------------------------------------------------------------------

def test_a_replay_returns_the_first_answer_and_takes_nothing(client, db_session, buyer):
    item = make_item(db_session, stock=10)
    lines = [{"item_id": item.id, "quantity": 2}]
    first = buy(client, buyer, lines, **{"Idempotency-Key": "order-1"})
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = buy(client, buyer, lines, **{"Idempotency-Key": "order-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert stock(db_session, item) == 8
    row = db_session.scalars(select(IdempotencyKey).where(IdempotencyKey.user_id == buyer.id)).one()
    assert row.response_status == 201 and row.response_body == first.get_json()
    assert row.response_headers == {"Location": f"/v1/transactions/{first.get_json()['data']['id']}"}
    assert len(row.fingerprint) == 64


def test_the_fingerprint_ignores_line_order(client, db_session, buyer):
    a, b = make_item(db_session), make_item(db_session)
    lines = [{"item_id": a.id, "quantity": 1}, {"item_id": b.id, "quantity": 2}]
    first = buy(client, buyer, lines, **{"Idempotency-Key": "k"})
    again = buy(client, buyer, lines[::-1], **{"Idempotency-Key": "k"})
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()


def test_a_key_reused_with_another_body_is_422(client, db_session, buyer):
    item = make_item(db_session, stock=10)
    buy(client, buyer, [{"item_id": item.id, "quantity": 1}], **{"Idempotency-Key": "k1"})
    response = buy(client, buyer, [{"item_id": item.id, "quantity": 2}], **{"Idempotency-Key": "k1"})
    assert_error(response, 422, "idempotency_key_reused")
    assert stock(db_session, item) == 9


def test_keys_belong_to_one_user(client, db_session, buyer, other):
    item = make_item(db_session, stock=10)
    lines = [{"item_id": item.id, "quantity": 1}]
    mine = buy(client, buyer, lines, **{"Idempotency-Key": "shared"}).get_json()["data"]
    theirs = buy(client, other, lines, **{"Idempotency-Key": "shared"})
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["data"]["id"] != mine["id"] and stock(db_session, item) == 8


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there", "nul\x00", "bell\x07"])
def test_an_empty_or_overlong_key_is_400(client, db_session, buyer, key):
    item = make_item(db_session, stock=10)
    response = buy(client, buyer, [{"item_id": item.id, "quantity": 1}], **{"Idempotency-Key": key})
    assert_error(response, 400, "invalid_idempotency_key")
    assert stock(db_session, item) == 10


def test_a_key_of_255_characters_is_fine(client, db_session, buyer):
    item = make_item(db_session, stock=10)
    assert buy(client, buyer, [{"item_id": item.id, "quantity": 1}],
               **{"Idempotency-Key": "k" * 255}).status_code == 201


def test_a_refused_purchase_is_stored_and_replayed(client, db_session, buyer):
    item = make_item(db_session, stock=1)
    lines = [{"item_id": item.id, "quantity": 2}]
    first = buy(client, buyer, lines, **{"Idempotency-Key": "too-many"})
    assert_error(first, 409, "insufficient_stock")
    # Restocked meanwhile: the key still answers what it answered; a new key buys.
    db_session.execute(update(Item).where(Item.id == item.id).values(stock=5))
    again = buy(client, buyer, lines, **{"Idempotency-Key": "too-many"})
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert stock(db_session, item) == 5
    assert buy(client, buyer, lines, **{"Idempotency-Key": "fresh"}).status_code == 201


def test_a_malformed_body_stores_no_key(client, db_session, buyer):
    item = make_item(db_session, stock=5)
    assert_error(buy(client, buyer, [{"item_id": item.id, "quantity": 0}], **{"Idempotency-Key": "m"}),
                 422, "validation_error")
    assert buy(client, buyer, [{"item_id": item.id, "quantity": 1}], **{"Idempotency-Key": "m"}).status_code == 201


def test_an_expired_key_may_be_used_again(client, db_session, buyer):
    item = make_item(db_session, stock=10)
    first = buy(client, buyer, [{"item_id": item.id, "quantity": 1}], **{"Idempotency-Key": "old"})
    db_session.execute(update(IdempotencyKey).where(IdempotencyKey.user_id == buyer.id)
                       .values(expires_at=IdempotencyKey.created_at - timedelta(seconds=1)))
    second = buy(client, buyer, [{"item_id": item.id, "quantity": 3}], **{"Idempotency-Key": "old"})
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert second.get_json()["data"]["id"] != first.get_json()["data"]["id"]
    assert stock(db_session, item) == 6


def test_the_key_expires_after_the_configured_ttl(client, db_session, buyer):
    item = make_item(db_session, stock=10)
    buy(client, buyer, [{"item_id": item.id, "quantity": 1}], **{"Idempotency-Key": "ttl"})
    row = db_session.scalars(select(IdempotencyKey).where(IdempotencyKey.user_id == buyer.id)).one()
    assert row.expires_at - row.created_at == timedelta(seconds=get_settings().idempotency_ttl_seconds)


def test_an_admin_buys_like_anyone(client, db_session):
    admin = make_account(db_session, "admin")
    item = make_item(db_session, stock=1)
    assert buy(client, admin, [{"item_id": item.id, "quantity": 1}]).get_json()["data"]["user_id"] == admin.id


def test_a_well_formed_purchase_takes_the_compiled_fast_path(client, db_session, buyer,
                                                            compiled_loads_match_marshmallow):
    item = make_item(db_session)
    before = compiled_loads_match_marshmallow.count("PurchaseCreate")
    assert buy(client, buyer, [{"item_id": item.id, "quantity": 1}]).status_code == 201
    assert compiled_loads_match_marshmallow.count("PurchaseCreate") == before + 1
