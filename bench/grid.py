"""gunicorn's workers x threads, measured: the item read and the purchase on each cell of a grid.

    .venv/bin/python bench/grid.py [--grid 1x4,1x8,2x2,2x4,2x8,3x4,4x2,4x4] [--seconds 4] [--clients 16]

It seeds a database of its own (toko_bench_grid: 10,000 items, a buyer with one item per client), then
for each cell starts svc_item and svc_transaction with TOKO_WORKERS and TOKO_THREADS set (everything
else from gunicorn.conf.py and the defaults; each pool holds one connection per thread) and runs one wrk
round of each route, in an order that alternates from cell to cell. It prints req/s and p50/p99 per
cell, and which cell served each route best. The services answer alone on their ports here, as in
`make bench`: the edge's own cost is measured by bench/edge_cost.py and bench/stack.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import item_read, transaction_purchase  # noqa: E402
from bench.common import (LoadResult, bench_environment, drop_database, fresh_database,  # noqa: E402
                          gunicorn_service, wrk, wrk_available)

DB_NAME = "toko_bench_grid"
DEFAULT_GRID = "1x4,1x8,2x2,2x4,2x8,3x4,4x2,4x4"


def measure(env, cell: tuple[int, int], item_id: int, buyer, *, seconds: float, clients: int,
            flip: bool) -> dict[str, LoadResult]:
    workers, threads = cell
    settings = {"TOKO_WORKERS": str(workers), "TOKO_THREADS": str(threads), "TOKO_DB_POOL_SIZE": str(threads)}
    with gunicorn_service("item", env.database_url, **settings) as items, \
            gunicorn_service("transaction", env.database_url, **settings) as sales:
        runs = {
            "read": lambda length: wrk(f"{items}/v1/items/{item_id}", connections=clients, seconds=length,
                                       label="read"),
            "purchase": lambda length: transaction_purchase.purchase_load(
                f"{sales}/v1/transactions", buyer, clients=clients, seconds=length, label="purchase",
                use_wrk=True),
        }
        for run in runs.values():
            run(1.0)  # warm-up: each worker's pool and imports, not counted
        order = list(runs)[::-1] if flip else list(runs)
        return {name: runs[name](seconds) for name in order}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=DEFAULT_GRID, help="cells as WORKERSxTHREADS, comma-separated")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("bench/grid.py needs wrk (Debian: apt-get install wrk)")
    cells = [tuple(int(n) for n in cell.split("x")) for cell in args.grid.split(",")]

    env = bench_environment(DB_NAME)
    fresh_database(env.db_name)
    item_id = item_read.seed(env, 10_000)
    buyer = transaction_purchase.seed(env, args.clients)
    results: dict[tuple[int, int], dict[str, LoadResult]] = {}
    try:
        for n, cell in enumerate(cells):
            results[cell] = measure(env, cell, item_id, buyer, seconds=args.seconds, clients=args.clients,
                                    flip=n % 2 == 1)
            row = results[cell]
            print(f"{cell[0]} workers x {cell[1]} threads: read {row['read'].rps:7.1f} req/s, "
                  f"purchase {row['purchase'].rps:7.1f} req/s", flush=True)
    finally:
        drop_database(env.db_name)

    print(f"\n{args.clients} wrk connections, {args.seconds:.0f} s per route and cell\n")
    print("| workers x threads | read req/s | read p50 / p99 ms | purchase req/s | purchase p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for (workers, threads), row in results.items():
        read, buy = row["read"], row["purchase"]
        print(f"| {workers} x {threads} | {read.rps:.0f} | {read.percentile(50):.1f} / {read.percentile(99):.1f} "
              f"| {buy.rps:.0f} | {buy.percentile(50):.1f} / {buy.percentile(99):.1f} |")
    for route in ("read", "purchase"):
        best = max(results, key=lambda cell: results[cell][route].rps)
        print(f"best for {route}: {best[0]} x {best[1]} ({results[best][route].rps:.0f} req/s)")
    failures = sum(r.failures for row in results.values() for r in row.values())
    if failures:
        sys.exit(f"{failures} requests failed")


if __name__ == "__main__":
    main()
