"""`@idempotent` on an endpoint of its own: replay, scope, stored refusals and what is never stored."""
from __future__ import annotations

import pytest
from marshmallow import fields
from sqlalchemy import select, update

from common.db.models import IdempotencyKey, Item
from common.errors import ApiError, Conflict
from tests.conftest import lend_connection
from tests.factories import make_account, make_item


@pytest.fixture
def bump(db_session):
    """A throwaway endpoint that adds to an item's stock: 201, a 409 refusal, or a 503 failure."""
    from common.web import Blueprint, create_app, db, require_principal
    from common.web.idempotency import REPLAY_HEADERS, idempotent
    from common.web.schemas import StrictSchema

    blp = Blueprint("bump", __name__)

    class Body(StrictSchema):
        by = fields.Integer(required=True)
        note = fields.String()

    def bump_stock(item_id: int, by: int):
        require_principal()
        if by == 13:
            raise ApiError("The counter is resting.", status=503, code="busy")
        db().execute(update(Item).where(Item.id == item_id).values(stock=Item.stock + by))
        stock = db().scalar(select(Item.stock).where(Item.id == item_id))
        if stock > 100:
            raise Conflict("Too much stock.", code="too_much", details={"stock": stock})
        return {"data": {"stock": stock}}, 201, {"Location": f"/bumps/{item_id}/{stock}"}

    @blp.route("/items/<int:item_id>/bump", methods=["POST"])
    @blp.auth
    @blp.arguments(Body)
    @idempotent(canonical=lambda body: {"by": body["by"]})  # the note does not make another request
    @blp.response(201, headers=REPLAY_HEADERS)
    def bump_view(body, item_id):
        return bump_stock(item_id, body["by"])

    @blp.route("/items/<int:item_id>/bump-again", methods=["POST"])
    @blp.auth
    @blp.arguments(Body)
    @idempotent()
    @blp.response(201)
    def bump_again(body, item_id):
        return bump_stock(item_id, body["by"])

    app = create_app("item", [blp])
    app.config["TESTING"] = True
    lend_connection(app, db_session)
    return app.test_client()


def stock(db_session, item_id: int) -> int:
    return db_session.scalar(select(Item.stock).where(Item.id == item_id))


def post(client, account, path, key=None, **body):
    headers = {**account.headers, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(path, json=body, headers=headers)


def test_without_a_key_every_request_does_the_work(bump, db_session):
    account, item = make_account(db_session), make_item(db_session, stock=1).id
    assert post(bump, account, f"/items/{item}/bump", by=2).status_code == 201
    assert post(bump, account, f"/items/{item}/bump", by=2).status_code == 201
    assert stock(db_session, item) == 5


def test_a_retry_replays_status_body_and_location_and_does_nothing(bump, db_session):
    account, item = make_account(db_session), make_item(db_session, stock=1).id
    first = post(bump, account, f"/items/{item}/bump", "k", by=2)
    again = post(bump, account, f"/items/{item}/bump", "k", by=2, note="a retry")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() == {"data": {"stock": 3}}
    assert again.headers["Location"] == first.headers["Location"] == f"/bumps/{item}/3"
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert stock(db_session, item) == 3


def test_the_key_belongs_to_one_user(bump, db_session):
    alice, bob, item = make_account(db_session), make_account(db_session), make_item(db_session, stock=1).id
    post(bump, alice, f"/items/{item}/bump", "shared", by=2)
    assert "Idempotent-Replayed" not in post(bump, bob, f"/items/{item}/bump", "shared", by=2).headers
    assert stock(db_session, item) == 5


def test_a_key_is_refused_for_another_body_another_path_or_another_endpoint(bump, db_session):
    account, item, other = make_account(db_session), make_item(db_session, stock=1).id, make_item(db_session).id
    post(bump, account, f"/items/{item}/bump", "k", by=2)
    for path, by in ((f"/items/{item}/bump", 3), (f"/items/{other}/bump", 2),
                     (f"/items/{item}/bump-again", 2)):
        refused = post(bump, account, path, "k", by=by)
        assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert stock(db_session, item) == 3


def test_a_refusal_decided_by_the_data_is_stored_and_replayed(bump, db_session):
    account, item = make_account(db_session), make_item(db_session, stock=100).id
    first = post(bump, account, f"/items/{item}/bump", "k", by=1)
    assert first.status_code == 409 and first.get_json()["error"]["details"] == {"stock": 101}
    db_session.execute(update(Item).where(Item.id == item).values(stock=0))
    db_session.commit()
    again = post(bump, account, f"/items/{item}/bump", "k", by=1)
    assert again.status_code == 409 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stock(db_session, item) == 0  # the refused work was rolled back, and not done again


def test_a_failure_or_a_malformed_request_stores_nothing_so_the_key_can_be_retried(bump, db_session):
    account, item = make_account(db_session), make_item(db_session, stock=1).id
    assert post(bump, account, f"/items/{item}/bump", "k", by=13).status_code == 503
    assert post(bump, account, f"/items/{item}/bump", "k", by="two").status_code == 422
    assert db_session.scalar(select(IdempotencyKey).where(IdempotencyKey.user_id == account.id)) is None
    assert post(bump, account, f"/items/{item}/bump", "k", by=2).status_code == 201
    assert stock(db_session, item) == 3


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_a_malformed_key_is_400(bump, db_session, key):
    account, item = make_account(db_session), make_item(db_session, stock=1).id
    refused = post(bump, account, f"/items/{item}/bump", key, by=2)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert stock(db_session, item) == 1


def test_the_header_is_documented_on_the_endpoint(bump):
    spec = bump.get("/openapi.json").get_json()
    post_ = spec["paths"]["/items/{item_id}/bump"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post_["parameters"])
    assert "Idempotent-Replayed" in post_["responses"]["201"]["headers"]
