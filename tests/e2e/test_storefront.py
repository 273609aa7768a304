"""The storefront at the gateway's `/`, driven in a real browser (Debian's Chromium through Playwright).

Each test is one of the page's promises, played the way a person would: by the labels and button texts the
contract names. The tests also take the screenshots the README shows: `make screenshots` runs them with
TOKO_SCREENSHOTS=docs, which writes them into docs/storefront-*.png.
"""
from __future__ import annotations

import csv
import io
import os
import re
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from common.db.models import Category, Item
from common.db.session import session_scope
from tests.conftest import unique
from tests.factories import committed_account
from tests.tools import missing
from toko.gateway import find_nginx

CHROMIUM = "/usr/bin/chromium"
# No sandbox: CI runs as root; the rest keeps a headless run from reaching anything but the stack.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _missing() -> str | None:
    if find_nginx() is None:
        return missing("nginx", "nginx", "the gateway serving the storefront cannot run")
    if not os.access(CHROMIUM, os.X_OK):
        return missing(CHROMIUM, "chromium", "the storefront's browser tests need it")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (make install): it drives the browser"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def gateway(stack):
    """The gateway's origin, once it answers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(stack.gateway_url("/healthz"), timeout=2).status_code == 200:
                return stack.gateway_url()
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway not up: {stack.log('gateway')[-2000:]}")


@pytest.fixture
def open_page(browser, gateway, shots):
    """Pages on a fresh browser profile each (own cookies and storage); none may reach another origin."""
    contexts, foreign, failures = [], [], []

    def open_(viewport=DESKTOP):
        context = browser.new_context(base_url=gateway, viewport=viewport, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.shots = shots
        page.set_default_timeout(20_000)
        page.on("request", lambda r: None if r.url.startswith((gateway, "data:")) else foreign.append(r.url))
        page.on("pageerror", lambda error: failures.append(str(error)))
        page.on("console", lambda m: failures.append(m.text) if m.type == "error" and "status of 4" not in m.text
                else None)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not foreign, f"the storefront reached another origin: {foreign}"
    assert not failures, f"the page reported errors: {failures}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where screenshots go: docs/ for `make screenshots` (TOKO_SCREENSHOTS=docs), else a scratch folder,
    so an ordinary test run leaves the checkout as it found it."""
    return DOCS if os.environ.get("TOKO_SCREENSHOTS") == "docs" else tmp_path_factory.mktemp("screenshots")


def shot(page, name: str) -> None:
    """A screenshot of the page as it is now, for the README."""
    page.screenshot(path=str(page.shots / f"storefront-{name}.png"), full_page=True, animations="disabled")


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def nav_link(page, name: str):
    """A link of the header's Main navigation; on a narrow screen it is behind the Menu button."""
    toggle = page.get_by_role("button", name="Menu")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def log_in(page, account) -> None:
    page.goto("/")
    nav_link(page, "Log in").click()
    form = page.get_by_role("form", name="Log in")
    form.get_by_label("Username").fill(account.username)
    form.get_by_label("Password").fill(account.password)
    form.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalogue")
    expect(page.get_by_role("banner")).to_contain_text(account.username)


def card(page, name: str):
    return page.get_by_role("list", name="Items").get_by_role("listitem").filter(
        has=page.get_by_role("heading", name=name, exact=True))


def search(page, words: str) -> None:
    page.get_by_label("Search").fill(words)
    page.get_by_label("Search").press("Enter")


def stock_of(gateway: str, item_id: int) -> int:
    return fresh(gateway, f"/v2/items/{item_id}").json()["data"]["stock"]


def fresh(gateway: str, path: str) -> requests.Response:
    """The service's own answer now: an anonymous catalogue read may come from the edge, a second old."""
    return requests.get(f"{gateway}{path}", headers=committed_account().headers, timeout=10)


# A small shelf of its own, so screenshots show a real shop and stock counts here move only by these tests.
SHELF = [("KOPI-TRJ", "Kopi Toraja 250 g", 85_000, 40, "Arabika dari Tana Toraja, sangrai sedang."),
         ("KOPI-GAYO", "Kopi Gayo 250 g", 92_000, 25, "Arabika Aceh Gayo, biji utuh."),
         ("TEH-MLT", "Teh melati 100 g", 18_500, 120, "Teh hijau wangi melati."),
         ("KOPI-KTM", "Kopi Kintamani 200 g", 78_000, 3, "Arabika Bali dengan rasa jeruk."),
         ("GILING-MN", "Penggiling kopi manual", 649_000, 12, "Burr keramik, bisa dibawa bepergian."),
         ("MESIN-ESP", "Mesin espresso rumahan", 3_250_000, 4, "15 bar, dengan pemanas susu.")]


@pytest.fixture(scope="module")
def shelf(gateway):
    """Item ids by name, in a category of their own."""
    with session_scope() as session:
        category = session.scalar(select(Category).where(Category.name == "Kopi & Teh"))
        if category is None:
            category = Category(name="Kopi & Teh", description="")
            session.add(category)
            session.flush()
        ids = {}
        for sku, name, price, stock, description in SHELF:
            item = Item(sku=f"{sku}-{unique('')}", name=name, price=price, stock=stock, description=description,
                        category_id=category.id)
            session.add(item)
            session.flush()
            ids[name] = item.id
        return ids


