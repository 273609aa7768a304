"""Every service fuzzed against its own OpenAPI document, on a real stack with a database of its own.

Bounded by TOKO_FUZZ_EXAMPLES (per operation); `make fuzz` runs a longer pass.
"""
from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, ignored_auth,
                                               response_schema_conformance, status_code_conformance)
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from common.db.models import Category, Item, User
from common.db.session import driver_url
from common.settings import SERVICES
from svc_user.service import create_user, start_session
from tests.conftest import TEST_DB, scratch_database
from tests.e2e.stack import make_stack

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance,
          ignored_auth]
EXAMPLES = int(os.environ.get("TOKO_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module")
def fuzz_db():
    """A database of its own: fuzzing deletes and changes what it finds, far from the other tests' data."""
    with scratch_database(f"{TEST_DB}_fuzz") as url:
        engine = create_engine(driver_url(url))
        try:
            yield url, engine
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def fuzz_stack(fuzz_db, tmp_path_factory):
    url, engine = fuzz_db
    with Session(engine) as session:
        for n in range(3):
            category = Category(name=f"Fuzz category {n}")
            session.add(category)
            session.flush()
            for m in range(5):
                session.add(Item(sku=f"FZ-{n}-{m}", name=f"Fuzz item {n}-{m}", price=1000 * (m + 1), stock=1000,
                                 category_id=category.id))
        session.commit()
    with make_stack(tmp_path_factory.mktemp("fuzz"), url) as stack:
        yield stack


@pytest.fixture
def fresh_admin_token(fuzz_db):
    """A new admin login per case: a fuzzed logout or deactivation must not blind the cases after it."""
    _, engine = fuzz_db

    def make() -> str:
        with Session(engine) as session:
            name = f"fz{uuid.uuid4().hex[:10]}"
            user: User = create_user(session, username=name, email=f"{name}@fuzz.test", password="fuzz-password-1",
                                     role="admin")
            token, _ = start_session(session, user)
            session.commit()
            return token

    return make


def fuzz_operation(operation, headers_for, examples: int, mode: GenerationMode) -> None:
    """Hypothesis-driven cases for one operation, each checked against the spec; raises on the first failure."""

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def run(case):
        case.call_and_validate(headers=headers_for(), checks=CHECKS, timeout=30)

    run()


@pytest.mark.parametrize("service", SERVICES)
def test_service_matches_its_own_spec(service, fuzz_stack, fresh_admin_token):
    schema = schemathesis.openapi.from_url(fuzz_stack.url(service, "/openapi.json"))
    failures = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(operation, lambda: {"Authorization": f"Bearer {fresh_admin_token()}"}, EXAMPLES, mode)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to break: no parameters, no body
            except Exception as exc:  # noqa: BLE001 - every operation's findings are reported together
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert operations > 0
    assert not failures, "\n\n".join(failures)
