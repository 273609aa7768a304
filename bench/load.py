"""A realistic mix against the running stack for a given time; exits non-zero if any request errors.

    .venv/bin/python bench/load.py --seconds 30 --users 8      (or: make load)

Customers register, log in once, browse both catalogue versions, buy, and read their transactions;
an admin reads live sales reports and queues report jobs. Expected business answers (409 when an
item sells out, 429 throttling) count as answers, not errors; 5xx, connection failures and any other
unexpected status are errors. Afterwards it prints the RSS of every gunicorn worker.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import worker_rss  # noqa: E402
from common.settings import SERVICES, get_settings  # noqa: E402

EXPECTED = {200, 201, 202, 204, 409, 429}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = defaultdict(list)
        self.statuses = Counter()
        self.errors: list[str] = []

    def record(self, name: str, started: float, response: requests.Response | None, error: str | None = None):
        with self.lock:
            self.latency[name].append(time.perf_counter() - started)
            if response is not None:
                self.statuses[response.status_code] += 1
                if response.status_code not in EXPECTED:
                    self.errors.append(f"{name}: {response.status_code} {response.text[:160]}")
            else:
                self.errors.append(f"{name}: {error}")


class Client:
    def __init__(self, urls: dict, stats: Stats, timeout: float = 15):
        self.urls, self.stats, self.timeout = urls, stats, timeout
        self.http = requests.Session()

    def call(self, name: str, service: str, method: str, path: str, **kw):
        started = time.perf_counter()
        try:
            response = self.http.request(method, self.urls[service] + path, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            self.stats.record(name, started, None, f"{type(exc).__name__}: {exc}"[:200])
            return None
        self.stats.record(name, started, response)
        return response


def customer(urls: dict, stats: Stats, deadline: float, threshold: int) -> None:
    c = Client(urls, stats)
    name = f"load{uuid.uuid4().hex[:10]}"
    password = "load-password-123"
    c.call("register", "user", "POST", "/v1/users",
           json={"username": name, "email": f"{name}@load.test", "password": password})
    login = c.call("login", "user", "POST", "/v1/sessions", json={"username": name, "password": password})
    if login is None or login.status_code != 201:
        return
    c.http.headers["Authorization"] = f"Bearer {login.json()['data']['token']}"
    while time.monotonic() < deadline:
        page = c.call("browse v1", "item", "GET", "/v1/items", params={"per_page": 20, "page": random.randint(1, 3)})
        c.call("browse v2", "item", "GET", "/v2/items", params={"limit": 20, "sort": random.choice(
            ["id", "price", "-price", "name"])})
        items = [i for i in (page.json()["data"] if page is not None and page.status_code == 200 else [])
                 if i["stock"] > 0 and i["price"] < threshold]
        if items:
            item = random.choice(items)
            c.call("item", "item", "GET", f"/v1/items/{item['id']}")
            c.call("buy", "transaction", "POST", "/v1/transactions",
                   json={"lines": [{"item_id": item["id"], "quantity": 1}]},
                   headers={"Idempotency-Key": uuid.uuid4().hex})
        c.call("my transactions", "transaction", "GET", "/v1/transactions", params={"per_page": 10})
        c.call("me", "user", "GET", "/v1/users/me")


def admin(urls: dict, stats: Stats, deadline: float, username: str, password: str) -> None:
    c = Client(urls, stats)
    login = c.call("admin login", "user", "POST", "/v1/sessions", json={"username": username, "password": password})
    if login is None or login.status_code != 201:
        stats.errors.append(f"admin login failed: {login.status_code if login is not None else 'no answer'}"
                            " (pass --admin/--admin-password)")
        return
    c.http.headers["Authorization"] = f"Bearer {login.json()['data']['token']}"
    today = date.today()
    window = {"from": (today - timedelta(days=30)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    while time.monotonic() < deadline:
        c.call("sales report", "report", "GET", "/v1/reports/sales",
               params={**window, "group_by": random.choice(["day", "item", "user"])})
        c.call("queue report", "report", "POST", "/v1/reports", json={"kind": "sales", **window, "group_by": "day"})
        c.call("list reports", "report", "GET", "/v1/reports", params={"per_page": 5})
        time.sleep(0.5)


def supervised_worker_rss() -> dict[str, list[float]]:
    """RSS in MB of each gunicorn worker, by program (via supervisorctl pid and /proc)."""
    rss = {}
    for service in SERVICES:
        program = f"svc_{service}"
        out = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(ROOT / "supervisord.conf"), "pid",
                              program], capture_output=True, text=True).stdout.strip()
        if out.isdigit():
            rss[program] = worker_rss(out)
    return rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--users", type=int, default=8, help="concurrent customers")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--admin", default="admin")
    parser.add_argument("--admin-password", default="admin-password-123")
    args = parser.parse_args()
    settings = get_settings()
    urls = {s: f"http://{args.host}:{p}" for s, p in settings.ports.items()}
    stats = Stats()
    deadline = time.monotonic() + args.seconds
    threads = [threading.Thread(target=customer, args=(urls, stats, deadline, settings.otp_threshold))
               for _ in range(args.users)]
    threads.append(threading.Thread(target=admin, args=(urls, stats, deadline, args.admin, args.admin_password)))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    total = sum(stats.statuses.values())
    print(f"{total} requests in {elapsed:.1f}s ({total / elapsed:.0f}/s), statuses {dict(sorted(stats.statuses.items()))}")
    print(f"{'request':<18}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for name, values in sorted(stats.latency.items()):
        values.sort()
        p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"{name:<18}{len(values):>7}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}")
    for program, sizes in supervised_worker_rss().items():
        print(f"RSS {program}: " + ", ".join(f"{s:.0f} MB" for s in sizes))
    if stats.errors:
        print(f"{len(stats.errors)} errors, first: {stats.errors[:5]}", file=sys.stderr)
        return 1
    print("0 errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
