"""Headers every service sets: nosniff everywhere, no-store on private answers, CORS only when configured."""
from __future__ import annotations

import pytest

from common.settings import SettingsError, get_settings, load_settings
from tests.factories import PASSWORD


@pytest.mark.parametrize("service", ["user", "otp", "item", "transaction", "report"])
def test_nosniff_on_every_response(make_client, service):
    client = make_client(service)
    for response in (client.get("/healthz"), client.get("/nowhere"), client.delete("/healthz"),
                     client.get("/openapi.json"), client.get("/docs/"),
                     client.post("/v1/nothing", data="x", content_type="text/plain")):
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.status_code


def test_a_token_or_a_users_own_data_is_never_stored(make_client, customer, admin):
    users = make_client("user")
    login = users.post("/v1/sessions", json={"username": customer.username, "password": PASSWORD})
    assert login.status_code == 201 and login.headers["Cache-Control"] == "no-store"
    registered = users.post("/v1/users", json={"username": "cachecheck1", "email": "cachecheck1@example.test",
                                               "password": "long-enough-1"})
    assert registered.status_code == 201 and registered.headers["Cache-Control"] == "no-store"
    for path in ("/v1/users/me", "/v1/sessions/current", f"/v1/users/{customer.id}"):
        response = users.get(path, headers=customer.headers)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store", path
    assert users.get("/v1/users", headers=admin.headers).headers["Cache-Control"] == "no-store"
    assert users.get("/v1/users/me").headers["Cache-Control"] == "no-store"  # even the 401
    transactions = make_client("transaction")
    assert transactions.get("/v1/transactions", headers=customer.headers).headers["Cache-Control"] == "no-store"
    reports = make_client("report")
    assert reports.get("/v1/reports", headers=admin.headers).headers["Cache-Control"] == "no-store"
    otp = make_client("otp")
    assert otp.post("/v1/otps", json={}, headers=customer.headers).headers["Cache-Control"] == "no-store"
    # The session cookie makes a read private as much as a bearer token does.
    items = make_client("item")
    items.set_cookie("toko_session", customer.token)
    assert items.get("/v1/items").headers["Cache-Control"] == "no-store"


def test_the_public_catalogue_may_be_kept_a_second_with_an_etag(make_client, db_session):
    from tests.factories import make_category, make_item

    item, category = make_item(db_session), make_category(db_session)
    items = make_client("item")
    for path in ("/v1/items", "/v2/items", f"/v1/items/{item.id}", f"/v2/items/{item.id}", "/v1/categories",
                 f"/v2/categories/{category.id}/items"):
        answer = items.get(path)
        assert answer.status_code == 200 and answer.headers["Cache-Control"] == "public, max-age=1", path
        again = items.get(path, headers={"If-None-Match": answer.headers["ETag"]})
        assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", answer.headers["ETag"])
        head = items.head(path)
        assert head.headers["ETag"] == answer.headers["ETag"] and head.data == b""
    # Not a catalogue answer (an error, the service's own documents): no promise to keep it.
    assert "Cache-Control" not in items.get("/v1/items/999999999").headers
    assert "ETag" not in items.get("/openapi.json").headers


@pytest.fixture
def cors(environment):
    """Settings with TOKO_CORS_ORIGINS set, for apps created inside the test."""
    environment(TOKO_CORS_ORIGINS="https://shop.example, http://localhost:3000")


def test_cors_is_off_by_default(make_client, customer):
    assert get_settings().cors_origins == ()
    client = make_client("user")
    response = client.get("/v1/users/me", headers={**customer.headers, "Origin": "https://shop.example"})
    assert response.status_code == 200
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]
    preflight = client.options("/v1/users/me", headers={"Origin": "https://shop.example",
                                                        "Access-Control-Request-Method": "GET"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_allows_exactly_the_listed_origins_with_credentials(cors, make_client, customer):
    client = make_client("user")
    preflight = client.options("/v1/users/me", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "Origin" in preflight.headers.get_all("Vary")

    actual = client.get("/v1/users/me", headers={**customer.headers, "Origin": "http://localhost:3000"})
    assert actual.status_code == 200
    assert actual.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert actual.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Request-ID" in actual.headers["Access-Control-Expose-Headers"]

    for stranger in ("https://evil.example", "https://shop.example.evil.example", "null", "https://SHOP.example:443"):
        denied = client.options("/v1/users/me", headers={"Origin": stranger, "Access-Control-Request-Method": "GET"})
        assert "Access-Control-Allow-Origin" not in denied.headers, stranger
        response = client.get("/v1/users/me", headers={**customer.headers, "Origin": stranger})
        assert "Access-Control-Allow-Origin" not in response.headers, stranger
        assert "Origin" in response.headers.get_all("Vary")


@pytest.mark.parametrize("value", ["*", "https://shop.example/", "shop.example", "https://shop.example/path",
                                   "ftp://shop.example"])
def test_cors_origins_must_be_exact_origins(value):
    with pytest.raises(SettingsError, match="TOKO_CORS_ORIGINS"):
        load_settings({"TOKO_CORS_ORIGINS": value})
