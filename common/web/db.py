"""The request's database session: opened on first use, closed before the response leaves."""
from __future__ import annotations

import logging

from flask import Flask, current_app, g
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from common.db.session import session_factory

log = logging.getLogger("toko.db")


def init_db(app: Flask, service: str) -> None:
    app.extensions.setdefault("toko", {})["session_factory"] = None
    app.extensions["toko"]["service"] = service

    @app.teardown_appcontext
    def _close(exc):  # noqa: ANN001
        # Normally close_session already ran in after_request; this catches a request that never got there.
        close_session()


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


def close_session() -> SQLAlchemyError | None:
    """End this request's session (rolling back what was not committed); return, not raise, a failure.

    Closing rolls back an open transaction, which needs the connection: when the database dropped it
    while the view ran (a failover, a pooler restart, a terminated backend), the rollback fails after
    the view's answer was made. The caller turns that into a 503 instead of letting it escape the
    request as the WSGI server's HTML 500.
    """
    session = g.pop("_db", None)
    if session is None:
        return None
    try:
        session.close()
    except SQLAlchemyError as exc:
        log.warning("database connection lost while ending the request: %s",
                    type(getattr(exc, "orig", None) or exc).__name__)
        try:
            session.invalidate()  # the pool must not hand that connection out again
        except SQLAlchemyError:
            pass
        return exc
    return None
