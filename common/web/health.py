"""/healthz and /readyz, the same on every service."""

from __future__ import annotations

import marshmallow as ma
from flask import current_app
from sqlalchemy import text

from common.db.migrate import current_revision, head_revision
from common.errors import ServiceUnavailable
from common.web.api import Blueprint
from common.web.db import db
from common.web.schemas import envelope

blp = Blueprint("meta", __name__, description="Liveness and readiness probes.")


class HealthSchema(ma.Schema):
    service = ma.fields.String(required=True)
    status = ma.fields.String(required=True)


class ReadySchema(HealthSchema):
    database = ma.fields.String(required=True)
    revision = ma.fields.String(required=True)


@blp.route("/healthz", methods=["GET"])
@blp.response(200, envelope(HealthSchema))
def healthz():
    """The process serves."""
    return {"data": {"service": current_app.extensions["toko"]["service"], "status": "ok"}}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, envelope(ReadySchema))
@blp.errors(503)
def readyz():
    """The database answers and its schema is at the code's migration head."""
    session = db()
    session.execute(text("SELECT 1"))
    revision = current_revision(session.connection())
    session.rollback()
    head = current_app.extensions["toko"].setdefault("head_revision", head_revision())
    if revision != head:
        raise ServiceUnavailable(
            f"The database schema is at {revision}, the code expects {head}: run `toko migrate`.",
            code="schema_out_of_date",
            details={"database_revision": revision, "code_revision": head},
        )
    return {
        "data": {
            "service": current_app.extensions["toko"]["service"],
            "status": "ready",
            "database": "ok",
            "revision": revision,
        }
    }
