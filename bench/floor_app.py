"""The floor for GET /v1/items/{id}: bare Flask + psycopg2 reading the same row, nothing else.

No envelope machinery, auth, logging, metrics, ORM or pool checks: one autocommit connection per
thread and one indexed SELECT. Run under the same gunicorn settings as the services by
bench/item_read.py (gunicorn -c gunicorn.conf.py bench.floor_app:app).
"""
from __future__ import annotations

import os
import threading
from datetime import timezone

import psycopg2
from flask import Flask, abort, jsonify

app = Flask("floor")
app.json.sort_keys = False
_local = threading.local()
_SQL = ("SELECT id, sku, name, description, price, stock, category_id, created_at, updated_at "
        "FROM items WHERE id = %s AND deleted_at IS NULL")


def _cursor():
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg2.connect(os.environ["DATABASE_URL"])
        conn.autocommit = True
    return conn.cursor()


def _utc(value):
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@app.get("/healthz")
def healthz():
    return {"data": {"status": "ok"}}


@app.get("/v1/items/<int:item_id>")
def get_item(item_id: int):
    with _cursor() as cur:
        cur.execute(_SQL, (item_id,))
        row = cur.fetchone()
    if row is None:
        abort(404)
    id_, sku, name, description, price, stock, category_id, created_at, updated_at = row
    return jsonify({"data": {"id": id_, "sku": sku, "name": name, "description": description, "price": price,
                             "stock": stock, "category_id": category_id, "created_at": _utc(created_at),
                             "updated_at": _utc(updated_at)}})
