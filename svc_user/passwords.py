"""argon2id password hashing with OWASP's minimum parameters (a cheap profile only under test)."""
from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from common.settings import get_settings

# OWASP: m=19 MiB, t=2, p=1 is the floor for argon2id.
PROFILES = {
    "owasp": dict(time_cost=2, memory_cost=19 * 1024, parallelism=1),
    "fast": dict(time_cost=1, memory_cost=8, parallelism=1),
}
# Verifying against this keeps an unknown username as slow as a wrong password.
_DUMMY_PASSWORD = "toko-timing-equaliser"


@lru_cache(maxsize=None)
def hasher(profile: str | None = None) -> PasswordHasher:
    return PasswordHasher(**PROFILES[profile or get_settings().argon2_profile])


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; an absent hash still costs one verification."""
    try:
        return hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)


@lru_cache(maxsize=None)
def _dummy_hash() -> str:
    return hasher().hash(_DUMMY_PASSWORD)