@pytest.fixture(scope="module")
def customer(gateway):
    return committed_account(username=unique("dewi")[:8])


def test_a_customer_searches_buys_finds_the_purchase_and_cancels_it(open_page, gateway, shelf, customer):
    page = open_page()
    log_in(page, customer)
    for link in ("Catalogue", "Cart", "My purchases"):
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=link)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()

    page.get_by_label("Category").select_option(label="Kopi & Teh")
    page.get_by_role("button", name="Search").click()
    expect(card(page, "Kopi Toraja 250 g")).to_contain_text("Rp 85.000")
    expect(card(page, "Mesin espresso rumahan")).to_contain_text("Rp 3.250.000")
    shot(page, "catalogue")

    search(page, "TORAJA")  # any case
    expect(page.get_by_role("list", name="Items").get_by_role("listitem")).to_have_count(1)
    toraja = card(page, "Kopi Toraja 250 g")
    before = stock_of(gateway, shelf["Kopi Toraja 250 g"])
    expect(toraja).to_contain_text(f"{before} in stock")
    toraja.get_by_role("button", name="Add to cart").click()
    toraja.get_by_role("button", name="Add to cart").click()
    search(page, "teh melati")
    card(page, "Teh melati 100 g").get_by_role("button", name="Add to cart").click()

    nav_link(page, "Cart").click()
    expect(page.get_by_label("Quantity of Kopi Toraja 250 g")).to_have_value("2")
    expect(page.locator(".total")).to_have_text("Total Rp 188.500")
    shot(page, "cart")

    posted = []
    page.on("request", lambda r: posted.append(r.headers.get("idempotency-key"))
            if r.method == "POST" and r.url.endswith("/v1/transactions") else None)
    earlier = requests.get(f"{gateway}/v1/transactions", headers=customer.headers, timeout=10).json()["data"]
    page.get_by_role("button", name="Checkout").dblclick()
    status = page.get_by_role("region", name=re.compile(r"Purchase #\d+")).locator(".status")
    expect(status).to_have_text("paid")
    expect(status.locator("xpath=..").locator(".status-words")).to_have_text("Paid")
    # The receipt stands alone: the cart it emptied does not announce itself above it.
    expect(page.get_by_text("Your cart is empty")).to_have_count(0)
    expect(page.get_by_role("region", name=re.compile(r"Purchase #\d+"))).to_contain_text("total Rp 188.500")
    assert posted and all(re.fullmatch(r"[0-9a-f]{32}", key or "") for key in posted) and len(set(posted)) == 1
    mine = requests.get(f"{gateway}/v1/transactions", headers=customer.headers, timeout=10).json()["data"]
    assert len(mine) == len(earlier) + 1, "a double click bought more than once"
    txn = mine[0]
    assert txn["status"] == "paid" and txn["total"] == 188_500
    assert stock_of(gateway, shelf["Kopi Toraja 250 g"]) == before - 2
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Cart")).to_have_text("Cart")

    nav_link(page, "My purchases").click()
    purchase = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name=f"Purchase #{txn['id']}"))
    expect(purchase).to_contain_text("2 × Kopi Toraja 250 g")
    expect(purchase).to_contain_text("Total Rp 188.500")
    expect(purchase.locator(".status")).to_have_text("paid")
    shot(page, "purchases")
    # Cancelling gives the money back: the page asks first, and a "no" changes nothing.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    purchase.get_by_role("button", name="Cancel").click()
    expect(purchase.get_by_role("button", name="Cancel")).to_be_enabled()
    assert asked == [f"Cancel purchase #{txn['id']}? You get Rp 188.500 back and the items go back on the "
                     "shelf."]
    assert requests.get(f"{gateway}/v1/transactions/{txn['id']}", headers=customer.headers,
                        timeout=10).json()["data"]["status"] == "paid"
    expect(purchase.locator(".status")).to_have_text("paid")
    page.once("dialog", lambda dialog: dialog.accept())
    purchase.get_by_role("button", name="Cancel").click()
    expect(purchase.locator(".status")).to_have_text("cancelled")
    expect(purchase.get_by_role("button", name="Cancel")).to_have_count(0)
    assert stock_of(gateway, shelf["Kopi Toraja 250 g"]) == before


def test_a_purchase_over_the_threshold_asks_for_the_code_and_is_confirmed(open_page, gateway, shelf, customer):
    page = open_page()
    log_in(page, customer)
    search(page, "espresso")
    card(page, "Mesin espresso rumahan").get_by_role("button", name="Add to cart").click()
    nav_link(page, "Cart").click()
    page.get_by_role("button", name="Checkout").click()
    status = page.get_by_role("region", name=re.compile(r"Purchase #\d+")).locator(".status")
    expect(status).to_have_text("awaiting_otp")  # the contract's word, the whole text of its element
    words = status.locator("xpath=..").locator(".status-words")
    expect(words).to_have_text("Waiting for your code")  # and words for people beside it
    debug = page.get_by_test_id("debug-code")
    expect(debug).to_have_text(re.compile(r"^\d{6}$"))
    expect(page.get_by_label("Code")).to_have_count(1)  # no other field's label says "Code"
    page.get_by_label("Code").fill(debug.inner_text())
    shot(page, "code")
    page.get_by_role("button", name="Confirm").click()
    expect(status).to_have_text("paid")
    expect(words).to_have_text("Paid")
    txn_id = int(re.search(r"#(\d+)", page.get_by_role("region", name=re.compile("Purchase #")).inner_text())[1])
    confirmed = requests.get(f"{gateway}/v1/transactions/{txn_id}", headers=customer.headers, timeout=10).json()
    assert confirmed["data"]["status"] == "paid" and confirmed["data"]["total"] == 3_250_000


