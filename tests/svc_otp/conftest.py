"""Helpers for the OTP service's end-to-end tests: polling, extra databases for extra stacks."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from common.db.session import driver_url
from tests.conftest import TEST_DB
from tests.conftest import scratch_database as shared_scratch_database
from tests.e2e.stack import make_stack
from tests.factories import Account, make_account, make_awaiting_transaction


def wait_for(predicate: Callable[[], object], timeout: float = 30, what: str = "condition"):
    """Poll until predicate() is truthy and return it; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** 6:06d}"


class Otps:
    """The OTP service of one running stack, over HTTP, and its tables, over SQL."""

    def __init__(self, stack, database_url: str):
        self.stack = stack
        self.engine = create_engine(driver_url(database_url))
        self.http = requests.Session()

    def account(self, *, phone: str | None = None) -> Account:
        with Session(self.engine) as session:
            account = make_account(session)
            if phone:
                session.execute(text("UPDATE users SET phone = :p WHERE id = :u"),
                                {"p": phone, "u": account.id})
            session.commit()
            return account

    def awaiting(self, account: Account) -> str:
        """A purchase of account's waiting for its code: the reference a confirm_transaction code takes."""
        with Session(self.engine) as session:
            transaction_id = make_awaiting_transaction(session, account.id)
            session.commit()
            return str(transaction_id)

    def create(self, account: Account, purpose: str = "verify_account", **extra) -> requests.Response:
        return self.http.post(self.stack.url("otp", "/v1/otps"), json={"purpose": purpose, **extra},
                              headers=account.headers, timeout=15)

    def verify(self, account: Account, otp_id, code: str) -> requests.Response:
        return requests.post(self.stack.url("otp", f"/v1/otps/{otp_id}/verify"), json={"code": code},
                             headers=account.headers, timeout=15)

    def status(self, account: Account, otp_id) -> requests.Response:
        return self.http.get(self.stack.url("otp", f"/v1/otps/{otp_id}"), headers=account.headers, timeout=15)

    def sql(self, statement: str, **params):
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.mappings().all() if result.returns_rows else result.rowcount

    def challenge(self, otp_id) -> dict:
        return dict(self.sql("SELECT * FROM otp_challenges WHERE id = :id", id=otp_id)[0])

    def message(self, otp_id) -> dict:
        return dict(self.sql("SELECT * FROM otp_messages WHERE challenge_id = :id", id=otp_id)[0])

    def wait_sent(self, otp_id, timeout: float = 30) -> dict:
        return wait_for(lambda: (m := self.message(otp_id))["status"] == "sent" and m, timeout,
                        f"message of {otp_id} to be sent")

    def user_verified(self, account: Account) -> bool:
        return self.sql("SELECT verified FROM users WHERE id = :u", u=account.id)[0]["verified"]

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def extra_stack(tmp_path_factory, suffix: str, **env: str) -> Iterator[tuple]:
    """Another stack on a migrated database of its own (its worker must not share the outbox): (stack, otps)."""
    with shared_scratch_database(f"{TEST_DB}_{suffix}") as url, \
            make_stack(tmp_path_factory.mktemp(f"otp_{suffix}_stack"), url, **env) as stack:
        otps = Otps(stack, url)
        try:
            yield stack, otps
        finally:
            otps.close()
