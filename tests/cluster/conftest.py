"""The cluster tests: run by `make test-cluster`, as root; `make test` skips them and says why."""
from __future__ import annotations

import os

import pytest

from tests.cluster.cluster import Cluster, unavailable_reason

# Figures the tests measured, printed at the end of the run (the documentation quotes them).
MEASURED: list[str] = []


def pytest_collection_modifyitems(config, items):
    if os.environ.get("TOKO_CLUSTER_TESTS") != "1":
        reason = "the cluster tests run with `make test-cluster` (they build network namespaces and servers)"
    else:
        reason = unavailable_reason()
    if reason is None:
        return
    for item in items:
        if item.path.is_relative_to(os.path.dirname(__file__)):
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("cluster measurements")
        for line in MEASURED:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def database_url():
    """The cluster brings its own PostgreSQL servers: the run's scratch database on the given one is not needed."""
    yield None


@pytest.fixture(scope="session")
def cluster():
    with Cluster(hosts=3) as built:
        yield built
