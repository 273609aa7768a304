"""v2 items, in process: keyset walks under every sort, filters, the embedded shape, bad cursors."""
from __future__ import annotations

import pytest
from sqlalchemy import event

from common.settings import get_settings
from common.paging import CursorCodec
from tests.conftest import unique
from tests.factories import make_category, make_item
from tests.helpers import error

SORT_KEYS = {
    "id": lambda i: (i["id"],),
    "price": lambda i: (i["price"], i["id"]),
    "-price": lambda i: (-i["price"], -i["id"]),
    "name": lambda i: (i["name"], i["id"]),
}


def walk(client, path, **params):
    """Every page of a v2 list: (items in order, number of pages)."""
    seen, pages, cursor = [], 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(path, query_string=query)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert set(body) == {"data", "meta"} and body["meta"]["limit"] == params.get("limit", 20)
        assert len(body["data"]) <= body["meta"]["limit"]
        seen += body["data"]
        pages += 1
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return seen, pages
        assert len(body["data"]) == body["meta"]["limit"]
        assert pages < 100


@pytest.fixture
def catalogue(db_session):
    """A category of 23 items with many price and name ties, plus noise around it."""
    category = make_category(db_session)
    tag = unique("cat")
    prices = [5000, 1000, 5000, 3000, 1000, 5000, 9000, 3000, 1000, 0, 5000, 7000,
              3000, 5000, 1000, 2000, 2000, 5000, 7000, 0, 5000, 9000, 4000]
    items = []
    for n, price in enumerate(prices):
        # Three names repeat so the name sort has ties too.
        name = f"{tag} {'abc'[n % 3]}" if n % 4 == 0 else f"{tag} {n:02d}"
        items.append(make_item(db_session, category=category, price=price, stock=n % 5, name=name))
    make_item(db_session, category=make_category(db_session), name=f"{tag} other")
    removed = make_item(db_session, category=category, name=f"{tag} removed", price=5000)
    removed.deleted_at = removed.created_at
    db_session.flush()
    return category, tag, items


def expected(items, sort, keep=lambda i: True):
    rows = [{"id": i.id, "price": i.price, "name": i.name, "stock": i.stock} for i in items]
    return [r["id"] for r in sorted(filter(keep, rows), key=SORT_KEYS[sort])]


