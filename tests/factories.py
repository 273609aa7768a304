"""Test data made through the same service functions production uses."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from common.db.models import Category, Item, User
from common.db.session import session_scope
from svc_user.service import create_user, start_session
from tests.conftest import unique

PASSWORD = "correct-horse-battery"


@dataclass
class Account:
    """A user and a live session token for it."""

    id: int
    username: str
    password: str
    role: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def make_account(session: Session, role: str = "customer", *, username: str | None = None,
                 password: str = PASSWORD) -> Account:
    username = username or unique(role[:4])
    user: User = create_user(session, username=username, email=f"{username}@example.test", password=password,
                             role=role)
    token, _ = start_session(session, user)
    return Account(user.id, username, password, role, token)


def committed_account(role: str = "customer", **kw) -> Account:
    """An account committed to the run's database, for end-to-end tests against the real stack."""
    with session_scope() as session:
        return make_account(session, role, **kw)


def make_item(session: Session, *, price: int = 10000, stock: int = 10, category: Category | None = None,
              name: str | None = None) -> Item:
    item = Item(sku=unique("SKU-"), name=name or unique("Item "), price=price, stock=stock,
                category_id=category.id if category else None)
    session.add(item)
    session.flush()
    return item


def committed_item(**kw) -> int:
    with session_scope() as session:
        return make_item(session, **kw).id


def make_category(session: Session, *, name: str | None = None) -> Category:
    category = Category(name=name or unique("Category "))
    session.add(category)
    session.flush()
    return category


def committed_category(**kw) -> int:
    with session_scope() as session:
        return make_category(session, **kw).id


def make_awaiting_transaction(session: Session, user_id: int, *, total: int = 2_000_000) -> int:
    """A purchase of user_id waiting for its confirmation code (the only reference a confirm code takes)."""
    from sqlalchemy import text

    return session.execute(text("""
        INSERT INTO transactions (user_id, status, total, confirm_by)
        VALUES (:u, 'awaiting_otp', :t, now() + interval '15 minutes') RETURNING id
    """), {"u": user_id, "t": total}).scalar_one()
