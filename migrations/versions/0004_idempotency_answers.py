"""Idempotency keys store the whole answer (status, headers, body), not a link to a transaction

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

A stored answer is replayed by the web layer for whichever endpoint stored it, so the row keeps the
headers a replay repeats (the Location of a created resource) instead of `transaction_id`, which tied the
table to one endpoint. Rows stored before this revision get the Location their transaction had; the
downgrade recovers `transaction_id` from the stored body of a 201.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("response_headers", postgresql.JSONB(), nullable=True))
    op.execute(
        "UPDATE idempotency_keys SET response_headers = "
        "jsonb_build_object('Location', '/v1/transactions/' || transaction_id) "
        "WHERE transaction_id IS NOT NULL"
    )
    op.drop_constraint(
        op.f("fk_idempotency_keys_transaction_id_transactions"), "idempotency_keys", type_="foreignkey"
    )
    op.drop_column("idempotency_keys", "transaction_id")


def downgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("transaction_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_idempotency_keys_transaction_id_transactions"),
        "idempotency_keys",
        "transactions",
        ["transaction_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.execute(
        "UPDATE idempotency_keys k SET transaction_id = t.id FROM transactions t "
        "WHERE k.response_status = 201 AND t.id = (k.response_body -> 'data' ->> 'id')::bigint"
    )
    op.drop_column("idempotency_keys", "response_headers")
