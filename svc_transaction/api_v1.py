"""v1 purchase routes: thin views over svc_transaction.service."""

from __future__ import annotations

from flask import jsonify, request

from common.web import Blueprint, db, require_principal
from common.web.dump import compiled
from common.web.schemas import envelope
from svc_transaction import service
from svc_transaction.schemas import ConfirmBody, PurchaseCreate, TransactionListArgs, TransactionSchema

blp = Blueprint(
    "transactions_v1",
    __name__,
    url_prefix="/v1/transactions",
    description="Purchases: stock taken and sale recorded in one database transaction.",
)

IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": service.MAX_KEY_LENGTH},
    "description": (
        "Makes a retry safe. Per user, for idempotency_ttl_seconds (24 h): the same key with the same "
        "lines replays the first answer (same status and body, header `Idempotent-Replayed: true`) and "
        "takes nothing; with other lines → 422 `idempotency_key_reused`; a duplicate sent while the first "
        "is running waits for it and replays it (409 `idempotency_in_flight` if it cannot). The answers "
        "stored are 201 and the purchase's own refusals (409 `insufficient_stock`, 422 `unknown_item`); "
        "a malformed body (422 before the purchase runs) or a server error stores nothing. "
        "Over 255 characters or empty → 400."
    ),
}
REPLAY_HEADERS = {
    "Idempotent-Replayed": {
        "description": "`true` when this is a stored answer replayed.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
Transaction = envelope(TransactionSchema)
_TRANSACTION = compiled(Transaction())  # stores a keyed purchase's answer exactly as the response shows it
# Ids past the bigint column cannot exist: the app factory answers 404 for them, whatever the verb.
ID_PATH = "/<int:transaction_id>"


def _location(transaction_id: int) -> dict:
    return {"Location": f"{blp.url_prefix}/{transaction_id}"}


@blp.route("", methods=["POST"])
@blp.auth
@blp.arguments(PurchaseCreate)
@blp.response(201, Transaction, headers=REPLAY_HEADERS)
@blp.errors(400, 409, 422)
@blp.doc(parameters=[IDEMPOTENCY_HEADER])
def create_transaction(body):
    """Buy: prices from the catalogue; all lines filled or nothing taken.

    A total at or above the OTP threshold is created `awaiting_otp` (stock reserved until `confirm_by`);
    below it the transaction is `paid` at once. Two lines for one item → 422.
    """
    principal = require_principal()
    key = service.check_key(request.headers.get("Idempotency-Key"))
    if key is None:
        txn = service.purchase(db(), principal.user_id, body["lines"])
        db().commit()
        return {"data": txn}, 201, _location(txn.id)
    outcome = service.purchase_once(
        db(), principal.user_id, key, body["lines"], serialize=lambda txn: _TRANSACTION.dump({"data": txn})
    )
    db().commit()
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    if outcome.status == 201:
        response.headers.update(_location(outcome.body["data"]["id"]))
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blp.route("", methods=["GET"])
@blp.auth
@blp.arguments(TransactionListArgs, location="query")
@blp.response(200, envelope(TransactionSchema, many=True))
@blp.errors(403, 422)
def list_transactions(args):
    """Transactions, newest first: your own; an admin sees everyone's (or one user's, `?user_id=`)."""
    rows = service.list_transactions(db(), require_principal(), **args)
    return {"data": rows}


@blp.route(ID_PATH, methods=["GET"])
@blp.auth
@blp.response(200, Transaction)
@blp.errors(404)
def get_transaction(transaction_id: int):
    """One transaction (its buyer or an admin; anyone else gets 404)."""
    return {"data": service.get_transaction(db(), require_principal(), transaction_id)}


@blp.route(ID_PATH, methods=["DELETE"])
@blp.auth
@blp.response(200, Transaction)
@blp.errors(404, 409)
def cancel_transaction(transaction_id: int):
    """Cancel (buyer or admin): `paid` or `awaiting_otp` → `cancelled`, stock returned once, record kept.

    Cancelled or expired (also awaiting_otp past `confirm_by`) → 409 `transaction_not_cancellable`.
    """
    txn = service.cancel(db(), require_principal(), transaction_id)
    db().commit()
    return {"data": txn}


@blp.route(ID_PATH + "/confirm", methods=["POST"])
@blp.auth
@blp.arguments(ConfirmBody)
@blp.response(200, Transaction)
@blp.errors(403, 404, 409, 410, 422)
def confirm_transaction(body, transaction_id: int):
    """Confirm an `awaiting_otp` purchase with a verified `confirm_transaction` OTP for it → `paid`.

    The OTP must be the buyer's, with purpose `confirm_transaction` and reference this transaction's id
    (else 422 `otp_mismatch`), and verified (else 422 `otp_not_verified`). Not awaiting_otp (e.g.
    confirmed already, cancelled) → 409 `transaction_not_awaiting_otp`; past `confirm_by` → 410
    `transaction_expired`. Only the buyer confirms (an admin gets 403).
    """
    txn = service.confirm(db(), require_principal(), transaction_id, body["otp_id"])
    db().commit()
    return {"data": txn}
