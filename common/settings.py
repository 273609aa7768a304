"""One typed settings object, read once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

Environment = Literal["development", "test", "production"]
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)
SERVICES = ("user", "otp", "item", "transaction", "report")
DEFAULT_PORTS = {"user": 5001, "otp": 5002, "item": 5003, "transaction": 5004, "report": 5005}
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/toko"
ENV_PREFIX = "TOKO_"

# Secrets that are fine on a laptop and fatal in production.
_DEV_SECRET = "dev-insecure-secret-change-me"
_PLACEHOLDERS = ("", "change-me", "changeme", "secret", _DEV_SECRET)
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_DATABASE_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg2://")
_SWITCH = {"on": True, "1": True, "true": True, "off": False, "0": False, "false": False}

# A list is one variable of comma- or space-separated words, not JSON.
_Words = Annotated[tuple[str, ...], NoDecode]


class SettingsError(RuntimeError):
    """The environment describes a configuration toko refuses to run with; one problem per line."""

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class _RuleProblems(ValueError):
    """Rules across settings that the values break, each a sentence naming its variables."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _Environ(EnvSettingsSource):
    """The settings' variables, read from the given mapping rather than from os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


# While load_settings reads: its mapping, and the settings it already found unreadable (their rules wait).
_reading: ContextVar[tuple[Mapping[str, str], frozenset[str]] | None] = ContextVar("_reading", default=None)


class Settings(BaseSettings):
    """Every setting, declared once: type, default, bounds; read from TOKO_<FIELD> (DATABASE_URL as is)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # An empty variable means unset, as `VAR= toko run` means to a shell user.
        env_ignore_empty=True,
        frozen=True,
        extra="forbid",
    )

    env: Environment = "development"
    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    # Least privilege: with db_roles on, each service connects to database_url as its own role toko_<service>
    # (created and granted by a migration), with an optional password from TOKO_<SERVICE>_DB_PASSWORD.
    db_roles: bool = False
    user_db_password: str | None = Field(None, repr=False)
    otp_db_password: str | None = Field(None, repr=False)
    item_db_password: str | None = Field(None, repr=False)
    transaction_db_password: str | None = Field(None, repr=False)
    report_db_password: str | None = Field(None, repr=False)
    # Where the report service runs its read-only aggregates (a replica); its jobs stay on the primary.
    report_database_url: str | None = None
    bind_host: str = "127.0.0.1"
    user_port: int = Field(DEFAULT_PORTS["user"], ge=1, le=65535)
    otp_port: int = Field(DEFAULT_PORTS["otp"], ge=1, le=65535)
    item_port: int = Field(DEFAULT_PORTS["item"], ge=1, le=65535)
    transaction_port: int = Field(DEFAULT_PORTS["transaction"], ge=1, le=65535)
    report_port: int = Field(DEFAULT_PORTS["report"], ge=1, le=65535)
    gateway_port: int = Field(8080, ge=1, le=65535)
    # Past one machine: the hosts a front gateway balances over (host or host:port of each host's own
    # gateway; port default gateway_port), and its passive health check: a host that fails max_fails times
    # rests fail_timeout seconds. On the hosts, trusted_proxies are the front gateways' addresses (or CIDR
    # ranges) whose X-Real-IP names the client.
    gateway_hosts: _Words = ()
    trusted_proxies: _Words = ()
    gateway_max_fails: int = Field(1, ge=0, le=100)
    gateway_fail_timeout_seconds: int = Field(10, ge=1, le=3600)
    # `toko pgbouncer`: transaction pooling on bind_host:pgbouncer_port to database_url's server (and to
    # report_database_url's, as database "<name>_replica"); at most pgbouncer_max_db_connections per server.
    pgbouncer_port: int = Field(6432, ge=1, le=65535)
    pgbouncer_pool_size: int = Field(5, ge=1, le=1000)
    pgbouncer_max_db_connections: int = Field(40, ge=1, le=10000)
    # Outside production an unset secret is the well-known development one; production refuses it.
    secret_key: str = Field(_DEV_SECRET, repr=False)
    otp_secret: str = Field(_DEV_SECRET, repr=False)
    log_level: str = "INFO"
    # gunicorn: 5 services x workers x threads connections must fit under max_connections (100).
    workers: int = Field(2, ge=1, le=32)
    threads: int = Field(4, ge=1, le=64)
    graceful_timeout: int = Field(20, ge=1, le=600)
    # Unset: one connection per thread, so no request thread waits for another's connection.
    db_pool_size: int = Field(None, ge=1, le=64, validate_default=True)
    db_max_overflow: int = Field(0, ge=0, le=64)
    db_pool_timeout: int = Field(5, ge=1, le=120)
    db_connect_timeout: int = Field(3, ge=1, le=60)
    db_statement_timeout_ms: int = Field(15000, ge=0)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # Exact origins (scheme://host[:port]) whose browser pages may call the API with credentials;
    # none: CORS off.
    cors_origins: _Words = ()
    # How long the edge (nginx) waits for a service's answer before a 504 envelope.
    edge_read_timeout: int = Field(60, ge=1, le=3600)
    # Sessions
    session_idle_seconds: int = Field(30 * 60, ge=1)
    session_absolute_seconds: int = Field(12 * 3600, ge=1)
    session_touch_seconds: int = Field(60, ge=0)
    # Login throttles (failures within the sliding window): per username and client address, per address
    # across usernames, and per username across addresses (against a spread-out attack, far higher, so an
    # attacker's failures never lock the owner out from a clean address below it).
    login_max_failures: int = Field(5, ge=1)
    login_addr_max_failures: int = Field(20, ge=1)
    login_user_max_failures: int = Field(100, ge=1)
    login_window_seconds: int = Field(600, ge=1, le=7 * 24 * 3600)
    # 'fast' makes hashing cheap enough for a test suite, and is refused anywhere else.
    argon2_profile: Literal["owasp", "fast"] = "owasp"
    # Password hashes running at once per worker process; as many logins again may wait this long for a
    # turn, any further one gets 503 at once.
    argon2_max_concurrent: int = Field(1, ge=1, le=64)
    argon2_wait_ms: int = Field(500, ge=0, le=60000)
    # OTP
    otp_ttl_seconds: int = Field(300, ge=1, le=600)
    otp_max_attempts: int = Field(5, ge=1)
    otp_requests_per_window: int = Field(5, ge=1)
    otp_request_window_seconds: int = Field(600, ge=1)
    # Delivery: 'log' writes messages to svc_otp_worker's log (codes only outside production); 'http' POSTs
    # them to an SMS/email gateway at otp_gateway_url. Failures retry with exponential backoff.
    otp_sender: Literal["log", "http"] = "log"
    otp_gateway_url: str | None = None
    otp_delivery_max_attempts: int = Field(6, ge=1, le=100)
    otp_delivery_backoff_seconds: int = Field(2, ge=1, le=3600)
    # Transactions
    otp_threshold: int = Field(1_000_000, ge=0)
    transaction_confirm_seconds: int = Field(15 * 60, ge=1)
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=1)
    # How long svc_transaction_worker sleeps when it found nothing to expire.
    transaction_worker_poll_seconds: int = Field(1, ge=1, le=300)
    currency: str = "IDR"
    # Reports
    report_max_window_days: int = Field(366, ge=1)
    # A claimed job's lease; the worker renews it while computing, a dead worker's lease runs out.
    report_lease_seconds: int = Field(60, ge=1, le=24 * 3600)
    report_max_attempts: int = Field(3, ge=1, le=100)
    # Test hook (TOKO_ENV=test only): hold each claimed job this long, so a test can kill the worker mid-job.
    report_test_delay_seconds: int = Field(0, ge=0, le=3600)
    # Pagination: the default a list answers with, and the largest per_page/limit a request may ask for.
    default_page_size: int = Field(20, ge=1, le=1000)
    max_page_size: int = Field(100, ge=1, le=1000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments and the environment (or load_settings's mapping) only: no .env, no secrets dir."""
        reading = _reading.get()
        return (init_settings, _Environ(settings_cls, reading[0]) if reading else env_settings)

    @field_validator("db_roles", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lower() not in _SWITCH:
            raise ValueError(f"must be on or off, got {value.lower()!r}")
        return _SWITCH[value.lower()]

    @field_validator("gateway_hosts", "trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        return tuple(word for word in re.split(r"[\s,]+", value) if word) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("db_pool_size", mode="before")
    @classmethod
    def _pool_follows_threads(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            return value
        return info.data.get("threads", cls.model_fields["threads"].default)

    @field_validator("database_url", "report_database_url")
    @classmethod
    def _postgresql_url(cls, url: str | None) -> str | None:
        """A mistyped URL is reported as such, not later as a missing database driver."""
        if not url:
            return url
        if not url.startswith(_DATABASE_SCHEMES):
            found = (
                f"its scheme is {url.split('://', 1)[0] + '://'!r}" if "://" in url else "it has no scheme"
            )
            raise ValueError(f"must be a PostgreSQL URL like postgresql://user@host:5432/toko; {found}")
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            _ = make_url(url).port  # parses host and port: a bad one raises
        except (ArgumentError, ValueError):
            raise ValueError(
                "is not a valid URL (postgresql://user[:password]@host[:port]/database)"
            ) from None
        return url

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        wrong = [origin for origin in origins if not _ORIGIN.match(origin)]
        if wrong:
            raise ValueError(
                "lists exact origins such as https://shop.example "
                f"(scheme, host, optional port; no path, no wildcard), got {', '.join(map(repr, wrong))}"
            )
        return origins

    @model_validator(mode="after")
    def _rules(self) -> Settings:
        """The rules across settings, all of them checked; those resting on an unreadable one skipped."""
        reading = _reading.get()
        unreadable = reading[1] if reading else frozenset()

        def readable(*fields: str) -> bool:
            return unreadable.isdisjoint(fields)

        problems = []
        if self.is_production and readable("env"):
            problems += [
                f"{env_name(name)} must be set to a real secret of 32+ characters in production"
                for name in ("secret_key", "otp_secret")
                if readable(name)
                and (getattr(self, name).lower() in _PLACEHOLDERS or len(getattr(self, name)) < 32)
            ]
        if self.argon2_profile == "fast" and self.env != "test" and readable("env", "argon2_profile"):
            problems.append("TOKO_ARGON2_PROFILE may be 'fast' only when TOKO_ENV=test")
        if self.report_test_delay_seconds and self.env != "test" and readable("env"):
            problems.append("TOKO_REPORT_TEST_DELAY_SECONDS may be set only when TOKO_ENV=test")
        if (
            self.otp_sender == "http"
            and not (self.otp_gateway_url or "").startswith(("http://", "https://"))
            and readable("otp_sender")
        ):
            problems.append("TOKO_OTP_SENDER=http needs TOKO_OTP_GATEWAY_URL (an http:// or https:// URL)")
        if self.default_page_size > self.max_page_size and readable("default_page_size", "max_page_size"):
            problems.append(
                f"TOKO_DEFAULT_PAGE_SIZE must not exceed TOKO_MAX_PAGE_SIZE ({self.max_page_size}), "
                f"got {self.default_page_size}"
            )
        if problems:
            raise _RuleProblems(problems)
        return self

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


def env_name(field: str) -> str:
    """The environment variable a setting is read from."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


# A validation error names its input key: the variable's alias where it has one, else the field.
_FIELD_OF_KEY = {
    **{name: name for name in Settings.model_fields},
    **{env_name(name): name for name in Settings.model_fields},
}


def _one_of(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)


def _describe(error: ErrorDetails) -> list[str]:
    """A validation error as plain sentences that each name the environment variable."""
    if not error["loc"]:
        found = error.get("ctx", {}).get("error")
        return found.problems if isinstance(found, _RuleProblems) else [error["msg"]]
    field = _FIELD_OF_KEY.get(str(error["loc"][0]), str(error["loc"][0]))
    var, kind, got = env_name(field), error["type"], error["input"]
    if kind == "value_error":
        return [f"{var} {error['ctx']['error']}"]
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return [f"{var} must be an integer, got {got!r}"]
    if kind in ("greater_than_equal", "less_than_equal"):
        metadata = Settings.model_fields[field].metadata
        lo = next((m.ge for m in metadata if hasattr(m, "ge")), None)
        hi = next((m.le for m in metadata if hasattr(m, "le")), None)
        if lo is not None and hi is not None:
            return [f"{var} must be between {lo} and {hi}, got {got}"]
        return [
            f"{var} must be at least {lo}, got {got}"
            if hi is None
            else f"{var} must be at most {hi}, got {got}"
        ]
    if kind == "literal_error":
        return [f"{var} must be {_one_of(get_args(Settings.model_fields[field].annotation))}, got {got!r}"]
    return [f"{var}: {error['msg']}, got {got!r}"]


def _read(environ: Mapping[str, str], unreadable: frozenset[str] = frozenset()) -> Settings:
    token = _reading.set((environ, unreadable))
    try:
        return Settings()
    finally:
        _reading.reset(token)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate settings from an environment mapping (os.environ by default).

    Every problem is reported at once, in one SettingsError: an operator fixes them in one go.
    """
    environ = os.environ if environ is None else environ
    try:
        return _read(environ)
    except ValidationError as exc:
        errors = exc.errors()
    problems = [line for error in errors for line in _describe(error)]
    unreadable = frozenset(_FIELD_OF_KEY.get(str(error["loc"][0]), "") for error in errors if error["loc"])
    if unreadable:
        # Pydantic stops before the rules across fields when a field fails: check them on the rest, with the
        # unreadable variables unset.
        names = {env_name(field) for field in unreadable if field}
        try:
            _read({var: value for var, value in environ.items() if var not in names}, unreadable)
        except ValidationError as exc:
            problems += [line for error in exc.errors() if not error["loc"] for line in _describe(error)]
    raise SettingsError(*problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
