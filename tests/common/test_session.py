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
