"""The floor for POST /v1/transactions: bare Flask + psycopg2, an authenticated one-line purchase.

One persistent connection per thread (as svc_transaction's role) and one database transaction holding
the same database work svc_transaction does: the session lookup (one indexed SELECT), the atomic stock
update, and the sale with its line in one statement. No envelope machinery, validation, ORM, pool
checks, logging or metrics. Run under the same gunicorn settings as the services by
bench/transaction_purchase.py (gunicorn -c gunicorn.conf.py bench.transaction_floor:app).
"""
from __future__ import annotations

import hashlib

from flask import Flask, abort, jsonify, request

from bench.common import floor_connection, utc

app = Flask("transaction_floor")
app.json.sort_keys = False
_AUTH = ("SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = %s "
         "AND s.revoked_at IS NULL AND u.is_active AND s.expires_at > now() AND s.idle_expires_at > now()")
_TAKE = ("UPDATE items SET stock = stock - %s WHERE id = %s AND stock >= %s AND deleted_at IS NULL "
         "RETURNING price")
_RECORD = ("""
    WITH t AS (
        INSERT INTO transactions (user_id, status, total, currency, paid_at)
        VALUES (%(user)s, 'paid', %(total)s, 'IDR', now()) RETURNING id, created_at, paid_at
    ), l AS (
        INSERT INTO transaction_lines (transaction_id, item_id, quantity, unit_price)
        SELECT id, %(item)s, %(quantity)s, %(price)s FROM t
    )
    SELECT id, created_at, paid_at FROM t""")


@app.get("/healthz")
def healthz():
    return {"data": {"status": "ok"}}


@app.post("/v1/transactions")
def purchase():
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    line = request.get_json()["lines"][0]
    item_id, quantity = int(line["item_id"]), int(line["quantity"])
    conn = floor_connection("transaction")
    with conn, conn.cursor() as cur:  # one transaction; an abort inside rolls it back
        cur.execute(_AUTH, (hashlib.sha256(token.encode()).digest(),))
        user = cur.fetchone()
        if user is None:
            abort(401)
        cur.execute(_TAKE, (quantity, item_id, quantity))
        taken = cur.fetchone()
        if taken is None:
            abort(409)
        total = taken[0] * quantity
        cur.execute(_RECORD, {"user": user[0], "total": total, "item": item_id, "quantity": quantity,
                              "price": taken[0]})
        txn_id, created_at, paid_at = cur.fetchone()
    return jsonify({"data": {"id": txn_id, "user_id": user[0], "status": "paid", "total": total,
                             "lines": [{"item_id": item_id, "quantity": quantity, "unit_price": taken[0],
                                        "subtotal": total}],
                             "created_at": utc(created_at), "paid_at": utc(paid_at)}}), 201
