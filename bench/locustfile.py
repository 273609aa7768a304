"""`make load`: a realistic mix against the running stack, with Locust, headless; any error fails the run.

    .venv/bin/locust -f bench/locustfile.py --headless -u 9 -r 9 -t 30s      (or: make load)

Customers register, log in, browse both catalogue versions, buy, and read their transactions; about
one visit in eleven ends with a logout and a new login, so logins run at a steady rate under the rest
of the load, not only in the first instant. One admin reads live sales reports and queues report jobs.
Expected business answers (409 when an item sells out, 429 throttling) count as answers, not failures;
a login or registration refused with 503 `busy` (every password-hashing slot taken) is retried after its
Retry-After, up to five times, as a careful client would; other 5xx, connection failures and any other
unexpected status are failures, and Locust exits 1 when there is one. Afterwards it prints the RSS of
every gunicorn worker. The services' ports come from the settings (TOKO_*_PORT), as `make run` uses them.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from locust import HttpUser, between, events, task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import worker_rss  # noqa: E402
from common.settings import SERVICES, get_settings  # noqa: E402

EXPECTED = {200, 201, 202, 204, 409, 429}
PASSWORD = "load-password-123"
BUSY_RETRIES = 5
HOST = os.environ.get("TOKO_LOAD_HOST", "127.0.0.1")
SETTINGS = get_settings()
URLS = {s: f"http://{HOST}:{p}" for s, p in SETTINGS.ports.items()}


def _is_busy(answer) -> bool:
    try:
        return answer.json()["error"]["code"] == "busy"
    except (ValueError, KeyError, TypeError):
        return False


class TokoUser(HttpUser):
    abstract = True
    host = URLS["user"]  # each request names its service's full URL

    def call(self, name: str, service: str, method: str, path: str, **kw):
        for attempt in range(BUSY_RETRIES + 1):
            with self.client.request(method, URLS[service] + path, name=name, catch_response=True, **kw) as answer:
                # A password check refused for lack of a hashing slot says when to come back, as a
                # careful client would; it fails the run only when it persists.
                if answer.status_code == 503 and _is_busy(answer) and attempt < BUSY_RETRIES:
                    answer.success()
                    delay = float(answer.headers.get("Retry-After", "1"))
                elif answer.status_code in EXPECTED:
                    answer.success()
                    return answer
                else:
                    answer.failure(f"{answer.status_code} {answer.text[:160]}")
                    return answer
            time.sleep(delay * random.uniform(0.5, 1.0))
        return answer

    def log_in(self, username: str, password: str, name: str = "login") -> bool:
        answer = self.call(name, "user", "POST", "/v1/sessions", json={"username": username, "password": password})
        if answer.status_code != 201:
            return False
        self.client.headers["Authorization"] = f"Bearer {answer.json()['data']['token']}"
        return True


class Customer(TokoUser):
    weight = 8
    wait_time = between(0, 0.05)

    def on_start(self):
        self.name = f"load{uuid.uuid4().hex[:10]}"
        self.call("register", "user", "POST", "/v1/users",
                  json={"username": self.name, "email": f"{self.name}@load.test", "password": PASSWORD})
        self.log_in(self.name, PASSWORD)

    @task(1)
    def come_back(self):
        """A customer leaves (logs out) and comes back later with a new login: logins at a steady rate."""
        token = self.client.headers.pop("Authorization", None)
        if token is not None:
            self.call("logout", "user", "DELETE", "/v1/sessions/current", headers={"Authorization": token})
        self.log_in(self.name, PASSWORD)

    @task(10)
    def shop(self):
        page = self.call("browse v1", "item", "GET", "/v1/items",
                         params={"per_page": 20, "page": random.randint(1, 3)})
        self.call("browse v2", "item", "GET", "/v2/items",
                  params={"limit": 20, "sort": random.choice(["id", "price", "-price", "name"])})
        items = [i for i in (page.json()["data"] if page.status_code == 200 else [])
                 if i["stock"] > 0 and i["price"] < SETTINGS.otp_threshold]
        if items:
            item = random.choice(items)
            self.call("item", "item", "GET", f"/v1/items/{item['id']}")
            self.call("buy", "transaction", "POST", "/v1/transactions",
                      json={"lines": [{"item_id": item["id"], "quantity": 1}]},
                      headers={"Idempotency-Key": uuid.uuid4().hex})
        self.call("my transactions", "transaction", "GET", "/v1/transactions", params={"per_page": 10})
        self.call("me", "user", "GET", "/v1/users/me")


class Admin(TokoUser):
    weight = 1
    fixed_count = 1
    wait_time = between(0.5, 0.5)

    def on_start(self):
        today = date.today()
        self.window = {"from": (today - timedelta(days=30)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
        self.log_in(os.environ.get("TOKO_LOAD_ADMIN", "admin"),
                    os.environ.get("TOKO_LOAD_ADMIN_PASSWORD", "admin-password-123"), name="admin login")

    @task
    def read_reports(self):
        self.call("sales report", "report", "GET", "/v1/reports/sales",
                  params={**self.window, "group_by": random.choice(["day", "item", "user"])})
        self.call("queue report", "report", "POST", "/v1/reports",
                  json={"kind": "sales", **self.window, "group_by": "day"})
        self.call("list reports", "report", "GET", "/v1/reports", params={"per_page": 5})


@events.init.add_listener
def _fresh_clock(environment, **kw):
    # gevent's timers count from the loop's cached time, stale by as long as the imports took; without
    # a refresh, --run-time ends the run that much early.
    import gevent

    gevent.get_hub().loop.update_now()


@events.quitting.add_listener
def _worker_memory(environment, **kw):
    """RSS in MB of each gunicorn worker, by program (via supervisorctl pid and /proc)."""
    for service in SERVICES:
        program = f"svc_{service}"
        pid = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(ROOT / "supervisord.conf"), "pid",
                              program], capture_output=True, text=True).stdout.strip()
        if pid.isdigit():
            print(f"RSS {program}: " + ", ".join(f"{size:.0f} MB" for size in worker_rss(pid)))
