"""The connection budget: five services' pools, the workers and the operators fit under max_connections."""
from sqlalchemy import text

from common.db import get_engine
from common.settings import SERVICES, get_settings, load_settings

WORKER_PROGRAMS = 4  # svc_otp_worker, svc_transaction_worker, svc_report_worker, svc_report_projector
# A running report job holds a second connection for its lease heartbeat; the projector one to LISTEN on;
# one more for `toko` commands.
EXTRA = 1 + 1 + 1


def budget(settings) -> int:
    per_service = settings.workers * (settings.db_pool_size + settings.db_max_overflow)
    return len(SERVICES) * per_service + WORKER_PROGRAMS + EXTRA


def test_default_pools_fit_under_max_connections_even_during_a_graceful_reload(database_url):
    with get_engine().connect() as conn:
        max_connections = int(conn.execute(text("SHOW max_connections")).scalar())
    settings = load_settings({})
    assert settings.db_pool_size == settings.threads  # one connection per request thread, no more
    # During `signal HUP` old and new workers overlap: the services' share may double for a moment.
    assert budget(settings) + len(SERVICES) * settings.workers * settings.db_pool_size <= max_connections
    assert get_settings().db_max_overflow == 0
