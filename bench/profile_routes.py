"""Where the Python of the two hot routes goes: cProfile of GET /v1/items/{id} and a purchase, in process.

    .venv/bin/python bench/profile_routes.py [--requests 2000] [--top 12] [--keep]

It creates a database of its own (toko_bench_profile) with a small catalogue and a buyer, then runs each
route through Flask's test client with the access log written (to /dev/null) and the metrics updated, as
deployed, first unprofiled (CPU per request), then under cProfile. It prints the CPU per request and
the functions with the most time of their own, and the time spent under each layer of the stack
(cumulative, so a layer includes what it calls). docs/benchmarks.md quotes its output.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (access_log_discarded, bench_environment, cpu_per_request,  # noqa: E402
                          drop_database, fresh_database)

DB_NAME = "toko_bench_profile"
# Layers of the stack, by the file a function lives in (cumulative time under the outermost call).
LAYERS = [
    ("flask-smorest response dump + marshmallow", ("flask_smorest/response.py", "_wrapper")),
    ("webargs / marshmallow argument parsing", ("flask_smorest/arguments.py", "wrapper")),
    ("JSON access-log line", ("common/logs.py", "format")),
    ("metrics (prometheus_client)", ("common/web/metrics.py", "observe")),
    ("request hooks (before)", ("common/web/app.py", "_start")),
    ("session lookup (auth)", ("common/web/auth.py", "_load")),
    ("session close / teardown", ("common/web/db.py", "_close")),
]


def profile(call, n: int, top: int, title: str) -> None:
    # Wall time (a CPU-time timer costs a system call per event and distorts): time inside psycopg2 is
    # mostly the database's and appears as execute and commit.
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    print(f"\n-- {title}: {n} requests, {total / n * 1e6:.0f} us per request under the profiler --")
    print("time under each layer (cumulative, us per request):")
    entries = stats.stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    for label, (path, name) in LAYERS:
        ct = sum(v[3] for (file, _, func), v in entries.items() if file.endswith(path) and func == name)
        if ct:
            print(f"  {label:<45} {ct / n * 1e6:7.0f}")
    print(f"top {top} functions by own time (us per request):")
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for (file, line, func), (_, calls, tt, ct, _) in ranked:
        where = file if file.startswith("~") else "/".join(Path(file).parts[-2:])
        print(f"  {tt / n * 1e6:7.1f} own {ct / n * 1e6:7.1f} cum  {calls // n:>3}x  {where}:{line} {func}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    env = bench_environment(DB_NAME)
    from bench import item_read, transaction_purchase

    fresh_database(env.db_name)
    item_id = item_read.seed(env, 1000)
    buyer = transaction_purchase.seed(env, 1)
    try:
        from svc_item.app import create_app as item_app
        from svc_transaction.app import create_app as transaction_app

        items, transactions = item_app().test_client(), transaction_app().test_client()
        body = {"lines": [{"item_id": buyer.item_ids[0], "quantity": 1}]}
        headers = {"Authorization": f"Bearer {buyer.token}"}

        def read():
            assert items.get(f"/v1/items/{item_id}").status_code == 200

        def buy():
            assert transactions.post("/v1/transactions", json=body, headers=headers).status_code == 201

        with access_log_discarded("INFO"):
            for title, call in (("GET /v1/items/{id}", read), ("POST /v1/transactions", buy)):
                print(f"{title}: {cpu_per_request(call, args.requests):.0f} us CPU per request unprofiled")
                profile(call, args.requests, args.top, title)
    finally:
        if not args.keep:
            drop_database(env.db_name)


if __name__ == "__main__":
    main()
