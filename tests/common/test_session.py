"""The pool drops connections the server has closed, without a round trip per checkout."""
import time

from sqlalchemy import text

from common.db.session import make_engine
from common.settings import get_settings


def test_a_killed_backend_is_replaced_on_the_next_checkout(database_url):
    engine = make_engine(get_settings().database_url, pool_size=1)
    killer = make_engine(get_settings().database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first_pid})
            # Termination is asynchronous: wait until the backend has really gone.
            deadline = time.monotonic() + 10
            while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": first_pid}).scalar():
                assert time.monotonic() < deadline
                time.sleep(0.05)
                conn.rollback()
        with engine.connect() as conn:  # the same pooled connection would fail here
            second_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second_pid != first_pid
    finally:
        engine.dispose()
        killer.dispose()


def test_statement_timeout_defaults_from_settings_but_a_role_setting_wins(database_url):
    from sqlalchemy.engine import make_url

    from common.settings import load_settings

    db_name = make_url(database_url).database
    roles = load_settings({"DATABASE_URL": database_url, "TOKO_DB_ROLES": "on"})
    owner = make_engine(database_url)
    report = make_engine(roles.database_url_for("report"))
    item = make_engine(roles.database_url_for("item"))
    try:
        with owner.connect() as conn:
            conn.execute(text(f"ALTER ROLE toko_report IN DATABASE \"{db_name}\" SET statement_timeout = '1234ms'"))
            conn.commit()
        with report.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1234ms"
        with item.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "15s"
    finally:
        with owner.connect() as conn:
            conn.execute(text(f'ALTER ROLE toko_report IN DATABASE "{db_name}" RESET statement_timeout'))
            conn.commit()
        for engine in (owner, report, item):
            engine.dispose()


def test_a_statement_run_through_the_driver_fails_as_sqlalchemy_would(database_url):
    import pytest
    from sqlalchemy.exc import DataError, IntegrityError

    from common.db.session import run

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            with pytest.raises(DataError):
                run(conn, "SELECT 1 / %(zero)s", {"zero": 0})
            conn.rollback()
            run(conn, "CREATE TEMP TABLE t (n int PRIMARY KEY)", {}).close()
            run(conn, "INSERT INTO t VALUES (%(n)s)", {"n": 1}).close()
            with pytest.raises(IntegrityError) as duplicate:
                run(conn, "INSERT INTO t VALUES (%(n)s)", {"n": 1})
            assert duplicate.value.orig.diag.constraint_name == "t_pkey"
    finally:
        engine.dispose()


def test_a_connection_lost_under_the_driver_is_invalidated_and_reported_as_operational(database_url):
    import pytest
    from sqlalchemy.exc import OperationalError

    from common.db.session import run

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            conn.commit()
            with pytest.raises(OperationalError) as lost:
                run(conn, "SELECT pg_terminate_backend(pg_backend_pid())", {}).close()
                run(conn, "SELECT 1", {})
            assert lost.value.connection_invalidated
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
