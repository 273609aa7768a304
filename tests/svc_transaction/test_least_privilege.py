"""Every statement of the purchase service runs under its own database role (TOKO_DB_ROLES=on)."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import Session

from common import idempotency
from common.db.models import IdempotencyKey, Item, Transaction
from common.db.session import driver_url, session_scope
from common.errors import Conflict
from common.settings import get_settings, load_settings
from svc_transaction import service, worker
from tests.factories import committed_account, committed_item
from tests.svc_transaction.test_e2e import verified_otp


@pytest.fixture
def role_session(database_url):
    url = load_settings({"DATABASE_URL": database_url, "TOKO_DB_ROLES": "on"}).database_url_for("transaction")
    engine = create_engine(driver_url(url))
    session = Session(engine, expire_on_commit=False)
    try:
        assert session.scalar(select(func.current_user())) == "toko_transaction"
        yield session
    finally:
        session.close()
        engine.dispose()


def test_purchase_confirm_cancel_and_expiry_as_the_service_role(role_session):
    buyer = committed_account()
    me = SimpleNamespace(user_id=buyer.id, is_admin=False)
    cheap = committed_item(price=1000, stock=10)
    pricey = committed_item(price=get_settings().otp_threshold, stock=10)
    line = [{"item_id": cheap, "quantity": 2}]

    assert service.purchase(role_session.connection(), buyer.id, line).status == "paid"
    # A keyed purchase's rows: the key claimed, its answer stored, then found by a retry.
    key_id = idempotency.claim(role_session, buyer.id, "role-key", "f" * 64, ttl_seconds=60)
    keyed = idempotency.Answer(201, {"data": service.purchase(role_session.connection(), buyer.id, line).id}, {"Location": "/x"})
    idempotency.record(role_session, key_id, keyed)
    assert idempotency.claim(role_session, buyer.id, "role-key", "f" * 64, ttl_seconds=60) is None
    assert idempotency.stored_answer(role_session, buyer.id, "role-key", "f" * 64) == keyed
    with pytest.raises(Conflict) as refused:
        service.purchase(role_session.connection(), buyer.id, [{"item_id": cheap, "quantity": 100}])
    assert refused.value.code == "insufficient_stock"
    role_session.rollback()

    paid = service.purchase(role_session.connection(), buyer.id, line)
    waiting = service.purchase(role_session.connection(), buyer.id, [{"item_id": pricey, "quantity": 1}])
    overdue = service.purchase(role_session.connection(), buyer.id, [{"item_id": pricey, "quantity": 1}])
    role_session.commit()
    otp = verified_otp(buyer.id, waiting.id)
    assert service.confirm(role_session, me, waiting.id, otp).status == "paid"
    assert service.cancel(role_session, me, paid.id).status == "cancelled"
    assert [t.id for t in service.list_transactions(role_session, me, page=1, per_page=5)][:3] == \
        [overdue.id, waiting.id, paid.id]
    role_session.commit()

    with session_scope() as session:
        session.execute(update(Transaction).where(Transaction.id == overdue.id)
                        .values(confirm_by=func.now() - timedelta(seconds=1)))
        session.execute(update(IdempotencyKey).where(IdempotencyKey.user_id == buyer.id)
                        .values(expires_at=func.now() - timedelta(seconds=1)))
    worker.tick(role_session)
    role_session.commit()
    with session_scope() as session:
        assert session.get(Transaction, overdue.id).status == "expired"
        assert session.scalar(select(Item.stock).where(Item.id == pricey)) == 9
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)
                              .where(IdempotencyKey.user_id == buyer.id)) == 0
