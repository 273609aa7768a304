"""Usernames kept to the rule by the database; registrations counted per address; running login checks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A username is 3 to 64 ASCII letters, digits, `.`, `_` or `-`. The API's check once let a trailing newline
through (`admin\\n` beside `admin`), so stored names may break the rule. Each such account is renamed: its
characters outside the rule are dropped and, when what is left is shorter than 3, or taken by another
account whatever the case, `-<id>` is added (cut to fit 64 characters), which no other account can hold
because the id is unique. Nothing else about those accounts changes: their sessions stay valid and they
log in with the new name. The renames are listed in the migration's log so an operator can tell the people
concerned. A check constraint then keeps every writer to the rule. The downgrade keeps the new names.

`registrations` holds one row per registration that reached the uniqueness check, counted per client
address by the registration throttle. `login_failures.running` marks a password check in progress, whose
transaction holds the row's lock: a row left running and unlocked was cut off by a fault, and counts for
nothing.
"""
from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

RULE = "^[A-Za-z0-9._-]{3,64}$"  # PostgreSQL's `$` is the end of the string alone
NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._-]")


def _taken(bind, name: str, user_id: int) -> bool:
    return bind.execute(sa.text("SELECT 1 FROM users WHERE lower(username) = lower(:n) AND id <> :i"),
                        {"n": name, "i": user_id}).first() is not None


def _valid_name(bind, user_id: int, username: str) -> str:
    """The stored name without the characters the rule refuses, made long enough and unique."""
    base = NOT_ALLOWED.sub("", username)[:64]
    if len(base) >= 3 and not _taken(bind, base, user_id):
        return base
    base = base or "user"
    n = 0
    while True:
        suffix = f"-{user_id}" + (f"-{n}" if n else "")
        candidate = base[: 64 - len(suffix)] + suffix
        if len(candidate) < 3:
            candidate = "user" + suffix
        if not _taken(bind, candidate, user_id):
            return candidate
        n += 1


def upgrade() -> None:
    bind = op.get_bind()
    broken = bind.execute(sa.text("SELECT id, username FROM users WHERE username !~ :rule ORDER BY id"),
                          {"rule": RULE}).all()
    for user_id, username in broken:
        renamed = _valid_name(bind, user_id, username)
        bind.execute(sa.text("UPDATE users SET username = :n WHERE id = :i"), {"n": renamed, "i": user_id})
        log.warning("username %r broke the rule: user %s is now %r", username, user_id, renamed)
    op.create_check_constraint(op.f("ck_users_username"), "users", f"username ~ '{RULE}'")

    op.create_table(
        "registrations",
        sa.Column("client_addr", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
    )
    op.create_index(op.f("ix_registrations_client_addr_at"), "registrations", ["client_addr", "at"])
    op.create_index(op.f("ix_registrations_at"), "registrations", ["at"])
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON registrations TO toko_user")
    op.execute("GRANT USAGE, SELECT ON SEQUENCE registrations_id_seq TO toko_user")

    op.add_column("login_failures",
                  sa.Column("running", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    op.drop_column("login_failures", "running")
    op.drop_table("registrations")
    op.drop_constraint(op.f("ck_users_username"), "users", type_="check")
