"""Live sales report over HTTP vs the same aggregate as raw SQL, on 1,000,000 transaction lines.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/report_sales.py [--lines 1000000] [--rounds 15] [--keep]

It creates a database of its own (toko_bench_report), migrates it, seeds users, items, transactions
(5% cancelled, 3% expired, the rest paid over three years) and lines with INSERT ... SELECT
generate_series in batches (with a progress bar), starts svc_report under gunicorn on a free port,
then alternates, swapping the order each round: one HTTP request to GET /v1/reports/sales, one
execution of the very statement the service runs (psycopg2 as the report's role, fetching every row).
It prints the medians, their ratio (target <= 1.3) and EXPLAIN (ANALYZE) of the statement with the
index it uses. bench/run_all.py runs the same windows on its own 1,000,000-line database.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # before bench/, whose common.py would hide toko's common package

from bench.common import (BenchEnv, Progress, bench_environment, drop_database, fresh_database,  # noqa: E402
                          gunicorn_service, LatencySides, vacuum_analyze)

DB_NAME = "toko_bench_report"
TARGET = 1.3
ADMIN = "bench-admin"
# Three years of sales; reports ask for a month, a quarter or a year of them.
WINDOWS = [  # (label, from, to, group_by): the first is the headline figure
    ("day, one month", "2023-05-01", "2023-06-01", "day"),
    ("item, one month", "2023-05-01", "2023-06-01", "item"),
    ("user, one month", "2023-05-01", "2023-06-01", "user"),
    ("day, one quarter", "2023-04-01", "2023-07-01", "day"),
    ("day, one year", "2023-01-01", "2024-01-01", "day"),
]
EXPLAINED = ("day, one month", "day, one year")
SOLD_ITEMS = 1000  # lines name the items SKU-1 .. SKU-1000
BUYERS = 2000


def seed_items(env: BenchEnv) -> None:
    """The SOLD_ITEMS items the lines name (bench/run_all.py has them in its catalogue already)."""
    import psycopg2

    conn = psycopg2.connect(env.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO categories (name) VALUES ('bench') RETURNING id")
        category = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO items (sku, name, price, stock, category_id)
            SELECT 'SKU-' || g, 'Item ' || g, 1000 + (g * 37 %% 100) * 500, 1000000, %s
            FROM generate_series(1, %s) g""", (category, SOLD_ITEMS))
    conn.close()


def seed_sales(env: BenchEnv, lines: int, *, batch: int = 25_000, analyze: bool = True) -> None:
    """Buyers, then transactions with 4 lines each over 2021-2023, in set-based batches."""
    transactions = lines // 4
    started = time.perf_counter()
    import psycopg2

    conn = psycopg2.connect(env.database_url)
    conn.autocommit = True  # each batch commits: a long seed is not one huge transaction
    with conn.cursor() as cur:
        cur.execute("""
            INSERT INTO users (username, email, password_hash, role)
            SELECT 'buyer' || g, 'buyer' || g || '@bench.test', 'not-a-hash', 'customer'
            FROM generate_series(1, %s) g""", (BUYERS,))
        cur.execute("SELECT min(id) FROM users WHERE username LIKE 'buyer%%'")
        first_buyer = cur.fetchone()[0]
        with Progress("transaction lines", transactions * 4) as bar:
            for lo in range(1, transactions + 1, batch):
                hi = min(transactions, lo + batch - 1)
                # paid_at spreads 2021-2023 evenly; cancelled and expired ones are never paid. Four
                # distinct items per transaction (k * 251 mod 1000 differs for k = 0..3).
                cur.execute("""
                    WITH t AS (
                        INSERT INTO transactions (user_id, status, total, paid_at, cancelled_at, created_at,
                                                  updated_at)
                        SELECT %(buyer)s + (g * 7919 %% %(buyers)s),
                               s.status, 0,
                               CASE WHEN s.status = 'paid' THEN s.at END,
                               CASE WHEN s.status = 'cancelled' THEN s.at END,
                               s.at, s.at
                        FROM generate_series(%(lo)s, %(hi)s) g
                        CROSS JOIN LATERAL (SELECT
                            CASE WHEN g %% 20 = 0 THEN 'cancelled' WHEN g %% 33 = 0 THEN 'expired'
                                 ELSE 'paid' END AS status,
                            timestamptz '2021-01-01 00:00:00+00' + (g::float8 / %(n)s) * interval '1095 days'
                                AS at) s
                        RETURNING id, created_at
                    ), l AS (
                        INSERT INTO transaction_lines (transaction_id, item_id, quantity, unit_price)
                        SELECT t.id, i.id,
                               1 + (t.id + k) %% 5
                                 + CASE WHEN extract(isodow FROM t.created_at AT TIME ZONE 'UTC') >= 6
                                        THEN 2 ELSE 0 END,  -- weekends sell more
                               i.price
                        FROM t
                        CROSS JOIN generate_series(0, 3) k
                        JOIN items i ON i.sku = 'SKU-' || (1 + (t.id * 4 + k * 251) %% %(sold)s)
                                    AND i.deleted_at IS NULL
                        RETURNING transaction_id
                    )
                    SELECT min(transaction_id), max(transaction_id), count(*) FROM l""",
                            {"buyer": first_buyer, "buyers": BUYERS, "lo": lo, "hi": hi, "n": transactions,
                             "sold": SOLD_ITEMS})
                first, last, count = cur.fetchone()
                cur.execute("""
                    UPDATE transactions t SET total = s.total
                    FROM (SELECT transaction_id, sum(quantity::bigint * unit_price) AS total
                          FROM transaction_lines WHERE transaction_id BETWEEN %s AND %s
                          GROUP BY transaction_id) s
                    WHERE s.transaction_id = t.id""", (first, last))
                bar.advance(count)
        cur.execute("SELECT count(*) FROM transaction_lines")
        count = cur.fetchone()[0]
    conn.close()
    if analyze:
        vacuum_analyze(env.db_name)
    print(f"seeded {count:,} transaction lines in {transactions:,} transactions "
          f"({time.perf_counter() - started:.1f}s)")


