"""v1 items and categories, in process: every verb, both roles, every bad input."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from common.db.models import Item, Transaction, TransactionLine
from tests.conftest import unique
from tests.factories import make_category, make_item
from tests.helpers import error

V1_ITEM_KEYS = {"id", "sku", "name", "description", "price", "stock", "category_id", "created_at",
                "updated_at"}


def new_item(category_id=None, **kw):
    body = {"sku": unique("SKU-"), "name": unique("Kopi "), "price": 15000, "stock": 7}
    if category_id is not None:
        body["category_id"] = category_id
    body.update(kw)
    return body


# -- items -----------------------------------------------------------------------------------------

def test_create_then_read_an_item(client, admin, db_session):
    category = make_category(db_session)
    body = new_item(category.id, description="Arabica, 250 g")
    created = client.post("/v1/items", json=body, headers=admin.headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    item = created.get_json()["data"]
    assert set(item) == V1_ITEM_KEYS
    assert {k: item[k] for k in body} == body
    assert item["created_at"].endswith("Z") and item["updated_at"].endswith("Z")
    assert created.headers["Location"].endswith(f"/v1/items/{item['id']}")
    read = client.get(f"/v1/items/{item['id']}")
    assert read.status_code == 200 and read.get_json() == {"data": item}
    head = client.head(f"/v1/items/{item['id']}")
    assert head.status_code == 200 and head.get_data() == b""


def test_optional_fields_default(client, admin):
    item = client.post("/v1/items", json=new_item(), headers=admin.headers).get_json()["data"]
    assert item["description"] == "" and item["category_id"] is None


@pytest.mark.parametrize("method", ["put", "post"])
def test_put_and_post_on_an_id_replace_the_item(client, admin, db_session, method):
    category = make_category(db_session)
    item = make_item(db_session, category=category)
    item.description = "old"
    db_session.flush()
    replacement = new_item(price=500, stock=0)
    response = getattr(client, method)(f"/v1/items/{item.id}", json=replacement, headers=admin.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()["data"]
    # A replace resets what the body leaves out.
    assert {k: data[k] for k in replacement} == replacement
    assert data["description"] == "" and data["category_id"] is None
    assert client.get(f"/v1/items/{item.id}").get_json()["data"] == data


def test_replace_needs_every_required_field(client, admin, db_session):
    item = make_item(db_session)
    err = error(client.put(f"/v1/items/{item.id}", json={"name": "x"}, headers=admin.headers), 422,
                "validation_error")
    assert set(err["details"]["fields"]) == {"sku", "price", "stock"}


def test_patch_changes_only_the_named_fields(client, admin, db_session):
    category = make_category(db_session)
    item = make_item(db_session, price=1000, stock=3, category=category)
    before = client.get(f"/v1/items/{item.id}").get_json()["data"]
    response = client.patch(f"/v1/items/{item.id}", json={"price": 2500}, headers=admin.headers)
    assert response.status_code == 200
    after = response.get_json()["data"]
    assert after["price"] == 2500
    assert {k: v for k, v in after.items() if k not in ("price", "updated_at")} == \
        {k: v for k, v in before.items() if k not in ("price", "updated_at")}
    cleared = client.patch(f"/v1/items/{item.id}", json={"category_id": None}, headers=admin.headers)
    assert cleared.get_json()["data"]["category_id"] is None
    unchanged = client.patch(f"/v1/items/{item.id}", json={}, headers=admin.headers)
    assert unchanged.status_code == 200 and unchanged.get_json()["data"]["price"] == 2500


def test_delete_takes_the_item_out_of_the_catalogue_but_keeps_its_sales(client, admin, customer, db_session):
    item = make_item(db_session, price=700)
    sale = Transaction(user_id=customer.id, status="paid", total=700)
    db_session.add(sale)
    db_session.flush()
    db_session.add(TransactionLine(transaction_id=sale.id, item_id=item.id, quantity=1, unit_price=700))
    db_session.flush()

    response = client.delete(f"/v1/items/{item.id}", headers=admin.headers)
    assert response.status_code == 204 and response.get_data() == b""
    error(client.get(f"/v1/items/{item.id}"), 404, "not_found")
    error(client.patch(f"/v1/items/{item.id}", json={"price": 1}, headers=admin.headers), 404, "not_found")
    error(client.delete(f"/v1/items/{item.id}", headers=admin.headers), 404, "not_found")
    assert item.id not in [i["id"] for i in client.get(f"/v1/items?q={item.name}").get_json()["data"]]
    # The row and the sale that names it survive.
    row = db_session.execute(select(Item).where(Item.id == item.id)).scalar_one()
    assert row.deleted_at is not None
    line = db_session.execute(select(TransactionLine).where(TransactionLine.item_id == item.id)).scalar_one()
    assert line.unit_price == 700


def test_a_removed_items_sku_can_be_used_again(client, admin, db_session):
    item = make_item(db_session)
    assert client.delete(f"/v1/items/{item.id}", headers=admin.headers).status_code == 204
    again = client.post("/v1/items", json=new_item(sku=item.sku), headers=admin.headers)
    assert again.status_code == 201 and again.get_json()["data"]["id"] != item.id


def test_list_filters_by_q_and_category_and_pages(client, db_session):
    category, other = make_category(db_session), make_category(db_session)
    tag = unique("kopi")
    ours = [make_item(db_session, category=category, name=f"{tag} {i}") for i in range(5)]
    make_item(db_session, category=other, name=f"{tag} elsewhere")
    make_item(db_session, category=category, name=unique("teh"))
    ids = [i.id for i in ours]

    listed = client.get(f"/v1/items?q={tag.upper()}&category_id={category.id}&per_page=100").get_json()
    assert set(listed) == {"data"} and [i["id"] for i in listed["data"]] == ids
    assert all(set(i) == V1_ITEM_KEYS for i in listed["data"])
    first = client.get(f"/v1/items?q={tag}&category_id={category.id}&per_page=2&page=1").get_json()["data"]
    second = client.get(f"/v1/items?q={tag}&category_id={category.id}&per_page=2&page=2").get_json()["data"]
    third = client.get(f"/v1/items?q={tag}&category_id={category.id}&per_page=2&page=3").get_json()["data"]
    assert [i["id"] for i in first + second + third] == ids
    assert client.get(f"/v1/items?q={tag}&category_id={category.id}&page=9").get_json() == {"data": []}
    assert client.head(f"/v1/items?q={tag}").status_code == 200
    assert len(client.get(f"/v1/items?q={tag}").get_json()["data"]) == 6


def test_q_takes_like_wildcards_literally(client, db_session):
    tag = unique("w")
    literal = make_item(db_session, name=f"{tag} 100% kopi")
    make_item(db_session, name=f"{tag} 100 kopi")
    found = client.get("/v1/items", query_string={"q": f"{tag} 100%"}).get_json()["data"]
    assert [i["id"] for i in found] == [literal.id]
    assert client.get("/v1/items", query_string={"q": f"{tag}_"}).get_json()["data"] == []


def test_default_page_size_is_20(client, db_session):
    category = make_category(db_session)
    for _ in range(21):
        make_item(db_session, category=category)
    assert len(client.get(f"/v1/items?category_id={category.id}").get_json()["data"]) == 20


def test_duplicate_sku_is_409(client, admin, db_session):
    item = make_item(db_session)
    err = error(client.post("/v1/items", json=new_item(sku=item.sku), headers=admin.headers), 409,
                "already_exists")
    assert err["details"] == {"field": "sku"}
    other = make_item(db_session)
    err = error(client.patch(f"/v1/items/{other.id}", json={"sku": item.sku}, headers=admin.headers), 409,
                "already_exists")
    assert err["details"] == {"field": "sku"}
    # The failed write left the session usable.
    assert client.get(f"/v1/items/{other.id}").get_json()["data"]["sku"] == other.sku


@pytest.mark.parametrize("field,value", [
    ("price", -1), ("price", 10.5), ("price", "100"), ("price", True), ("price", None), ("price", 2**63),
    ("stock", -3), ("stock", 1.5), ("stock", "7"), ("stock", 2**31),
])
def test_bad_price_or_stock_is_422_naming_the_field(client, admin, field, value):
    err = error(client.post("/v1/items", json=new_item(**{field: value}), headers=admin.headers), 422,
                "validation_error")
    assert list(err["details"]["fields"]) == [field]


def test_bad_patch_values_are_422_naming_the_fields(client, admin, db_session):
    item = make_item(db_session)
    err = error(client.patch(f"/v1/items/{item.id}", json={"price": -5, "stock": 0.5, "sku": None},
                             headers=admin.headers), 422, "validation_error")
    assert set(err["details"]["fields"]) == {"price", "stock", "sku"}


def test_missing_and_unknown_fields_are_422_naming_them(client, admin):
    err = error(client.post("/v1/items", json={"name": "x", "colour": "red"}, headers=admin.headers), 422,
                "validation_error")
    assert set(err["details"]["fields"]) == {"sku", "price", "stock", "colour"}
    err = error(client.post("/v1/items", json=new_item(sku=""), headers=admin.headers), 422,
                "validation_error")
    assert list(err["details"]["fields"]) == ["sku"]


def test_unknown_category_is_422_naming_the_field(client, admin, db_session):
    missing = make_category(db_session)
    db_session.delete(missing)
    db_session.flush()
    err = error(client.post("/v1/items", json=new_item(missing.id), headers=admin.headers), 422,
                "validation_error")
    assert list(err["details"]["fields"]) == ["category_id"]
    item = make_item(db_session)
    for method in ("put", "post"):
        err = error(getattr(client, method)(f"/v1/items/{item.id}", json=new_item(missing.id),
                                            headers=admin.headers), 422, "validation_error")
        assert list(err["details"]["fields"]) == ["category_id"]
    err = error(client.patch(f"/v1/items/{item.id}", json={"category_id": missing.id}, headers=admin.headers),
                422, "validation_error")
    assert list(err["details"]["fields"]) == ["category_id"]
    err = error(client.post("/v1/items", json=new_item(category_id=2**63), headers=admin.headers), 422,
                "validation_error")
    assert list(err["details"]["fields"]) == ["category_id"]


def test_body_that_is_not_json_or_not_an_object(client, admin):
    error(client.post("/v1/items", data="{nope", content_type="application/json", headers=admin.headers), 400,
          "bad_request")
    error(client.post("/v1/items", data="sku=x", content_type="text/plain", headers=admin.headers), 415,
          "unsupported_media_type")
    error(client.post("/v1/items", json=[new_item()], headers=admin.headers), 422, "validation_error")


@pytest.mark.parametrize("path", ["abc", "0", "-1", "1.5", "999999999999", str(2**63), "9" * 40])
def test_non_numeric_unknown_or_out_of_range_id_is_404(client, admin, path):
    error(client.get(f"/v1/items/{path}"), 404, "not_found")
    assert client.head(f"/v1/items/{path}").status_code == 404
    error(client.put(f"/v1/items/{path}", json=new_item(), headers=admin.headers), 404, "not_found")
    error(client.patch(f"/v1/items/{path}", json={"price": 1}, headers=admin.headers), 404, "not_found")
    error(client.delete(f"/v1/items/{path}", headers=admin.headers), 404, "not_found")
    error(client.get(f"/v1/categories/{path}"), 404, "not_found")


def test_customers_cannot_write(client, customer, db_session):
    item = make_item(db_session)
    error(client.post("/v1/items", json=new_item(), headers=customer.headers), 403, "forbidden")
    error(client.put(f"/v1/items/{item.id}", json=new_item(), headers=customer.headers), 403, "forbidden")
    error(client.post(f"/v1/items/{item.id}", json=new_item(), headers=customer.headers), 403, "forbidden")
    error(client.patch(f"/v1/items/{item.id}", json={"price": 1}, headers=customer.headers), 403, "forbidden")
    error(client.delete(f"/v1/items/{item.id}", headers=customer.headers), 403, "forbidden")
    # Reads are for everyone, with or without a session.
    assert client.get(f"/v1/items/{item.id}", headers=customer.headers).status_code == 200


def test_writing_without_a_session_is_401_before_the_body_is_read(client, db_session):
    item = make_item(db_session)
    item_id, price = item.id, item.price
    error(client.post("/v1/items", json={"bogus": 1}), 401, "unauthorized")
    error(client.put(f"/v1/items/{item_id}", json=new_item()), 401, "unauthorized")
    error(client.patch(f"/v1/items/{item_id}", json={}), 401, "unauthorized")
    error(client.delete(f"/v1/items/{item_id}", headers={"Authorization": "Bearer not-a-token"}), 401,
          "unauthorized")
    assert client.get(f"/v1/items/{item_id}").get_json()["data"]["price"] == price


@pytest.mark.parametrize("query", ["per_page=101", "per_page=0", "page=0", "per_page=x", "category_id=abc",
                                   "category_id=0", "q="])
def test_bad_list_arguments_are_422(client, query):
    err = error(client.get(f"/v1/items?{query}"), 422, "validation_error")
    assert list(err["details"]["fields"]) == [query.split("=")[0]]


def test_wrong_method_is_405(client):
    error(client.delete("/v1/items"), 405, "method_not_allowed")


# -- categories ------------------------------------------------------------------------------------

def test_category_every_verb(client, admin, db_session):
    name = unique("Minuman ")
    created = client.post("/v1/categories", json={"name": name}, headers=admin.headers)
    assert created.status_code == 201
    category = created.get_json()["data"]
    assert set(category) == {"id", "name", "description", "created_at", "updated_at"}
    assert category["name"] == name and category["description"] == ""
    assert created.headers["Location"].endswith(f"/v1/categories/{category['id']}")
    url = f"/v1/categories/{category['id']}"
    assert client.get(url).get_json() == {"data": category}
    assert client.head(url).status_code == 200

    replaced = client.put(url, json={"name": name + " baru", "description": "drinks"}, headers=admin.headers)
    assert replaced.status_code == 200 and replaced.get_json()["data"]["description"] == "drinks"
    reposted = client.post(url, json={"name": name}, headers=admin.headers)
    assert reposted.get_json()["data"]["description"] == "" and reposted.get_json()["data"]["name"] == name
    patched = client.patch(url, json={"description": "cold"}, headers=admin.headers)
    assert patched.get_json()["data"] | {"updated_at": None} == \
        reposted.get_json()["data"] | {"description": "cold", "updated_at": None}

    item = make_item(db_session)
    client.patch(f"/v1/items/{item.id}", json={"category_id": category["id"]}, headers=admin.headers)
    assert client.delete(url, headers=admin.headers).status_code == 204
    error(client.get(url), 404, "not_found")
    error(client.delete(url, headers=admin.headers), 404, "not_found")
    # Its items stay in the catalogue, uncategorised.
    assert client.get(f"/v1/items/{item.id}").get_json()["data"]["category_id"] is None


def test_category_list_pages(client, db_session):
    made = [make_category(db_session).id for _ in range(3)]
    listed = []
    page = 1
    while True:
        chunk = client.get(f"/v1/categories?per_page=2&page={page}").get_json()["data"]
        if not chunk:
            break
        listed += [c["id"] for c in chunk]
        page += 1
    assert listed == sorted(listed) and set(made) <= set(listed)
    error(client.get("/v1/categories?per_page=101"), 422, "validation_error")


def test_category_bad_input(client, admin, customer, db_session):
    existing = make_category(db_session)
    err = error(client.post("/v1/categories", json={"name": existing.name}, headers=admin.headers), 409,
                "already_exists")
    assert err["details"] == {"field": "name"}
    other = make_category(db_session)
    error(client.patch(f"/v1/categories/{other.id}", json={"name": existing.name}, headers=admin.headers),
          409, "already_exists")
    err = error(client.post("/v1/categories", json={"description": 5}, headers=admin.headers), 422,
                "validation_error")
    assert set(err["details"]["fields"]) == {"name", "description"}
    error(client.post("/v1/categories", json={"name": "x"}, headers=customer.headers), 403, "forbidden")
    error(client.put(f"/v1/categories/{other.id}", json={"name": "x"}, headers=customer.headers), 403,
          "forbidden")
    error(client.patch(f"/v1/categories/{other.id}", json={"name": "x"}, headers=customer.headers), 403,
          "forbidden")
    error(client.delete(f"/v1/categories/{other.id}", headers=customer.headers), 403, "forbidden")
    error(client.post("/v1/categories", json={"name": "x"}), 401, "unauthorized")
    error(client.delete(f"/v1/categories/{other.id}"), 401, "unauthorized")
    error(client.put("/v1/categories/999999999999", json={"name": unique()}, headers=admin.headers), 404,
          "not_found")


def test_openapi_documents_v1_and_v2(client):
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/v1/items"])
    assert {"get", "put", "post", "patch", "delete"} <= set(paths["/v1/items/{item_id}"])
    assert {"get", "put", "post", "patch", "delete"} <= set(paths["/v1/categories/{category_id}"])
    assert "get" in paths["/v2/items"] and "get" in paths["/v2/items/{item_id}"]
    assert "get" in paths["/v2/categories/{category_id}/items"]
    assert "security" in paths["/v1/items"]["post"] and "security" not in paths["/v1/items"]["get"]
    assert "cursor" in spec["info"]["description"] and "v1" in spec["info"]["description"]
    v2 = spec["components"]["schemas"]["ItemV2"]["properties"]
    assert v2["price"] == {"$ref": "#/components/schemas/Money"}
    assert spec["components"]["schemas"]["Item"]["properties"]["price"]["type"] == "integer"
    params = {p["name"] for p in paths["/v2/items"]["get"]["parameters"]}
    assert {"cursor", "limit", "q", "category_id", "min_price", "max_price", "in_stock", "sort"} <= params


@pytest.mark.parametrize("sku", ["SKU-1\n", "SKU 1", "SKU-1\t", "\u0410-1", ""])
def test_a_sku_with_a_line_break_space_or_lookalike_letter_is_refused(client, admin, sku):
    err = error(client.post("/v1/items", json=new_item(sku=sku), headers=admin.headers), 422, "validation_error")
    assert "sku" in err["details"]["fields"]
