"""Live sales report over HTTP vs the same aggregate as raw SQL, on 1,000,000 transaction lines.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/report_sales.py [--lines 1000000] [--rounds 15] [--keep]

It creates a database of its own (toko_bench_report), migrates it, seeds users, items, transactions
(5% cancelled, 3% expired, the rest paid over three years) and lines with INSERT ... SELECT
generate_series, starts svc_report under gunicorn on a free port, then alternates, swapping the order
each round: one HTTP request to GET /v1/reports/sales, one execution of the very statement the service
runs (psycopg2, fetching every row). It prints the medians, their ratio (target <= 1.3) and
EXPLAIN (ANALYZE) of the statement with the index it uses.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/, whose common.py would hide toko's common package

from bench.common import (bench_environment, drop_database, fresh_database,  # noqa: E402
                          gunicorn_service, vacuum_analyze)

ENV = bench_environment("toko_bench_report")  # settings are read once: before toko is imported

import psycopg2  # noqa: E402
import requests  # noqa: E402

from common.db.session import session_scope  # noqa: E402

# Three years of sales; reports ask for a month, a quarter or a year of them.
WINDOWS = [  # (label, from, to, group_by): the first is the headline figure
    ("day, one month", "2023-05-01", "2023-06-01", "day"),
    ("item, one month", "2023-05-01", "2023-06-01", "item"),
    ("user, one month", "2023-05-01", "2023-06-01", "user"),
    ("day, one quarter", "2023-04-01", "2023-07-01", "day"),
    ("day, one year", "2023-01-01", "2024-01-01", "day"),
]
EXPLAINED = ("day, one month", "day, one year")


def seed(lines: int) -> None:
    """Users, items and transactions with 4 lines each, in set-based statements."""
    transactions = lines // 4
    started = time.perf_counter()
    conn = psycopg2.connect(ENV.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("""
            INSERT INTO users (username, email, password_hash, role)
            SELECT 'buyer' || g, 'buyer' || g || '@bench.test', 'not-a-hash', 'customer'
            FROM generate_series(1, 2000) g""")
        cur.execute("INSERT INTO categories (name) VALUES ('bench') RETURNING id")
        category = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO items (sku, name, price, stock, category_id)
            SELECT 'SKU-' || g, 'Item ' || g, 1000 + (g * 37 %% 100) * 500, 1000000, %s
            FROM generate_series(1, 1000) g""", (category,))
        # paid_at spreads 2021-2023 evenly; cancelled and expired ones are never paid.
        cur.execute("""
            INSERT INTO transactions (user_id, status, total, paid_at, cancelled_at, created_at, updated_at)
            SELECT (SELECT min(id) FROM users) + (g * 7919 %% 2000),
                   s.status, 0,
                   CASE WHEN s.status = 'paid' THEN s.at END,
                   CASE WHEN s.status = 'cancelled' THEN s.at END,
                   s.at, s.at
            FROM generate_series(1, %(n)s) g
            CROSS JOIN LATERAL (SELECT
                CASE WHEN g %% 20 = 0 THEN 'cancelled' WHEN g %% 33 = 0 THEN 'expired' ELSE 'paid' END AS status,
                timestamptz '2021-01-01 00:00:00+00' + (g::float8 / %(n)s) * interval '1095 days' AS at) s
            """, {"n": transactions})
        # Four distinct items per transaction (k * 251 mod 1000 differs for k = 0..3).
        cur.execute("""
            INSERT INTO transaction_lines (transaction_id, item_id, quantity, unit_price)
            SELECT t.id, i.id,
                   1 + (t.id + k) % 5 + CASE WHEN extract(isodow FROM t.created_at AT TIME ZONE 'UTC') >= 6
                                             THEN 2 ELSE 0 END,  -- weekends sell more
                   i.price
            FROM transactions t
            CROSS JOIN generate_series(0, 3) k
            JOIN items i ON i.sku = 'SKU-' || (1 + (t.id * 4 + k * 251) % 1000)""")
        cur.execute("""
            UPDATE transactions t SET total = s.total
            FROM (SELECT transaction_id, sum(quantity * unit_price) AS total
                  FROM transaction_lines GROUP BY transaction_id) s
            WHERE s.transaction_id = t.id""")
        cur.execute("SELECT count(*) FROM transaction_lines")
        count = cur.fetchone()[0]
    conn.close()
    vacuum_analyze(ENV.db_name)
    print(f"seeded {count:,} transaction lines in {transactions:,} transactions "
          f"({time.perf_counter() - started:.1f}s)")