def test_wrong_codes_are_refused_in_words_and_the_lock_says_how_long_to_wait(open_page, shelf):
    buyer = committed_account()
    page = open_page()
    log_in(page, buyer)
    search(page, "penggiling")
    add = card(page, "Penggiling kopi manual").get_by_role("button", name="Add to cart")
    add.click()
    add.click()
    nav_link(page, "Cart").click()
    page.get_by_role("button", name="Checkout").click()
    expect(page.get_by_test_id("debug-code")).to_have_text(re.compile(r"^\d{6}$"))
    right = page.get_by_test_id("debug-code").inner_text()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    alert = page.get_by_role("alert")
    page.get_by_label("Code").fill(wrong)
    page.get_by_role("button", name="Confirm").click()
    expect(alert).to_have_text(re.compile(r"That code is not right\. \d attempts? left\."))
    for _ in range(8):
        if alert.inner_text().startswith("Too many"):
            break
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_function("() => !document.querySelector('.code-form button[type=submit]').disabled")
    expect(alert).to_have_text(re.compile(r"Too many wrong codes: this one is locked\. Ask for a new code in \d+ "
                                          r"(seconds?|minutes?)\."))
    assert "{" not in alert.inner_text()


def test_a_quantity_stops_at_the_stock_shown_and_stock_gone_meanwhile_is_refused_in_words(
        open_page, gateway, shelf, customer):
    page = open_page(PHONE)
    log_in(page, customer)
    search(page, "kintamani")
    kintamani = shelf["Kopi Kintamani 200 g"]
    before = stock_of(gateway, kintamani)
    card(page, "Kopi Kintamani 200 g").get_by_role("button", name="Add to cart").click()
    shot(page, "phone")
    nav_link(page, "Cart").click()
    quantity = page.get_by_label("Quantity of Kopi Kintamani 200 g")
    expect(page.locator(".line")).to_contain_text(f"{before} in stock")
    quantity.fill(str(before + 2))
    quantity.press("Tab")
    # No more than the page says there is: the quantity stops at the stock, and says so.
    expect(quantity).to_have_value(str(before))
    expect(page.locator(".line")).to_contain_text(f"Only {before} in stock, so the quantity is {before}.")
    expect(page.get_by_role("button", name="Menu").locator(".badge")).to_have_text(str(before))
    # Someone else buys meanwhile: the stock the page showed is gone, and the API refuses the order.
    other = committed_account()
    taken = requests.post(f"{gateway}/v1/transactions", headers=other.headers, timeout=10,
                          json={"lines": [{"item_id": kintamani, "quantity": before - 1}]})
    assert taken.status_code == 201, taken.text
    page.get_by_role("button", name="Checkout").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(f"Not enough stock, so nothing was bought. Kopi Kintamani 200 g: you asked for "
                               f"{before}, only 1 left. The cart now holds what is left: check it and try "
                               "again.")
    assert stock_of(gateway, kintamani) == 1
    expect(quantity).to_have_value("1")
    expect(page.locator(".line")).not_to_contain_text("so the quantity is")  # said of the stock before
    shot(page, "refused")
    requests.delete(f"{gateway}/v1/transactions/{taken.json()['data']['id']}", headers=other.headers,
                    timeout=10)


def test_the_cart_badge_stays_a_sane_count(open_page, gateway, shelf):
    page = open_page()
    page.goto("/")
    page.wait_for_selector(".grid .card:not(.skeleton)")
    # What an older page or another tab may have left in storage: a line over the stock, one of nonsense.
    kintamani = shelf["Kopi Kintamani 200 g"]
    stock = stock_of(gateway, kintamani)
    page.evaluate("""([id, stock]) => localStorage.setItem('toko.cart', JSON.stringify([
        {id, name: 'Kopi Kintamani 200 g', price: 78000, stock, quantity: 1e9},
        {id: 'x', quantity: -3}, {id: 9, name: 'n', price: 1, stock: 2, quantity: 1.5}]))""",
                  [kintamani, stock])
    page.reload()
    expect(nav_link(page, "Cart")).to_have_text(f"Cart{stock}")
    expect(nav_link(page, "Cart")).to_have_accessible_description(f"{stock} items in the cart")


