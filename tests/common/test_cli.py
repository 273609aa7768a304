"""The `toko` command against the run's database."""
from click.testing import CliRunner
from sqlalchemy import func, select

from common.cli import main
from common.db.models import Category, User
from common.db.session import session_scope
from svc_user.passwords import verify_password
from tests.conftest import unique


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
