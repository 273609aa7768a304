"""Least privilege: each service's role can write what it owns and nothing else."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from common.db.session import driver_url
from common.settings import load_settings


def as_role(database_url: str, service: str):
    url = load_settings({"DATABASE_URL": database_url, "TOKO_DB_ROLES": "on"}).database_url_for(service)
    return create_engine(driver_url(url))


def attempt(engine, sql: str) -> str:
    """'ok' or 'denied': the statement runs in a transaction that is always rolled back."""
    with engine.connect() as conn:
        try:
            conn.execute(text(sql))
            return "ok"
        except ProgrammingError as exc:
            assert "permission denied" in str(exc.orig)
            return "denied"
        finally:
            conn.rollback()


FOREIGN_WRITES = [
    ("report", "INSERT INTO items (sku, name, price, stock) VALUES ('X-R', 'x', 1, 1)"),
    ("report", "UPDATE transactions SET status = 'paid'"),
    ("report", "DELETE FROM sessions"),
    ("item", "UPDATE transactions SET total = 0"),
    ("item", "DELETE FROM users"),
    ("transaction", "UPDATE items SET price = 1"),
    ("transaction", "UPDATE items SET name = 'x'"),
    ("transaction", "INSERT INTO categories (name) VALUES ('x')"),
    ("otp", "UPDATE users SET role = 'admin'"),
    ("otp", "INSERT INTO transactions (user_id, status, total) VALUES (1, 'paid', 0)"),
    ("user", "UPDATE items SET stock = 0"),
    ("user", "SELECT * FROM transactions"),
]
OWN_OR_EXCEPTED = [
    ("report", "UPDATE report_jobs SET status = status"),
    ("report", "SELECT count(*) FROM transaction_lines JOIN items ON items.id = transaction_lines.item_id"),
    ("item", "UPDATE items SET price = price, name = name"),
    ("transaction", "UPDATE items SET stock = stock"),
    ("transaction", "UPDATE transactions SET status = status"),
    ("otp", "UPDATE users SET verified = verified"),
    ("otp", "UPDATE otp_messages SET body = NULL"),
    ("user", "UPDATE users SET role = role"),
    ("item", "UPDATE sessions SET last_seen_at = last_seen_at"),
]


@pytest.mark.parametrize("service, sql, expected",
                         [(s, q, "denied") for s, q in FOREIGN_WRITES] + [(s, q, "ok") for s, q in OWN_OR_EXCEPTED])
def test_a_service_writes_what_it_owns_and_its_listed_exceptions_only(database_url, service, sql, expected):
    engine = as_role(database_url, service)
    try:
        assert attempt(engine, sql) == expected
    finally:
        engine.dispose()
