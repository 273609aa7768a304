"""The request's database session: opened on first use, closed before the response leaves."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from flask import Flask, current_app, g
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from common.db.session import get_engine, session_factory

log = logging.getLogger("toko.db")


def init_db(app: Flask, service: str) -> None:
    # A caller (the tests) may put a session factory of its own here; otherwise the service's is made on
    # first use.
    app.extensions.setdefault("toko", {})["session_factory"] = None
    app.extensions["toko"]["service"] = service

    @app.teardown_appcontext
    def _close(exc):  # noqa: ANN001
        # Normally close_session already ran in after_request; this catches a request that never got there.
        close_session()


def db() -> Session:
    """This request's session. Business code takes it as an argument; views commit it."""
    ctx = g._get_current_object()  # one proxy lookup: this runs several times on every request
    session = getattr(ctx, "_db", None)
    if session is None:
        ext = current_app.extensions["toko"]
        factory = ext.get("session_factory") or ext.get("_sessions")
        if factory is None:
            factory = ext["_sessions"] = session_factory(ext["service"])
        session = ctx._db = factory()
    return session


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for a public read of one statement, outside any transaction.

    A statement is atomic on its own, so the read runs in autocommit: no BEGIN or ROLLBACK round trip,
    and no ORM session around it (on a one-row read, the session's bookkeeping costs more than the
    statement). psycopg2's own autocommit flag is flipped, not SQLAlchemy's isolation level, whose reset
    costs a round trip; it is flipped back before the connection returns to the pool. A request that
    already has a session, or an app whose sessions a caller supplies (the tests), reads through that
    session's connection and transaction instead.
    """
    ext = current_app.extensions["toko"]
    ctx = g._get_current_object()
    if ctx.get("_db") is not None or ext.get("session_factory") is not None:
        yield db().connection()
        return
    engine = ext.get("_engine")
    if engine is None:
        engine = ext["_engine"] = get_engine(ext["service"])
    ctx._engine = engine  # the pool gauges are read after the response
    connection = engine.connect()
    try:
        dbapi = connection.connection.dbapi_connection
        dbapi.autocommit = True
        try:
            yield connection
        finally:
            try:
                dbapi.autocommit = False
            except Exception:
                # Whatever broke it, an autocommit connection must never go back to the pool.
                connection.invalidate()
    finally:
        connection.close()


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
        log.warning(
            "database connection lost while ending the request: %s",
            type(getattr(exc, "orig", None) or exc).__name__,
        )
        try:
            session.invalidate()  # the pool must not hand that connection out again
        except SQLAlchemyError:
            pass
        return exc
    return None
