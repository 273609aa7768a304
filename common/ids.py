"""The one id guard. Ids (and money) are BIGINT columns: a value outside 1..2^63-1 names no row, and
PostgreSQL would refuse it as out of range instead of simply finding nothing."""

BIGINT_MAX = 2**63 - 1


def is_id(value: int) -> bool:
    """Whether a row could have this id."""
    return 1 <= value <= BIGINT_MAX