def test_a_customer_sees_no_admin_link_and_no_admin_page(open_page, customer):
    page = open_page()
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    log_in(page, customer)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="My purchases")).to_be_visible()
    assert nav.get_by_role("link").all_inner_texts() == ["Catalogue", "Cart", "My purchases"]
    expect(page.get_by_role("link", name="Reports")).to_have_count(0)
    expect(page.get_by_role("link", name="Items")).to_have_count(0)
    page.goto("/#/admin/reports")
    expect(page.get_by_text("This page is for the shop's staff.")).to_be_visible()
    expect(page.get_by_test_id("sales-chart")).to_have_count(0)
    assert not [url for url in requested if url.endswith("/js/admin.js")], "a customer downloaded the admin code"


def test_logging_in_with_a_wrong_password_is_refused_in_words(open_page, customer):
    page = open_page()
    page.goto("/#/login")
    form = page.get_by_role("form", name="Log in")
    form.get_by_label("Username").fill(customer.username)
    form.get_by_label("Password").fill("not-the-password")
    form.get_by_role("button", name="Log in").click()
    expect(form.get_by_role("alert")).to_have_text("Wrong username or password.")
    shot(page, "login")


def test_registering_logs_the_new_customer_in(open_page, customer):
    page = open_page()
    page.goto("/#/login")
    form = page.get_by_role("form", name="Register")
    form.get_by_label("Username").fill(customer.username)
    form.get_by_label("Email").fill(f"{unique()}@example.test")
    form.get_by_label("Password").fill("a-long-enough-password")
    form.get_by_role("button", name="Register").click()
    expect(form.get_by_role("alert")).to_have_text("That username is already registered. Choose another or log in.")
    username = unique("ayu")[:7]
    form.get_by_label("Username").fill(username)
    form.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Catalogue")
    expect(page.get_by_role("banner")).to_contain_text(username)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()


def test_an_admin_sees_the_sales_chart_and_downloads_the_csv(open_page, gateway, shelf, customer, tmp_path):
    # Something sold today, so the window the page starts with has revenue to draw.
    bought = requests.post(f"{gateway}/v1/transactions", headers=customer.headers, timeout=10,
                           json={"lines": [{"item_id": shelf["Teh melati 100 g"], "quantity": 3}]})
    assert bought.status_code == 201, bought.text
    admin = committed_account("admin", username=unique("manajer")[:11])
    page = open_page()
    log_in(page, admin)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Items")).to_be_visible()
    nav_link(page, "Reports").click()

    today = date.fromisoformat(page.evaluate(
        "() => { const d = new Date(); return [d.getFullYear(), String(d.getMonth() + 1).padStart(2, '0'), "
        "String(d.getDate()).padStart(2, '0')].join('-'); }"))
    expect(page.get_by_label("From")).to_have_value((today - timedelta(days=30)).isoformat())
    expect(page.get_by_label("To")).to_have_value(today.isoformat())
    expect(page.get_by_label("Group by")).to_have_value("day")
    page.get_by_role("button", name="Show").click()

    chart = page.get_by_test_id("sales-chart").get_by_role("img")
    expect(chart).to_be_visible(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    assert re.fullmatch(r"/v1/reports/\d+/chart\.svg", chart.get_attribute("src"))
    expect(page.get_by_role("table").filter(has_text="done").first).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert list(rows[0]) == ["key", "transactions", "quantity", "revenue"]
    todays = [row for row in rows if row["key"] == today.isoformat()]
    assert todays and int(todays[0]["revenue"]) >= 3 * 18_500, rows
    shot(page, "reports")


def test_an_admin_creates_edits_and_removes_an_item(open_page, gateway):
    admin = committed_account("admin", username=unique("manajer")[:11])
    page = open_page()
    log_in(page, admin)
    nav_link(page, "Items").click()
    form = page.get_by_role("form", name="Add an item")
    sku = unique("SMB-")
    form.get_by_label("SKU").fill(sku)
    form.get_by_label("Name").fill("Sambal bawang 150 g")
    form.get_by_label("Price (Rp)").fill("23000")
    form.get_by_label("Stock").fill("30")
    form.get_by_role("button", name="Create item").click()
    expect(page.get_by_role("status").or_(page.locator(".note.ok")).first).to_contain_text(
        "Created Sambal bawang 150 g")
    # The same SKU again: the words say what is wrong, not "log in".
    form.get_by_label("SKU").fill(sku)
    form.get_by_label("Name").fill("Sambal bawang, again")
    form.get_by_label("Price (Rp)").fill("23000")
    form.get_by_label("Stock").fill("30")
    form.get_by_role("button", name="Create item").click()
    expect(form.locator("xpath=..").get_by_role("alert")).to_have_text(
        "That SKU is taken: another item in the catalogue has it. Choose another SKU.")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Sambal bawang 150 g"))
    item_id = requests.get(f"{gateway}/v2/items", params={"q": "Sambal bawang"}, timeout=10).json()["data"][0]["id"]
    row.get_by_label("Price of Sambal bawang 150 g").fill("25000")
    row.get_by_label("Stock of Sambal bawang 150 g").fill("12")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved Sambal bawang 150 g: Rp 25.000, 12 in stock.")).to_be_visible()
    item = fresh(gateway, f"/v1/items/{item_id}").json()["data"]
    assert (item["sku"], item["price"], item["stock"]) == (sku, 25_000, 12)
    shot(page, "items")
    # Removing asks first; a "no" keeps the item.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    row.get_by_role("button", name="Remove").click()
    expect(row.get_by_role("button", name="Remove")).to_be_enabled()
    assert asked == [f"Remove Sambal bawang 150 g ({sku}) from the catalogue? Shoppers will no longer see "
                     "it; past purchases keep it."]
    assert requests.get(f"{gateway}/v1/items/{item_id}", timeout=10).status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_text("Removed Sambal bawang 150 g from the catalogue.")).to_be_visible()
    assert fresh(gateway, f"/v1/items/{item_id}").status_code == 404


