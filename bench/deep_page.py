"""v2 keyset pages deep in a 1,000,000-item catalogue vs the first page; SQL statements per list request.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/deep_page.py [--items 1000000] [--rounds 60] [--reuse] [--keep]

It seeds a database of its own (toko_bench_deep, migrated to head) with INSERT ... SELECT
generate_series in batches (a progress bar per step), building the items indexes after the load, not
during it (--reuse keeps an already seeded one). Then, against svc_item under gunicorn (the repository's gunicorn.conf.py), it alternates
requests for the first page and for the page right after the 900,000th item, for every sort (and for
a few filters, 90% into the filtered set), checks that the deep page starts exactly at the next item of
that order, and prints median and p99 latency with the ratio deep / first (target <= 1.2). Finally it
counts the SQL statements that one list request issues, in process, for several page sizes (target:
one, whatever the size) and shows EXPLAIN (ANALYZE) of the deep pages. bench/run_all.py runs the same
cases on its own 1,000,000-item catalogue.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BenchEnv, Progress, admin_cursor, bench_environment, database_exists,  # noqa: E402
                          drop_database, fresh_database, gunicorn_service, LatencySides, vacuum_analyze)

DB_NAME = "toko_bench_deep"
TARGET = 1.2
DEPTH = 900_000
CATEGORIES = 50
# (label, sort, filters): the sort's own order over the live items the filters keep.
CASES = [
    ("sort=id", "id", {}),
    ("sort=price", "price", {}),
    ("sort=-price", "-price", {}),
    ("sort=name", "name", {}),
    ("in_stock, sort=-price", "-price", {"in_stock": True}),
    ("min_price, sort=price", "price", {"min_price": 20000}),
]
ORDER_SQL = {"id": "id", "price": "price, id", "-price": "price DESC, id DESC", "name": "name, id"}
KEY_SQL = {"id": "id", "price": "price, id", "-price": "price, id", "name": "name, id"}


def seeded(env: BenchEnv, items: int) -> bool:
    if not database_exists(env.db_name):
        return False
    from common.db.migrate import current_revision, head_revision
    from common.db.session import get_engine

    with get_engine().connect() as conn:
        if current_revision(conn) != head_revision():
            return False
    with admin_cursor(env.db_name) as cur:
        cur.execute("SELECT count(*) FROM items WHERE deleted_at IS NULL AND sku LIKE 'SKU-%%'")
        return cur.fetchone()[0] == items


def seed(env: BenchEnv, items: int, *, batch: int = 100_000, analyze: bool = True) -> None:
    """Categories and items in set-based batches; the items indexes are rebuilt once at the end."""
    started = time.perf_counter()
    with admin_cursor(env.db_name) as cur:
        cur.execute("SET maintenance_work_mem = '256MB'")
        cur.execute("""SELECT indexname, indexdef FROM pg_indexes
                       WHERE schemaname = 'public' AND tablename = 'items' AND indexname <> 'pk_items'""")
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute("INSERT INTO categories (name) SELECT 'Category ' || g FROM generate_series(1, %s) g",
                    (CATEGORIES,))
        cur.execute("SELECT min(id) FROM categories")
        first_category = cur.fetchone()[0]
        # Prices fall on 2,000 values (500 ties each), names are scrambled, one item in seven is sold out.
        with Progress("items", items) as bar:
            for lo in range(1, items + 1, batch):
                hi = min(items, lo + batch - 1)
                cur.execute("""
                    INSERT INTO items (sku, name, description, price, stock, category_id)
                    SELECT 'SKU-' || g,
                           'Item ' || lpad(((g::bigint * 104729) %% %(n)s)::text, 7, '0'),
                           '',
                           1000 + (g::bigint * 7919 %% 2000) * 50,
                           g %% 7,
                           %(first)s + g %% %(c)s
                    FROM generate_series(%(lo)s, %(hi)s) g""",
                            {"n": items, "c": CATEGORIES, "first": first_category, "lo": lo, "hi": hi})
                bar.advance(hi - lo + 1)
        loaded = time.perf_counter()
        with Progress("items indexes", len(indexes)) as bar:
            for _, definition in indexes:
                cur.execute(definition)
                bar.advance(1)
    if analyze:
        vacuum_analyze(env.db_name)
    print(f"seeded {items:,} items: load {loaded - started:.1f}s, indexes{' and analyze' if analyze else ''} "
          f"{time.perf_counter() - loaded:.1f}s")


def nth_key(env: BenchEnv, sort: str, filters: dict, n: int) -> list:
    """The sort key of the n-th (1-based) live item in that order, straight from SQL."""
    where, params = where_sql(filters)
    with admin_cursor(env.db_name) as cur:
        cur.execute(f"SELECT {KEY_SQL[sort]} FROM items WHERE {where} ORDER BY {ORDER_SQL[sort]} "
                    f"OFFSET %(skip)s LIMIT 2", {**params, "skip": n - 1})
        rows = cur.fetchall()
    return [list(rows[0]), rows[1][-1]]  # (key of item n, id of item n + 1)


def where_sql(filters: dict) -> tuple[str, dict]:
    clauses = ["deleted_at IS NULL"]
    if filters.get("in_stock") is not None:
        clauses.append("stock > 0" if filters["in_stock"] else "stock = 0")
    if filters.get("min_price") is not None:
        clauses.append("price >= %(min_price)s")
    return " AND ".join(clauses), filters


def depth_for(env: BenchEnv, filters: dict) -> int:
    """Item 900,000 of the catalogue, or as far into a filtered set (90% of it), whichever is smaller."""
    where, params = where_sql(filters)
    with admin_cursor(env.db_name) as cur:
        cur.execute(f"SELECT count(*) FROM items WHERE {where}", params)
        return min(DEPTH, cur.fetchone()[0] * 9 // 10)


@dataclass
class DeepCase(LatencySides):
    label: str
    depth: int
    first: list[float]  # seconds per request
    deep: list[float]
    errors: int

    @property
    def ratio(self) -> float:
        return self.p50("deep") / self.p50("first")


def latency_case(env: BenchEnv, base: str, label: str, sort: str, filters: dict, rounds: int,
                 limit: int) -> DeepCase:
    """Alternate the first page and the page after item `depth`, one sequential client; prints one line."""
    import requests

    from svc_item.service import cursor_after

    depth = depth_for(env, filters)
    key, next_id = nth_key(env, sort, filters, depth)
    params = {"sort": sort, "limit": limit, **{k: str(v).lower() if isinstance(v, bool) else v
                                              for k, v in filters.items()}}
    deep = dict(params, cursor=cursor_after(key, sort=sort, **filters))
    http = requests.Session()
    url = f"{base}/v2/items"
    first_page = http.get(url, params=params, timeout=30).json()
    deep_page = http.get(url, params=deep, timeout=30).json()
    assert len(first_page["data"]) == limit and len(deep_page["data"]) == limit, deep_page
    assert deep_page["data"][0]["id"] == next_id, (deep_page["data"][0], next_id)
    case = DeepCase(label, depth, [], [], 0)
    for n in range(rounds + 3):  # three warm-up rounds are not counted
        order = (("first", params), ("deep", deep)) if n % 2 == 0 else (("deep", deep), ("first", params))
        for name, query in order:
            t0 = time.perf_counter()
            try:
                ok = http.get(url, params=query, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - t0
            if not ok:
                case.errors += 1
            elif n >= 3:
                getattr(case, name).append(elapsed)
    print(f"{label:22} first page p50 {case.p50('first'):6.2f} ms p99 {case.p99('first'):6.2f} ms | "
          f"after item {depth:>7,} p50 {case.p50('deep'):6.2f} ms p99 {case.p99('deep'):6.2f} ms | "
          f"ratio {case.ratio:.2f} {'OK' if case.ratio <= TARGET else 'OVER'}"
          f"{f' | {case.errors} errors' if case.errors else ''}")
    return case


def latency_cases(env: BenchEnv, base: str, rounds: int, limit: int) -> list[DeepCase]:
    """Every case of CASES against the svc_item at `base`."""
    print(f"\nv2 /v2/items, limit={limit}, {rounds} alternating requests per page (one client, sequential):")
    return [latency_case(env, base, label, sort, filters, rounds, limit) for label, sort, filters in CASES]


@dataclass
class StatementCounts:
    sizes: list[int]
    counts: dict[str, list[int]]  # request path -> statements at each size

    @property
    def flat(self) -> bool:
        return all(len(set(c)) == 1 for c in self.counts.values())

    @property
    def most(self) -> int:
        return max(max(c) for c in self.counts.values())


def count_statements(sizes: list[int]) -> StatementCounts:
    """Statements per list request, in process on the service's own engine and app."""
    from sqlalchemy import event

    from common.db.session import get_engine
    from svc_item.app import create_app

    client = create_app().test_client()
    engine = get_engine("item")
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    category = client.get("/v1/categories?per_page=1").get_json()["data"][0]["id"]
    paths = {
        "/v2/items?sort=id": "limit", "/v2/items?sort=-price&in_stock=true": "limit",
        "/v2/items?sort=name&q=Item+00": "limit", f"/v2/categories/{category}/items?sort=price": "limit",
        "/v1/items": "per_page", f"/v1/items?category_id={category}": "per_page",
        "/v1/categories": "per_page",
    }
    result = StatementCounts(sizes, {})
    print("\nSQL statements per list request (pool pre-ping and psycopg2's BEGIN/ROLLBACK are not "
          "statements the service issues; public reads run in autocommit, so there are none):")
    print(f"{'request':48} " + " ".join(f"{'size ' + str(n):>9}" for n in sizes))
    try:
        for path, size_arg in paths.items():
            counts = []
            for n in sizes:
                seen.clear()
                response = client.get(f"{path}{'&' if '?' in path else '?'}{size_arg}={n}")
                assert response.status_code == 200, response.get_data(as_text=True)
                counts.append(len(seen))
            result.counts[path] = counts
            print(f"{path:48} " + " ".join(f"{c:>9}" for c in counts))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    print(f"statements per request independent of page size: {'OK' if result.flat else 'NO'}")
    return result


