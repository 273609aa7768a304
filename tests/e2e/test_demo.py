"""`toko demo`: the seed's story against the real stack, with exactly one login per customer."""
import subprocess

from sqlalchemy import func, select

from common.db.models import Item, Transaction, User, UserSession
from common.db.session import session_scope
from tests.e2e.stack import ROOT
from tests.factories import committed_item


def test_demo_plays_the_story_with_one_login_per_customer(stack):
    item_id = committed_item(price=15000, stock=100)
    run = subprocess.run([str(ROOT / ".venv/bin/toko"), "demo", "--item-id", str(item_id)], env=stack.env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "dwi: 1 login, 10 bought, 0 refused" in out
    assert "will: 1 login, 50 bought, 0 refused" in out
    assert "eko: login failed (401)" in out and "eko: 1 failed login, 0 bought, 3 refused" in out
    with session_scope() as session:
        for username, bought in (("dwi", 10), ("will", 50)):
            user_id = session.scalars(select(User.id).where(User.username == username)).one()
            assert session.scalar(select(func.count()).where(UserSession.user_id == user_id)) == 1
            assert session.scalar(select(func.count()).select_from(Transaction).where(
                Transaction.user_id == user_id, Transaction.status == "paid")) == bought
        assert session.get(Item, item_id).stock == 100 - 60
