"""The runbook's backup and restore (docs/operations.md), run as written: pg_dump -Fc, then pg_restore
into an empty database, gives back every row, the grants of the services' roles and the sequences."""
from __future__ import annotations

import shutil
import subprocess
import uuid
from datetime import date

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from common.db.session import driver_url
from svc_report import jobs
from tests.conftest import scratch_database
from tests.factories import make_account, make_awaiting_transaction, make_category, make_item


def tables(engine) -> dict[str, list[tuple]]:
    """Every table of the schema, its rows in a fixed order."""
    with engine.connect() as conn:
        names = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                  "ORDER BY tablename")).scalars().all()
        return {name: [tuple(row) for row in conn.execute(text(f'SELECT * FROM "{name}" ORDER BY 1'))]
                for name in names}


def tool(name: str, *args: str) -> None:
    binary = shutil.which(name)
    if binary is None:
        pytest.skip(f"{name} is not installed (PostgreSQL's client tools)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_dump_restored_into_an_empty_database_gives_back_every_row_grant_and_sequence(tmp_path):
    suffix = uuid.uuid4().hex[:8]
    with scratch_database(f"toko_backup_{suffix}") as source_url:
        source = create_engine(driver_url(source_url), poolclass=NullPool)
        with Session(source) as session, session.begin():
            buyer = make_account(session)
            admin = make_account(session, "admin")
            make_item(session, category=make_category(session), price=15000, stock=3)
            make_awaiting_transaction(session, buyer.id)
            jobs.enqueue(session, admin.id, "sales", {"from": date(1999, 1, 1).isoformat(),
                                                      "to": date(1999, 2, 1).isoformat()})
        before = tables(source)
        assert before["users"] and before["items"] and before["transactions"] and before["report_jobs"]
        dump = tmp_path / "toko.dump"
        tool("pg_dump", "-Fc", "-f", str(dump), "--dbname", source_url)

        # The runbook's restore: into a database created empty (createdb, no `toko migrate`), stopping at
        # the first error.
        server = create_engine(driver_url(make_url(source_url).set(database="postgres").render_as_string(False)),
                               poolclass=NullPool, isolation_level="AUTOCOMMIT")
        empty = f"toko_restored_{suffix}"
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{empty}"'))
        restored_url = make_url(source_url).set(database=empty).render_as_string(False)
        restored = create_engine(driver_url(restored_url), poolclass=NullPool)
        try:
            tool("pg_restore", "--exit-on-error", "--dbname", restored_url, str(dump))
            assert tables(restored) == before
            with restored.connect() as conn:
                # The services' roles keep exactly their grants, and ids go on past the restored ones.
                grants = conn.execute(text("""
                    SELECT has_table_privilege('toko_report', 'report_jobs', 'INSERT'),
                           has_table_privilege('toko_report', 'items', 'UPDATE'),
                           has_table_privilege('toko_item', 'items', 'UPDATE')
                """)).one()
                assert tuple(grants) == (True, False, True)
                last = conn.execute(text("SELECT max(id) FROM categories")).scalar_one()
                new_id = conn.execute(text("INSERT INTO categories (name) VALUES ('after restore') "
                                           "RETURNING id")).scalar_one()
                assert new_id > last
        finally:
            restored.dispose()
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{empty}" WITH (FORCE)'))
            server.dispose()
        source.dispose()
