"""v1 purchase routes: thin views over svc_transaction.service."""

from __future__ import annotations

from common.web import Blueprint, commit, connection, db, require_principal
from common.web.idempotency import REPLAY_HEADERS, idempotent
from common.web.schemas import envelope
from svc_transaction import service
from svc_transaction.schemas import ConfirmBody, PurchaseCreate, TransactionListArgs, TransactionSchema

blp = Blueprint(
    "transactions_v1",
    __name__,
    url_prefix="/v1/transactions",
    description="Purchases: stock taken and sale recorded in one database transaction.",
)

Transaction = envelope(TransactionSchema)
# Ids past the bigint column cannot exist: the app factory answers 404 for them, whatever the verb.
ID_PATH = "/<int:transaction_id>"


def _same_purchase(body: dict) -> list:
    """A purchase is its lines, whatever their order."""
    return sorted((line["item_id"], line["quantity"]) for line in body["lines"])


def _location(transaction_id: int) -> dict:
    return {"Location": f"{blp.url_prefix}/{transaction_id}"}


@blp.route("", methods=["POST"])
@blp.auth
@blp.arguments(PurchaseCreate)
@idempotent(
    canonical=_same_purchase,
    stored="201 and the purchase's own refusals (409 `insufficient_stock`, 422 `unknown_item`)",
)
@blp.response(201, Transaction, headers=REPLAY_HEADERS)
@blp.errors(400, 409, 422)
def create_transaction(body):
    """Buy: prices from the catalogue; all lines filled or nothing taken.

    A total at or above the OTP threshold is created `awaiting_otp` (stock reserved until `confirm_by`);
    below it the transaction is `paid` at once. Two lines for one item → 422.
    """
    txn = service.purchase(connection(), require_principal().user_id, body["lines"])
    return {"data": txn}, 201, _location(txn.id)


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
    commit()
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
    commit()
    return {"data": txn}
