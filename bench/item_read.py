"""GET /v1/items/{id} on the real svc_item vs a bare Flask + psycopg2 floor, same gunicorn settings.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/item_read.py [--rounds 6] [--seconds 4] [--clients 8] [--keep]

It creates a database of its own (toko_bench_item), migrates it and seeds 100,000 items, then starts
svc_item and bench/floor_app.py, each under gunicorn with the repository's gunicorn.conf.py (same
workers, threads, keepalive; only the WSGI app differs) and checks that both answer the same JSON for
the same row. Then it alternates rounds of closed-loop load (wrk when installed, else Python threads
with one requests.Session each) on one and then the other, and prints req/s, p50/p99 and the ratio
service / floor (target >= 0.9).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (alternate, bench_environment, closed_loop, drop_database,  # noqa: E402
                          fresh_database, gunicorn_service, vacuum_analyze, wrk, wrk_available)

ENV = bench_environment("toko_bench_item")
TARGET = 0.9


def seed(items: int) -> int:
    """Items in one set-based statement; returns the id the bench reads (one from the middle)."""
    import psycopg2

    conn = psycopg2.connect(ENV.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO categories (name) VALUES ('bench') RETURNING id")
        category = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO items (sku, name, description, price, stock, category_id)
            SELECT 'SKU-' || g, 'Item ' || g, 'A bench item', 1000 + (g * 7919 %% 500) * 100, g %% 50, %s
            FROM generate_series(1, %s) g""", (category, items))
        cur.execute("SELECT id FROM items ORDER BY id OFFSET %s LIMIT 1", (items // 2,))
        item_id = cur.fetchone()[0]
    conn.close()
    vacuum_analyze(ENV.db_name)
    return item_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per target (alternating)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--service-log-level", default="INFO",
                        help="svc_item's TOKO_LOG_LEVEL (INFO, as deployed, logs one line per request)")
    parser.add_argument("--python-load", action="store_true",
                        help="use Python threads even if wrk is installed")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    import requests

    from common.settings import get_settings

    fresh_database(ENV.db_name)
    item_id = seed(args.items)
    settings = get_settings()
    use_wrk = wrk_available() and not args.python_load
    print(f"gunicorn.conf.py: {settings.workers} workers x {settings.threads} threads (gthread); "
          f"{args.clients} closed-loop clients via "
          f"{'wrk' if use_wrk else 'Python threads + requests.Session'}; "
          f"{args.rounds} rounds x {args.seconds:.0f}s per target; item {item_id} of {args.items:,}")
    try:
        with gunicorn_service("item", ENV.database_url, TOKO_LOG_LEVEL=args.service_log_level) as svc, \
                gunicorn_service("item", ENV.database_url, app="bench.floor_app:app") as floor:
            urls = {"svc_item": f"{svc}/v1/items/{item_id}", "floor": f"{floor}/v1/items/{item_id}"}
            bodies = {name: requests.get(url, timeout=5).json() for name, url in urls.items()}
            assert bodies["svc_item"] == bodies["floor"], bodies
            print(f"both answer the same row: {bodies['floor']}")

            def run(name: str, seconds: float):
                if use_wrk:
                    return lambda: wrk(urls[name], connections=args.clients, seconds=seconds, label=name)
                return lambda: closed_loop(lambda http: http.get(urls[name], timeout=10),
                                           threads=args.clients, seconds=seconds, label=name)

            alternate({name: run(name, 1.0) for name in urls}, rounds=1)  # warm-up, not counted
            results = alternate({name: run(name, args.seconds) for name in urls}, rounds=args.rounds)
    finally:
        if not args.keep:
            drop_database(ENV.db_name)

    print()
    for result in results.values():
        print(result.summary())
    ratio = results["svc_item"].rps / results["floor"].rps
    failures = sum(r.failures for r in results.values())
    print(f"\nthroughput svc_item / floor = {ratio:.3f} (target >= {TARGET}): "
          f"{'OK' if ratio >= TARGET else 'BELOW TARGET'}; p50 {results['svc_item'].percentile(50):.2f} vs "
          f"{results['floor'].percentile(50):.2f} ms; failures {failures}")


if __name__ == "__main__":
    main()