def admin_token() -> str:
    """A live session of a new admin, for the report endpoints."""
    from common.db.session import session_scope
    from svc_user.service import create_user, start_session

    with session_scope() as session:
        user = create_user(session, username=ADMIN, email=f"{ADMIN}@bench.test",
                           password="bench-admin-password", role="admin")
        token, _ = start_session(session, user)
    return token


def bind(sql: str, query) -> tuple[str, dict]:
    """The service's statement in psycopg2's parameter style."""
    for name in ("start", "end", "tz"):
        sql = sql.replace(f":{name}", f"%({name})s")
    return sql, {"start": query.start, "end": query.end, "tz": query.tz}


@dataclass
class ReportCase(LatencySides):
    label: str
    rows: int
    live: list[float]  # seconds per HTTP request
    raw: list[float]  # seconds per raw SQL execution
    errors: int

    @property
    def ratio(self) -> float:
        return self.p50("live") / self.p50("raw")


def compare(env: BenchEnv, base: str, token: str, window, rounds: int, explain: bool) -> ReportCase:
    """Alternate one live HTTP report and one raw execution of its statement; prints the medians."""
    import psycopg2
    import requests

    from svc_report.query import parse_sales_query
    from svc_report.sales import sales_sql

    label, start, end, group_by = window
    query = parse_sales_query(start, end, group_by)
    sql, params = bind(sales_sql(group_by), query)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/v1/reports/sales"
    conn = psycopg2.connect(env.role_url("report"))  # the service's own role, as the service connects
    conn.autocommit = True
    cur = conn.cursor()
    case = ReportCase(label, 0, [], [], 0)
    api_totals = sql_totals = None
    for i in range(rounds + 2):  # two warm-up rounds (caches, connection pools) are not counted
        # Swap the order every round, so drift (other load, cache state) hits both sides alike.
        for side in (("http", "sql") if i % 2 == 0 else ("sql", "http")):
            t0 = time.perf_counter()
            if side == "http":
                try:
                    response = http.get(url, params={"from": start, "to": end, "group_by": group_by}, timeout=60)
                except requests.RequestException:
                    response = None
                elapsed = time.perf_counter() - t0
                if response is None or response.status_code != 200:
                    case.errors += 1
                    continue
                api_totals = response.json()["data"]["totals"]
            else:
                cur.execute(sql, params)
                rows = cur.fetchall()
                elapsed = time.perf_counter() - t0
                sql_totals = next(r for r in rows if r[0])[2:5]
                case.rows = len(rows) - 1
            if i >= 2:
                (case.live if side == "http" else case.raw).append(elapsed)
    assert api_totals is not None, f"{label}: every live request failed"
    assert [api_totals["transactions"], api_totals["quantity"], api_totals["revenue"]] == list(sql_totals)
    print(f"{label:18} rows {case.rows:5}  live HTTP median {case.p50('live'):8.1f} ms   raw SQL median "
          f"{case.p50('raw'):8.1f} ms   ratio {case.ratio:.2f}x  {'OK' if case.ratio <= TARGET else 'OVER 1.3x'}"
          f"{f'  {case.errors} errors' if case.errors else ''}")
    print(f"{'':18} totals: {api_totals}")
    if explain:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) for {label}:\n{plan}\n")
        print("uses ix_transactions_paid_at:", "ix_transactions_paid_at" in plan, "\n")
    conn.close()
    return case


@dataclass
class ReportRun:
    cases: list[ReportCase]
    rss: list[float]  # MB per svc_report worker afterwards


def run(env: BenchEnv, token: str, rounds: int, explain: bool = True) -> ReportRun:
    """svc_report under gunicorn, every window of WINDOWS against raw SQL."""
    # One gunicorn worker: requests come one at a time, and the raw side has one connection too.
    with gunicorn_service("report", env.database_url, TOKO_WORKERS="1") as base:
        cases = [compare(env, base, token, window, rounds, explain=explain and window[0] in EXPLAINED)
                 for window in WINDOWS]
        rss = base.worker_rss()
    return ReportRun(cases, rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()
    env = bench_environment(DB_NAME)
    fresh_database(env.db_name)
    seed_items(env)
    seed_sales(env, args.lines)
    token = admin_token()
    try:
        outcome = run(env, token, args.rounds)
    finally:
        if not args.keep:
            drop_database(env.db_name)
    ratios = [case.ratio for case in outcome.cases]
    print(f"headline ({WINDOWS[0][0]}): live / raw SQL = {ratios[0]:.2f}x (target <= {TARGET}x); "
          f"worst of all windows {max(ratios):.2f}x; RSS per worker "
          + ", ".join(f"{mb:.0f} MB" for mb in outcome.rss))


if __name__ == "__main__":
    main()
