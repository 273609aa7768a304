"""The gateway: one origin routing by path to every service (needs nginx)."""
import re
import time
from urllib.parse import urljoin

import pytest
import requests

from toko.gateway import ROUTES, find_nginx
from tests.tools import missing

pytestmark = pytest.mark.skipif(find_nginx() is None, reason=missing("nginx", "nginx", "the gateway is not tested"))


def wait_gateway(stack, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(stack.gateway_url("/healthz"), timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway not up: {stack.log('gateway')[-2000:]}")


def test_every_service_is_reachable_through_one_origin(stack):
    wait_gateway(stack)
    for service in ROUTES:
        health = requests.get(stack.gateway_url(f"/_{service}/healthz"), timeout=5)
        assert health.json()["data"]["service"] == service
        spec = requests.get(stack.gateway_url(f"/_{service}/openapi.json"), timeout=5).json()
        for path in spec["paths"]:
            if path.startswith(("/v1/", "/v2/")):
                assert any(path.startswith(prefix) for prefix in ROUTES[service]), (service, path)


def test_paths_route_to_their_service(stack):
    wait_gateway(stack)
    register = requests.post(stack.gateway_url("/v1/users"), json={}, timeout=5)
    assert register.status_code == 422 and "fields" in register.json()["error"]["details"]
    assert requests.get(stack.gateway_url("/v1/users/me"), timeout=5).status_code == 401
    missing = requests.get(stack.gateway_url("/nowhere"), timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_operator_endpoints_are_not_published(stack):
    wait_gateway(stack)
    for service in ROUTES:
        for path in (f"/_{service}/metrics", f"/_{service}/readyz", f"/_{service}//metrics",
                     f"/_{service}/%6Detrics", f"/_{service}/metrics?x=1"):
            response = requests.get(stack.gateway_url(path), timeout=5)
            assert response.status_code == 404, (path, response.status_code)
            assert response.json()["error"]["code"] == "not_found"
        # Scrapers and probes use the service's own port on the host.
        assert requests.get(stack.url(service, "/metrics"), timeout=5).text.startswith("#")
    assert requests.get(stack.gateway_url("/metrics"), timeout=5).status_code == 404


def test_json_csv_and_svg_are_gzipped_above_a_few_kib(stack):
    from tests.factories import committed_item

    wait_gateway(stack)
    for _ in range(30):
        committed_item(name="Gzip item with a long enough name " + "x" * 40)
    page = requests.get(stack.gateway_url("/v1/items?per_page=100"), headers={"Accept-Encoding": "gzip"},
                        timeout=10, stream=True)
    raw = page.raw.read(decode_content=False)
    assert page.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in page.headers["Vary"]
    assert raw[:2] == b"\x1f\x8b" and len(raw) < int(len(__import__("gzip").decompress(raw)) / 3)
    plain = requests.get(stack.gateway_url("/v1/items?per_page=100"), headers={"Accept-Encoding": "identity"},
                         timeout=10)
    assert "Content-Encoding" not in plain.headers and len(plain.content) > 4096
    small = requests.get(stack.gateway_url("/v1/items?per_page=1"), headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert "Content-Encoding" not in small.headers, "a small answer is not worth compressing"
    from toko.gateway import render_config
    from common.settings import load_settings

    config = render_config(load_settings({}), stack.home / "var/gateway", stack.home)
    gateway_server = config.rsplit("server {", 1)[1]
    assert "gzip_types application/json text/csv image/svg+xml;" in gateway_server


def test_swagger_ui_works_under_the_gateway_prefix(stack):
    wait_gateway(stack)
    http = requests.Session()
    for service in ROUTES:
        redirect = http.get(stack.gateway_url(f"/_{service}/docs"), allow_redirects=False, timeout=5)
        assert redirect.status_code in (301, 302, 308)
        followed = http.get(stack.gateway_url(f"/_{service}/docs"), timeout=5)
        assert followed.url == stack.gateway_url(f"/_{service}/docs/"), "port and prefix kept"
        page = followed.text
        assert "validatorUrl\": null" in page and "validator.swagger.io" not in page
        # Every asset and the spec resolve under the prefix (relative to the page).
        for asset in re.findall(r'(?:href|src)="([^"]+)"', page) + ["../openapi.json"]:
            url = urljoin(followed.url, asset)
            assert url.startswith(stack.gateway_url(f"/_{service}/")), url
            assert http.get(url, timeout=5).status_code == 200, url
        assert urljoin(followed.url, "../openapi.json") == stack.gateway_url(f"/_{service}/openapi.json")
        on_port = http.get(stack.url(service, "/docs"), timeout=5)
        assert on_port.url == stack.url(service, "/docs/") and "validatorUrl\": null" in on_port.text


def test_one_docs_page_lists_every_service(stack):
    wait_gateway(stack)
    page = requests.get(stack.gateway_url("/docs"), timeout=5)
    assert page.url == stack.gateway_url("/docs/") and page.headers["Content-Type"].startswith("text/html")
    assert "validatorUrl\": null" in page.text
    for service in ROUTES:
        assert f'"url": "/_{service}/openapi.json"' in page.text
    for asset in re.findall(r'(?:href|src)="([^"]+)"', page.text):
        assert requests.get(urljoin(page.url, asset), timeout=5).status_code == 200, asset


def _inline_script_hashes(page: str) -> set[str]:
    import base64
    import hashlib

    return {"'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
            for script in re.findall(r"<script>(.*?)</script>", page, re.S)}


def test_no_site_can_frame_a_docs_page_and_its_own_script_may_run(stack):
    wait_gateway(stack)
    pages = [stack.url(service, "/docs") for service in ROUTES]
    pages += [stack.gateway_url(f"/_{service}/docs") for service in ROUTES] + [stack.gateway_url("/docs")]
    for url in pages:
        for response in (requests.get(url, allow_redirects=False, timeout=5), requests.get(url, timeout=5)):
            policy = response.headers.get("Content-Security-Policy", "")
            assert "frame-ancestors 'none'" in policy, (url, response.status_code, response.headers)
            assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Content-Type"].startswith("text/html")
        script_src = re.search(r"script-src ([^;]*)", policy).group(1).split()
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        hashes = _inline_script_hashes(response.text)
        assert hashes and hashes <= set(script_src), (url, hashes, script_src)
    storefront = requests.get(stack.gateway_url("/"), timeout=5)
    assert "frame-ancestors 'none'" in storefront.headers["Content-Security-Policy"]
    assert storefront.headers["X-Frame-Options"] == "DENY"


def test_swagger_ui_loads_under_its_policy_in_a_browser(stack):
    """The page draws its operations, and the policy refuses nothing it loads or runs."""
    from tests.e2e.test_storefront import CHROMIUM, CHROMIUM_ARGS, _missing

    if _missing():
        pytest.skip(_missing())
    import playwright.sync_api as playwright_api

    wait_gateway(stack)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for url, operation in ((stack.gateway_url("/_item/docs/"), "listItems"),
                                   (stack.url("item", "/docs/"), "listItems"),
                                   (stack.gateway_url("/docs/"), "register")):
                page = browser.new_page()
                refused = []
                page.on("console", lambda message: refused.append(message.text)
                        if "Content Security Policy" in message.text else None)
                page.goto(url)
                # Swagger UI draws each operation as a block with id operations-<tag>-<operationId>.
                page.locator(f"[id^='operations-'][id$='-{operation}']").first.wait_for(timeout=20000)
                assert refused == [], refused
                page.close()
        finally:
            browser.close()
