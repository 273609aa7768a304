"""Usernames unique whatever their case; failed logins as rows the three login throttles count

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Usernames that already differ only in case (`Admin` beside `admin`) cannot both keep their name under the
new unique index on lower(username). The oldest account (lowest id) keeps its name; every later one is
renamed to `<name>-<id>` (cut to fit 64 characters), which no registration can take because the id is
unique. Nothing else about those accounts changes: their sessions stay valid and they log in with the new
name. The renames are listed in the migration's log so an operator can tell the people concerned.
The downgrade keeps the new names.

svc_otp may read a transaction's id, owner and status: a confirm_transaction code is issued only for the
caller's own transaction that awaits one.

The per-user counters `failed_logins` / `locked_until` are replaced by the `login_failures` rows: a lock
stored on the account let anyone lock anyone out, and a count that never decayed kept old failures forever.
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

RENAME_COLLISIONS = """
    UPDATE users u SET username = left(u.username, 63 - length(u.id::text)) || '-' || u.id::text
    FROM (SELECT id, row_number() OVER (PARTITION BY lower(username) ORDER BY id) AS rank FROM users) ranked
    WHERE ranked.id = u.id AND ranked.rank > 1
    RETURNING u.id, u.username
"""


def upgrade() -> None:
    for user_id, username in op.get_bind().execute(sa.text(RENAME_COLLISIONS)):
        log.warning("username differed from an older account's only by case: user %s is now %r", user_id, username)
    op.drop_constraint(op.f("uq_users_username"), "users", type_="unique")
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.drop_constraint(op.f("ck_users_failed_logins"), "users", type_="check")
    op.drop_column("users", "failed_logins")
    op.drop_column("users", "locked_until")

    op.create_table(
        "login_failures",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("client_addr", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_username_at"), "login_failures", ["username", "at"])
    op.create_index(op.f("ix_login_failures_client_addr_at"), "login_failures", ["client_addr", "at"])
    op.create_index(op.f("ix_login_failures_at"), "login_failures", ["at"])
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON login_failures TO toko_user")
    op.execute("GRANT USAGE, SELECT ON SEQUENCE login_failures_id_seq TO toko_user")
    # A confirm_transaction code is issued only for the caller's own transaction that awaits one.
    op.execute("GRANT SELECT (id, user_id, status) ON transactions TO toko_otp")


def downgrade() -> None:
    op.execute("REVOKE SELECT (id, user_id, status) ON transactions FROM toko_otp")
    op.drop_table("login_failures")
    op.add_column("users", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False))
    op.create_check_constraint(op.f("ck_users_failed_logins"), "users", "failed_logins >= 0")
    op.drop_index("uq_users_username_lower", table_name="users")
    op.create_unique_constraint(op.f("uq_users_username"), "users", ["username"])
