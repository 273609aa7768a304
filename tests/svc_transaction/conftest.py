"""Fixtures and helpers for the transaction service's tests."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from common.db.models import OtpChallenge
from tests.factories import make_account
from tests.helpers import error_details as assert_error  # noqa: F401 (the tests import it here)


@pytest.fixture
def client(make_client):
    return make_client("transaction")


@pytest.fixture
def buyer(db_session):
    return make_account(db_session)


@pytest.fixture
def other(db_session):
    return make_account(db_session)



def make_otp(session: Session, user_id: int, reference, *, status: str = "verified",
             purpose: str = "confirm_transaction") -> uuid.UUID:
    """An OTP challenge row as svc_otp leaves it (verified once the right code was sent)."""
    now = datetime.now(timezone.utc)
    otp = OtpChallenge(user_id=user_id, purpose=purpose, reference=str(reference), code_hash=b"x" * 32,
                       channel="email", status=status, expires_at=now + timedelta(minutes=5),
                       verified_at=now if status == "verified" else None)
    session.add(otp)
    session.flush()
    return otp.id
