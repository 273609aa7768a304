"""In-process fixtures for the item service."""
import pytest



@pytest.fixture
def client(make_client):
    return make_client("item")


