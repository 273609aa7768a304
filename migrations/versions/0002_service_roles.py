"""One PostgreSQL role per service, granted exactly what the ownership table allows

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Roles are cluster-wide and may already exist (another database of the same cluster): they are created
only when missing and never dropped by the downgrade, which revokes this database's grants instead.
Passwords are set by operators (ALTER ROLE toko_x PASSWORD ...), never in a migration.
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The ownership table (docs/architecture.md): what each service writes.
OWNS = {
    "user": ["users", "sessions"],
    "otp": ["otp_challenges", "otp_messages"],
    "item": ["categories", "items"],
    "transaction": ["transactions", "transaction_lines", "idempotency_keys"],
    "report": ["report_jobs"],
}
# What each service reads besides its own tables (every service authenticates against users+sessions).
READS = {
    "user": [],
    "otp": [],
    "item": [],
    "transaction": ["items", "otp_challenges"],
    "report": ["categories", "items", "transactions", "transaction_lines", "otp_challenges"],
}
# The exceptions to ownership, column by column.
COLUMN_UPDATES = {
    "otp": [("users", ["verified", "updated_at"])],  # a verified account OTP marks the user verified
    "transaction": [("items", ["stock", "updated_at"])],  # a purchase takes stock, never changes prices
}
SEQUENCES = {"users": "users_id_seq", "sessions": "sessions_id_seq", "otp_messages": "otp_messages_id_seq",
             "categories": "categories_id_seq", "items": "items_id_seq", "transactions": "transactions_id_seq",
             "transaction_lines": "transaction_lines_id_seq", "idempotency_keys": "idempotency_keys_id_seq",
             "report_jobs": "report_jobs_id_seq"}


def role(service: str) -> str:
    return f"toko_{service}"


def upgrade() -> None:
    for service in OWNS:
        op.execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role(service)}') THEN
                    CREATE ROLE {role(service)} LOGIN;
                END IF;
            END $$""")
        op.execute(f"DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {role(service)}', "
                   f"current_database()); END $$")
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role(service)}")
        op.execute(f"GRANT SELECT ON alembic_version, users, sessions TO {role(service)}")
        # Authentication refreshes a session's idle expiry on whichever service sees the request.
        op.execute(f"GRANT UPDATE (last_seen_at, idle_expires_at) ON sessions TO {role(service)}")
        for table in OWNS[service]:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role(service)}")
            if table in SEQUENCES:
                op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {SEQUENCES[table]} TO {role(service)}")
        for table in READS[service]:
            op.execute(f"GRANT SELECT ON {table} TO {role(service)}")
        for table, columns in COLUMN_UPDATES.get(service, []):
            op.execute(f"GRANT UPDATE ({', '.join(columns)}) ON {table} TO {role(service)}")


def downgrade() -> None:
    for service in OWNS:
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role(service)}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role(service)}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {role(service)}")
        op.execute(f"DO $$ BEGIN EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {role(service)}', "
                   f"current_database()); END $$")
