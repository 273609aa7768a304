"""In-process fixtures for the item service."""
import pytest

from tests.factories import make_account


@pytest.fixture
def client(make_client, db_session):
    client = make_client("item")

    # The app closes the shared session after each request, which discards whatever the test flushed
    # but did not commit. A real client only ever sees committed data anyway: commit the setup (into
    # the outer transaction the fixture rolls back) before each request.
    @client.application.before_request
    def _commit_setup():
        db_session.commit()

    return client


@pytest.fixture
def admin(db_session):
    return make_account(db_session, "admin")


@pytest.fixture
def customer(db_session):
    return make_account(db_session, "customer")
