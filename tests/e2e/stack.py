"""The real stack for end-to-end tests (toko/stack.py), skipped, and named, where nginx is missing."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import missing
from toko import stack as _stack
from toko.stack import ROOT, client_from, free_port, prepare_home  # noqa: F401 (the tests import them here)


class Stack(_stack.Stack):
    def start(self, timeout: float = 60) -> "Stack":
        try:
            super().start(timeout)
        except _stack.NginxMissing:
            pytest.skip(missing("nginx", "nginx", "it owns every port of the stack"))
        return self


def make_stack(home: Path, database_url: str, **extra_env: str) -> Stack:
    return _stack.make_stack(home, database_url, cls=Stack, **extra_env)  # type: ignore[return-value]
