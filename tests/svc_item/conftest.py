"""In-process fixtures for the item service."""
import pytest

from tests.factories import make_account


@pytest.fixture
def client(make_client):
    return make_client("item")


@pytest.fixture
def admin(db_session):
    return make_account(db_session, "admin")


@pytest.fixture
def customer(db_session):
    return make_account(db_session, "customer")
