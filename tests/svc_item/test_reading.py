"""Public reads on a request's own session skip the transaction round trips, and leave no trace."""
from sqlalchemy import text
from sqlalchemy.orm import Session

from common.db.session import get_engine
from svc_item.service import reading


def test_reading_runs_in_autocommit_and_restores_the_connection(database_url):
    session = Session(bind=get_engine())
    try:
        with reading(session) as s:
            dbapi = s.connection().connection.dbapi_connection
            assert dbapi.autocommit
            # No transaction is open between statements: each one commits on its own.
            s.execute(text("SELECT 1"))
            assert dbapi.get_transaction_status() == 0  # psycopg2 TRANSACTION_STATUS_IDLE
        assert dbapi.autocommit is False
    finally:
        session.close()


def test_reading_restores_the_connection_after_an_error(database_url):
    session = Session(bind=get_engine())
    try:
        try:
            with reading(session) as s:
                dbapi = s.connection().connection.dbapi_connection
                raise LookupError("not found")
        except LookupError:
            pass
        assert dbapi.autocommit is False
    finally:
        session.close()


def test_a_session_inside_a_callers_transaction_reads_inside_it(db_session):
    with reading(db_session) as s:
        assert s is db_session
        assert s.connection().connection.dbapi_connection.autocommit is False
        assert s.execute(text("SELECT txid_current() = txid_current()")).scalar()


def test_an_item_read_without_a_session_runs_in_autocommit_and_returns_the_connection_clean(database_url):
    from common.db.session import get_engine
    from svc_item.app import create_app
    from tests.factories import committed_item

    item_id = committed_item(price=4200)
    app = create_app()  # its own sessions and connections, as in production
    client = app.test_client()
    response = client.get(f"/v1/items/{item_id}")
    assert response.status_code == 200 and response.get_json()["data"]["price"] == 4200
    assert client.get("/v1/items/999999999").status_code == 404
    engine = get_engine("item")
    with engine.connect() as connection:  # the pool's connection: back in transaction mode
        assert connection.connection.dbapi_connection.autocommit is False
    assert engine.pool.checkedout() == 0
