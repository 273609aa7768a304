"""Where the Python of the two hot routes goes: cProfile of GET /v1/items/{id} and a purchase, in process.

    .venv/bin/python bench/profile_routes.py [--requests 2000] [--top 12] [--keep]

It creates a database of its own (toko_bench_profile) with a small catalogue and a buyer, then runs each
route through Flask's test client with the access log written (to /dev/null) and the metrics updated, as
deployed, first unprofiled (CPU per request), then under cProfile. It prints the CPU per request and
the functions with the most time of their own, and the time spent under each layer of the stack
(cumulative, so a layer includes what it calls). With --count it instead counts the Python bytecodes
each request executes, by package, for the service and for its floor: a deterministic measure of the
Python work, unmoved by whatever else the machine runs. docs/benchmarks.md quotes its output.
"""
from __future__ import annotations

import argparse
import collections
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
    ("request hooks before the view", ("common/web/app.py", "_start")),
    ("session lookup (auth)", ("common/web/auth.py", "_load")),
    ("body parsing + validation (webargs, marshmallow)", ("webargs/core.py", "parse")),
    ("the purchase (service.py and its SQL)", ("svc_transaction/service.py", "purchase")),
    ("response dump (marshmallow's Schema.dump)", ("marshmallow/schema.py", "dump")),
    ("response dump (compiled, common/web/fast/dump.py)", ("<string>", "dump")),
    ("JSON encoding (Flask's provider)", ("flask/json/provider.py", "response")),
    ("JSON encoding (orjson, common/web/fast/encoding.py)", ("common/web/fast/encoding.py", "response")),
    ("after the view: headers, commit/close, log, metrics", ("common/web/app.py", "_finish")),
    ("  of which the JSON access-log line", ("common/logs.py", "format")),
    ("  of which metrics (prometheus_client)", ("common/web/metrics.py", "observe")),
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


def bytecodes(call, n: int) -> tuple[float, collections.Counter]:
    """Python bytecodes one call executes (mean over n), and their split by package or toko module."""
    counts: collections.Counter = collections.Counter()

    def trace(frame, event, arg):
        if event == "call":
            frame.f_trace_opcodes = True
        elif event == "opcode":
            counts[frame.f_code.co_filename] += 1
        return trace

    for _ in range(20):
        call()
    sys.settrace(trace)
    try:
        for _ in range(n):
            call()
    finally:
        sys.settrace(None)
    split: collections.Counter = collections.Counter()
    for file, count in counts.items():
        if "site-packages/" in file:
            key = file.split("site-packages/", 1)[1].split("/", 1)[0]
        elif file.startswith(str(ROOT)):
            key = str(Path(file).relative_to(ROOT))
        else:
            key = "stdlib: " + Path(file).stem
        split[key] += count
    return sum(counts.values()) / n, split


def print_bytecodes(title: str, sides: dict, n: int, top: int) -> None:
    print(f"\n-- {title}: Python bytecodes per request --")
    for side, call in sides.items():
        total, split = bytecodes(call, n)
        print(f"{side}: {total:,.0f}")
        for key, count in split.most_common(top):
            print(f"  {count / n:7,.0f}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--count", action="store_true", help="bytecodes per request by package, service and floor")
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

        if args.count:
            from bench import floor_app, transaction_floor

            floors = floor_app.app.test_client(), transaction_floor.app.test_client()

            def read_floor():
                assert floors[0].get(f"/v1/items/{item_id}").status_code == 200

            def buy_floor():
                assert floors[1].post("/v1/transactions", json=body, headers=headers).status_code == 201

            with access_log_discarded("INFO"):
                print_bytecodes("GET /v1/items/{id}", {"svc_item": read, "floor": read_floor}, 100, args.top)
                print_bytecodes("POST /v1/transactions", {"svc_transaction": buy, "floor": buy_floor}, 100, args.top)
            return
        with access_log_discarded("INFO"):
            for title, call in (("GET /v1/items/{id}", read), ("POST /v1/transactions", buy)):
                print(f"{title}: {cpu_per_request(call, args.requests):.0f} us CPU per request unprofiled")
                profile(call, args.requests, args.top, title)
    finally:
        if not args.keep:
            drop_database(env.db_name)


if __name__ == "__main__":
    main()