def test_the_first_page_is_light_and_served_with_its_types_and_caching(gateway):
    first = ["/", "/app.css", "/js/main.js", "/js/dom.js", "/js/api.js", "/js/store.js", "/js/shop.js",
             "/js/account.js"]
    sizes, types = {}, {}
    for path in first:
        response = requests.get(f"{gateway}{path}", timeout=10, headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"], path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        again = requests.get(f"{gateway}{path}", timeout=10, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304, path
        sizes[path], types[path] = len(response.content), response.headers["Content-Type"]
    assert types["/"] == "text/html; charset=utf-8" and types["/app.css"] == "text/css; charset=utf-8"
    assert all(types[p] == "text/javascript; charset=utf-8" for p in first if p.endswith(".js"))
    assert "default-src 'self'" in requests.get(f"{gateway}/", timeout=10).headers["Content-Security-Policy"]
    assert sum(size for path, size in sizes.items() if path != "/") < 100 * 1024, sizes
    missing = requests.get(f"{gateway}/no-such-page.html", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    posted = requests.post(f"{gateway}/", timeout=10)
    assert posted.status_code == 405 and posted.json()["error"]["code"] == "method_not_allowed"


# Text against its background, as WCAG computes it: 4.5:1, or 3:1 for large text. Backgrounds are blended
# up the tree; text over an image or gradient, hidden or disabled text is left out.
CONTRAST = """() => {
    const parse = (c) => {
        const m = c.match(/rgba?\\(([^)]+)\\)/);
        if (!m) return null;
        const p = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
        return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const lum = ({ r, g, b }) => {
        const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const s = getComputedStyle(e);
            if (s.backgroundImage !== 'none') return null;
            const c = parse(s.backgroundColor);
            if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
        }
        let out = { r: 255, g: 255, b: 255 };
        for (const c of layers.reverse()) {
            out = { r: c.r * c.a + out.r * (1 - c.a), g: c.g * c.a + out.g * (1 - c.a), b: c.b * c.a + out.b * (1 - c.a) };
        }
        return out;
    };
    const poor = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const text = walker.currentNode.textContent.trim();
        const el = walker.currentNode.parentElement;
        if (!text || el.closest('[aria-hidden="true"], .sr, [hidden], :disabled, noscript')) continue;
        const s = getComputedStyle(el);
        const back = background(el);
        if (!back || s.visibility === 'hidden') continue;
        const [a, b] = [lum(parse(s.color)), lum(back)];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        const size = parseFloat(s.fontSize);
        const large = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66);
        if (ratio < (large ? 3 : 4.5)) poor.push(`${text.slice(0, 40)} (${ratio.toFixed(2)}:1)`);
    }
    return poor;
}"""


def test_every_page_fits_a_phone_and_its_text_has_contrast(open_page, gateway, shelf, customer):
    admin = committed_account("admin", username=unique("manajer")[:11])
    requests.post(f"{gateway}/v1/transactions", headers=admin.headers, timeout=10,
                  json={"lines": [{"item_id": shelf["Kopi Gayo 250 g"], "quantity": 1}]})
    for viewport in (PHONE, DESKTOP):
        page = open_page(viewport)
        log_in(page, admin)
        search(page, "kopi gayo")
        card(page, "Kopi Gayo 250 g").get_by_role("button", name="Add to cart").click()
        for link, ready in (("Catalogue", ".card"), ("Cart", ".line"), ("My purchases", ".purchase"),
                            ("Items", "tbody tr"), ("Reports", "tbody tr")):
            nav_link(page, link).click()
            page.wait_for_selector(ready)
            width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"{link} is wider than the screen at {viewport}: {width}"
            assert page.evaluate(CONTRAST) == [], f"{link}: text without enough contrast"
        page.goto(f"/#/items/{shelf['Kopi Gayo 250 g']}")
        page.wait_for_selector(".more .card")
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"the item page is wider than the screen at {viewport}: {width}"
        assert page.evaluate(CONTRAST) == [], "the item page: text without enough contrast"
        if viewport is PHONE:
            shot(page, "item-phone")


def test_the_shop_works_from_the_keyboard_with_a_visible_focus(open_page, shelf):
    page = open_page()
    page.goto("/")
    page.wait_for_selector(".card")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    for _ in range(40):  # through the filters to the first item's button
        page.keyboard.press("Tab")
        focused = page.evaluate("() => [document.activeElement.textContent, "
                                "getComputedStyle(document.activeElement).outlineStyle]")
        assert focused[1] != "none", f"no visible focus on {focused[0]!r}"
        if focused[0] == "Add to cart":
            break
    else:
        raise AssertionError("the keyboard never reached an Add to cart button")
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Cart")).to_have_accessible_description(
        "1 item in the cart")


def test_an_item_has_a_page_of_its_own_that_survives_a_reload(open_page, gateway, shelf):
    page = open_page()
    page.goto("/")
    search(page, "kintamani")
    kintamani = shelf["Kopi Kintamani 200 g"]
    stock = stock_of(gateway, kintamani)
    card(page, "Kopi Kintamani 200 g").get_by_role("link", name="Kopi Kintamani 200 g").click()
    expect(page).to_have_url(re.compile(rf"#/items/{kintamani}$"))
    for reload in (False, True):  # as reached from the catalogue, then as a reload finds it
        if reload:
            page.reload()
        expect(page.get_by_role("heading", level=1)).to_have_text("Kopi Kintamani 200 g")
        info = page.locator(".item-info")
        for text in ("Kopi & Teh", "Rp 78.000", f"{stock} in stock", "Arabika Bali dengan rasa jeruk."):
            expect(info).to_contain_text(text)
        expect(page.get_by_label("Quantity")).to_have_value("1")
        more = page.get_by_role("region", name="More in Kopi & Teh")
        expect(more.get_by_role("heading", name="Kopi Toraja 250 g")).to_be_visible()
        expect(more.get_by_role("heading", name="Kopi Kintamani 200 g")).to_have_count(0)
    assert page.title() == "Kopi Kintamani 200 g · toko"

    # No more than the stock the page shows goes into the cart.
    region = page.locator(".item-info .notes")
    info.get_by_label("Quantity").fill(str(stock + 2))
    info.get_by_role("button", name="Add to cart").click()
    expect(region).to_have_text(f"Only {stock} more can go in your cart: the shop has {stock}.")
    expect(info.get_by_label("Quantity")).to_have_value(str(stock))
    info.get_by_label("Quantity").fill(str(stock - 1))
    info.get_by_role("button", name="Add to cart").click()
    expect(region).to_have_text(f"Added {stock - 1} × Kopi Kintamani 200 g to the cart.")
    expect(page.locator(".in-cart")).to_have_text(f"Your cart holds {stock - 1}. Go to the cart")
    info.get_by_label("Quantity").fill("2")
    info.get_by_role("button", name="Add to cart").click()
    expect(region).to_have_text(f"Only 1 more can go in your cart: the shop has {stock} and your cart holds "
                                f"{stock - 1}.")
    info.get_by_role("button", name="Add to cart").click()
    expect(region).to_have_text("Added Kopi Kintamani 200 g to the cart.")
    expect(page.locator(".in-cart")).to_have_text(f"Your cart holds all {stock} in stock. Go to the cart")
    expect(info.get_by_role("button", name="Add to cart")).to_be_disabled()
    expect(nav_link(page, "Cart")).to_have_accessible_description(f"{stock} items in the cart")
    shot(page, "item")

    # Back to the results it came from, and an address that names no item says so.
    page.get_by_role("link", name="Back to the catalogue").click()
    expect(page.get_by_label("Search")).to_have_value("kintamani")
    expect(page.get_by_role("list", name="Items").get_by_role("listitem")).to_have_count(1)
    page.goto("/#/items/987654321")
    expect(page.get_by_role("heading", level=1)).to_have_text("Item not found")
    expect(page.get_by_role("alert")).to_have_text("This item is not in the shop: it may have been removed.")


@pytest.fixture(scope="module")
def spices(gateway):
    """Fourteen items of a category of their own, more than one page of the catalogue (12 a page)."""
    with session_scope() as session:
        category = Category(name=unique("Rempah "), description="")
        session.add(category)
        session.flush()
        for n in range(1, 15):
            session.add(Item(sku=unique("RMP-"), name=f"Rempah {n:02d}", price=1_000 * n, stock=10,
                             category_id=category.id, description=""))
        made = category.id, category.name
    time.sleep(1.1)  # the edge may answer the category list for a second from what it held before
    return made


def names_shown(page) -> list[str]:
    page.wait_for_function("() => document.querySelector('.grid').getAttribute('aria-busy') === 'false'")
    return page.locator(".grid .card .name").all_inner_texts()


def test_search_filters_sort_and_page_live_in_the_address(open_page, spices):
    category_id, category_name = spices
    page = open_page()
    page.goto("/")
    page.get_by_label("Category").select_option(label=category_name)
    page.get_by_label("Sort by").select_option(label="Highest price")
    page.get_by_label("Search").fill("rempah")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"#/\?q=rempah&category_id={category_id}&sort=-price$"))
    first_page = [f"Rempah {n:02d}" for n in range(14, 2, -1)]
    expect(page.locator(".count")).to_have_text("Page 1: 12 items matching “rempah”.")
    assert names_shown(page) == first_page

    page.get_by_role("button", name="Next").click()
    expect(page).to_have_url(re.compile(r"&cursor=[^&]+&page=2$"))
    expect(page.locator(".count")).to_have_text("Page 2: 2 items matching “rempah”.")
    assert names_shown(page) == ["Rempah 02", "Rempah 01"]
    expect(page.get_by_role("button", name="Previous")).to_be_focused()  # the last page: Next is disabled
    page_two = page.url

    page.reload()  # the same page, with the form as it was
    expect(page.locator(".count")).to_have_text("Page 2: 2 items matching “rempah”.")
    assert names_shown(page) == ["Rempah 02", "Rempah 01"]
    expect(page.get_by_label("Search")).to_have_value("rempah")
    expect(page.get_by_label("Sort by")).to_have_value("-price")
    expect(page.get_by_label("Category")).to_have_value(str(category_id))

    page.go_back()  # Back is the page before
    expect(page.locator(".count")).to_have_text("Page 1: 12 items matching “rempah”.")
    assert names_shown(page) == first_page
    page.go_forward()
    expect(page.locator(".count")).to_have_text("Page 2: 2 items matching “rempah”.")
    page.get_by_role("button", name="Previous").click()
    expect(page.locator(".count")).to_have_text("Page 1: 12 items matching “rempah”.")
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()

    shared = open_page()  # another browser, given the address
    shared.goto(page_two)
    expect(shared.locator(".count")).to_have_text("Page 2: 2 items matching “rempah”.")
    assert names_shown(shared) == ["Rempah 02", "Rempah 01"]
    expect(shared.get_by_label("Category")).to_have_value(str(category_id))
    shared.get_by_role("button", name="Previous").click()
    expect(shared.locator(".count")).to_have_text("Page 1: 12 items matching “rempah”.")


