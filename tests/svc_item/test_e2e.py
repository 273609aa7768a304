"""svc_item over the real stack (gunicorn under supervisor): v1 with both roles, v2 walks, bad input."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from common.db.models import Item, Transaction, TransactionLine
from common.db.session import session_scope
from common.settings import get_settings
from common.paging import CursorCodec
from tests.conftest import unique
from tests.factories import committed_account
from tests.helpers import error

TIMEOUT = 10


@pytest.fixture(scope="module")
def admin():
    return committed_account("admin")


@pytest.fixture(scope="module")
def customer():
    return committed_account("customer")


@pytest.fixture(scope="module")
def api(stack):
    http = requests.Session()

    def call(method: str, path: str, account=None, **kw):
        headers = dict(kw.pop("headers", {}))
        if account is not None:
            headers.update(account.headers)
        return http.request(method, stack.url("item", path), headers=headers, timeout=TIMEOUT, **kw)

    return call


def new_item(**kw):
    return {"sku": unique("SKU-"), "name": unique("Kopi "), "price": 15000, "stock": 7, **kw}


# -- v1, the whole pattern, both roles -------------------------------------------------------------

def test_v1_category_pattern_with_both_roles(api, admin, customer):
    # Reads after a write are signed in: an anonymous one may be answered by the edge a second late.
    name = unique("Minuman ")
    error(api("POST", "/v1/categories", json={"name": name}), 401, "unauthorized")
    error(api("POST", "/v1/categories", customer, json={"name": name}), 403, "forbidden")
    created = api("POST", "/v1/categories", admin, json={"name": name, "description": "drinks"})
    assert created.status_code == 201
    category = created.json()["data"]
    location = created.headers["Location"]
    assert location.endswith(f"/v1/categories/{category['id']}")
    url = f"/v1/categories/{category['id']}"
    for who in (None, customer, admin):
        assert api("GET", url, who).json() == {"data": category}
    head = api("HEAD", url)
    assert head.status_code == 200 and head.content == b""
    listed, page = [], 1
    while chunk := api("GET", "/v1/categories", params={"page": page, "per_page": 100}).json()["data"]:
        listed += chunk
        page += 1
    assert category in listed

    for method in ("PUT", "POST"):
        error(api(method, url, customer, json={"name": name}), 403, "forbidden")
        error(api(method, url, json={"name": name}), 401, "unauthorized")
    error(api("PATCH", url, customer, json={"description": "x"}), 403, "forbidden")
    error(api("DELETE", url, customer), 403, "forbidden")
    error(api("DELETE", url), 401, "unauthorized")

    replaced = api("PUT", url, admin, json={"name": name + " dingin"}).json()["data"]
    assert replaced["name"] == name + " dingin" and replaced["description"] == ""
    reposted = api("POST", url, admin, json={"name": name, "description": "again"}).json()["data"]
    assert reposted["name"] == name and reposted["description"] == "again"
    patched = api("PATCH", url, admin, json={"description": "cold"}).json()["data"]
    assert patched["name"] == name and patched["description"] == "cold"
    assert api("GET", url, customer).json()["data"] == patched

    item = api("POST", "/v1/items", admin, json=new_item(category_id=category["id"])).json()["data"]
    deleted = api("DELETE", url, admin)
    assert deleted.status_code == 204 and deleted.content == b""
    error(api("GET", url, customer), 404, "not_found")
    error(api("DELETE", url, admin), 404, "not_found")
    assert api("GET", f"/v1/items/{item['id']}", customer).json()["data"]["category_id"] is None


def test_v1_item_pattern_with_both_roles(api, admin, customer):
    # Reads after a write are signed in: an anonymous one may be answered by the edge a second late.
    category = api("POST", "/v1/categories", admin, json={"name": unique("Kopi ")}).json()["data"]
    body = new_item(category_id=category["id"], description="Arabica")
    error(api("POST", "/v1/items", json=body), 401, "unauthorized")
    error(api("POST", "/v1/items", customer, json=body), 403, "forbidden")
    created = api("POST", "/v1/items", admin, json=body)
    assert created.status_code == 201
    item = created.json()["data"]
    assert {k: item[k] for k in body} == body
    assert set(item) == {"id", "sku", "name", "description", "price", "stock", "category_id", "created_at",
                         "updated_at"}
    url = f"/v1/items/{item['id']}"
    assert created.headers["Location"].endswith(url)
    for who in (None, customer, admin):
        assert api("GET", url, who).json() == {"data": item}
    assert api("HEAD", url).status_code == 200

    listed = api("GET", "/v1/items", params={"q": body["name"][-6:].upper(), "category_id": category["id"]})
    assert listed.json() == {"data": [item]}
    assert api("HEAD", "/v1/items", params={"category_id": category["id"]}).status_code == 200

    for method in ("PUT", "POST"):
        error(api(method, url, customer, json=new_item()), 403, "forbidden")
        error(api(method, url, json=new_item()), 401, "unauthorized")
    error(api("PATCH", url, customer, json={"price": 1}), 403, "forbidden")
    error(api("PATCH", url, json={"price": 1}), 401, "unauthorized")
    error(api("DELETE", url, customer), 403, "forbidden")
    error(api("DELETE", url), 401, "unauthorized")
    assert api("GET", url, customer).json() == {"data": item}  # nothing above changed it

    replacement = new_item(price=900, stock=2)
    replaced = api("PUT", url, admin, json=replacement).json()["data"]
    assert {k: replaced[k] for k in replacement} == replacement
    assert replaced["category_id"] is None and replaced["description"] == ""
    reposted = api("POST", url, admin, json=dict(replacement, category_id=category["id"])).json()["data"]
    assert reposted["category_id"] == category["id"]
    patched = api("PATCH", url, admin, json={"stock": 40, "description": "Robusta"}).json()["data"]
    assert patched | {"updated_at": None} == \
        reposted | {"stock": 40, "description": "Robusta", "updated_at": None}
    assert api("GET", url, customer).json()["data"] == patched

    assert api("DELETE", url, admin).status_code == 204
    error(api("GET", url, customer), 404, "not_found")
    error(api("GET", f"/v2/items/{item['id']}", customer), 404, "not_found")
    error(api("PUT", url, admin, json=new_item()), 404, "not_found")
    error(api("DELETE", url, admin), 404, "not_found")
    assert api("GET", "/v1/items", customer, params={"category_id": category["id"]}).json() == {"data": []}


def test_v1_list_pages(api, admin):
    category = api("POST", "/v1/categories", admin, json={"name": unique("Teh ")}).json()["data"]
    ids = [api("POST", "/v1/items", admin, json=new_item(category_id=category["id"])).json()["data"]["id"]
           for _ in range(5)]
    pages = [api("GET", "/v1/items", params={"category_id": category["id"], "per_page": 2, "page": n}).json()
             for n in (1, 2, 3, 4)]
    assert [[i["id"] for i in p["data"]] for p in pages] == [ids[0:2], ids[2:4], ids[4:], []]
    assert all(set(p) == {"data"} for p in pages)


def test_removed_item_keeps_its_transaction_lines(api, admin, customer):
    item = api("POST", "/v1/items", admin, json=new_item(price=1200)).json()["data"]
    with session_scope() as session:
        sale = Transaction(user_id=customer.id, status="paid", total=2400)
        session.add(sale)
        session.flush()
        session.add(TransactionLine(transaction_id=sale.id, item_id=item["id"], quantity=2, unit_price=1200))
    assert api("DELETE", f"/v1/items/{item['id']}", admin).status_code == 204
    with session_scope() as session:
        row = session.execute(select(Item).where(Item.id == item["id"])).scalar_one()
        assert row.deleted_at is not None and row.sku == item["sku"]
        line = session.execute(
            select(TransactionLine).where(TransactionLine.item_id == item["id"])).scalar_one()
        assert (line.quantity, line.unit_price) == (2, 1200)
    # Its sku is free again for a new item.
    assert api("POST", "/v1/items", admin, json=new_item(sku=item["sku"])).status_code == 201


# -- v2 --------------------------------------------------------------------------------------------

SORT_KEYS = {
    "id": lambda i: (i["id"],),
    "price": lambda i: (i["price"], i["id"]),
    "-price": lambda i: (-i["price"], -i["id"]),
    "name": lambda i: (i["name"], i["id"]),
}


@pytest.fixture(scope="module")
def shelf(api, admin):
    """A category with 26 items: price ties, name ties, some sold out, one removed; plus noise elsewhere."""
    tag = unique("shelf")
    category = api("POST", "/v1/categories", admin, json={"name": tag}).json()["data"]
    prices = [3000, 1000, 3000, 5000, 1000, 3000, 0, 8000, 3000, 1000, 5000, 5000, 2000,
              3000, 0, 1000, 8000, 3000, 2000, 5000, 3000, 1000, 9000, 3000, 4000, 3000]
    items = []
    for n, price in enumerate(prices):
        name = f"{tag} {'xyz'[n % 3]}" if n % 3 == 0 else f"{tag} {n:02d}"
        body = new_item(name=name, price=price, stock=n % 4, category_id=category["id"])
        items.append(api("POST", "/v1/items", admin, json=body).json()["data"])
    removed = api("POST", "/v1/items", admin, json=new_item(name=f"{tag} gone", category_id=category["id"]))
    assert api("DELETE", f"/v1/items/{removed.json()['data']['id']}", admin).status_code == 204
    elsewhere = api("POST", "/v1/items", admin, json=new_item(name=f"{tag} elsewhere", price=3000))
    return category, tag, items, elsewhere.json()["data"]


def walk(api, path, **params):
    seen, cursor = [], None
    for _ in range(100):
        response = api("GET", path, params=dict(params, **({"cursor": cursor} if cursor else {})))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["meta"]["limit"] == params["limit"] and len(body["data"]) <= params["limit"]
        seen += body["data"]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the walk did not end")


def expected(items, sort, keep=lambda i: True):
    return [i["id"] for i in sorted(filter(keep, items), key=SORT_KEYS[sort])]


@pytest.mark.parametrize("sort", ["id", "price", "-price", "name"])
def test_v2_walks_a_filtered_sorted_catalogue_seeing_each_item_once(api, shelf, sort):
    category, tag, items, elsewhere = shelf
    for limit in (1, 3, 26):
        seen = walk(api, "/v2/items", category_id=category["id"], sort=sort, limit=limit)
        assert [i["id"] for i in seen] == expected(items, sort)
    keep = lambda i: 1000 <= i["price"] <= 5000 and i["stock"] > 0  # noqa: E731
    seen = walk(api, "/v2/items", q=tag, min_price=1000, max_price=5000, in_stock="true", sort=sort, limit=4)
    ids = [i["id"] for i in seen]
    # q alone reaches beyond the category.
    assert ids == expected(items + [elsewhere], sort, keep) and len(set(ids)) == len(ids)
    assert elsewhere["id"] in ids
    sold_out = walk(api, f"/v2/categories/{category['id']}/items", in_stock="false", sort=sort, limit=2)
    assert [i["id"] for i in sold_out] == expected(items, sort, lambda i: i["stock"] == 0)


def test_v2_item_shape(api, shelf):
    category, _, items, _ = shelf
    item = items[0]
    body = api("GET", f"/v2/items/{item['id']}").json()["data"]
    assert body == {**{k: item[k] for k in ("id", "sku", "name", "description", "stock", "created_at",
                                            "updated_at")},
                    "price": {"amount": item["price"], "currency": get_settings().currency},
                    "category": {"id": category["id"], "name": category["name"]}}
    page = api("GET", "/v2/items", params={"category_id": category["id"], "limit": 1}).json()
    assert page["data"] == [body] and isinstance(page["meta"]["next_cursor"], str)
    assert api("HEAD", f"/v2/items/{item['id']}").status_code == 200


# -- every bad input -------------------------------------------------------------------------------

def test_duplicate_sku_is_409(api, admin):
    body = new_item()
    assert api("POST", "/v1/items", admin, json=body).status_code == 201
    err = error(api("POST", "/v1/items", admin, json=new_item(sku=body["sku"])), 409, "already_exists")
    assert err["details"] == {"field": "sku"}
    other = api("POST", "/v1/items", admin, json=new_item()).json()["data"]
    error(api("PATCH", f"/v1/items/{other['id']}", admin, json={"sku": body["sku"]}), 409, "already_exists")


@pytest.mark.parametrize("changes,fields", [
    ({"price": -1}, {"price"}), ({"price": 10.5}, {"price"}), ({"price": "100"}, {"price"}),
    ({"stock": -1}, {"stock"}), ({"stock": 2.5}, {"stock"}),
    ({"price": -2, "stock": "x"}, {"price", "stock"}),
])
def test_negative_or_non_integer_price_or_stock_is_422_naming_fields(api, admin, changes, fields):
    err = error(api("POST", "/v1/items", admin, json=new_item(**changes)), 422, "validation_error")
    assert set(err["details"]["fields"]) == fields
    item = api("POST", "/v1/items", admin, json=new_item()).json()["data"]
    err = error(api("PATCH", f"/v1/items/{item['id']}", admin, json=changes), 422, "validation_error")
    assert set(err["details"]["fields"]) == fields
    err = error(api("PUT", f"/v1/items/{item['id']}", admin, json=new_item(**changes)), 422,
                "validation_error")
    assert set(err["details"]["fields"]) == fields


def test_missing_fields_and_unknown_category_are_422_naming_fields(api, admin):
    err = error(api("POST", "/v1/items", admin, json={"name": "only a name"}), 422, "validation_error")
    assert set(err["details"]["fields"]) == {"sku", "price", "stock"}
    err = error(api("POST", "/v1/categories", admin, json={}), 422, "validation_error")
    assert set(err["details"]["fields"]) == {"name"}
    category = api("POST", "/v1/categories", admin, json={"name": unique("Gone ")}).json()["data"]
    assert api("DELETE", f"/v1/categories/{category['id']}", admin).status_code == 204
    err = error(api("POST", "/v1/items", admin, json=new_item(category_id=category["id"])), 422,
                "validation_error")
    assert err["details"] == {"fields": {"category_id": ["Unknown category."]}}
    item = api("POST", "/v1/items", admin, json=new_item()).json()["data"]
    err = error(api("PATCH", f"/v1/items/{item['id']}", admin, json={"category_id": category["id"]}), 422,
                "validation_error")
    assert set(err["details"]["fields"]) == {"category_id"}


def test_bodies_that_are_not_json(api, admin):
    error(api("POST", "/v1/items", admin, data="{oops", headers={"Content-Type": "application/json"}), 400,
          "bad_request")
    error(api("POST", "/v1/items", admin, data="sku=1", headers={"Content-Type": "text/plain"}), 415,
          "unsupported_media_type")


def test_garbled_or_forged_cursor_is_400(api, shelf):
    category, _, _, _ = shelf
    params = {"category_id": category["id"], "sort": "-price", "limit": 2}
    cursor = api("GET", "/v2/items", params=params).json()["meta"]["next_cursor"]
    forged = CursorCodec(secret="guessed-secret", purpose="items-v2").encode(
        [0, 0], {"scope": "items", "sort": "-price", "category_id": category["id"]})
    tampered = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
    for bad in ("garbled!", "AAAA", tampered, forged):
        error(api("GET", "/v2/items", params=dict(params, cursor=bad)), 400, "invalid_cursor")
    error(api("GET", "/v2/items", params=dict(params, cursor=cursor, sort="price")), 400, "invalid_cursor")
    error(api("GET", f"/v2/categories/{category['id']}/items", params={"sort": "-price", "cursor": cursor}),
          400, "invalid_cursor")


@pytest.mark.parametrize("path,params,field", [
    ("/v1/items", {"per_page": 101}, "per_page"), ("/v1/items", {"per_page": 0}, "per_page"),
    ("/v1/categories", {"per_page": 500}, "per_page"), ("/v2/items", {"limit": 101}, "limit"),
    ("/v2/items", {"limit": 0}, "limit"), ("/v2/items", {"sort": "stock"}, "sort"),
    ("/v2/items", {"min_price": -5}, "min_price"), ("/v2/items", {"in_stock": "perhaps"}, "in_stock"),
])
def test_bad_paging_and_filter_arguments_are_422(api, path, params, field):
    err = error(api("GET", path, params=params), 422, "validation_error")
    assert list(err["details"]["fields"]) == [field]


@pytest.mark.parametrize("item_id", ["abc", "1x", "0", "999999999999", str(2**63), str(10**30)])
def test_non_numeric_or_unknown_id_is_404(api, admin, item_id):
    for path in (f"/v1/items/{item_id}", f"/v2/items/{item_id}", f"/v1/categories/{item_id}",
                 f"/v2/categories/{item_id}/items"):
        error(api("GET", path), 404, "not_found")
    error(api("PUT", f"/v1/items/{item_id}", admin, json=new_item()), 404, "not_found")
    error(api("POST", f"/v1/items/{item_id}", admin, json=new_item()), 404, "not_found")
    error(api("PATCH", f"/v1/items/{item_id}", admin, json={"stock": 1}), 404, "not_found")
    error(api("DELETE", f"/v1/items/{item_id}", admin), 404, "not_found")
    error(api("PATCH", f"/v1/categories/{item_id}", admin, json={"description": "x"}), 404, "not_found")
    error(api("DELETE", f"/v1/categories/{item_id}", admin), 404, "not_found")


def test_openapi_has_both_versions(api):
    spec = api("GET", "/openapi.json").json()
    assert "/v1/items/{item_id}" in spec["paths"] and "/v2/items" in spec["paths"]
    assert "/v2/categories/{category_id}/items" in spec["paths"]
    assert "keyset" in spec["info"]["description"]
