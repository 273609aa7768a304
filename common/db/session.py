"""Engine per process, session per unit of work."""

from __future__ import annotations

import os
import select
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects.postgresql.psycopg2 import dialect as _psycopg2_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from common.errors import ApiError
from common.settings import get_settings

T = TypeVar("T")

_lock = threading.Lock()
_engines: dict[tuple[int, str, str], Engine] = {}


def driver_url(url: str) -> str:
    """Pin the psycopg2 driver: SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql:// URL."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int | None = None, application_name: str = "toko") -> Engine:
    """An engine with toko's pool and timeouts."""
    s = get_settings()
    engine = create_engine(
        driver_url(url),
        pool_size=pool_size or s.db_pool_size,
        max_overflow=s.db_max_overflow,
        pool_timeout=s.db_pool_timeout,
        # No pre-ping round trip per checkout: _drop_dead_connections finds them without one.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"connect_timeout": s.db_connect_timeout, "application_name": application_name},
    )
    event.listen(engine, "connect", _default_statement_timeout)
    event.listen(engine, "checkout", _drop_dead_connections)
    return engine


def _default_statement_timeout(dbapi_connection, record) -> None:
    """A stuck statement must not hold a worker thread forever: apply TOKO_DB_STATEMENT_TIMEOUT_MS.

    Only where neither the role nor the database sets one, so an operator's
    `ALTER ROLE toko_report IN DATABASE toko SET statement_timeout = ...` still governs that service
    (a startup option would override it). Runs once per new connection, not per request.
    """
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        if cursor.fetchone()[0] == "0":
            cursor.execute("SET statement_timeout = %s", (get_settings().db_statement_timeout_ms,))
    dbapi_connection.commit()


def _drop_dead_connections(dbapi_connection, record, proxy) -> None:
    """Refuse a pooled connection the server has closed, without a round trip.

    An idle connection has nothing to read; when the server restarts or kills the backend it sends a
    FATAL notice and closes the socket, which makes it readable. The pool then discards the connection
    and checks out (or opens) another, so the first request after a database restart succeeds.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("connection closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")


def get_engine(service: str | None = None) -> Engine:
    """The engine of this process for a service (created on first use, re-created after fork)."""
    return cached_engine(get_settings().database_url_for(service), f"toko-{service or 'cli'}")


def cached_engine(url: str, application_name: str, *, own_pool: bool = False) -> Engine:
    """This process's engine for `url`, made once however many threads ask at the same time.

    Callers of the same URL share one engine (named by the first); `own_pool` gives this
    application_name an engine of its own, so its connections never compete with the requests'.
    """
    # Per process: gunicorn forks, and connections must not cross a fork.
    key = (os.getpid(), url, application_name if own_pool else "")
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = make_engine(url, application_name=application_name)
                _engines[key] = engine
    return engine


def dispose_engines() -> None:
    """Forget connections inherited from a parent process (call after fork)."""
    for key, engine in list(_engines.items()):
        engine.dispose(close=False)
        _engines.pop(key, None)


def session_factory(service: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(service), expire_on_commit=False)


@contextmanager
def session_scope(service: str | None = None) -> Iterator[Session]:
    """A session for scripts and workers: commit on success, roll back on error, always close."""
    session = session_factory(service)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def committed(session: Session, work: Callable[[], T]) -> T:
    """Run work and commit it, also when it refuses the request: what it counted must stay counted.

    For the few writes a failed request must keep (a failed login, a wrong OTP code). A refusal is an
    ApiError raised after the commit; any other exception (a database fault) commits nothing.
    """
    try:
        result = work()
    except ApiError:
        session.commit()
        raise
    session.commit()
    return result


def driver_sql(statement) -> str:
    """A Core statement compiled once into psycopg2's SQL text (%(name)s parameters), for `run`."""
    return str(statement.compile(dialect=_psycopg2_dialect()))


def run(connection: Connection, sql: str, params: dict):
    """Execute `sql` on the connection's DBAPI connection, in its transaction; returns the cursor.

    For the few statements every request runs: SQLAlchemy's execution path costs several times the
    driver's own work for a one-row statement. A failure is handled as SQLAlchemy handles its own:
    wrapped in its exception classes (the error handlers' IntegrityError, OperationalError, ...) and,
    when the connection was lost, the connection invalidated. The caller closes the cursor.
    """
    dbapi: Any = connection.connection.dbapi_connection  # checked out: never None here
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql, params)
    except Exception as error:
        connection._handle_dbapi_exception(error, sql, params, cursor, None)
    return cursor


__all__ = [
    "committed",
    "run",
    "driver_sql",
    "get_engine",
    "cached_engine",
    "dispose_engines",
    "session_factory",
    "session_scope",
    "make_engine",
    "driver_url",
]
