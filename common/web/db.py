"""The request's database session: opened on first use, closed before the response leaves."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from flask import Flask, current_app, g
from sqlalchemy.engine import Connection, Engine
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
        # Normally the request ended in after_request; this catches a request that never got there.
        end_request(g._get_current_object())


def db() -> Session:
    """This request's session. Business code takes it as an argument; views commit it.

    When the request has already worked through `connection()` (the session lookup does), the session
    takes over that connection and its transaction: a request is one transaction, however it reached
    the database.
    """
    ctx = g._get_current_object()  # one proxy lookup: this runs several times on every request
    session = ctx.get("_db")
    if session is None:
        ext = current_app.extensions["toko"]
        factory = ext.get("session_factory") or ext.get("_sessions")
        if factory is None:
            factory = ext["_sessions"] = session_factory(ext["service"])
        conn = ctx.get("_conn")
        if conn is None:
            session = ctx._db = factory()
        else:
            session = ctx._db = factory(bind=conn, join_transaction_mode="control_fully")
    return session


def connection() -> Connection:
    """This request's connection, in this request's transaction, without an ORM session around it.

    For the statements that run on every authenticated request and every purchase: on a one-row
    statement the session's bookkeeping costs more than the statement. A session asked for later takes
    the transaction over (`db()`); `commit()` commits whichever holds it. A request that already has a
    session, or an app whose sessions a caller supplies (the tests), works through that session.
    """
    ctx = g._get_current_object()
    session = ctx.get("_db")
    ext = current_app.extensions["toko"]
    if session is not None or ext.get("session_factory") is not None:
        return db().connection()
    conn = ctx.get("_conn")
    if conn is None:
        conn = ctx._conn = _engine(ext).connect()
    if not conn.in_transaction():
        # A statement sent straight to the driver (common.db.session.run) does not begin SQLAlchemy's
        # transaction, and without one commit() would do nothing.
        conn.begin()
    return conn


def commit() -> None:
    """Commit this request's work, whether the session or the bare connection holds it."""
    ctx = g._get_current_object()
    session = ctx.get("_db")
    if session is not None:
        session.commit()
    elif (conn := ctx.get("_conn")) is not None:
        conn.commit()


def _engine(ext: dict) -> Engine:
    engine = ext.get("_engine")
    if engine is None:
        engine = ext["_engine"] = get_engine(ext["service"])
    return engine


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for a public read of one statement, outside any transaction.

    A statement is atomic on its own, so the read runs in autocommit: no BEGIN or ROLLBACK round trip,
    and no ORM session around it (on a one-row read, the session's bookkeeping costs more than the
    statement). psycopg2's own autocommit flag is flipped, not SQLAlchemy's isolation level, whose reset
    costs a round trip; it is flipped back before the connection returns to the pool. A request that
    already has a session or a connection, or an app whose sessions a caller supplies (the tests), reads
    through that request's connection and transaction instead.
    """
    ext = current_app.extensions["toko"]
    ctx = g._get_current_object()
    if ctx.get("_db") is not None or ctx.get("_conn") is not None or ext.get("session_factory") is not None:
        yield connection()
        return
    engine = _engine(ext)
    ctx._engine = engine  # the pool gauges are read after the response
    conn = engine.connect()
    try:
        dbapi: Any = conn.connection.dbapi_connection  # checked out: never None here
        dbapi.autocommit = True
        try:
            yield conn
        finally:
            try:
                dbapi.autocommit = False
            except Exception:
                # Whatever broke it, an autocommit connection must never go back to the pool.
                conn.invalidate()
    finally:
        conn.close()


def end_request(ctx) -> tuple[Engine | None, SQLAlchemyError | None]:
    """End the request's session and connection; return the engine it used (for the pool gauges) and
    the failure ending them met, if any (returned, not raised).

    Ending rolls back an open transaction, which needs the connection: when the database dropped it
    while the view ran (a failover, a pooler restart, a terminated backend), the rollback fails after
    the view's answer was made. The caller turns that into a 503 instead of letting it escape the
    request as the WSGI server's HTML 500.
    """
    session, conn = ctx.pop("_db", None), ctx.pop("_conn", None)
    if session is None and conn is None:
        return ctx.get("_engine"), None
    engine = session.get_bind().engine if session is not None else conn.engine
    failure = None
    # The session first: it may hold the connection's transaction, which it rolls back; then the connection.
    for holder in (session, conn):
        if holder is None:
            continue
        try:
            holder.close()
        except SQLAlchemyError as exc:
            log.warning(
                "database connection lost while ending the request: %s",
                type(getattr(exc, "orig", None) or exc).__name__,
            )
            try:
                holder.invalidate()  # the pool must not hand that connection out again
            except SQLAlchemyError:
                pass
            failure = failure or exc
    return engine, failure