def test_the_catalogue_keeps_its_shape_and_its_pager_waits_while_loading(open_page, shelf):
    page = open_page()
    held = []
    page.route(re.compile(r"/v2/items\?"), lambda route: held.append(route))
    page.goto("/")
    while not held:
        page.wait_for_timeout(50)
    # The answer is held back: the grid shows the cards' shape, and no page exists to move from yet.
    expect(page.locator(".grid .card.skeleton")).to_have_count(12)
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click(force=True)
    expect(page.get_by_text("Page 0")).to_have_count(0)
    held[0].continue_()
    page.unroute(re.compile(r"/v2/items\?"))
    expect(page.locator(".grid .card:not(.skeleton)").first).to_be_visible()
    expect(page.locator(".grid .card.skeleton")).to_have_count(0)
    expect(page.locator(".count")).to_have_text(re.compile(r"^Page 1: "))


def test_the_header_does_not_jump_when_the_session_check_returns(open_page):
    admin = committed_account("admin", username=unique("manajer")[:11])
    page = open_page()
    log_in(page, admin)
    held = []
    page.route("**/v1/sessions/current", lambda route: held.append(route))
    page.reload()
    while not held:
        page.wait_for_timeout(50)
    header, first = page.get_by_role("banner"), nav_link(page, "Cart")
    expect(first).to_be_visible()  # the links everyone has are there before the answer
    before = (header.bounding_box(), first.bounding_box())
    held[0].continue_()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    expect(nav_link(page, "Reports")).to_be_visible()
    assert (header.bounding_box(), first.bounding_box()) == before


