"""Log in once, use the session everywhere: over the real stack."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from common.settings import SERVICES, get_settings
from tests.conftest import unique
from tests.e2e.stack import client_from
from tests.factories import PASSWORD, committed_account

# One endpoint per service that needs a session (and nothing else) to answer 2xx.
AUTHENTICATED = {
    "user": ("GET", "/v1/users/me"),
    "otp": ("GET", "/v1/otps"),
    "item": ("GET", "/v1/items?per_page=1"),  # public: a session must not hurt it
    "transaction": ("GET", "/v1/transactions"),
    "report": ("GET", "/v1/reports"),
}
NEEDS_SESSION = {s: ep for s, ep in AUTHENTICATED.items() if s != "item"}


def call(stack, service, http=requests, **kw):
    method, path = AUTHENTICATED[service]
    return http.request(method, stack.url(service, path), timeout=10, **kw)


def register_and_login(stack, role_admin=False):
    if role_admin:
        account = committed_account("admin")
        username = account.username
    else:
        username = unique("e2e")
        created = requests.post(stack.url("user", "/v1/users"), json={
            "username": username, "email": f"{username}@example.test", "password": PASSWORD}, timeout=10)
        assert created.status_code == 201, created.text
    http = requests.Session()
    response = http.post(stack.url("user", "/v1/sessions"), json={"username": username, "password": PASSWORD},
                         timeout=10)
    assert response.status_code == 201, response.text
    return http, response.json()["data"]["token"]


def test_one_login_serves_every_service_by_bearer_and_by_cookie(stack):
    cookie_client, token = register_and_login(stack, role_admin=True)
    for service in SERVICES:
        by_bearer = call(stack, service, headers={"Authorization": f"Bearer {token}"})
        assert by_bearer.status_code == 200, (service, by_bearer.text)
        # The cookie set by the user service on 127.0.0.1 reaches every port of that host.
        by_cookie = call(stack, service, http=cookie_client)
        assert by_cookie.status_code == 200, (service, by_cookie.text)


def test_without_a_valid_session_every_service_says_401(stack):
    for service in NEEDS_SESSION:
        for headers in ({}, {"Authorization": "Bearer not-a-real-token"}):
            response = call(stack, service, headers=headers)
            assert response.status_code == 401, (service, response.text)
            assert response.json()["error"]["code"] == "unauthorized"


def test_logout_kills_the_token_on_all_five_services(stack):
    _, token = register_and_login(stack, role_admin=True)
    headers = {"Authorization": f"Bearer {token}"}
    assert all(call(stack, s, headers=headers).status_code == 200 for s in NEEDS_SESSION)
    assert requests.delete(stack.url("user", "/v1/sessions/current"), headers=headers, timeout=10).status_code == 204
    for service in NEEDS_SESSION:
        assert call(stack, service, headers=headers).status_code == 401, service


def test_roles_and_privacy_across_services(stack):
    _, customer = register_and_login(stack)
    headers = {"Authorization": f"Bearer {customer}"}
    assert requests.get(stack.url("report", "/v1/reports"), headers=headers, timeout=10).status_code == 403
    assert requests.get(stack.url("user", "/v1/users"), headers=headers, timeout=10).status_code == 403
    other = committed_account()
    assert requests.get(stack.url("user", f"/v1/users/{other.id}"), headers=headers, timeout=10).status_code == 404


def test_parallel_failures_check_no_more_passwords_than_the_threshold(stack):
    username = unique("e2e")
    assert requests.post(stack.url("user", "/v1/users"), json={
        "username": username, "email": f"{username}@example.test", "password": PASSWORD}, timeout=10).status_code == 201
    attacker, owner = client_from("127.0.0.31"), client_from("127.0.0.32")

    def wrong(_):
        return attacker.post(stack.url("user", "/v1/sessions"), json={"username": username, "password": "nope-nope"},
                             timeout=30).status_code

    # 40 at once over every worker and thread: the count is taken and written atomically before any hash.
    # A login refused for want of a hashing slot (503) checks no password and counts nothing.
    limit = get_settings().login_max_failures
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(wrong, range(40)))
    checked = statuses.count(401)
    assert checked <= limit and set(statuses) <= {401, 429, 503}, statuses
    for _ in range(limit + 5):  # then one at a time, until the throttle answers
        status = wrong(None)
        if status != 401:
            assert status in (429, 503)
            if status == 429:
                break
        checked += status == 401
    assert status == 429 and checked == limit
    right = attacker.post(stack.url("user", "/v1/sessions"), json={"username": username, "password": PASSWORD},
                          timeout=10)
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
    assert owner.post(stack.url("user", "/v1/sessions"), json={"username": username, "password": PASSWORD},
                      timeout=10).status_code == 201
