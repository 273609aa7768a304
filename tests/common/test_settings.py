import pytest

from common.settings import SettingsError, load_settings

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