def test_on_a_phone_the_admin_header_is_one_row_with_a_menu(open_page, shelf):
    admin = committed_account("admin", username=unique("manajer")[:11])
    page = open_page(PHONE)
    log_in(page, admin)
    search(page, "kopi")
    header = page.get_by_role("banner")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    assert header.bounding_box()["height"] <= 64, "the header is more than one row"
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav = page.get_by_role("navigation", name="Main")
    links = ["Catalogue", "Cart", "My purchases", "Items", "Reports"]
    assert nav.get_by_role("link").all_inner_texts() == links
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert header.bounding_box()["height"] <= 64, "the open menu pushed the header"
    shot(page, "phone-menu")
    url = page.url
    page.locator(".foot").click()  # a tap outside closes it
    assert page.url == url
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    nav.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()


def test_an_admin_creates_renames_and_removes_a_category(open_page, gateway):
    admin = committed_account("admin", username=unique("manajer")[:11])
    page = open_page()
    log_in(page, admin)
    nav_link(page, "Items").click()
    panel = page.get_by_role("region", name="Categories")
    name = unique("Bumbu ")

    def listed() -> list[str]:
        return [c["name"] for c in requests.get(f"{gateway}/v1/categories", params={"per_page": 100},
                                                headers=admin.headers, timeout=10).json()["data"]]

    panel.get_by_label("New category").fill(name)
    panel.get_by_role("button", name="Add category").click()
    expect(panel.locator(".note.ok")).to_have_text(f"Added the category {name}.")
    assert name in listed()
    choices = page.get_by_role("form", name="Add an item").get_by_label("Category").locator("option")
    expect(choices.filter(has_text=name)).to_have_count(1)
    panel.get_by_label("New category").fill(name)
    panel.get_by_role("button", name="Add category").click()
    expect(panel.get_by_role("alert")).to_have_text(
        "A category with that name already exists. Choose another name.")

    row = panel.get_by_role("listitem").filter(has=page.get_by_label(f"Name of the category {name}"))
    row.get_by_label(f"Name of the category {name}").fill(f"{name} kering")
    row.get_by_role("button", name="Rename").click()
    expect(panel.locator(".note.ok")).to_have_text(f"Renamed {name} to {name} kering.")
    assert f"{name} kering" in listed() and name not in listed()

    row = panel.get_by_role("listitem").filter(has=page.get_by_label(f"Name of the category {name} kering"))
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Remove").click()
    expect(panel.locator(".note.ok")).to_have_text(
        f"Removed the category {name} kering; its items are now without one.")
    assert asked == [f"Remove the category {name} kering? Its items stay in the catalogue, without a "
                     "category."]
    assert f"{name} kering" not in listed()
    expect(choices.filter(has_text=name)).to_have_count(0)


