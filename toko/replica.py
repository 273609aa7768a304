"""A streaming replica for the report aggregates (TOKO_REPORT_DATABASE_URL), configured from the settings.

The replica itself is made the PostgreSQL way (`pg_basebackup -R` from the primary); these are the
settings toko needs on top of that.
"""

from __future__ import annotations

from common.settings import Settings


def render_standby_conf(settings: Settings, port: int) -> str:
    """postgresql.conf lines for a standby that serves report aggregates."""
    # A long aggregate and the replay of the primary's vacuum conflict: with feedback the primary keeps the
    # rows the aggregate still reads, and replay waits as long as the statement may run before cancelling it.
    delay = settings.db_statement_timeout_ms or -1
    return f"""# Rendered from toko/replica.py; do not edit.
port = {port}
hot_standby = on
hot_standby_feedback = on
max_standby_streaming_delay = {delay}
"""


def render_primary_conf(settings: Settings, port: int, max_connections: int) -> str:
    """postgresql.conf lines for a primary behind PgBouncer that streams to replicas."""
    if max_connections <= settings.pgbouncer_max_db_connections:
        raise ValueError(
            f"max_connections {max_connections} leaves no room above PgBouncer's "
            f"{settings.pgbouncer_max_db_connections} (TOKO_PGBOUNCER_MAX_DB_CONNECTIONS)"
        )
    return f"""# Rendered from toko/replica.py; do not edit.
port = {port}
max_connections = {max_connections}
wal_level = replica
max_wal_senders = 5
wal_keep_size = 64MB
"""
