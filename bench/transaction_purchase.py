"""POST /v1/transactions on the real svc_transaction vs a bare Flask + psycopg2 floor, same gunicorn settings.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/transaction_purchase.py [--rounds 6] [--seconds 4] [--clients 8] [--keep]

It creates a database of its own (toko_bench_transaction), migrates it and seeds one customer with a
live session and one item per client (stock that cannot run out, price below the OTP threshold), then
starts svc_transaction and bench/transaction_floor.py, each under gunicorn with the repository's
gunicorn.conf.py (same workers, threads, keepalive; only the WSGI app differs). Each closed-loop client
buys one unit of its own item per request with the same bearer token, so both sides pay for the session
lookup and neither waits on another client's row lock. Rounds alternate between the two, swapping
the order every round; it prints req/s, p50/p99 and the ratio service / floor (target >= 0.7), and
checks that every unit the 201s sold was taken from stock exactly once.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (alternate, bench_environment, closed_loop, drop_database, fresh_database,  # noqa: E402
                          gunicorn_service, vacuum_analyze)

ENV = bench_environment("toko_bench_transaction")
TARGET = 0.7
STOCK = 1_000_000_000


def seed(clients: int) -> tuple[str, list[int]]:
    """A customer with a live session, and one item per client; returns the token and the item ids."""
    from common.db.models import Item
    from common.db.session import session_scope
    from svc_user.service import create_user, start_session

    with session_scope() as session:
        user = create_user(session, username="bench", email="bench@example.test", password="bench-password-1")
        token, _ = start_session(session, user)
        items = [Item(sku=f"BENCH-{n}", name=f"Bench item {n}", price=1000, stock=STOCK) for n in range(clients)]
        session.add_all(items)
        session.flush()
        ids = [item.id for item in items]
    vacuum_analyze(ENV.db_name)
    return token, ids


def sold_units(item_ids: list[int]) -> tuple[int, int]:
    """(units taken from stock, units on transaction lines + floor transactions) for the bench items."""
    import psycopg2

    conn = psycopg2.connect(ENV.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT sum(%s - stock) FROM items WHERE id = ANY(%s)", (STOCK, item_ids))
        taken = cur.fetchone()[0]
        # The floor records no lines: its transactions are one unit at price 1000 each.
        cur.execute("SELECT coalesce(sum(quantity), 0) FROM transaction_lines WHERE item_id = ANY(%s)", (item_ids,))
        lines = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM transactions t WHERE NOT EXISTS "
                    "(SELECT 1 FROM transaction_lines l WHERE l.transaction_id = t.id)")
        floor = cur.fetchone()[0]
    conn.close()
    return int(taken), int(lines + floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per target (alternating)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--service-log-level", default="INFO",
                        help="svc_transaction's TOKO_LOG_LEVEL (INFO, as deployed, logs one line per request)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    import itertools
    import threading

    import requests

    from common.settings import get_settings

    fresh_database(ENV.db_name)
    token, item_ids = seed(args.clients)
    settings = get_settings()
    headers = {"Authorization": f"Bearer {token}"}
    print(f"gunicorn.conf.py: {settings.workers} workers x {settings.threads} threads (gthread); "
          f"{args.clients} closed-loop clients (Python threads + requests.Session), each buying 1 unit of its "
          f"own item per request; {args.rounds} rounds x {args.seconds:.0f}s per target")
    try:
        with gunicorn_service("transaction", ENV.database_url, TOKO_LOG_LEVEL=args.service_log_level) as svc, \
                gunicorn_service("transaction", ENV.database_url, app="bench.transaction_floor:app") as floor:
            bases = {"svc_transaction": svc, "floor": floor}
            body = {"lines": [{"item_id": item_ids[0], "quantity": 1}]}
            answers = {name: requests.post(f"{base}/v1/transactions", json=body, headers=headers, timeout=10)
                       for name, base in bases.items()}
            for name, answer in answers.items():
                assert answer.status_code == 201, (name, answer.text)
            shape = {k: v for k, v in answers["svc_transaction"].json()["data"].items() if k in
                     answers["floor"].json()["data"]}
            print(f"both buy: svc {shape}\n        floor {answers['floor'].json()['data']}")

            def run(name: str, seconds: float):
                url = f"{bases[name]}/v1/transactions"

                def once():
                    # Each client thread takes the next item at its first call and keeps it for the round.
                    bodies = itertools.cycle([{"lines": [{"item_id": i, "quantity": 1}]} for i in item_ids])
                    mine, lock = threading.local(), threading.Lock()

                    def call(http):
                        if not hasattr(mine, "body"):
                            with lock:
                                mine.body = next(bodies)
                        return http.post(url, json=mine.body, headers=headers, timeout=10)

                    return closed_loop(call, threads=args.clients, seconds=seconds, label=name,
                                       check=lambda r: r.status_code == 201)

                return once

            alternate({name: run(name, 1.0) for name in bases}, rounds=1)  # warm-up, not counted
            results = alternate({name: run(name, args.seconds) for name in bases}, rounds=args.rounds)
        taken, recorded = sold_units(item_ids)
    finally:
        if not args.keep:
            drop_database(ENV.db_name)

    print()
    for result in results.values():
        print(result.summary())
    ratio = results["svc_transaction"].rps / results["floor"].rps
    failures = sum(r.failures for r in results.values())
    print(f"\nthroughput svc_transaction / floor = {ratio:.3f} (target >= {TARGET}): "
          f"{'OK' if ratio >= TARGET else 'BELOW TARGET'}; p50 {results['svc_transaction'].percentile(50):.2f} vs "
          f"{results['floor'].percentile(50):.2f} ms; failures {failures}; "
          f"units taken from stock {taken}, recorded {recorded}: {'exact' if taken == recorded else 'MISMATCH'}")


if __name__ == "__main__":
    main()
