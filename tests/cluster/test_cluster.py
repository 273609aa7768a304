"""toko past one machine: three service hosts behind a balancing gateway, PgBouncer, a streaming replica."""
from __future__ import annotations

import requests

from tests.cluster.conftest import MEASURED

TIMEOUT = 30


def test_a_session_from_a_login_on_host_a_works_on_host_b(cluster):
    a, b = cluster.hosts[0], cluster.hosts[1]
    user = {"username": "walker", "email": "walker@example.test", "password": "correct-horse-battery"}
    assert requests.post(a.url("user", "/v1/users"), json=user, timeout=TIMEOUT).status_code == 201
    login = requests.post(a.url("user", "/v1/sessions"), json={"username": "walker", "password": user["password"]},
                          timeout=TIMEOUT)
    assert login.status_code == 201, login.text
    token = login.json()["data"]["token"]
    me = requests.get(b.url("user", "/v1/users/me"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert me.status_code == 200 and me.json()["data"]["username"] == "walker"
    mine = requests.get(b.url("transaction", "/v1/transactions"), headers={"Authorization": f"Bearer {token}"},
                        timeout=TIMEOUT)
    assert mine.status_code == 200 and mine.json()["data"] == []
