"""One typed settings object, read once from the environment.

Every setting is declared once, below: its type, its default, its bounds or choices, and so its
environment variable (TOKO_<NAME>, DATABASE_URL as is). `load_settings` reads them all and reports every
problem at once, one line each naming its variable, then the rules across settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

ENVIRONMENTS = ("development", "test", "production")
SERVICES = ("user", "otp", "item", "transaction", "report")
DEFAULT_PORTS = {"user": 5001, "otp": 5002, "item": 5003, "transaction": 5004, "report": 5005}
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/toko"
ENV_PREFIX = "TOKO_"

# Secrets that are fine on a laptop and fatal in production.
_DEV_SECRET = "dev-insecure-secret-change-me"
_PLACEHOLDERS = ("", "change-me", "changeme", "secret", _DEV_SECRET)
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_DATABASE_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://")
_SWITCH = {"on": True, "1": True, "true": True, "off": False, "0": False, "false": False}


class SettingsError(RuntimeError):
    """The environment describes a configuration toko refuses to run with; one problem per line."""

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# -- how a variable's text becomes a value (a ValueError's message completes "<VARIABLE> ...") --------


def _integer(lo: int | None, hi: int | None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                raise ValueError(f"must be between {lo} and {hi}, got {value}")
            raise ValueError(
                f"must be at least {lo}, got {value}" if hi is None else f"must be at most {hi}, got {value}"
            )
        return value

    return parse


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    said = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)

    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be {said}, got {raw!r}")
        return raw

    return parse


def _switch(raw: str) -> bool:
    if raw.lower() not in _SWITCH:
        raise ValueError(f"must be on or off, got {raw.lower()!r}")
    return _SWITCH[raw.lower()]


def _words(raw: str) -> tuple[str, ...]:
    """A list is one variable of comma- or space-separated words."""
    return tuple(word for word in re.split(r"[\s,]+", raw) if word)


def _postgresql_url(url: str) -> str:
    """A mistyped URL is reported as such, not later as a missing database driver."""
    if not url.startswith(_DATABASE_SCHEMES):
        found = f"its scheme is {url.split('://', 1)[0] + '://'!r}" if "://" in url else "it has no scheme"
        raise ValueError(f"must be a PostgreSQL URL like postgresql://user@host:5432/toko; {found}")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        _ = make_url(url).port  # parses host and port: a bad one raises
    except (ArgumentError, ValueError):
        raise ValueError("is not a valid URL (postgresql://user[:password]@host[:port]/database)") from None
    return url


def _exact_origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    wrong = [origin for origin in origins if not _ORIGIN.fullmatch(origin)]
    if wrong:
        raise ValueError(
            "lists exact origins such as https://shop.example "
            f"(scheme, host, optional port; no path, no wildcard), got {', '.join(map(repr, wrong))}"
        )
    return origins


# -- the declarations' vocabulary ------------------------------------------------------------------------


def _setting(default: Any, parse: Callable[[str], Any], *, env: str | None = None, shown: bool = True) -> Any:
    return field(default=default, repr=shown, metadata={"parse": parse, "env": env})


def number(default: int | None, *, lo: int | None = None, hi: int | None = None) -> Any:
    return _setting(default, _integer(lo, hi))


def text(default: str | None, *, env: str | None = None, check: Callable[[str], str] | None = None) -> Any:
    return _setting(default, check or str, env=env)


def secret(default: str | None) -> Any:
    """Text kept out of the settings' repr (and so out of logs and tracebacks)."""
    return _setting(default, str, shown=False)


def flag(default: bool) -> Any:
    return _setting(default, _switch)


def choice(*choices: str) -> Any:
    """One of `choices`; the first is the default."""
    return _setting(choices[0], _one_of(choices))


