"""GET /v1/items/{id} on the real svc_item vs a bare Flask + psycopg2 floor, same gunicorn settings.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/item_read.py [--rounds 6] [--seconds 4] [--clients 8] [--keep]

It creates a database of its own (toko_bench_item), migrates it and seeds 100,000 items, then starts
svc_item and bench/floor_app.py, each under gunicorn with the repository's gunicorn.conf.py (same
workers, threads, keepalive; only the WSGI app differs; both connect as svc_item's role) and checks
that both answer the same JSON for the same row. Then it alternates rounds of closed-loop load (wrk
when installed, else Python threads with one requests.Session each) on one and then the other, and
prints req/s, p50/p99 and the ratio service / floor (target >= 0.9). bench/run_all.py runs the same
comparison on its 1,000,000-item catalogue.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BenchEnv, LoadResult, access_log_discarded, alternate, bench_environment,  # noqa: E402
                          closed_loop, cpu_per_request, drop_database, fresh_database, gunicorn_service,
                          print_comparison, throughput_arguments, vacuum_analyze, wrk, wrk_available)

DB_NAME = "toko_bench_item"
TARGET = 0.9
SERVICE, FLOOR = "svc_item", "floor"


@dataclass
class ReadComparison:
    results: dict[str, LoadResult]  # by SERVICE and FLOOR
    rss: dict[str, list[float]]  # MB per gunicorn worker after the rounds, by side
    tool: str

    @property
    def ratio(self) -> float:
        return self.results[SERVICE].rps / self.results[FLOOR].rps


def seed(env: BenchEnv, items: int) -> int:
    """Items in one set-based statement; returns the id the bench reads (one from the middle)."""
    import psycopg2

    conn = psycopg2.connect(env.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO categories (name) VALUES ('bench') RETURNING id")
        category = cur.fetchone()[0]
        cur.execute("""
            INSERT INTO items (sku, name, description, price, stock, category_id)
            SELECT 'SKU-' || g, 'Item ' || g, 'A bench item', 1000 + (g * 7919 %% 500) * 100, g %% 50, %s
            FROM generate_series(1, %s) g""", (category, items))
    conn.close()
    vacuum_analyze(env.db_name)
    return middle_item(env)


def middle_item(env: BenchEnv) -> int:
    """The id of the live item halfway through the catalogue."""
    import psycopg2

    conn = psycopg2.connect(env.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM items WHERE deleted_at IS NULL")
        cur.execute("SELECT id FROM items WHERE deleted_at IS NULL ORDER BY id OFFSET %s LIMIT 1",
                    (cur.fetchone()[0] // 2,))
        item_id = cur.fetchone()[0]
    conn.close()
    return item_id


def compare(env: BenchEnv, item_id: int, *, rounds: int, seconds: float, clients: int,
            use_wrk: bool, service_log_level: str = "INFO") -> ReadComparison:
    """Start svc_item and the floor, check they agree on the row, then alternate closed-loop rounds."""
    import requests

    with gunicorn_service("item", env.database_url, TOKO_LOG_LEVEL=service_log_level) as svc, \
            gunicorn_service("item", env.database_url, app="bench.floor_app:app") as floor:
        urls = {SERVICE: f"{svc}/v1/items/{item_id}", FLOOR: f"{floor}/v1/items/{item_id}"}
        bodies = {name: requests.get(url, timeout=5).json() for name, url in urls.items()}
        assert bodies[SERVICE] == bodies[FLOOR], bodies
        print(f"both answer the same row: {bodies[FLOOR]}")

        def run(name: str, length: float):
            if use_wrk:
                return lambda: wrk(urls[name], connections=clients, seconds=length, label=name)
            return lambda: closed_loop(lambda http: http.get(urls[name], timeout=10),
                                       threads=clients, seconds=length, label=name)

        alternate({name: run(name, 1.0) for name in urls}, rounds=1)  # warm-up, not counted
        results = alternate({name: run(name, seconds) for name in urls}, rounds=rounds)
        rss = {SERVICE: svc.worker_rss(), FLOOR: floor.worker_rss()}
    return ReadComparison(results, rss, "wrk" if use_wrk else "python")


def cpu_in_process(item_id: int, n: int = 2000, log_level: str = "INFO") -> dict[str, float]:
    """Python CPU per request of each side (microseconds), in process through Flask's test client.

    No HTTP server, no network, no other load's scheduling: what each side costs the machine per read.
    """
    from bench import floor_app
    from svc_item.app import create_app

    service, floor = create_app().test_client(), floor_app.app.test_client()
    url = f"/v1/items/{item_id}"

    def read(client):
        assert client.get(url).status_code == 200

    with access_log_discarded(log_level):
        return {SERVICE: cpu_per_request(lambda: read(service), n), FLOOR: cpu_per_request(lambda: read(floor), n)}


def main() -> None:
    parser = throughput_arguments(__doc__.splitlines()[0], SERVICE)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()

    env = bench_environment(DB_NAME)
    from common.settings import get_settings

    fresh_database(env.db_name)
    item_id = seed(env, args.items)
    settings = get_settings()
    use_wrk = wrk_available() and not args.python_load
    print(f"gunicorn.conf.py: {settings.workers} workers x {settings.threads} threads (gthread); "
          f"{args.clients} closed-loop clients via "
          f"{'wrk' if use_wrk else 'Python threads + requests.Session'}; "
          f"{args.rounds} rounds x {args.seconds:.0f}s per target; item {item_id} of {args.items:,}")
    try:
        outcome = compare(env, item_id, rounds=args.rounds, seconds=args.seconds, clients=args.clients,
                          use_wrk=use_wrk, service_log_level=args.service_log_level)
        cpu = cpu_in_process(item_id, log_level=args.service_log_level)
    finally:
        if not args.keep:
            drop_database(env.db_name)
    print_comparison(outcome.results, SERVICE, FLOOR, TARGET,
                     extra="RSS per worker " + ", ".join(f"{side} {', '.join(f'{mb:.0f}' for mb in sizes)} MB"
                                                         for side, sizes in outcome.rss.items()))
    print(f"Python CPU per read in process: {SERVICE} {cpu[SERVICE]:.0f} us, {FLOOR} {cpu[FLOOR]:.0f} us "
          f"(floor / service {cpu[FLOOR] / cpu[SERVICE]:.2f})")


if __name__ == "__main__":
    main()
