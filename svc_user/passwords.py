"""argon2id password hashing with OWASP's minimum parameters (a cheap profile only under test)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from common.errors import ServiceUnavailable
from common.settings import get_settings

# OWASP's argon2id floor is m=19 MiB, t=2, p=1, or any of the configurations it lists as equal in
# defense, trading memory for passes. m=7 MiB, t=5, p=1 is one of them and the cheapest here: 19 ms of
# CPU per hash against 23-25 ms for 19 MiB (a 2-core AMD EPYC, argon2-cffi 25.1), with a third of the
# memory per hash. Hashes made with other parameters are upgraded at the next successful login.
PROFILES = {
    "owasp": dict(time_cost=5, memory_cost=7 * 1024, parallelism=1),
    "fast": dict(time_cost=1, memory_cost=8, parallelism=1),
}
# Verifying against this keeps an unknown username as slow as a wrong password.
_DUMMY_PASSWORD = "toko-timing-equaliser"


_turns_lock = threading.Lock()
_turns: tuple[threading.BoundedSemaphore, threading.BoundedSemaphore] | None = None
_admitted_here = threading.local()


@lru_cache(maxsize=None)
def hasher(profile: str | None = None) -> PasswordHasher:
    params: dict[str, Any] = PROFILES[profile or get_settings().argon2_profile]
    return PasswordHasher(**params)


class HashingBusy(ServiceUnavailable):
    """Every password check of this process is taken."""


def _busy() -> HashingBusy:
    return HashingBusy(
        "Too many password checks at once; try again in a moment.", code="busy", headers={"Retry-After": "1"}
    )


def _semaphores() -> tuple[threading.BoundedSemaphore, threading.BoundedSemaphore]:
    global _turns
    if _turns is None:
        with _turns_lock:
            if _turns is None:
                n = get_settings().argon2_max_concurrent
                _turns = (threading.BoundedSemaphore(2 * n), threading.BoundedSemaphore(n))
    return _turns


@contextmanager
def admission():
    """A place among the password checks of this process, or HashingBusy at once.

    argon2_max_concurrent checks hash and as many again may wait for them; a flood of logins beyond that
    is refused (503 with Retry-After) before it costs a thread, a database write or CPU, so a worker's other
    threads stay free for requests that need no hash. A login enters before it counts its attempt.
    """
    if getattr(_admitted_here, "yes", False):
        yield
        return
    admitted, _ = _semaphores()
    if not admitted.acquire(blocking=False):
        raise _busy()
    _admitted_here.yes = True
    try:
        yield
    finally:
        _admitted_here.yes = False
        admitted.release()


@contextmanager
def _turn():
    """One of argon2_max_concurrent hashing slots, waited for at most argon2_wait_ms (then HashingBusy)."""
    with admission():
        _, hashing = _semaphores()
        if not hashing.acquire(timeout=get_settings().argon2_wait_ms / 1000):
            raise _busy()
        try:
            yield
        finally:
            hashing.release()


def hash_password(password: str) -> str:
    with _turn():
        return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; an absent hash still costs one verification."""
    target = password_hash or dummy_hash()
    with _turn():
        try:
            return hasher().verify(target, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)


@lru_cache(maxsize=None)
def dummy_hash() -> str:
    return hash_password(_DUMMY_PASSWORD)
