"""A throwaway PostgreSQL database per test run, built by the migrations like production."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

# Missing tools: a named skip, or with CI=true a failure (tests/tools.py).
pytest_plugins = ("tests.tools",)

# Settings are read once per process: fix the environment before anything imports them.
_BASE_URL = os.environ.get("TOKO_TEST_DATABASE_SERVER", "postgresql://postgres@127.0.0.1:5432")
TEST_DB = f"toko_test_{uuid.uuid4().hex[:10]}"
TEST_DATABASE_URL = f"{_BASE_URL}/{TEST_DB}"
os.environ.update({
    "DATABASE_URL": TEST_DATABASE_URL,
    "TOKO_ENV": "test",
    "TOKO_ARGON2_PROFILE": "fast",
    "TOKO_LOG_LEVEL": "WARNING",
})
for _var in [v for v in os.environ if v.startswith("TOKO_") and (v.endswith("_DATABASE_URL") or v == "TOKO_DB_ROLES")]:
    os.environ.pop(_var)

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from common.db.migrate import upgrade  # noqa: E402
from common.db.session import driver_url, get_engine  # noqa: E402


def _admin_engine():
    # No pool: a database restart (tests/e2e/test_operations.py) must not leave it a dead connection.
    return create_engine(driver_url(f"{_BASE_URL}/postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A database of its own, migrated to head like production, dropped afterwards; yields its URL."""
    url = f"{_BASE_URL}/{name}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _server_start_time():
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            return conn.execute(text("SELECT pg_postmaster_start_time()")).scalar_one()
    finally:
        admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def database_url():
    """The run's database (every test shares it)."""
    # The server is shared with other databases and other work: a run must never stop or restart it (a fault
    # test that needs a dead database starts a cluster of its own, tests/e2e/pgcluster.py).
    started = _server_start_time()
    try:
        with scratch_database(TEST_DB) as url:
            yield url
    finally:
        get_engine().dispose()
    assert _server_start_time() == started, "the test run restarted the PostgreSQL server it was given"


@pytest.fixture(autouse=True)
def no_failed_login_carried_over(database_url):
    """Each test starts with no failed login and no registration on record.

    Every test reaches the services from the same loopback address, and failed logins and registrations
    are committed whatever the test's transaction does: without this, the per-address throttles would carry
    one test's attempts into the next and answer its logins or registrations with 429.
    """
    if database_url is None:  # a run that brings its own servers (tests/cluster)
        return
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM login_failures"))
        conn.execute(text("DELETE FROM registrations"))


@pytest.fixture
def db_session(database_url):
    """A session whose every commit is a savepoint, rolled back when the test ends.

    SQLAlchemy's "Joining a Session into an External Transaction": the connection's outer transaction
    is the test's; `make_client` lends the same connection to the apps under test.
    """
    connection = get_engine().connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def environment(monkeypatch):
    """Set environment variables for this test's settings (read again at once); restored afterwards."""
    from common.settings import get_settings

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_variables
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def make_client(db_session):
    """An in-process test client for a service, working inside the test's rolled-back transaction."""

    def make(service: str):
        module = __import__(f"svc_{service}.app", fromlist=["create_app"])
        app = module.create_app()
        app.config["TESTING"] = True
        lend_connection(app, db_session)
        return app.test_client()

    return make


def lend_connection(app, db_session) -> None:
    """Lend the app the test's connection, inside the test's outer transaction.

    The app uses it in place of a pooled one and runs the code it runs in production, its transactions
    being savepoints: what a request commits stays inside the test, and is rolled back with it.
    """
    app.extensions["toko"]["connection"] = db_session.get_bind()

    # A real client only sees committed data: commit what the test set up (into the outer transaction)
    # before each request, or the request's own savepoint would be the first to hold it.
    @app.before_request
    def _commit_setup():
        db_session.commit()


@pytest.fixture
def admin(db_session):
    """An admin with a live session, inside the test's rolled-back transaction."""
    from tests.factories import make_account

    return make_account(db_session, "admin")


@pytest.fixture
def customer(db_session):
    """A customer with a live session, inside the test's rolled-back transaction."""
    from tests.factories import make_account

    return make_account(db_session)


def unique(prefix: str = "u") -> str:
    """A name no other test uses, for data that outlives a test (end-to-end runs commit)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def stack(database_url, tmp_path_factory):
    """Every service and worker running under supervisord against the run's database (one per run)."""
    from tests.e2e.stack import make_stack

    with make_stack(tmp_path_factory.mktemp("stack"), database_url) as s:
        yield s


def pytest_collection_modifyitems(items):
    # Under pytest-xdist (make test, --dist loadgroup) a group runs on one worker. Every test that runs a
    # stack (the run's one, or one of its own) is one group: at most two stacks run at a time, as in a run
    # without xdist, and their pools stay under the server's max_connections. Every other file is its own
    # group, so its module fixtures are built once.
    for item in items:
        path = item.nodeid.split("::")[0]
        uses_stack = "stack" in getattr(item, "fixturenames", ())
        if uses_stack:
            item.add_marker(pytest.mark.e2e)
        if uses_stack or path.startswith(("tests/e2e/", "tests/fuzz/")) or "/test_e2e" in path:
            item.add_marker(pytest.mark.xdist_group("stack"))
        else:
            item.add_marker(pytest.mark.xdist_group(path))


@pytest.fixture(scope="session", autouse=True)
def compiled_dumps_match_marshmallow():
    """Every response a service dumps in process is also dumped by marshmallow itself and must be equal.

    The services answer with dumps compiled from their schemas (common/web/fast/dump.py); this holds each one
    to the schema's own `dump`, key order and types included, across the whole suite.
    """
    import json

    from common.web.fast.dump import compiled_schemas

    for service in ("user", "otp", "item", "transaction", "report"):
        __import__(f"svc_{service}.app")

    def checking(schema, fast):
        def dump(obj, *args, **kwargs):
            got = fast(obj, *args, **kwargs)
            expected = type(schema).dump(schema, obj, *args, **kwargs)
            assert got == expected and json.dumps(got) == json.dumps(expected), (type(schema).__name__, got, expected)
            return got
        return dump

    originals = [(schema, schema.dump) for schema in compiled_schemas]
    for schema, fast in originals:
        schema.dump = checking(schema, fast)
    yield
    for schema, fast in originals:
        schema.dump = fast


@pytest.fixture(scope="session", autouse=True)
def compiled_loads_match_marshmallow():
    """Every body a compiled fast path accepts in process is also loaded by marshmallow and must be equal.

    A fast path (common/web/fast/load.py) answers only for input it vouches for; this holds each answer to the
    schema's own `load` across the whole suite, and counts how often it answered.
    """
    import marshmallow as ma

    from common.web.fast import load as compiled_load

    for service in ("user", "otp", "item", "transaction", "report"):
        __import__(f"svc_{service}.app")
    answered, mismatches = [], []

    def checking(schema, fast):
        def check(data):
            got = fast(data)
            if got is not compiled_load.REFER:
                name = type(schema).__name__
                try:
                    expected = type(schema).load(schema, data)
                except ma.ValidationError as error:
                    expected = error.messages
                if got != expected:
                    mismatches.append((name, data, got, expected))
                answered.append(name)
            return got
        return check

    loads = [schema.load for schema in compiled_load.compiled_load_schemas]
    fasts = [load.fast for load in loads]
    for schema, load in zip(compiled_load.compiled_load_schemas, loads):
        load.fast = checking(schema, load.fast)
    yield answered
    for load, fast in zip(loads, fasts):
        load.fast = fast
    assert not mismatches, mismatches

