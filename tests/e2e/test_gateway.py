"""The gateway: one origin routing by path to every service (needs nginx)."""
import shutil
import time

import pytest
import requests

from common.gateway import ROUTES

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None and not __import__("os").path.exists("/usr/sbin/nginx"),
                                reason="nginx is not installed (apt-get install nginx): the gateway is not tested")


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