def words(*, check: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None) -> Any:
    return _setting((), (lambda raw: check(_words(raw))) if check else _words)


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once."""

    env: str = choice(*ENVIRONMENTS)
    database_url: str = text(DEFAULT_DATABASE_URL, env="DATABASE_URL", check=_postgresql_url)
    # Least privilege: with db_roles on, each service connects to database_url as its own role toko_<service>
    # (created and granted by a migration), with an optional password from TOKO_<SERVICE>_DB_PASSWORD.
    db_roles: bool = flag(False)
    user_db_password: str | None = secret(None)
    otp_db_password: str | None = secret(None)
    item_db_password: str | None = secret(None)
    transaction_db_password: str | None = secret(None)
    report_db_password: str | None = secret(None)
    # Where the report service runs its read-only aggregates (a replica); its jobs stay on the primary.
    report_database_url: str | None = text(None, check=_postgresql_url)
    bind_host: str = text("127.0.0.1")
    # The folder of the services' unix sockets (gunicorn binds them, nginx proxies to them), relative to
    # supervisor's directory unless absolute.
    run_dir: str = text("var/run")
    user_port: int = number(DEFAULT_PORTS["user"], lo=1, hi=65535)
    otp_port: int = number(DEFAULT_PORTS["otp"], lo=1, hi=65535)
    item_port: int = number(DEFAULT_PORTS["item"], lo=1, hi=65535)
    transaction_port: int = number(DEFAULT_PORTS["transaction"], lo=1, hi=65535)
    report_port: int = number(DEFAULT_PORTS["report"], lo=1, hi=65535)
    gateway_port: int = number(8080, lo=1, hi=65535)
    # Past one machine: the hosts a front gateway balances over (host or host:port of each host's own
    # gateway; port default gateway_port), and its passive health check: a host that fails max_fails times
    # rests fail_timeout seconds. On the hosts, trusted_proxies are the front gateways' addresses (or CIDR
    # ranges) whose X-Real-IP names the client.
    gateway_hosts: tuple[str, ...] = words()
    trusted_proxies: tuple[str, ...] = words()
    gateway_max_fails: int = number(1, lo=0, hi=100)
    gateway_fail_timeout_seconds: int = number(10, lo=1, hi=3600)
    # `toko pgbouncer`: transaction pooling on bind_host:pgbouncer_port to database_url's server (and to
    # report_database_url's, as database "<name>_replica"); at most pgbouncer_max_db_connections per server.
    pgbouncer_port: int = number(6432, lo=1, hi=65535)
    pgbouncer_pool_size: int = number(5, lo=1, hi=1000)
    pgbouncer_max_db_connections: int = number(40, lo=1, hi=10000)
    # Outside production an unset secret is the well-known development one; production refuses it.
    secret_key: str = secret(_DEV_SECRET)
    otp_secret: str = secret(_DEV_SECRET)
    log_level: str = text("INFO", check=str.upper)
    # gunicorn: 5 services x workers x threads connections must fit under max_connections (100).
    workers: int = number(2, lo=1, hi=32)
    threads: int = number(4, lo=1, hi=64)
    graceful_timeout: int = number(20, lo=1, hi=600)
    # Unset: one connection per thread, so no request thread waits for another's connection.
    db_pool_size: int = number(None, lo=1, hi=64)
    db_max_overflow: int = number(0, lo=0, hi=64)
    db_pool_timeout: int = number(5, lo=1, hi=120)
    db_connect_timeout: int = number(3, lo=1, hi=60)
    db_statement_timeout_ms: int = number(15000, lo=0)
    max_body_bytes: int = number(1024 * 1024, lo=1024)
    # Exact origins (scheme://host[:port]) whose browser pages may call the API with credentials;
    # none: CORS off.
    cors_origins: tuple[str, ...] = words(check=_exact_origins)
    # How long the edge (nginx) waits for a service's answer before a 504 envelope.
    edge_read_timeout: int = number(60, lo=1, hi=3600)
    # The edge answers anonymous catalogue reads from a cache at most a second old (off: every read
    # reaches the item service).
    edge_cache: bool = flag(True)
    edge_cache_max_mb: int = number(64, lo=1, hi=10_000)
    # Sessions
    session_idle_seconds: int = number(30 * 60, lo=1)
    session_absolute_seconds: int = number(12 * 3600, lo=1)
    session_touch_seconds: int = number(60, lo=0)
    # Login throttles (failures within the sliding window): per username and client address, per address
    # across usernames, and per username across addresses (against a spread-out attack, far higher, so an
    # attacker's failures never lock the owner out from a clean address below it).
    login_max_failures: int = number(5, lo=1)
    login_addr_max_failures: int = number(20, lo=1)
    login_user_max_failures: int = number(100, lo=1)
    login_window_seconds: int = number(600, lo=1, hi=7 * 24 * 3600)
    # Registrations (accounts made or names found taken) per client address within a sliding window.
    registration_addr_max: int = number(20, lo=1)
    registration_window_seconds: int = number(600, lo=1, hi=7 * 24 * 3600)
    # 'fast' makes hashing cheap enough for a test suite, and is refused anywhere else.
    argon2_profile: str = choice("owasp", "fast")
    # Password hashes running at once per worker process; as many logins again may wait this long for a
    # turn, any further one gets 503 at once.
    argon2_max_concurrent: int = number(1, lo=1, hi=64)
    argon2_wait_ms: int = number(500, lo=0, hi=60000)
    # OTP
    otp_ttl_seconds: int = number(300, lo=1, hi=600)
    otp_max_attempts: int = number(5, lo=1)
    otp_requests_per_window: int = number(5, lo=1)
    otp_request_window_seconds: int = number(600, lo=1)
    # Delivery: 'log' writes messages to svc_otp_worker's log (codes only outside production); 'http' POSTs
    # them to an SMS/email gateway at otp_gateway_url. Failures retry with exponential backoff.
    otp_sender: str = choice("log", "http")
    otp_gateway_url: str | None = text(None)
    otp_delivery_max_attempts: int = number(6, lo=1, hi=100)
    otp_delivery_backoff_seconds: int = number(2, lo=1, hi=3600)
    # Transactions
    otp_threshold: int = number(1_000_000, lo=0)
    transaction_confirm_seconds: int = number(15 * 60, lo=1)
    idempotency_ttl_seconds: int = number(24 * 3600, lo=1)
    # How long svc_transaction_worker sleeps when it found nothing to expire.
    transaction_worker_poll_seconds: int = number(1, lo=1, hi=300)
    currency: str = text("IDR")
    # Reports
    report_max_window_days: int = number(366, lo=1)
    # A claimed job's lease; the worker renews it while computing, a dead worker's lease runs out.
    report_lease_seconds: int = number(60, lo=1, hi=24 * 3600)
    report_max_attempts: int = number(3, lo=1, hi=100)
    # Jobs one user may have queued or running at once; past it POST /v1/reports answers 429.
    report_max_active_jobs: int = number(5, lo=1, hi=1000)
    # Test hook (TOKO_ENV=test only): hold each claimed job this long, so a test can kill the worker mid-job.
    report_test_delay_seconds: int = number(0, lo=0, hi=3600)
    # Events: the bell rings this long after an event is written (0: never, consumers only poll); consumers
    # poll every events_poll_ms besides, and read up to events_batch events per transaction. Applied-event
    # records older than events_applied_retention_days are pruned (a redelivery older than that is not
    # expected). Test hook (TOKO_ENV=test only): deliver every event two or three times, out of order.
    events_bell_ms: int = number(20, lo=0, hi=10000)
    # Consumers LISTEN for the bell on a session of their own. Behind a pooler in transaction mode (PgBouncer,
    # `toko pgbouncer`) a LISTEN outlives nothing: turn it off there, and the consumers poll alone.
    events_listen: bool = flag(True)
    events_poll_ms: int = number(1000, lo=10, hi=600000)
    events_batch: int = number(100, lo=1, hi=10000)
    events_applied_retention_days: int = number(7, lo=1, hi=3650)
    events_test_redeliver: bool = flag(False)
    # Pagination: the default a list answers with, and the largest per_page/limit a request may ask for.
    default_page_size: int = number(20, lo=1, hi=1000)
    max_page_size: int = number(100, lo=1, hi=1000)

    def __post_init__(self) -> None:
        if self.db_pool_size is None:
            object.__setattr__(self, "db_pool_size", self.threads)

    @property
    def ports(self) -> dict[str, int]:
        return {service: getattr(self, f"{service}_port") for service in SERVICES}

    @property
    def db_role_passwords(self) -> dict[str, str]:
        """Each service role's password, for the services that have one."""
        found = {service: getattr(self, f"{service}_db_password") for service in SERVICES}
        return {service: password for service, password in found.items() if password}

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