def admin_token() -> str:
    from svc_user.service import create_user, start_session

    with session_scope() as session:
        user = create_user(session, username="bench-admin", email="bench-admin@bench.test",
                           password="bench-admin-password", role="admin")
        token, _ = start_session(session, user)
    return token


def bind(sql: str, query) -> tuple[str, dict]:
    """The service's statement in psycopg2's parameter style."""
    for name in ("start", "end", "tz"):
        sql = sql.replace(f":{name}", f"%({name})s")
    return sql, {"start": query.start, "end": query.end, "tz": query.tz}


def compare(base: str, token: str, window, rounds: int, explain: bool) -> float:
    from svc_report.service import parse_sales_query, sales_sql

    label, start, end, group_by = window
    query = parse_sales_query(start, end, group_by)
    sql, params = bind(sales_sql(group_by), query)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/v1/reports/sales"
    conn = psycopg2.connect(ENV.database_url)
    conn.autocommit = True
    cur = conn.cursor()
    live, raw = [], []
    api_totals = sql_totals = None
    for i in range(rounds + 2):  # two warm-up rounds (caches, connection pools) are not counted
        # Swap the order every round, so drift (other load, cache state) hits both sides alike.
        for side in (("http", "sql") if i % 2 == 0 else ("sql", "http")):
            t0 = time.perf_counter()
            if side == "http":
                response = http.get(url, params={"from": start, "to": end, "group_by": group_by}, timeout=60)
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                api_totals = response.json()["data"]["totals"]
            else:
                cur.execute(sql, params)
                rows = cur.fetchall()
                elapsed = time.perf_counter() - t0
                sql_totals = next(r for r in rows if r[0])[2:5]
            if i >= 2:
                (live if side == "http" else raw).append(elapsed)
    assert [api_totals["transactions"], api_totals["quantity"], api_totals["revenue"]] == list(sql_totals)
    live_ms, raw_ms = statistics.median(live) * 1000, statistics.median(raw) * 1000
    ratio = live_ms / raw_ms
    print(f"{label:18} rows {len(rows) - 1:5}  live HTTP median {live_ms:8.1f} ms   raw SQL median "
          f"{raw_ms:8.1f} ms   ratio {ratio:.2f}x  {'OK' if ratio <= 1.3 else 'OVER 1.3x'}")
    print(f"{'':18} totals: {api_totals}")
    if explain:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) for {label}:\n{plan}\n")
        print("uses ix_transactions_paid_at:", "ix_transactions_paid_at" in plan, "\n")
    conn.close()
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()
    fresh_database(ENV.db_name)
    seed(args.lines)
    token = admin_token()
    try:
        # One gunicorn worker: requests come one at a time, and the raw side has one connection too.
        with gunicorn_service("report", ENV.database_url, TOKO_WORKERS="1") as base:
            ratios = [compare(base, token, window, args.rounds, explain=window[0] in EXPLAINED)
                      for window in WINDOWS]
    finally:
        if not args.keep:
            drop_database(ENV.db_name)
    print(f"headline ({WINDOWS[0][0]}): live / raw SQL = {ratios[0]:.2f}x (target <= 1.3x); "
          f"worst of all windows {max(ratios):.2f}x")


if __name__ == "__main__":
    main()
