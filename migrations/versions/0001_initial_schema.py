"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:28:13.041876
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Trigram index for the catalogue's name search (contrib extension shipped with PostgreSQL).
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_table('categories',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_categories')),
    sa.UniqueConstraint('name', name=op.f('uq_categories_name'))
    )
    op.create_table('users',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), server_default='customer', nullable=False),
    sa.Column('verified', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('customer', 'admin')", name=op.f('ck_users_role')),
    sa.CheckConstraint('failed_logins >= 0', name=op.f('ck_users_failed_logins')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('items',
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.Column('category_id', sa.BigInteger(), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('price >= 0', name=op.f('ck_items_price')),
    sa.CheckConstraint('stock >= 0', name=op.f('ck_items_stock')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_items_category_id_categories'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_items'))
    )
    op.create_index('ix_items_live_category_id', 'items', ['category_id', 'id'], unique=False, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_index('ix_items_live_name_id', 'items', ['name', 'id'], unique=False, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_index('ix_items_live_price_id', 'items', ['price', 'id'], unique=False, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_index('ix_items_name_trgm', 'items', ['name'], unique=False, postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.create_index('uq_items_sku_live', 'items', ['sku'], unique=True, postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_table('otp_challenges',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.String(length=64), server_default='', nullable=False),
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("purpose IN ('verify_account', 'confirm_transaction')", name=op.f('ck_otp_challenges_purpose')),
    sa.CheckConstraint("status IN ('pending', 'verified', 'replaced', 'locked')", name=op.f('ck_otp_challenges_status')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_otp_challenges_attempts')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_otp_challenges_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_otp_challenges'))
    )
    op.create_index(op.f('ix_otp_challenges_user_id_created_at'), 'otp_challenges', ['user_id', 'created_at'], unique=False)
    op.create_index('uq_otp_challenges_live', 'otp_challenges', ['user_id', 'purpose', 'reference'], unique=True, postgresql_where=sa.text("status = 'pending'"))
    op.create_table('report_jobs',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('requested_by', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.CheckConstraint("kind IN ('sales')", name=op.f('ck_report_jobs_kind')),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_report_jobs_status')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_report_jobs_attempts')),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_report_jobs_requested_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_jobs'))
    )
    op.create_index('ix_report_jobs_claimable', 'report_jobs', ['created_at'], unique=False, postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.create_table('sessions',
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('idle_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('client_addr', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_sessions_token_hash'))
    )
    op.create_index(op.f('ix_sessions_user_id'), 'sessions', ['user_id'], unique=False)
    op.create_table('otp_messages',
    sa.Column('challenge_id', sa.Uuid(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('destination', sa.String(length=254), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f('ck_otp_messages_status')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_otp_messages_attempts')),
    sa.ForeignKeyConstraint(['challenge_id'], ['otp_challenges.id'], name=op.f('fk_otp_messages_challenge_id_otp_challenges'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_otp_messages'))
    )
    op.create_index(op.f('ix_otp_messages_challenge_id'), 'otp_messages', ['challenge_id'], unique=False)
    op.create_index('ix_otp_messages_due', 'otp_messages', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_table('transactions',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='IDR', nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirm_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirm_otp_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('awaiting_otp', 'paid', 'cancelled', 'expired')", name=op.f('ck_transactions_status')),
    sa.CheckConstraint('total >= 0', name=op.f('ck_transactions_total')),
    sa.ForeignKeyConstraint(['confirm_otp_id'], ['otp_challenges.id'], name=op.f('fk_transactions_confirm_otp_id_otp_challenges')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_transactions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactions')),
    sa.UniqueConstraint('confirm_otp_id', name=op.f('uq_transactions_confirm_otp_id'))
    )
    op.create_index('ix_transactions_awaiting_expiry', 'transactions', ['confirm_by'], unique=False, postgresql_where=sa.text("status = 'awaiting_otp'"))
    op.create_index('ix_transactions_paid_at', 'transactions', ['paid_at'], unique=False, postgresql_where=sa.text("status = 'paid'"))
    op.create_index(op.f('ix_transactions_user_id_id'), 'transactions', ['user_id', 'id'], unique=False)
    op.create_table('idempotency_keys',
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response_status', sa.SmallInteger(), nullable=True),
    sa.Column('response_body', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_idempotency_keys_transaction_id_transactions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_idempotency_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('user_id', 'key', name=op.f('uq_idempotency_keys_user_id_key'))
    )
    op.create_index(op.f('ix_idempotency_keys_expires_at'), 'idempotency_keys', ['expires_at'], unique=False)
    op.create_table('transaction_lines',
    sa.Column('transaction_id', sa.BigInteger(), nullable=False),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_transaction_lines_quantity')),
    sa.CheckConstraint('unit_price >= 0', name=op.f('ck_transaction_lines_unit_price')),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_transaction_lines_item_id_items')),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_transaction_lines_transaction_id_transactions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transaction_lines')),
    sa.UniqueConstraint('transaction_id', 'item_id', name=op.f('uq_transaction_lines_transaction_id_item_id'))
    )
    op.create_index(op.f('ix_transaction_lines_item_id'), 'transaction_lines', ['item_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_transaction_lines_item_id'), table_name='transaction_lines')
    op.drop_table('transaction_lines')
    op.drop_index(op.f('ix_idempotency_keys_expires_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.drop_index(op.f('ix_transactions_user_id_id'), table_name='transactions')
    op.drop_index('ix_transactions_paid_at', table_name='transactions', postgresql_where=sa.text("status = 'paid'"))
    op.drop_index('ix_transactions_awaiting_expiry', table_name='transactions', postgresql_where=sa.text("status = 'awaiting_otp'"))
    op.drop_table('transactions')
    op.drop_index('ix_otp_messages_due', table_name='otp_messages', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index(op.f('ix_otp_messages_challenge_id'), table_name='otp_messages')
    op.drop_table('otp_messages')
    op.drop_index(op.f('ix_sessions_user_id'), table_name='sessions')
    op.drop_table('sessions')
    op.drop_index('ix_report_jobs_claimable', table_name='report_jobs', postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.drop_table('report_jobs')
    op.drop_index('uq_otp_challenges_live', table_name='otp_challenges', postgresql_where=sa.text("status = 'pending'"))
    op.drop_index(op.f('ix_otp_challenges_user_id_created_at'), table_name='otp_challenges')
    op.drop_table('otp_challenges')
    op.drop_index('uq_items_sku_live', table_name='items', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_index('ix_items_name_trgm', table_name='items', postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.drop_index('ix_items_live_price_id', table_name='items', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_index('ix_items_live_name_id', table_name='items', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_index('ix_items_live_category_id', table_name='items', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_table('items')
    op.drop_table('users')
    op.drop_table('categories')
