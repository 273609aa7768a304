"""What the app believes of toko's own nginx, and only of it (common/web/edge.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from common.db.models import UserSession
from common.web.edge import client_address
from tests.factories import PASSWORD


@pytest.mark.parametrize("environ, expected", [
    ({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_REAL_IP": "203.0.113.9"}, "10.0.0.5"),  # a TCP peer: its address
    ({"REMOTE_ADDR": "::1", "HTTP_X_REAL_IP": "203.0.113.9"}, "::1"),
    ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "203.0.113.9"}, "203.0.113.9"),  # nginx on the unix socket
    ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "2001:db8::1"}, "2001:db8::1"),
    ({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "not an address"}, None),
    ({"REMOTE_ADDR": ""}, None),
    ({}, None),
])
def test_x_real_ip_counts_only_when_the_peer_is_not_an_ip_address(environ, expected):
    assert client_address(environ) == expected


@pytest.mark.parametrize("remote, expected", [("", "198.51.100.7"), ("192.0.2.1", "192.0.2.1")])
def test_the_login_records_the_client_address_by_that_rule(make_client, customer, db_session, remote, expected):
    client = make_client("user")
    response = client.post("/v1/sessions", json={"username": customer.username, "password": PASSWORD},
                           headers={"X-Real-IP": "198.51.100.7"}, environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == 201
    addresses = db_session.scalars(select(UserSession.client_addr).where(
        UserSession.user_id == customer.id, UserSession.client_addr.is_not(None))).all()
    assert addresses == [expected]


@pytest.mark.parametrize("remote, prefix, location", [
    ("", "/_item", "/_item/v1/items/"), ("127.0.0.1", "/_item", "/v1/items/"), ("", "/evil/x", "/v1/items/")])
def test_the_gateway_prefix_counts_only_from_nginx(make_client, admin, remote, prefix, location):
    response = make_client("item").post("/v1/items", json={"sku": f"PFX-{remote}-{prefix[-1]}", "name": "Prefixed",
                                                           "price": 100, "stock": 1},
                                        headers={**admin.headers, "X-Forwarded-Prefix": prefix},
                                        environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(location), response.headers["Location"]