def env_name(name: str) -> str:
    """The environment variable a setting is read from."""
    return _ENV_NAMES[name]


_FIELDS = fields(Settings)
_ENV_NAMES = {f.name: f.metadata["env"] or f"{ENV_PREFIX}{f.name.upper()}" for f in _FIELDS}


def _rules(s: Settings, unreadable: set[str]) -> list[str]:
    """The rules across settings, each checked unless it rests on a variable that could not be read."""

    def readable(*names: str) -> bool:
        return unreadable.isdisjoint(names)

    problems = []
    if s.is_production and readable("env"):
        problems += [
            f"{env_name(name)} must be set to a real secret of 32+ characters in production"
            for name in ("secret_key", "otp_secret")
            if readable(name) and (getattr(s, name).lower() in _PLACEHOLDERS or len(getattr(s, name)) < 32)
        ]
    if s.argon2_profile == "fast" and s.env != "test" and readable("env", "argon2_profile"):
        problems.append("TOKO_ARGON2_PROFILE may be 'fast' only when TOKO_ENV=test")
    if s.report_test_delay_seconds and s.env != "test" and readable("env", "report_test_delay_seconds"):
        problems.append("TOKO_REPORT_TEST_DELAY_SECONDS may be set only when TOKO_ENV=test")
    if s.events_test_redeliver and s.env != "test" and readable("env", "events_test_redeliver"):
        problems.append("TOKO_EVENTS_TEST_REDELIVER may be set only when TOKO_ENV=test")
    if (
        s.otp_sender == "http"
        and not (s.otp_gateway_url or "").startswith(("http://", "https://"))
        and readable("otp_sender")
    ):
        problems.append("TOKO_OTP_SENDER=http needs TOKO_OTP_GATEWAY_URL (an http:// or https:// URL)")
    if s.default_page_size > s.max_page_size and readable("default_page_size", "max_page_size"):
        problems.append(
            f"TOKO_DEFAULT_PAGE_SIZE must not exceed TOKO_MAX_PAGE_SIZE ({s.max_page_size}), "
            f"got {s.default_page_size}"
        )
    return problems


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate settings from an environment mapping (os.environ by default).

    An empty variable means unset, as `VAR= toko run` means to a shell. Every problem is reported at
    once, in one SettingsError, so an operator fixes them in one go; a variable that cannot be read
    counts as unset for the rules across settings, and the rules that rest on it wait for it.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    unreadable: set[str] = set()
    for f in _FIELDS:
        raw = environ.get(_ENV_NAMES[f.name])
        if not raw:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as problem:
            problems.append(f"{_ENV_NAMES[f.name]} {problem}")
            unreadable.add(f.name)
    settings = Settings(**values)
    problems += _rules(settings, unreadable)
    if problems:
        raise SettingsError(*problems)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