@pytest.mark.parametrize("sort", ["id", "price", "-price", "name"])
@pytest.mark.parametrize("limit", [1, 4, 7, 100])
def test_walk_every_sort_sees_every_item_once_in_order(client, catalogue, sort, limit):
    category, _, items = catalogue
    seen, pages = walk(client, "/v2/items", category_id=category.id, sort=sort, limit=limit)
    ids = [i["id"] for i in seen]
    assert ids == expected(items, sort)
    assert len(set(ids)) == len(items)
    # The page after which nothing is left says so: no empty trailing page.
    assert pages == -(-len(items) // limit)


@pytest.mark.parametrize("sort", ["id", "price", "-price", "name"])
def test_walk_with_filters(client, catalogue, sort):
    category, tag, items = catalogue
    keep = lambda i: 1000 <= i["price"] <= 5000 and i["stock"] > 0  # noqa: E731
    seen, _ = walk(client, "/v2/items", q=tag.upper(), category_id=category.id, min_price=1000,
                   max_price=5000, in_stock="true", sort=sort, limit=3)
    assert [i["id"] for i in seen] == expected(items, sort, keep)
    sold_out, _ = walk(client, "/v2/items", q=tag, in_stock="false", sort=sort, limit=2)
    assert [i["id"] for i in sold_out] == expected(items, sort, lambda i: i["stock"] == 0)


@pytest.mark.parametrize("sort", ["id", "price", "-price", "name"])
def test_walk_a_category(client, catalogue, sort):
    category, _, items = catalogue
    seen, _ = walk(client, f"/v2/categories/{category.id}/items", sort=sort, limit=5, max_price=4000)
    assert [i["id"] for i in seen] == expected(items, sort, lambda i: i["price"] <= 4000)


def test_the_last_page_is_exact(client, catalogue):
    category, _, items = catalogue
    body = client.get(f"/v2/items?category_id={category.id}&limit={len(items)}").get_json()
    assert len(body["data"]) == len(items) and body["meta"]["next_cursor"] is None
    body = client.get(f"/v2/items?category_id={category.id}&limit={len(items) - 1}").get_json()
    last = client.get(f"/v2/items?category_id={category.id}&limit=5&cursor={body['meta']['next_cursor']}")
    assert [i["id"] for i in last.get_json()["data"]] == [items[-1].id]
    assert last.get_json()["meta"] == {"limit": 5, "next_cursor": None}


def test_a_cursor_survives_changes_before_it(client, catalogue, admin):
    """Keyset pages do not shift when earlier rows go away, unlike offsets."""
    category, _, items = catalogue
    first = client.get(f"/v2/items?category_id={category.id}&limit=5").get_json()
    client.delete(f"/v1/items/{items[0].id}", headers=admin.headers)
    second = client.get(f"/v2/items?category_id={category.id}&limit=5&cursor={first['meta']['next_cursor']}")
    assert [i["id"] for i in second.get_json()["data"]] == [i.id for i in items[5:10]]


def test_v2_item_shape_embeds_category_and_money(client, db_session):
    category = make_category(db_session)
    item = make_item(db_session, category=category, price=15000, stock=4)
    loose = make_item(db_session, price=1)
    body = client.get(f"/v2/items/{item.id}").get_json()["data"]
    assert body["price"] == {"amount": 15000, "currency": get_settings().currency}
    assert body["category"] == {"id": category.id, "name": category.name}
    assert set(body) == {"id", "sku", "name", "description", "price", "stock", "category", "created_at",
                         "updated_at"}
    assert body["created_at"].endswith("Z")
    assert client.get(f"/v2/items/{loose.id}").get_json()["data"]["category"] is None
    listed = client.get(f"/v2/items?category_id={category.id}").get_json()["data"]
    assert listed == [body]
    # v1 is unchanged by v2.
    v1 = client.get(f"/v1/items/{item.id}").get_json()["data"]
    assert v1["price"] == 15000 and v1["category_id"] == category.id and "category" not in v1
    assert client.head(f"/v2/items/{item.id}").status_code == 200
    assert client.head("/v2/items").status_code == 200


def test_v2_hides_removed_items(client, admin, db_session):
    category = make_category(db_session)
    item = make_item(db_session, category=category)
    item_id = item.id
    assert client.delete(f"/v1/items/{item_id}", headers=admin.headers).status_code == 204
    error(client.get(f"/v2/items/{item_id}"), 404, "not_found")
    assert client.get(f"/v2/categories/{category.id}/items").get_json()["data"] == []


def test_category_items_of_an_unknown_or_empty_category(client, db_session):
    empty = make_category(db_session)
    assert client.get(f"/v2/categories/{empty.id}/items").get_json() == {
        "data": [], "meta": {"limit": 20, "next_cursor": None}}
    gone = make_category(db_session)
    db_session.delete(gone)
    db_session.flush()
    for path in (f"/v2/categories/{gone.id}/items", "/v2/categories/abc/items",
                 f"/v2/categories/{2**63}/items", "/v2/categories/0/items"):
        error(client.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["abc", "0", "999999999999", str(2**63), "1e3"])
def test_unknown_or_non_numeric_v2_id_is_404(client, path):
    error(client.get(f"/v2/items/{path}"), 404, "not_found")


def test_garbled_forged_or_reused_cursors_are_400(client, catalogue):
    category, tag, _ = catalogue
    base = {"category_id": category.id, "sort": "price", "limit": 3}
    cursor = client.get("/v2/items", query_string=base).get_json()["meta"]["next_cursor"]
    assert cursor
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    forged = CursorCodec(secret="not-the-secret", purpose="items-v2").encode(
        [0, 0], {"scope": "items", "sort": "price", "q": None, "category_id": category.id, "min_price": None,
                 "max_price": None, "in_stock": None})
    for bad in ("garbage", "%%%", "x" * 200, flipped, forged, cursor + "AA"):
        error(client.get("/v2/items", query_string=dict(base, cursor=bad)), 400, "invalid_cursor")
    # A cursor belongs to the filters, the sort and the path it came from; the limit may change.
    for other in ({"sort": "-price"}, {"sort": "name"}, {"min_price": 1}, {"q": tag}, {"in_stock": "true"},
                  {"category_id": category.id + 1}):
        error(client.get("/v2/items", query_string=dict(base, cursor=cursor, **other)), 400, "invalid_cursor")
    error(client.get(f"/v2/categories/{category.id}/items", query_string={"sort": "price", "cursor": cursor}),
          400, "invalid_cursor")
    assert client.get("/v2/items", query_string=dict(base, cursor=cursor, limit=10)).status_code == 200


def test_a_signed_cursor_of_the_wrong_shape_is_400(client):
    """Defence in depth: even a correctly signed position must fit the sort."""
    codec = CursorCodec(purpose="items-v2")
    query = {"scope": "items", "sort": "name", "q": None, "category_id": None, "min_price": None,
             "max_price": None, "in_stock": None}
    for position in ([1], ["a", "b"], [1, 2], ["a", True], ["a", 1, 2], {"a": 1}):
        cursor = codec.encode(position if isinstance(position, list) else [position], query)
        error(client.get("/v2/items", query_string={"sort": "name", "cursor": cursor}), 400, "invalid_cursor")


@pytest.mark.parametrize("query,field", [
    ("limit=101", "limit"), ("limit=0", "limit"), ("limit=x", "limit"), ("sort=colour", "sort"),
    ("min_price=-1", "min_price"), ("max_price=1.5", "max_price"), ("in_stock=maybe", "in_stock"),
    ("min_price=10&max_price=5", "min_price"), ("category_id=abc", "category_id"), ("q=", "q"),
])
def test_bad_v2_arguments_are_422_naming_the_field(client, query, field):
    err = error(client.get(f"/v2/items?{query}"), 422, "validation_error")
    assert list(err["details"]["fields"]) == [field]


def queries(statements):
    """The statements that read or write data (the test's savepoint plumbing aside)."""
    return [s for s in statements if s.lstrip().split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE",
                                                                              "DELETE", "WITH")]


def test_one_statement_per_list_page_whatever_its_size(client, catalogue, db_session):
    category, _, _ = catalogue
    statements = []
    connection = db_session.connection()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(connection, "before_cursor_execute", listener)
    try:
        counts = {}
        for limit in (1, 5, 23, 100):
            for sort in ("id", "-price"):
                client.get(f"/v2/items?category_id={category.id}&limit={limit}&sort={sort}")  # warm
                statements.clear()
                response = client.get(f"/v2/items?category_id={category.id}&limit={limit}&sort={sort}")
                assert response.status_code == 200
                counts[limit, sort] = queries(statements)
        assert {len(selects) for selects in counts.values()} == {1}, counts
        statements.clear()
        client.get(f"/v2/categories/{category.id}/items?limit=50")
        assert len(queries(statements)) == 1
    finally:
        event.remove(connection, "before_cursor_execute", listener)
