"""The request's database session: opened on first use, closed at teardown."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from common.db.session import session_factory


def init_db(app: Flask, service: str) -> None:
    app.extensions.setdefault("toko", {})["session_factory"] = None
    app.extensions["toko"]["service"] = service

    @app.teardown_appcontext
    def _close(exc):  # noqa: ANN001
        session = g.pop("_db", None)
        if session is not None:
            session.close()


def db() -> Session:
    """This request's session. Business code takes it as an argument; views commit it."""
    session = g.get("_db")
    if session is None:
        ext = current_app.extensions["toko"]
        factory = ext.get("session_factory")
        if factory is None:
            factory = ext["session_factory"] = session_factory(ext["service"])
        session = g._db = factory()
    return session
