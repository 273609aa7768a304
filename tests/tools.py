"""The tools from Debian that some test groups need, and how a run says one is missing.

A group whose tool is missing is skipped with a reason made by `missing()`. With CI=true such a skip
fails the run instead (the hooks below, which tests/conftest.py loads): a machine meant to run
everything must not pass by running less.
"""
from __future__ import annotations

import os

import pytest

MISSING = "missing tool: "


def missing(tool: str, package: str, what: str) -> str:
    """The skip reason for a group that needs `tool` (Debian's `package`) to test `what`."""
    return f"{MISSING}{tool} (apt-get install {package}): {what}"


def is_missing_tool(reason: str) -> bool:
    return reason.startswith(MISSING) or reason.startswith("Skipped: " + MISSING)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true a group skipped for a missing tool fails: the machine CI runs on must have it."""
    report = yield
    if report.skipped and os.environ.get("CI") == "true" and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if is_missing_tool(reason):
            report.outcome = "failed"
            report.longrepr = f"{reason.removeprefix('Skipped: ')} (CI=true: every test group must run)"
    return report


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    """Name every skipped group with its reason, so that no group goes untested unseen."""
    groups: dict[str, set[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        groups.setdefault(reason.removeprefix("Skipped: "), set()).add(report.nodeid.split("::")[0])
    if groups:
        terminalreporter.section("skipped groups")
        for reason, files in sorted(groups.items()):
            terminalreporter.write_line(f"{len(files)} file(s), {', '.join(sorted(files))}: {reason}")