def test_reports_reuse_a_finished_window_and_drop_the_chart_on_an_error(open_page, gateway, shelf, customer):
    bought = requests.post(f"{gateway}/v1/transactions", headers=customer.headers, timeout=10,
                           json={"lines": [{"item_id": shelf["Teh melati 100 g"], "quantity": 1}]})
    assert bought.status_code == 201, bought.text
    admin = committed_account("admin", username=unique("manajer")[:11])
    page = open_page()
    log_in(page, admin)
    nav_link(page, "Reports").click()
    queued = []
    page.on("request", lambda r: queued.append(r.url)
            if r.method == "POST" and r.url.endswith("/v1/reports") else None)
    chart = page.get_by_test_id("sales-chart").get_by_role("img")
    region = page.locator("form[aria-label='Sales report'] ~ .notes").first

    page.get_by_label("Group by").select_option("item")
    page.get_by_role("button", name="Show").click()
    expect(chart).to_be_visible(timeout=60_000)
    first = chart.get_attribute("src")
    assert len(queued) == 1

    # The same window again: the finished report answers at once, no job is queued.
    page.get_by_role("button", name="Show").click()
    expect(region).to_contain_text("Worked out")
    assert chart.get_attribute("src") == first and len(queued) == 1
    page.get_by_role("button", name="Work it out again").click()
    expect(chart).not_to_have_attribute("src", first, timeout=60_000)
    assert len(queued) == 2

    # A form in error shows no chart of an earlier window beside the error.
    to = page.get_by_label("To").input_value()
    page.get_by_label("From").fill((date.fromisoformat(to) + timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_have_text(
        "The last day (To) comes before the first (From). Choose a To on or after the From.")
    expect(page.get_by_test_id("sales-chart").locator("img")).to_have_count(0)
    expect(page.get_by_role("link", name="Download CSV")).to_have_count(0)
    # And when the API is the one that refuses the window.
    page.get_by_label("From").fill((date.fromisoformat(to) - timedelta(days=3)).isoformat())
    page.get_by_role("button", name="Show").click()
    expect(chart).to_be_visible(timeout=60_000)
    page.get_by_label("From").fill("1990-01-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose fewer days.")
    expect(page.get_by_test_id("sales-chart").locator("img")).to_have_count(0)


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (the copy the package bundles)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']}: "
            + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
            for v in found if v["impact"] in ("serious", "critical")]


def test_every_page_passes_axe_core(open_page, gateway, shelf):
    admin = committed_account("admin", username=unique("manajer")[:11])
    requests.post(f"{gateway}/v1/transactions", headers=admin.headers, timeout=10,
                  json={"lines": [{"item_id": shelf["Kopi Gayo 250 g"], "quantity": 1}]})
    problems = {}
    for viewport in (DESKTOP, PHONE):
        page = open_page(viewport)
        page.goto("/#/login")
        page.wait_for_selector("form")
        problems[f"log-in {viewport['width']}"] = serious_violations(page)
        log_in(page, admin)
        search(page, "kopi gayo")
        card(page, "Kopi Gayo 250 g").get_by_role("button", name="Add to cart").click()
        for name, address, ready in (
                ("catalogue", "/#/", ".grid .card:not(.skeleton)"),
                ("item", f"/#/items/{shelf['Kopi Gayo 250 g']}", ".more .card"),
                ("cart", "/#/cart", ".line"), ("purchases", "/#/purchases", ".purchase"),
                ("admin items", "/#/admin/items", ".categories li"),
                ("reports", "/#/admin/reports", "tbody tr")):
            page.goto(address)
            page.wait_for_selector(ready)
            problems[f"{name} {viewport['width']}"] = serious_violations(page)
    assert not any(problems.values()), {page: found for page, found in problems.items() if found}


def test_a_visitor_who_never_logged_in_meets_no_refusal_in_the_console(open_page, shelf, customer):
    page = open_page()
    asked, errors = [], []
    page.on("request", lambda r: asked.append(r.url)
            if r.method == "GET" and r.url.endswith("/v1/sessions/current") else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto("/")
    page.wait_for_selector(".grid .card:not(.skeleton)")
    page.goto(f"/#/items/{shelf['Kopi Gayo 250 g']}")
    page.wait_for_selector(".more .card")
    expect(nav_link(page, "Log in")).to_be_visible()
    assert asked == [] and errors == [], (asked, errors)
    log_in(page, customer)  # once logged in here, each visit asks who it is
    page.reload()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert len(asked) == 1
    page.get_by_role("button", name="Log out").click()
    expect(nav_link(page, "Log in")).to_be_visible()
    page.reload()
    page.wait_for_selector(".grid .card:not(.skeleton)")
    assert len(asked) == 1 and errors == [], (asked, errors)
