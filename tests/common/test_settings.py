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


def test_per_service_database_url_falls_back_to_the_shared_one():
    s = load_settings({"DATABASE_URL": "postgresql://a@h/db", "TOKO_REPORT_DATABASE_URL": "postgresql://r@h/db"})
    assert s.database_url_for("report") == "postgresql://r@h/db"
    assert s.database_url_for("item") == "postgresql://a@h/db"