def explain_deep(env: BenchEnv, sort: str, limit: int) -> None:
    """EXPLAIN (ANALYZE) of the very statement the service runs for the page after item 900,000."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from common.db.session import get_engine
    from svc_item.service import browse_items, cursor_after

    key, _ = nth_key(env, sort, {}, DEPTH)
    engine = get_engine("item")
    captured: list = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            browse_items(session, limit=limit, sort=sort, cursor=cursor_after(key, sort=sort))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    with engine.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) " + statement, parameters)
        plan = [row[0] for row in cur.fetchall()]
    print(f"\nEXPLAIN ANALYZE, sort={sort}, page after item {DEPTH:,}:")
    print("\n".join("  " + line for line in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=60, help="timed requests per page and case")
    parser.add_argument("--limit", type=int, default=20, help="page size for the latency comparison")
    parser.add_argument("--reuse", action="store_true", help=f"reuse {DB_NAME} when already seeded")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()
    if args.items <= DEPTH:
        raise SystemExit(f"--items must exceed {DEPTH:,}")

    env = bench_environment(DB_NAME)
    if args.reuse and seeded(env, args.items):
        print(f"reusing {env.db_name} ({args.items:,} items)")
    else:
        fresh_database(env.db_name)
        seed(env, args.items)
    try:
        with gunicorn_service("item", env.database_url) as base:
            cases = latency_cases(env, base, args.rounds, args.limit)
        statements = count_statements([1, 10, 50, 100])
        for sort in ("price", "name"):
            explain_deep(env, sort, args.limit)
    finally:
        if not args.keep:
            drop_database(env.db_name)
    worst = max(case.ratio for case in cases)
    print(f"\nworst deep / first ratio {worst:.2f} (target <= {TARGET}): "
          f"{'OK' if worst <= TARGET else 'OVER'}; "
          f"statements flat in page size: {'OK' if statements.flat else 'NO'}")


if __name__ == "__main__":
    main()
