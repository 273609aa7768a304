"""PgBouncer in transaction mode between the service hosts and PostgreSQL, configured from the settings.

Seen from the machine that runs it, DATABASE_URL is the primary and TOKO_REPORT_DATABASE_URL the replica;
the hosts then point their DATABASE_URL at bind_host:pgbouncer_port (same database name) and their
TOKO_REPORT_DATABASE_URL at database `<name>_replica` there. Each (database, role) pair gets its own pool
of pgbouncer_pool_size server connections, and no server gets more than pgbouncer_max_db_connections.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

from common.db.session import driver_url
from common.settings import SERVICES, Settings

# Transaction pooling hands each transaction whichever server connection is free, so nothing may live in
# a connection between transactions. The engine's on-connect `SET statement_timeout` would be such state;
# PgBouncer applies the same default itself, once per server connection, and only where neither the role
# nor the database sets one (the engine then sees a timeout in place and sets nothing).
_DEFAULT_TIMEOUT_QUERY = (
    "SELECT set_config($$statement_timeout$$, $${ms}$$, false) "
    "WHERE current_setting($$statement_timeout$$) = $$0$$"
)


def replica_database(settings: Settings) -> str:
    """The name under which PgBouncer serves the replica."""
    return f"{make_url(driver_url(settings.database_url)).database}_replica"


def _target(url: str, settings: Settings) -> str:
    u = make_url(driver_url(url))
    query = _DEFAULT_TIMEOUT_QUERY.format(ms=settings.db_statement_timeout_ms)
    return f"host={u.host or '127.0.0.1'} port={u.port or 5432} dbname={u.database} connect_query='{query}'"


def users(settings: Settings) -> dict[str, str]:
    """The roles clients may log in as, with their passwords ('' for none)."""
    owner = make_url(driver_url(settings.database_url))
    found = {owner.username or "postgres": owner.password or ""}
    if settings.db_roles:
        found.update({f"toko_{s}": settings.db_role_passwords.get(s, "") for s in SERVICES})
    if settings.report_database_url:
        replica = make_url(driver_url(settings.report_database_url))
        found.setdefault(replica.username or "postgres", replica.password or "")
    return found


def render_userlist(settings: Settings) -> str:
    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    return "".join(f"{quoted(name)} {quoted(password)}\n" for name, password in users(settings).items())


def render_config(settings: Settings, var_dir: Path, user: str | None = None) -> str:
    primary = make_url(driver_url(settings.database_url))
    databases = [f"{primary.database} = {_target(settings.database_url, settings)}"]
    if settings.report_database_url:
        databases.append(f"{replica_database(settings)} = {_target(settings.report_database_url, settings)}")
    owner = primary.username or "postgres"
    # Passwords anywhere mean real authentication (SCRAM, verified against the userlist); none means the
    # private network is trusted, as PostgreSQL's own pg_hba would be.
    auth = "scram-sha-256" if any(users(settings).values()) else "trust"
    nl = "\n"
    return f"""; Rendered by `toko pgbouncer` from toko/pgbouncer.py; do not edit.
[databases]
{nl.join(databases)}

[pgbouncer]
listen_addr = {settings.bind_host}
listen_port = {settings.pgbouncer_port}
unix_socket_dir =
pidfile = {var_dir}/pgbouncer.pid
auth_type = {auth}
auth_file = {var_dir}/userlist.txt
admin_users = {owner}
stats_users = {owner}
pool_mode = transaction
default_pool_size = {settings.pgbouncer_pool_size}
max_db_connections = {settings.pgbouncer_max_db_connections}
max_client_conn = 1000
; A request waits for a server connection as long as it would for one of its own pool's.
query_wait_timeout = {settings.db_pool_timeout}
server_connect_timeout = {settings.db_connect_timeout}
server_login_retry = 1
; Fewer logs per connection: thousands of short client connections are normal here.
log_connections = 0
log_disconnections = 0
{f"user = {user}" if user else ""}
"""


def exec_pgbouncer(settings: Settings, var_dir: Path, user: str | None = None) -> None:
    """Render the config and replace this process with PgBouncer in the foreground (as `user`, from root)."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if binary is None:
        raise SystemExit("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    var_dir.mkdir(parents=True, exist_ok=True)
    var_dir = var_dir.resolve()
    userlist = var_dir / "userlist.txt"
    userlist.touch(mode=0o600)
    userlist.write_text(render_userlist(settings))
    conf = var_dir / "pgbouncer.ini"
    conf.write_text(render_config(settings, var_dir, user))
    if user:
        for path in (var_dir, userlist, conf):
            shutil.chown(path, user)
    os.execv(binary, [binary, str(conf)])
