"""The `toko` command against the run's database, and how it fails when the database is not there."""
import os
import socket
import subprocess

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from toko.cli import main
from common.db.models import Category, User
from common.db.session import session_scope
from svc_user.passwords import verify_password
from tests.conftest import TEST_DATABASE_URL, unique
from tests.e2e.pgcluster import private_cluster
from tests.e2e.pgcluster import unavailable_reason as pg_unavailable
from tests.factories import committed_account, make_awaiting_transaction
from tests.e2e.stack import ROOT


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_create_user_makes_an_admin_operators_can_log_in_with(database_url):
    name = unique("op")
    code, out = run("create-user", name, "--password", "operator-password-1", "--role", "admin")
    assert code == 0 and f"created admin {name}" in out
    with session_scope() as session:
        user = session.scalars(select(User).where(User.username == name)).one()
        assert user.role == "admin" and verify_password(user.password_hash, "operator-password-1")


def test_create_user_refuses_a_short_password_and_a_duplicate(database_url):
    name = unique("op")
    code, out = run("create-user", name, "--password", "short")
    assert code != 0 and "password" in out
    assert run("create-user", name, "--password", "long-enough-1")[0] == 0
    code, out = run("create-user", name, "--password", "long-enough-1")
    assert code != 0 and "already registered" in out


def test_seed_demo_if_empty_leaves_a_database_with_users_alone(database_url):
    run("create-user", unique("op"), "--password", "long-enough-1")
    with session_scope() as session:
        before = session.scalar(select(func.count()).select_from(Category))
    code, out = run("seed-demo", "--if-empty")
    assert code == 0 and "not seeding" in out
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Category)) == before


def test_migrate_is_idempotent(database_url):
    assert run("migrate")[0] == 0
    assert run("migrate")[0] == 0


def toko(*args, **env):
    """The installed `toko` command in a process of its own, with some settings changed."""
    environ = {**os.environ, **env}
    return subprocess.run([str(ROOT / ".venv/bin/toko"), *args], capture_output=True, text=True, env=environ,
                          timeout=60)


def test_create_user_with_a_taken_name_says_so_in_a_sentence(database_url):
    name = unique("op")
    assert run("create-user", name, "--password", "long-enough-1")[0] == 0
    code, out = run("create-user", name, "--password", "long-enough-1")
    assert code == 1 and out.strip() == "Error: That username is already registered."


@pytest.mark.parametrize("command", [["migrate"], ["seed-demo", "--if-empty"], ["db-ensure"],
                                     ["create-user", "someone", "--password", "long-enough-1"]])
def test_an_unreachable_database_is_two_lines_not_a_traceback(command):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = toko(*command, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{port}/toko")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 2, result.stderr
    assert f"toko {command[0]} failed" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "Connection refused" in lines[0] and "DATABASE_URL" in lines[1]


def test_a_missing_database_points_at_db_ensure():
    result = toko("migrate", DATABASE_URL=f"{TEST_DATABASE_URL}_missing")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr and "toko db-ensure" in result.stderr


def test_a_mistyped_scheme_is_reported_as_a_wrong_url():
    result = toko("migrate", DATABASE_URL=TEST_DATABASE_URL.replace("postgresql://", "postgresq://"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr and "'postgresq://'" in result.stderr


def test_production_without_secrets_names_both():
    result = toko("migrate", TOKO_ENV="production", TOKO_SECRET_KEY="", TOKO_OTP_SECRET="",
                  TOKO_ARGON2_PROFILE="owasp")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "TOKO_SECRET_KEY" in result.stderr and "TOKO_OTP_SECRET" in result.stderr


@pytest.mark.skipif(pg_unavailable() is not None, reason=str(pg_unavailable()))
def test_a_refused_login_and_a_missing_user_say_so_not_migrate():
    """A server that wants a password (pg_hba.conf), a wrong one, and a user it does not know."""
    with private_cluster() as cluster:
        (cluster.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        cluster.reload()
        server = f"127.0.0.1:{cluster.port}"
        for user in ("postgres", "postgres:wrong-password"):
            result = toko("db-ensure", DATABASE_URL=f"postgresql://{user}@{server}/toko")
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert "PostgreSQL refused the login" in result.stderr and "pg_hba.conf" in result.stderr
            assert "migrate" not in result.stderr
        (cluster.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        cluster.reload()
        result = toko("migrate", DATABASE_URL=f"postgresql://nobody-here@{server}/toko")
        assert result.returncode == 1 and 'role "nobody-here" does not exist' in result.stderr
        assert "that user does not exist on the server" in result.stderr


def test_create_user_keeps_the_api_s_rules_for_a_username(database_url):
    code, out = run("create-user", "admin\n", "--password", "long-enough-1")
    assert code == 1 and out.startswith("Error: That account breaks a rule (username: 3 to 64 letters"), out


def test_status_shows_each_queue_with_its_oldest_as_the_owning_role_reads_it(database_url, environment):
    # As `make run`: every service reads as its own role.
    environment(TOKO_DB_ROLES="on")
    buyer = committed_account()
    with session_scope() as session:
        # Awaiting its code for 15 more minutes: no expiry worker of a running stack takes it meanwhile.
        txn = make_awaiting_transaction(session, buyer.id)
        session.execute(text("UPDATE transactions SET created_at = now() - interval '2 hours' WHERE id = :t"),
                        {"t": txn})
    try:
        code, out = run("status")
    finally:
        with session_scope() as session:
            session.execute(text("DELETE FROM transactions WHERE id = :t"), {"t": txn})
    assert code == 0, out
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in out.splitlines()[1:]}
    assert set(rows) == {("otp", "otp_messages", "pending"), ("transaction", "transactions", "awaiting_otp"),
                         ("report", "report_jobs", "queued"), ("report", "report_jobs", "running")}, out
    count, oldest = rows[("transaction", "transactions", "awaiting_otp")]
    assert int(count) >= 1 and int(oldest.removesuffix("s")) >= 2 * 3600, out
