"""The transactional outbox, its consumers' positions, applied events and dead letters; the sales projection

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Each service writes its own events, in the same transaction as the change: the writers get INSERT on the
outbox, nothing more (no UPDATE or DELETE: an event, once committed, is a fact). The consumers
(svc_report's sales projection, svc_otp) read it, and keep their positions, the events they applied and
the ones they could not in tables they all write, each under its own consumer name. The projection
(projected_sales, projected_sale_lines) is svc_report's, its only writer.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from common.db.models.events import Xid8

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WRITERS = ("toko_user", "toko_item", "toko_transaction")
READERS = ("toko_report", "toko_otp")
CONSUMER_TABLES = ("event_consumers", "applied_events", "event_dead_letters")
PROJECTION = ("projected_sales", "projected_sale_lines")


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("tx_id", Xid8(), server_default=sa.text("pg_current_xact_id()"), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_type", sa.String(length=32), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index("uq_outbox_events_position", "outbox_events", ["tx_id", "seq"], unique=True)
    op.create_table(
        "event_consumers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position_tx_id", Xid8(), server_default=sa.text("'0'::xid8"), nullable=False),
        sa.Column("position_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_consumers")),
    )
    op.create_table(
        "applied_events",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_applied_events")),
    )
    op.create_index(op.f("ix_applied_events_applied_at"), "applied_events", ["applied_at"])
    op.create_table(
        "event_dead_letters",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_event_dead_letters")),
    )
    op.create_table(
        "projected_sales",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('awaiting_otp', 'paid', 'cancelled', 'expired')", name=op.f("ck_projected_sales_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projected_sales")),
    )
    op.create_index(
        "ix_projected_sales_paid_at", "projected_sales", ["paid_at"], postgresql_where=sa.text("status = 'paid'")
    )
    op.create_table(
        "projected_sale_lines",
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["projected_sales.id"],
            name=op.f("fk_projected_sale_lines_transaction_id_projected_sales"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("transaction_id", "item_id", name=op.f("pk_projected_sale_lines")),
    )
    op.create_index(op.f("ix_projected_sale_lines_item_id"), "projected_sale_lines", ["item_id"])
    for table in PROJECTION:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO toko_report")
    for role in WRITERS:
        op.execute(f"GRANT INSERT ON outbox_events TO {role}")
    for role in READERS:
        op.execute(f"GRANT SELECT ON outbox_events TO {role}")
        for table in CONSUMER_TABLES:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")


def downgrade() -> None:
    op.drop_table("projected_sale_lines")
    op.drop_table("projected_sales")
    op.drop_table("event_dead_letters")
    op.drop_index(op.f("ix_applied_events_applied_at"), table_name="applied_events")
    op.drop_table("applied_events")
    op.drop_table("event_consumers")
    op.drop_index("uq_outbox_events_position", table_name="outbox_events")
    op.drop_table("outbox_events")
