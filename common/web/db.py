"""The request's database: one holder per request, opened on first use, ended before the response leaves."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

from flask import Flask, current_app, g
from sqlalchemy.engine import Connection, Engine, Transaction
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from common.db.session import get_engine

log = logging.getLogger("toko.db")

# Every request session is bound to its holder's connection, so the factory needs no engine of its own.
_sessions = sessionmaker(expire_on_commit=False)


class RequestDatabase:
    """One request's way into the database: a connection, the transaction on it, and a session on demand.

    The connection is a pooled one, or the one the app was lent (`init_db`: the tests lend a connection in
    their outer transaction). Either way the same code runs; only the request's transaction differs, a
    transaction on a pooled connection and a SAVEPOINT on a lent one, so a test's commits stay inside the
    test. A request is one transaction however it reached the database: the session, asked for after
    the bare connection, takes that transaction over.
    """

    __slots__ = ("engine", "_lent", "_conn", "_txn", "_session")

    def __init__(self, engine: Engine, lent: Connection | None):
        self.engine = engine
        self._lent = lent
        self._conn: Connection | None = None
        self._txn: Transaction | None = None
        self._session: Session | None = None

    def connection(self) -> Connection:
        """The request's connection, in the request's transaction (begun here when none is open)."""
        if self._session is not None:
            return self._session.connection()
        conn = self._conn
        if conn is None:
            conn = self._conn = self._lent if self._lent is not None else self.engine.connect()
        # A statement sent straight to the driver (common.db.session.run) begins no SQLAlchemy
        # transaction, and without one commit() would do nothing: begin it here.
        if self._txn is None or not self._txn.is_active:
            self._txn = conn.begin_nested() if self._lent is not None else conn.begin()
        return conn

    def session(self) -> Session:
        """The request's ORM session, on the request's connection and in its transaction."""
        session = self._session
        if session is None:
            conn = self.connection()
            session = _sessions(bind=conn, join_transaction_mode="control_fully")
            session.connection()  # adopt the open transaction now (no statement is sent)
            # Its later transactions begin on the connection itself: a pooled one is then outside any
            # transaction and begins one; a lent one is inside the test's, and gets a savepoint.
            session.join_transaction_mode = "create_savepoint"
            self._session = session
        return session

    def commit(self) -> None:
        """Commit the request's work, whether the session or the bare connection holds it."""
        if self._session is not None:
            self._session.commit()
        elif self._txn is not None and self._txn.is_active:
            self._txn.commit()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for a public read of one statement, outside any transaction.

        A statement is atomic on its own, so the read runs in autocommit: no BEGIN or ROLLBACK round
        trip. This is the one place psycopg2's autocommit flag is flipped (not SQLAlchemy's isolation
        level, whose reset costs a round trip); it is flipped back before the connection returns to the
        pool. A request that already works in a transaction, or a lent connection (inside a test's
        transaction), reads through the request's connection and transaction instead.
        """
        if self._conn is not None or self._lent is not None:
            yield self.connection()
            return
        conn = self.engine.connect()
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

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """An ORM session for a public read, on `read()`'s terms (the request's session where it has one)."""
        if self._conn is not None or self._lent is not None:
            yield self.session()
            return
        with self.read() as conn, _sessions(bind=conn) as session:
            yield session

    def end(self) -> SQLAlchemyError | None:
        """Roll back what was not committed and give the connection back; the failure met, if any.

        Ending needs the connection: when the database dropped it while the view ran (a failover, a
        pooler restart, a terminated backend), the rollback fails after the view's answer was made.
        """
        failure = None
        # The session first: it may hold the connection's transaction, which it rolls back; then the
        # connection's own (a lent connection stays open: its owner closes it).
        if self._session is not None:
            failure = _ending(self._session.close, self._session.invalidate)
        if self._conn is not None:
            lost = _ending(self._end_connection, self._conn.invalidate)
            failure = failure or lost
        return failure

    def _end_connection(self) -> None:
        assert self._conn is not None
        if self._lent is not None:
            if self._txn is not None and self._txn.is_active:
                self._txn.rollback()
        else:
            self._conn.close()  # rolls back an open transaction


def _ending(step, invalidate) -> SQLAlchemyError | None:
    try:
        step()
    except SQLAlchemyError as exc:
        log.warning(
            "database connection lost while ending the request: %s",
            type(getattr(exc, "orig", None) or exc).__name__,
        )
        try:
            invalidate()  # the pool must not hand that connection out again
        except SQLAlchemyError:
            pass
        return exc
    return None


def init_db(app: Flask, service: str) -> None:
    ext = app.extensions.setdefault("toko", {})
    ext["service"] = service
    # A connection a caller lends (the tests: one inside their outer transaction), used in place of a
    # pooled one; otherwise the service's engine is made on first use.
    ext["connection"] = None

    @app.teardown_appcontext
    def _close(exc):  # noqa: ANN001
        # Normally the request ended in after_request; this catches a request that never got there.
        end_request(g._get_current_object())


def holder() -> RequestDatabase:
    """This request's database holder (made on first use)."""
    ctx = g._get_current_object()  # one proxy lookup: this runs several times on every request
    found = ctx.get("_db")
    if found is None:
        ext = current_app.extensions["toko"]
        lent = ext["connection"]
        if lent is not None:
            engine = lent.engine
        elif (engine := ext.get("_engine")) is None:
            engine = ext["_engine"] = get_engine(ext["service"])
        found = ctx._db = RequestDatabase(engine, lent)
    return found


def db() -> Session:
    """This request's session. Business code takes it as an argument; views commit with `commit()`."""
    return holder().session()


def connection() -> Connection:
    """This request's connection, in this request's transaction, without an ORM session around it.

    For the statements that run on every authenticated request and every purchase: on a one-row
    statement the session's bookkeeping costs more than the statement.
    """
    return holder().connection()


def commit() -> None:
    """Commit this request's work."""
    holder().commit()


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for a public read of one statement, in autocommit (`RequestDatabase.read`)."""
    with holder().read() as conn:
        yield conn


@contextmanager
def read_session() -> Iterator[Session]:
    """A session for a public read, in autocommit (`RequestDatabase.read_session`)."""
    with holder().read_session() as session:
        yield session


def end_request(ctx) -> tuple[Engine | None, SQLAlchemyError | None]:
    """End the request's database work; return the engine it used (for the pool gauges) and the failure
    ending it met, if any (returned, not raised: the caller answers 503 instead of the WSGI server's 500).
    """
    found = ctx.pop("_db", None)
    if found is None:
        return None, None
    return found.engine, found.end()
