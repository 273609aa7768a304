"""The real stack: five services under supervisor, each healthy, ready, documented."""
import time

import requests

from common.settings import SERVICES


def test_every_service_is_healthy_ready_and_documented(stack):
    for service in SERVICES:
        health = requests.get(stack.url(service, "/healthz"), timeout=5)
        assert health.json() == {"data": {"service": service, "status": "ok"}}
        assert requests.get(stack.url(service, "/readyz"), timeout=5).status_code == 200
        spec = requests.get(stack.url(service, "/openapi.json"), timeout=5).json()
        assert spec["info"]["title"] == f"toko {service} service"
        docs = requests.get(stack.url(service, "/docs/"), timeout=5)
        assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
        assert requests.get(stack.url(service, "/docs/swagger-ui-bundle.js"), timeout=5).status_code == 200


def test_supervisorctl_lists_programs_by_name(stack):
    # A program is RUNNING once it has stayed up startsecs (8 s), which can be after it answers.
    deadline = time.monotonic() + 30
    while "STARTING" in (status := stack.ctl("status").stdout) and time.monotonic() < deadline:
        time.sleep(0.5)
    for service in SERVICES:
        assert f"svc_{service} " in status and "RUNNING" in status.split(f"svc_{service}")[1].splitlines()[0]


def test_unknown_route_gets_envelope_and_request_id(stack):
    response = requests.get(stack.url("report", "/v1/nope"), headers={"X-Request-ID": "e2e-1"}, timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["X-Request-ID"] == "e2e-1"
    (line,) = stack.access_lines("e2e-1")
    assert (line["service"], line["status"], line["route"]) == ("report", 404, "")


def test_restarting_one_service_leaves_the_others_serving(stack):
    assert stack.ctl("restart", "svc_item").returncode == 0
    for service in SERVICES:
        if service != "item":
            assert requests.get(stack.url(service, "/healthz"), timeout=5).status_code == 200
    stack.wait_healthy(["item"], timeout=30)


def _count(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_move_with_traffic_summed_across_workers(stack):
    series = 'toko_http_requests_total{method="GET",route="/healthz",service="otp",status="200"}'
    before = _count(requests.get(stack.url("otp", "/metrics"), timeout=5).text, series)
    http = requests.Session()  # new connections spread over the workers as well as keep-alive ones
    for i in range(40):
        (http if i % 2 else requests).get(stack.url("otp", "/healthz"), timeout=5)
    after = _count(requests.get(stack.url("otp", "/metrics"), timeout=5).text, series)
    assert after - before == 40


def test_a_healthy_start_logs_no_critical_or_error_line(stack):
    """supervisord names the user it runs as and guards its control socket with a login: no CRIT at start."""
    log = stack.log("supervisord")
    assert "supervisord started" in log
    assert [line for line in log.splitlines() if " CRIT " in line or " ERROR " in line] == []
