import dataclasses
import os
from pathlib import Path

import pytest

from common.settings import (DEFAULT_PORTS, ENV_PREFIX, SERVICES, Settings, SettingsError, get_settings,
                             load_settings)

REAL = "x" * 40


def test_defaults_are_the_contract():
    s = load_settings({})
    assert s.env == "development"
    assert s.database_url == "postgresql://postgres@127.0.0.1:5432/toko"
    assert s.ports == {"user": 5001, "otp": 5002, "item": 5003, "transaction": 5004, "report": 5005}
    assert s.otp_threshold == 1_000_000


@pytest.mark.parametrize("secret", [None, "", "change-me", "short"])
def test_production_refuses_missing_or_placeholder_secrets(secret):
    env = {"TOKO_ENV": "production", "TOKO_OTP_SECRET": REAL}
    if secret is not None:
        env["TOKO_SECRET_KEY"] = secret
    with pytest.raises(SettingsError, match="TOKO_SECRET_KEY"):
        load_settings(env)


def test_production_starts_with_real_secrets():
    s = load_settings({"TOKO_ENV": "production", "TOKO_SECRET_KEY": REAL, "TOKO_OTP_SECRET": REAL[::-1] + "y"})
    assert s.is_production and not s.reveals_debug_codes


@pytest.mark.parametrize("env", [
    {"TOKO_ENV": "staging"},
    {"TOKO_ITEM_PORT": "http"},
    {"TOKO_ITEM_PORT": "70000"},
    {"TOKO_OTP_TTL_SECONDS": "601"},
    {"TOKO_ARGON2_PROFILE": "fast"},  # the cheap hash profile is for tests only
])
def test_bad_values_fail_fast(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_each_service_connects_as_its_own_role_when_roles_are_on():
    shared = {"DATABASE_URL": "postgresql://owner@h:5432/db"}
    assert load_settings(shared).database_url_for("item") == "postgresql://owner@h:5432/db"
    s = load_settings({**shared, "TOKO_DB_ROLES": "on", "TOKO_REPORT_DB_PASSWORD": "pw"})
    assert s.database_url_for("item") == "postgresql://toko_item@h:5432/db"
    assert s.database_url_for("report") == "postgresql://toko_report:pw@h:5432/db"
    assert s.database_url_for(None) == "postgresql://owner@h:5432/db"  # migrations and operators' commands


def test_production_names_every_missing_secret_at_once():
    with pytest.raises(SettingsError) as failure:
        load_settings({"TOKO_ENV": "production"})
    assert "TOKO_SECRET_KEY" in str(failure.value) and "TOKO_OTP_SECRET" in str(failure.value)


@pytest.mark.parametrize("url, says", [
    ("postgresq://postgres@127.0.0.1:5432/toko", "its scheme is 'postgresq://'"),
    ("mysql://root@127.0.0.1/toko", "its scheme is 'mysql://'"),
    ("127.0.0.1:5432/toko", "it has no scheme"),
    ("postgresql://postgres@127.0.0.1:54x2/toko", "not a valid URL"),
])
def test_a_mistyped_database_url_is_reported_as_a_wrong_url(url, says):
    with pytest.raises(SettingsError, match="DATABASE_URL") as failure:
        load_settings({"DATABASE_URL": url})
    assert says in str(failure.value)


def test_every_bad_variable_is_named_in_one_error():
    with pytest.raises(SettingsError) as failure:
        load_settings({"TOKO_WORKERS": "0", "TOKO_ITEM_PORT": "http", "TOKO_OTP_TTL_SECONDS": "601",
                       "TOKO_DB_ROLES": "maybe", "DATABASE_URL": "mysql://root@db/toko",
                       "TOKO_ARGON2_PROFILE": "fast", "TOKO_DEFAULT_PAGE_SIZE": "50", "TOKO_MAX_PAGE_SIZE": "10"})
    assert str(failure.value).splitlines() == [
        "DATABASE_URL must be a PostgreSQL URL like postgresql://user@host:5432/toko; its scheme is 'mysql://'",
        "TOKO_DB_ROLES must be on or off, got 'maybe'",
        "TOKO_ITEM_PORT must be an integer, got 'http'",
        "TOKO_WORKERS must be between 1 and 32, got 0",
        "TOKO_OTP_TTL_SECONDS must be between 1 and 600, got 601",
        "TOKO_ARGON2_PROFILE may be 'fast' only when TOKO_ENV=test",
        "TOKO_DEFAULT_PAGE_SIZE must not exceed TOKO_MAX_PAGE_SIZE (10), got 50",
    ]
    assert len(failure.value.problems) == 7


def test_field_errors_and_production_rules_are_reported_together():
    with pytest.raises(SettingsError) as failure:
        load_settings({"TOKO_ENV": "production", "TOKO_SECRET_KEY": REAL, "TOKO_THREADS": "many",
                       "TOKO_OTP_SENDER": "http", "TOKO_CORS_ORIGINS": "https://shop.example, https://*.example"})
    assert failure.value.problems == (
        "TOKO_THREADS must be an integer, got 'many'",
        "TOKO_CORS_ORIGINS lists exact origins such as https://shop.example (scheme, host, optional port; "
        "no path, no wildcard), got 'https://*.example'",
        "TOKO_OTP_SECRET must be set to a real secret of 32+ characters in production",
        "TOKO_OTP_SENDER=http needs TOKO_OTP_GATEWAY_URL (an http:// or https:// URL)",
    )


def test_a_rule_resting_on_an_unreadable_variable_waits_for_it():
    with pytest.raises(SettingsError) as failure:
        load_settings({"TOKO_ENV": "staging", "TOKO_ARGON2_PROFILE": "fast", "TOKO_MAX_PAGE_SIZE": "ten",
                       "TOKO_DEFAULT_PAGE_SIZE": "50"})
    assert failure.value.problems == (
        "TOKO_ENV must be one of development, test, production, got 'staging'",
        "TOKO_MAX_PAGE_SIZE must be an integer, got 'ten'",
    )


def test_every_setting_has_one_default_and_no_variable_means_that_default(monkeypatch):
    assert not [f.name for f in dataclasses.fields(Settings) if f.default is dataclasses.MISSING]
    for var in [v for v in os.environ if v.startswith(ENV_PREFIX) or v == "DATABASE_URL"]:
        monkeypatch.delenv(var)
    assert Settings() == load_settings({}) == load_settings({"TOKO_WORKERS": "", "DATABASE_URL": ""})
    assert load_settings({}).env == "development"


def test_a_given_mapping_is_the_only_environment_read(monkeypatch):
    monkeypatch.setenv("TOKO_WORKERS", "7")
    assert load_settings({}).workers == 2 and load_settings().workers == 7


def test_every_service_has_its_port_and_role_password_settings():
    for service in SERVICES:
        declared = {f.name: f for f in dataclasses.fields(Settings)}
        assert declared[f"{service}_port"].default == DEFAULT_PORTS[service]
        assert f"{service}_db_password" in declared


def test_settings_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_settings({}).workers = 3  # type: ignore[misc]


def test_derived_values_and_lists():
    s = load_settings({"TOKO_THREADS": "8", "TOKO_GATEWAY_HOSTS": "10.9.0.11, 10.9.0.12:18080",
                       "TOKO_CORS_ORIGINS": "https://shop.example http://localhost:3000", "TOKO_LOG_LEVEL": "debug",
                       "TOKO_DB_ROLES": "TRUE", "TOKO_OTP_PORT": "6002", "TOKO_ITEM_DB_PASSWORD": "pw"})
    assert s.db_pool_size == 8  # one connection per thread when TOKO_DB_POOL_SIZE is unset
    assert s.gateway_hosts == ("10.9.0.11", "10.9.0.12:18080") and s.trusted_proxies == ()
    assert s.cors_origins == ("https://shop.example", "http://localhost:3000")
    assert s.log_level == "DEBUG" and s.db_roles is True
    assert s.port_for("otp") == 6002 and s.ports["user"] == 5001
    assert s.db_role_passwords == {"item": "pw"}
    assert load_settings({"TOKO_THREADS": "8", "TOKO_DB_POOL_SIZE": "3"}).db_pool_size == 3


def test_secrets_stay_out_of_the_settings_repr():
    s = load_settings({"TOKO_SECRET_KEY": "k" * 40, "TOKO_USER_DB_PASSWORD": "hunter2"})
    assert "k" * 40 not in repr(s) and "hunter2" not in repr(s)


@pytest.fixture
def small_pages(environment):
    """TOKO_MAX_PAGE_SIZE lowered to 5 (with a default below it) for this test only."""
    environment(TOKO_MAX_PAGE_SIZE="5", TOKO_DEFAULT_PAGE_SIZE="3")


def _refused(response, field):
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == "validation_error"
    assert field in body["error"]["details"]["fields"]


@pytest.mark.parametrize("path, field", [("/v1/items", "per_page"), ("/v1/categories", "per_page"),
                                         ("/v2/items", "limit")])
def test_a_page_above_the_configured_maximum_is_refused(small_pages, make_client, path, field):
    client = make_client("item")
    _refused(client.get(f"{path}?{field}=6"), field)
    _refused(client.get(f"{path}?{field}=100"), field)  # within the contract's default, not this maximum
    for size in (1, 5):
        assert client.get(f"{path}?{field}={size}").status_code == 200


def test_the_openapi_document_states_the_configured_maximum(small_pages, make_client):
    document = make_client("item").get("/openapi.json").get_json()
    parameters = document["paths"]["/v1/items"]["get"]["parameters"]
    per_page = next(p for p in parameters if p["name"] == "per_page")
    assert per_page["schema"]["maximum"] == 5 and per_page["schema"]["minimum"] == 1


def test_the_default_page_is_at_most_the_maximum_page():
    assert load_settings({"TOKO_DEFAULT_PAGE_SIZE": "100"}).default_page_size == 100
    with pytest.raises(SettingsError, match="TOKO_DEFAULT_PAGE_SIZE must not exceed TOKO_MAX_PAGE_SIZE"):
        load_settings({"TOKO_DEFAULT_PAGE_SIZE": "30", "TOKO_MAX_PAGE_SIZE": "25"})


def test_the_sockets_folder_is_a_setting(environment, tmp_path):
    from common.http import socket_path

    assert socket_path("item", tmp_path) == (tmp_path / "var/run/svc_item.sock").resolve()
    environment(TOKO_RUN_DIR="sockets")
    assert socket_path("item", tmp_path) == (tmp_path / "sockets/svc_item.sock").resolve()
    environment(TOKO_RUN_DIR=str(tmp_path / "elsewhere"))
    assert socket_path("item", Path("/nonexistent")) == (tmp_path / "elsewhere/svc_item.sock").resolve()
