"""The pool drops connections the server has closed, without a round trip per checkout."""
from sqlalchemy import text

from common.db.session import make_engine
from common.settings import get_settings


def test_a_killed_backend_is_replaced_on_the_next_checkout(database_url):
    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with make_engine(get_settings().database_url, pool_size=1).connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first_pid})
            killer.commit()
        import time
        deadline = time.monotonic() + 5
        with engine.connect() as conn:  # the same pooled connection would fail here
            second_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second_pid != first_pid and time.monotonic() < deadline
    finally:
        engine.dispose()
