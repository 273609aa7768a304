"""The floor for GET /v1/items/{id}: bare Flask + psycopg2 reading the same row, nothing else.

No envelope machinery, auth, logging, metrics, ORM or pool checks: one autocommit connection per
thread (as svc_item's role) and one indexed SELECT. Run under the same gunicorn settings as the
services by bench/item_read.py (gunicorn -c gunicorn.conf.py bench.floor_app:app).
"""
from __future__ import annotations

from flask import Flask, abort, jsonify

from bench.common import floor_connection, utc

app = Flask("floor")
app.json.sort_keys = False
_SQL = ("SELECT id, sku, name, description, price, stock, category_id, created_at, updated_at "
        "FROM items WHERE id = %s AND deleted_at IS NULL")


@app.get("/healthz")
def healthz():
    return {"data": {"status": "ok"}}


@app.get("/v1/items/<int:item_id>")
def get_item(item_id: int):
    with floor_connection("item", autocommit=True).cursor() as cur:
        cur.execute(_SQL, (item_id,))
        row = cur.fetchone()
    if row is None:
        abort(404)
    id_, sku, name, description, price, stock, category_id, created_at, updated_at = row
    return jsonify({"data": {"id": id_, "sku": sku, "name": name, "description": description, "price": price,
                             "stock": stock, "category_id": category_id, "created_at": utc(created_at),
                             "updated_at": utc(updated_at)}})
