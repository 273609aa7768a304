"""One typed settings object, read once from the environment."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

ENVIRONMENTS = ("development", "test", "production")
SERVICES = ("user", "otp", "item", "transaction", "report")
DEFAULT_PORTS = {"user": 5001, "otp": 5002, "item": 5003, "transaction": 5004, "report": 5005}
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/toko"

# Secrets that are fine on a laptop and fatal in production.
_DEV_SECRET = "dev-insecure-secret-change-me"
_PLACEHOLDERS = ("", "change-me", "changeme", "secret", _DEV_SECRET)
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


class SettingsError(RuntimeError):
    """The environment describes a configuration toko refuses to run with."""


def _int(env: dict, name: str, default: int, *, lo: int = 0, hi: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = DEFAULT_DATABASE_URL
    # Least privilege: with db_roles on, each service connects to database_url as its own role toko_<service>
    # (created and granted by a migration), with an optional password from TOKO_<SERVICE>_DB_PASSWORD.
    db_roles: bool = False
    db_role_passwords: dict = field(default_factory=dict)
    # Where the report service runs its read-only aggregates (a replica); its jobs stay on the primary.
    report_database_url: str | None = None
    bind_host: str = "127.0.0.1"
    ports: dict = field(default_factory=lambda: dict(DEFAULT_PORTS))
    gateway_port: int = 8080
    # Past one machine: the hosts a front gateway balances over (host or host:port of each host's own
    # gateway; port default gateway_port), and its passive health check: a host that fails max_fails times
    # rests fail_timeout seconds. On the hosts, trusted_proxies are the front gateways' addresses (or CIDR
    # ranges) whose X-Real-IP names the client.
    gateway_hosts: tuple = ()
    trusted_proxies: tuple = ()
    gateway_max_fails: int = 1
    gateway_fail_timeout_seconds: int = 10
    # `toko pgbouncer`: transaction pooling on bind_host:pgbouncer_port to database_url's server (and to
    # report_database_url's, as database "<name>_replica"); at most pgbouncer_max_db_connections per server.
    pgbouncer_port: int = 6432
    pgbouncer_pool_size: int = 5
    pgbouncer_max_db_connections: int = 40
    secret_key: str = _DEV_SECRET
    otp_secret: str = _DEV_SECRET
    log_level: str = "INFO"
    # gunicorn: 5 services x workers x threads connections must fit under max_connections (100).
    workers: int = 2
    threads: int = 4
    graceful_timeout: int = 20
    db_pool_size: int = 4
    db_max_overflow: int = 0
    db_pool_timeout: int = 5
    db_connect_timeout: int = 3
    db_statement_timeout_ms: int = 15000
    max_body_bytes: int = 1024 * 1024
    # Exact origins (scheme://host[:port]) whose browser pages may call the API with credentials;
    # none: CORS off.
    cors_origins: tuple = ()
    # How long the edge (nginx) waits for a service's answer before a 504 envelope.
    edge_read_timeout: int = 60
    # Sessions
    session_idle_seconds: int = 30 * 60
    session_absolute_seconds: int = 12 * 3600
    session_touch_seconds: int = 60
    # Login throttles (failures within the sliding window): per username and client address, per address
    # across usernames, and per username across addresses (against a spread-out attack, far higher, so an
    # attacker's failures never lock the owner out from a clean address below it).
    login_max_failures: int = 5
    login_addr_max_failures: int = 20
    login_user_max_failures: int = 100
    login_window_seconds: int = 600
    argon2_profile: str = "owasp"
    # Password hashes running at once per worker process; as many logins again may wait this long for a
    # turn, any further one gets 503 at once.
    argon2_max_concurrent: int = 1
    argon2_wait_ms: int = 500
    # OTP
    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_requests_per_window: int = 5
    otp_request_window_seconds: int = 600
    # Delivery: 'log' writes messages to svc_otp_worker's log (codes only outside production); 'http' POSTs
    # them to an SMS/email gateway at otp_gateway_url. Failures retry with exponential backoff.
    otp_sender: str = "log"
    otp_gateway_url: str | None = None
    otp_delivery_max_attempts: int = 6
    otp_delivery_backoff_seconds: int = 2
    # Transactions
    otp_threshold: int = 1_000_000
    transaction_confirm_seconds: int = 15 * 60
    idempotency_ttl_seconds: int = 24 * 3600
    # How long svc_transaction_worker sleeps when it found nothing to expire.
    transaction_worker_poll_seconds: int = 1
    currency: str = "IDR"
    # Reports
    report_max_window_days: int = 366
    # A claimed job's lease; the worker renews it while computing, a dead worker's lease runs out.
    report_lease_seconds: int = 60
    report_max_attempts: int = 3
    # Test hook (TOKO_ENV=test only): hold each claimed job this long, so a test can kill the worker mid-job.
    report_test_delay_seconds: int = 0
    # Pagination
    default_page_size: int = 20
    max_page_size: int = 100

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def reveals_debug_codes(self) -> bool:
        return self.env in ("development", "test")

    def port_for(self, service: str) -> int:
        return self.ports[service]

    def database_url_for(self, service: str | None) -> str:
        """The URL a service connects with: its own role when db_roles is on, else the shared URL."""
        if not (service and self.db_roles):
            return self.database_url
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url).set(
            username=f"toko_{service}", password=self.db_role_passwords.get(service)
        )
        return url.render_as_string(hide_password=False)


_DATABASE_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://")


def _check_database_url(name: str, url: str | None) -> None:
    """A mistyped URL is reported as such, not later as a missing database driver."""
    if not url:
        return
    if not url.startswith(_DATABASE_SCHEMES):
        found = f"its scheme is {url.split('://', 1)[0] + '://'!r}" if "://" in url else "it has no scheme"
        raise SettingsError(f"{name} must be a PostgreSQL URL like postgresql://user@host:5432/toko; {found}")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        _ = make_url(url).port  # parses host and port: a bad one raises
    except (ArgumentError, ValueError):
        raise SettingsError(
            f"{name} is not a valid URL (postgresql://user[:password]@host[:port]/database)"
        ) from None


def load_settings(environ: dict | None = None) -> Settings:
    """Build and validate settings from an environment mapping (os.environ by default)."""
    env = dict(os.environ if environ is None else environ)
    name = env.get("TOKO_ENV", "development")
    if name not in ENVIRONMENTS:
        raise SettingsError(f"TOKO_ENV must be one of {', '.join(ENVIRONMENTS)}, got {name!r}")
    ports = {s: _int(env, f"TOKO_{s.upper()}_PORT", DEFAULT_PORTS[s], lo=1, hi=65535) for s in SERVICES}
    role_passwords = {
        s: env[f"TOKO_{s.upper()}_DB_PASSWORD"] for s in SERVICES if env.get(f"TOKO_{s.upper()}_DB_PASSWORD")
    }
    db_roles = env.get("TOKO_DB_ROLES", "off").lower()
    if db_roles not in ("on", "off", "1", "0", "true", "false"):
        raise SettingsError(f"TOKO_DB_ROLES must be on or off, got {db_roles!r}")
    secret_key = env.get("TOKO_SECRET_KEY", "")
    otp_secret = env.get("TOKO_OTP_SECRET", "")
    if name == "production":
        weak = [
            var
            for var, value in (("TOKO_SECRET_KEY", secret_key), ("TOKO_OTP_SECRET", otp_secret))
            if value.lower() in _PLACEHOLDERS or len(value) < 32
        ]
        if weak:
            raise SettingsError(
                f"{' and '.join(weak)} must each be set to a real secret of 32+ characters in production"
            )
    else:
        secret_key = secret_key or _DEV_SECRET
        otp_secret = otp_secret or _DEV_SECRET
    for var in ("DATABASE_URL", "TOKO_REPORT_DATABASE_URL"):
        _check_database_url(var, env.get(var))
    otp_sender = env.get("TOKO_OTP_SENDER", "log")
    otp_gateway_url = env.get("TOKO_OTP_GATEWAY_URL") or None
    if otp_sender not in ("log", "http"):
        raise SettingsError(f"TOKO_OTP_SENDER must be log or http, got {otp_sender!r}")
    if otp_sender == "http" and not (otp_gateway_url or "").startswith(("http://", "https://")):
        raise SettingsError("TOKO_OTP_SENDER=http needs TOKO_OTP_GATEWAY_URL (an http:// or https:// URL)")
    profile = env.get("TOKO_ARGON2_PROFILE", "owasp")
    if profile not in ("owasp", "fast") or (profile == "fast" and name != "test"):
        raise SettingsError("TOKO_ARGON2_PROFILE may be 'fast' only when TOKO_ENV=test")
    report_test_delay = _int(env, "TOKO_REPORT_TEST_DELAY_SECONDS", 0, lo=0, hi=3600)
    if report_test_delay and name != "test":
        raise SettingsError("TOKO_REPORT_TEST_DELAY_SECONDS may be set only when TOKO_ENV=test")
    cors_origins = tuple(env.get("TOKO_CORS_ORIGINS", "").replace(",", " ").split())
    for origin in cors_origins:
        if not _ORIGIN.match(origin):
            raise SettingsError(
                f"TOKO_CORS_ORIGINS lists exact origins such as https://shop.example "
                f"(scheme, host, optional port; no path, no wildcard), got {origin!r}"
            )
    return Settings(
        env=name,
        database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        db_roles=db_roles in ("on", "1", "true"),
        db_role_passwords=role_passwords,
        report_database_url=env.get("TOKO_REPORT_DATABASE_URL") or None,
        bind_host=env.get("TOKO_BIND_HOST", "127.0.0.1"),
        ports=ports,
        gateway_port=_int(env, "TOKO_GATEWAY_PORT", 8080, lo=1, hi=65535),
        gateway_hosts=tuple(h.strip() for h in env.get("TOKO_GATEWAY_HOSTS", "").split(",") if h.strip()),
        trusted_proxies=tuple(p.strip() for p in env.get("TOKO_TRUSTED_PROXIES", "").split(",") if p.strip()),
        gateway_max_fails=_int(env, "TOKO_GATEWAY_MAX_FAILS", 1, lo=0, hi=100),
        gateway_fail_timeout_seconds=_int(env, "TOKO_GATEWAY_FAIL_TIMEOUT_SECONDS", 10, lo=1, hi=3600),
        pgbouncer_port=_int(env, "TOKO_PGBOUNCER_PORT", 6432, lo=1, hi=65535),
        pgbouncer_pool_size=_int(env, "TOKO_PGBOUNCER_POOL_SIZE", 5, lo=1, hi=1000),
        pgbouncer_max_db_connections=_int(env, "TOKO_PGBOUNCER_MAX_DB_CONNECTIONS", 40, lo=1, hi=10000),
        secret_key=secret_key,
        otp_secret=otp_secret,
        log_level=env.get("TOKO_LOG_LEVEL", "INFO").upper(),
        workers=_int(env, "TOKO_WORKERS", 2, lo=1, hi=32),
        threads=_int(env, "TOKO_THREADS", 4, lo=1, hi=64),
        graceful_timeout=_int(env, "TOKO_GRACEFUL_TIMEOUT", 20, lo=1, hi=600),
        db_pool_size=_int(env, "TOKO_DB_POOL_SIZE", _int(env, "TOKO_THREADS", 4, lo=1, hi=64), lo=1, hi=64),
        db_max_overflow=_int(env, "TOKO_DB_MAX_OVERFLOW", 0, lo=0, hi=64),
        db_pool_timeout=_int(env, "TOKO_DB_POOL_TIMEOUT", 5, lo=1, hi=120),
        db_connect_timeout=_int(env, "TOKO_DB_CONNECT_TIMEOUT", 3, lo=1, hi=60),
        db_statement_timeout_ms=_int(env, "TOKO_DB_STATEMENT_TIMEOUT_MS", 15000, lo=0),
        max_body_bytes=_int(env, "TOKO_MAX_BODY_BYTES", 1024 * 1024, lo=1024),
        cors_origins=cors_origins,
        edge_read_timeout=_int(env, "TOKO_EDGE_READ_TIMEOUT", 60, lo=1, hi=3600),
        session_idle_seconds=_int(env, "TOKO_SESSION_IDLE_SECONDS", 30 * 60, lo=1),
        session_absolute_seconds=_int(env, "TOKO_SESSION_ABSOLUTE_SECONDS", 12 * 3600, lo=1),
        session_touch_seconds=_int(env, "TOKO_SESSION_TOUCH_SECONDS", 60, lo=0),
        login_max_failures=_int(env, "TOKO_LOGIN_MAX_FAILURES", 5, lo=1),
        login_addr_max_failures=_int(env, "TOKO_LOGIN_ADDR_MAX_FAILURES", 20, lo=1),
        login_user_max_failures=_int(env, "TOKO_LOGIN_USER_MAX_FAILURES", 100, lo=1),
        login_window_seconds=_int(env, "TOKO_LOGIN_WINDOW_SECONDS", 600, lo=1, hi=7 * 24 * 3600),
        argon2_profile=profile,
        argon2_max_concurrent=_int(env, "TOKO_ARGON2_MAX_CONCURRENT", 1, lo=1, hi=64),
        argon2_wait_ms=_int(env, "TOKO_ARGON2_WAIT_MS", 500, lo=0, hi=60000),
        otp_ttl_seconds=_int(env, "TOKO_OTP_TTL_SECONDS", 300, lo=1, hi=600),
        otp_max_attempts=_int(env, "TOKO_OTP_MAX_ATTEMPTS", 5, lo=1),
        otp_requests_per_window=_int(env, "TOKO_OTP_REQUESTS_PER_WINDOW", 5, lo=1),
        otp_request_window_seconds=_int(env, "TOKO_OTP_REQUEST_WINDOW_SECONDS", 600, lo=1),
        otp_sender=otp_sender,
        otp_gateway_url=otp_gateway_url,
        otp_delivery_max_attempts=_int(env, "TOKO_OTP_DELIVERY_MAX_ATTEMPTS", 6, lo=1, hi=100),
        otp_delivery_backoff_seconds=_int(env, "TOKO_OTP_DELIVERY_BACKOFF_SECONDS", 2, lo=1, hi=3600),
        otp_threshold=_int(env, "TOKO_OTP_THRESHOLD", 1_000_000, lo=0),
        transaction_confirm_seconds=_int(env, "TOKO_TRANSACTION_CONFIRM_SECONDS", 15 * 60, lo=1),
        idempotency_ttl_seconds=_int(env, "TOKO_IDEMPOTENCY_TTL_SECONDS", 24 * 3600, lo=1),
        transaction_worker_poll_seconds=_int(env, "TOKO_TRANSACTION_WORKER_POLL_SECONDS", 1, lo=1, hi=300),
        currency=env.get("TOKO_CURRENCY", "IDR"),
        report_max_window_days=_int(env, "TOKO_REPORT_MAX_WINDOW_DAYS", 366, lo=1),
        report_lease_seconds=_int(env, "TOKO_REPORT_LEASE_SECONDS", 60, lo=1, hi=24 * 3600),
        report_max_attempts=_int(env, "TOKO_REPORT_MAX_ATTEMPTS", 3, lo=1, hi=100),
        report_test_delay_seconds=report_test_delay,
        default_page_size=_int(env, "TOKO_DEFAULT_PAGE_SIZE", 20, lo=1, hi=100),
        max_page_size=_int(env, "TOKO_MAX_PAGE_SIZE", 100, lo=1, hi=1000),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
