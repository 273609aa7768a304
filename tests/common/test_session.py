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
