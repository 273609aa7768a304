"""Anonymous catalogue reads from the edge's cache: at most a second old, never with a session, exact purchases."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from common.db.session import session_scope
from common.settings import load_settings
from tests.factories import committed_account, committed_item
from tests.tools import missing
from toko.gateway import find_nginx, render_config
from toko.launch import banner

pytestmark = pytest.mark.skipif(find_nginx() is None, reason=missing("nginx", "nginx", "the edge is not tested"))
TIMEOUT = 10


def fresh_item(stock: int = 5) -> int:
    # A URL no other test has read: its first anonymous read is a miss whatever ran before.
    return committed_item(stock=stock, price=12000)


def set_stock(item_id: int, stock: int) -> None:
    with session_scope() as session:
        session.execute(text("UPDATE items SET stock = :s WHERE id = :i"), {"s": stock, "i": item_id})


def read(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def at_a_second_start() -> None:
    """Wait for the clock's next whole second: an entry lives until the end of the second it was made in,
    so what a test reads right after this sees one entry throughout."""
    time.sleep(1.02 - time.time() % 1)


@pytest.mark.parametrize("where", ["item", "gateway"])
def test_an_anonymous_read_is_answered_by_the_edge_for_a_second(stack, where):
    item = fresh_item(stock=5)
    url = stack.url("item", f"/v1/items/{item}") if where == "item" else stack.gateway_url(f"/v1/items/{item}")
    at_a_second_start()
    first, second = read(url), read(url)
    assert first.headers["X-Toko-Cache"] == "MISS" and second.headers["X-Toko-Cache"] == "HIT"
    assert second.json() == first.json() and second.headers["Cache-Control"] == "public, max-age=1"
    assert second.headers["ETag"] == first.headers["ETag"] and "Set-Cookie" not in second.headers
    assert "X-Accel-Expires" not in second.headers  # what the app tells nginx stays with nginx
    # Each answer still carries its own request id, the cached one too.
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    set_stock(item, 2)
    deadline = time.monotonic() + 1.25  # a second, and the one refresh that serves the old entry meanwhile
    while read(url).json()["data"]["stock"] != 2:
        assert time.monotonic() < deadline, "a stock level older than a second was shown"
        time.sleep(0.05)


def test_the_key_covers_the_query_and_the_encoding(stack):
    item = fresh_item()
    url = stack.gateway_url("/v1/items")
    at_a_second_start()
    base = read(url, **{"Accept-Encoding": "identity"})  # fills per_page=20, identity
    assert read(url, **{"Accept-Encoding": "identity"}).headers["X-Toko-Cache"] == "HIT"
    assert read(f"{url}?per_page=3", **{"Accept-Encoding": "identity"}).headers["X-Toko-Cache"] == "MISS"
    assert read(url, **{"Accept-Encoding": "gzip"}).headers["X-Toko-Cache"] in ("MISS", "EXPIRED")
    assert base.status_code == 200 and item


@pytest.mark.parametrize("credentials", ["bearer", "cookie"])
def test_a_request_with_a_session_never_reads_or_fills_the_cache(stack, credentials):
    account = committed_account()
    sent = ({"Authorization": f"Bearer {account.token}"} if credentials == "bearer"
            else {"Cookie": f"theme=dark; toko_session={account.token}"})
    item = fresh_item()
    url = stack.url("item", f"/v1/items/{item}")
    at_a_second_start()
    assert read(url).headers["X-Toko-Cache"] == "MISS"  # an anonymous answer is now in the cache
    private = read(url, **sent)
    assert private.headers["X-Toko-Cache"] == "BYPASS" and private.headers["Cache-Control"] == "no-store"
    other = fresh_item()
    other_url = stack.url("item", f"/v1/items/{other}")
    read(other_url, **sent)
    assert read(other_url).headers["X-Toko-Cache"] == "MISS", "a request with a session filled the cache"


def test_if_none_match_gets_a_304_without_a_body_at_the_edge(stack):
    item = fresh_item()
    url = stack.url("item", f"/v1/items/{item}")
    at_a_second_start()
    etag = read(url).headers["ETag"]
    cached = read(url, **{"If-None-Match": etag})
    assert (cached.status_code, cached.content, cached.headers["X-Toko-Cache"]) == (304, b"", "HIT")
    stale = read(url, **{"If-None-Match": '"not-this-one"'})
    assert stale.status_code == 200 and stale.json()["data"]["id"] == item


def test_a_purchase_always_reaches_the_service_and_a_cached_stock_never_oversells(stack):
    buyer = committed_account()
    item = fresh_item(stock=5)
    url = stack.gateway_url(f"/v1/items/{item}")
    at_a_second_start()
    read(url)
    assert read(url).json()["data"]["stock"] == 5  # cached: five shown
    set_stock(item, 1)
    shown = read(url)
    assert shown.headers["X-Toko-Cache"] == "HIT" and shown.json()["data"]["stock"] == 5
    refused = requests.post(stack.gateway_url("/v1/transactions"), headers=buyer.headers, timeout=TIMEOUT,
                            json={"lines": [{"item_id": item, "quantity": 3}]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "insufficient_stock"
    bought = requests.post(stack.gateway_url("/v1/transactions"), headers=buyer.headers, timeout=TIMEOUT,
                           json={"lines": [{"item_id": item, "quantity": 1}]})
    assert bought.status_code == 201
    with session_scope() as session:
        assert session.execute(text("SELECT stock FROM items WHERE id = :i"), {"i": item}).scalar() == 0


def test_the_cache_lives_under_var_is_bounded_and_can_be_turned_off(tmp_path):
    on = render_config(load_settings({"TOKO_EDGE_CACHE_MAX_MB": "16"}), tmp_path)
    assert f"proxy_cache_path {tmp_path}/cache " in on and "max_size=16m" in on
    assert on.count("proxy_cache toko_catalogue;") == 8  # four catalogue paths, on the item port and the gateway
    off = load_settings({"TOKO_EDGE_CACHE": "off"})
    assert "proxy_cache" not in render_config(off, tmp_path)
    assert "edge cache: off" in banner(off) and "edge cache: on" in banner(load_settings({}))


def test_the_storefront_and_other_services_are_never_cached(stack):
    account = committed_account()
    for url in (stack.gateway_url("/"), stack.url("user", "/v1/users/me")):
        answer = requests.get(url, headers=account.headers, timeout=TIMEOUT)
        assert "X-Toko-Cache" not in answer.headers, url
    assert Path(stack.home / "var/gateway/cache").is_dir()
