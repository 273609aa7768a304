"""Public reads through the request's holder skip the transaction round trips, and leave no trace."""
import pytest
from sqlalchemy import text

from common.db.session import get_engine
from common.web.db import connection, read_connection, read_session


@pytest.fixture
def deployed_app(database_url):
    """The item service as gunicorn builds it: its own engine and pooled connections."""
    from svc_item.app import create_app

    return create_app()


@pytest.mark.parametrize("read", [read_session, read_connection])
def test_a_read_runs_in_autocommit_and_restores_the_connection(deployed_app, read):
    with deployed_app.test_request_context():
        with read() as reader:
            conn = reader.connection() if hasattr(reader, "get_bind") else reader
            dbapi = conn.connection.dbapi_connection
            assert dbapi.autocommit
            # No transaction is open between statements: each one commits on its own.
            reader.execute(text("SELECT 1"))
            assert dbapi.get_transaction_status() == 0  # psycopg2 TRANSACTION_STATUS_IDLE
        assert dbapi.autocommit is False


def test_a_read_restores_the_connection_after_an_error(deployed_app):
    with deployed_app.test_request_context():
        with pytest.raises(LookupError):
            with read_session() as session:
                dbapi = session.connection().connection.dbapi_connection
                raise LookupError("not found")
        assert dbapi.autocommit is False


def test_a_read_in_a_request_already_in_a_transaction_reads_inside_it(deployed_app):
    with deployed_app.test_request_context():
        held = connection()
        with read_session() as session:
            assert session.connection() is held
            assert held.connection.dbapi_connection.autocommit is False
            assert session.execute(text("SELECT txid_current() = txid_current()")).scalar()


def test_a_read_on_a_lent_connection_reads_inside_the_tests_transaction(db_session):
    from svc_item.app import create_app
    from tests.conftest import lend_connection
    from tests.factories import make_item

    app = create_app()
    lend_connection(app, db_session)
    item = make_item(db_session, price=4300)  # never committed: only the test's transaction sees it
    db_session.flush()
    with app.test_request_context():
        with read_connection() as conn:
            assert conn is db_session.get_bind()
            assert conn.in_nested_transaction()  # the request's savepoint, where production has none
            assert conn.connection.dbapi_connection.autocommit is False
            price = conn.execute(text("SELECT price FROM items WHERE id = :i"), {"i": item.id}).scalar()
            assert price == 4300


def test_an_item_read_runs_in_autocommit_and_returns_the_connection_clean(deployed_app):
    from tests.factories import committed_item

    item_id = committed_item(price=4200)
    client = deployed_app.test_client()
    response = client.get(f"/v1/items/{item_id}")
    assert response.status_code == 200 and response.get_json()["data"]["price"] == 4200
    assert client.get("/v1/items/999999999").status_code == 404
    assert client.get("/v1/items?per_page=1").status_code == 200
    assert client.get(f"/v2/items/{item_id}").get_json()["data"]["price"]["amount"] == 4200
    engine = get_engine("item")
    with engine.connect() as conn:  # the pool's connection: back in transaction mode
        assert conn.connection.dbapi_connection.autocommit is False
    assert engine.pool.checkedout() == 0
