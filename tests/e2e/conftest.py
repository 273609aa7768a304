"""End-to-end fixtures: one real stack (gunicorn under supervisor) per test run."""
from __future__ import annotations

import pytest

from tests.e2e.stack import make_stack


@pytest.fixture(scope="session")
def stack(database_url, tmp_path_factory):
    """Every service and worker running under supervisord against the run's database."""
    s = make_stack(tmp_path_factory.mktemp("stack"), database_url)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
