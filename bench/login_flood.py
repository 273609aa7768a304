"""What a login flood does to the other requests: medians of GET /v1/users/me and an item read, with and without.

    .venv/bin/python bench/login_flood.py [--rate 20] [--seconds 20] [--rounds 2] [--addresses 200]

The whole stack runs as deployed (supervisord, nginx on every service port, gunicorn 2 workers x 4
threads per service) with the production argon2 profile (OWASP: m=19 MiB, t=2), on a database of its
own (toko_bench_login_flood, dropped afterwards). One probe client reads its own account (`GET /v1/users/me`) and another reads an item
(`GET /v1/items/{id}`), one request at a time with a 50 ms pause, in two phases that alternate over
`--rounds` rounds:

  quiet   nothing else runs
  flood   an open loop sends `--rate` logins a second with unknown usernames (each a new one), spread
          over `--addresses` loopback source addresses (127.0.0.2 ...) so that the per-address login
          throttle does not simply answer 429 without hashing: every login costs a password check

It prints each probe's median and p90 per phase, and what the flood's logins got (statuses, median time).
Everything runs on loopback and stops after rounds x 2 x seconds.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_environment, drop_database, fresh_database, percentile  # noqa: E402

DB_NAME = "toko_bench_login_flood"
PASSWORD = "bench-password-123"


def probe(url: str, headers: dict, stop: threading.Event, out: list[float], errors: Counter) -> None:
    import requests

    http = requests.Session()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            status = http.get(url, headers=headers, timeout=30).status_code
        except requests.RequestException as exc:
            errors[type(exc).__name__] += 1
        else:
            if status == 200:
                out.append((time.perf_counter() - started) * 1000)
            else:
                errors[status] += 1
        stop.wait(0.05)


def flood(user_url: str, rate: float, seconds: float, addresses: list[str], counter: list[int],
          statuses: Counter, durations: list[float]) -> None:
    import requests

    from toko.stack import client_from

    clients = [client_from(a) for a in addresses]

    def one(n: int) -> None:
        http = clients[n % len(clients)]
        started = time.perf_counter()
        try:
            status = http.post(user_url + "/v1/sessions", json={"username": f"ghost-{time.time_ns()}-{n}",
                                                                "password": "not-the-password"}, timeout=30).status_code
        except requests.RequestException as exc:
            statuses[type(exc).__name__] += 1
            return
        statuses[status] += 1
        durations.append((time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(max_workers=64) as pool:
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1
            while sent < due:
                pool.submit(one, counter[0] + sent)
                sent += 1
            time.sleep(0.005)
        counter[0] += sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--addresses", type=int, default=200)
    args = parser.parse_args()
    if not 1 <= args.addresses <= 250:
        parser.error("--addresses must be between 1 and 250")

    bench_environment(DB_NAME, TOKO_ARGON2_PROFILE="owasp")
    import requests

    url = fresh_database(DB_NAME)
    home = Path(tempfile.mkdtemp(prefix="toko-bench-flood-"))
    try:
        from toko.stack import make_stack

        with make_stack(home, url, TOKO_ARGON2_PROFILE="owasp", TOKO_LOG_LEVEL="WARNING") as stack:
            user, item = stack.url("user"), stack.url("item")
            from common.db.session import session_scope
            from common.db.models import Item

            with session_scope() as session:
                row = Item(sku="FLOOD-1", name="Flood tea", price=5000, stock=10)
                session.add(row)
                session.flush()
                item_id = row.id
            requests.post(user + "/v1/users", json={"username": "flood-owner", "email": "owner@bench.test",
                                                    "password": PASSWORD}, timeout=30).raise_for_status()
            token = requests.post(user + "/v1/sessions", json={"username": "flood-owner", "password": PASSWORD},
                                  timeout=30).json()["data"]["token"]
            headers = {"Authorization": f"Bearer {token}"}
            targets = {"users/me": (user + "/v1/users/me", headers), "item": (f"{item}/v1/items/{item_id}", {})}
            addresses = [f"127.0.0.{i + 2}" for i in range(args.addresses)]
            latencies = {(phase, name): [] for phase in ("quiet", "flood") for name in targets}
            errors = {key: Counter() for key in latencies}
            statuses, login_ms, counter = Counter(), [], [0]
            flood_seconds = 0.0
            for round_no in range(args.rounds):
                for phase in (("quiet", "flood") if round_no % 2 == 0 else ("flood", "quiet")):
                    stop = threading.Event()
                    probes = [threading.Thread(target=probe, args=(u, h, stop, latencies[(phase, n)],
                                                                   errors[(phase, n)]))
                              for n, (u, h) in targets.items()]
                    for t in probes:
                        t.start()
                    if phase == "flood":
                        flood(user, args.rate, args.seconds, addresses, counter, statuses, login_ms)
                        flood_seconds += args.seconds
                    else:
                        time.sleep(args.seconds)
                    stop.set()
                    for t in probes:
                        t.join()
                    time.sleep(2)  # let the flood's last requests drain before the next phase
    finally:
        drop_database(DB_NAME)
        shutil.rmtree(home, ignore_errors=True)

    print(f"login flood: {args.rate:g}/s unknown usernames from {args.addresses} addresses, "
          f"{args.rounds} rounds x {args.seconds:g} s per phase, argon2 owasp")
    for name in targets:
        for phase in ("quiet", "flood"):
            values = latencies[(phase, name)]
            if values:
                print(f"  {name:9s} {phase:5s}  n={len(values):4d}  median {statistics.median(values):8.1f} ms"
                      f"  p90 {percentile(values, 90):8.1f} ms  errors {dict(errors[(phase, name)]) or 0}")
            else:
                print(f"  {name:9s} {phase:5s}  no successful request; errors {dict(errors[(phase, name)])}")
    sent = sum(statuses.values())
    print(f"  logins sent {sent} ({sent / max(flood_seconds, 1e-9):.1f}/s): {dict(sorted(statuses.items(), key=str))}; "
          f"median {statistics.median(login_ms) if login_ms else float('nan'):.0f} ms")


if __name__ == "__main__":
    main()
