"""What the edge costs: item reads and purchases through nginx vs gunicorn alone, in one run.

    .venv/bin/python bench/edge_cost.py [--rounds 6] [--seconds 4] [--clients 8] [--items 20000] [--no-write]

It creates a database of its own (toko_bench_edge), seeds items and a buyer, and starts each service
twice under the repository's gunicorn.conf.py: once as deployed ("edge": toko's nginx, rendered by
toko/gateway.py, on the port, gunicorn on its unix socket) and once with gunicorn alone on the port
("direct", as every service ran before the edge). Rounds alternate between the two (order swapped each
round) with wrk when installed, else Python threads: GET /v1/items/{id} and a one-line authenticated
POST /v1/transactions. It prints req/s, p50/p99 and the ratio edge / direct, and writes the table into
docs/benchmarks.md between its own markers.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import item_read, transaction_purchase  # noqa: E402
from bench.common import (alternate, bench_environment, closed_loop, drop_database, fresh_database,  # noqa: E402
                          gunicorn_service, throughput_arguments, wrk, wrk_available)

DB_NAME = "toko_bench_edge"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/edge_cost.py: generated table begins -->", "<!-- bench/edge_cost.py: generated table ends -->"
EDGE, DIRECT = "edge", "direct"


def read_rounds(env, item_id: int, args, use_wrk: bool) -> dict:
    with gunicorn_service("item", env.database_url, edge=True) as edge, \
            gunicorn_service("item", env.database_url) as direct:
        urls = {EDGE: f"{edge}/v1/items/{item_id}", DIRECT: f"{direct}/v1/items/{item_id}"}

        def run(name: str, length: float):
            if use_wrk:
                return lambda: wrk(urls[name], connections=args.clients, seconds=length, label=name)
            return lambda: closed_loop(lambda http: http.get(urls[name], timeout=10), threads=args.clients,
                                       seconds=length, label=name)

        alternate({name: run(name, 1.0) for name in urls}, rounds=1)  # warm-up, not counted
        return alternate({name: run(name, args.seconds) for name in urls}, rounds=args.rounds)


def purchase_rounds(env, buyer, args, use_wrk: bool) -> dict:
    with gunicorn_service("transaction", env.database_url, edge=True) as edge, \
            gunicorn_service("transaction", env.database_url) as direct:
        bases = {EDGE: edge, DIRECT: direct}

        def run(name: str, length: float):
            return lambda: transaction_purchase.purchase_load(
                f"{bases[name]}/v1/transactions", buyer, clients=args.clients, seconds=length, label=name,
                use_wrk=use_wrk)

        alternate({name: run(name, 1.0) for name in bases}, rounds=1)
        return alternate({name: run(name, args.seconds) for name in bases}, rounds=args.rounds)


def table(results: dict[str, dict], args, use_wrk: bool, started: float, load_before: str) -> str:
    lines = [
        f"Run on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{(time.monotonic() - started) / 60:.1f} minutes; load average before {load_before}, "
        f"after {loadavg()}.",
        "",
        f"- command: `.venv/bin/python bench/edge_cost.py --rounds {args.rounds} --seconds {args.seconds:g} "
        f"--clients {args.clients} --items {args.items}`",
        f"- load: {'wrk' if use_wrk else 'Python threads'}, {args.clients} connections, "
        f"{args.rounds} alternating rounds x {args.seconds:g} s per side",
        "",
        "| route | edge req/s | direct req/s | edge / direct | per round | edge p50 / p99 ms | "
        "direct p50 / p99 ms | failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for route, sides in results.items():
        edge, direct = sides[EDGE], sides[DIRECT]
        # Rounds n of both sides ran back to back: their ratio shows how far the machine's drift moves it.
        per_round = [e.rps / d.rps for e, d in zip(edge.rounds, direct.rounds)]
        lines.append(
            f"| {route} | {edge.rps:.0f} | {direct.rps:.0f} | {edge.rps / direct.rps:.2f} | "
            f"{min(per_round):.2f}–{max(per_round):.2f} | "
            f"{edge.percentile(50):.1f} / {edge.percentile(99):.1f} | "
            f"{direct.percentile(50):.1f} / {direct.percentile(99):.1f} | {edge.failures + direct.failures} |")
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def write_doc(generated: str) -> None:
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}"
    text = DOC.read_text()
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        DOC.write_text(before + block + rest.split(END, 1)[1])
    else:
        DOC.write_text(text.rstrip() + "\n\n" + block + "\n")


def main() -> None:
    parser = throughput_arguments(__doc__.splitlines()[0], "the services")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args()
    started, load_before = time.monotonic(), loadavg()
    env = bench_environment(DB_NAME)
    fresh_database(env.db_name)
    use_wrk = wrk_available() and not args.python_load
    try:
        item_id = item_read.seed(env, args.items)
        buyer = transaction_purchase.seed(env, args.clients)
        results = {"item read `GET /v1/items/{id}`": read_rounds(env, item_id, args, use_wrk),
                   "purchase `POST /v1/transactions`": purchase_rounds(env, buyer, args, use_wrk)}
    finally:
        if not args.keep:
            drop_database(env.db_name)
    generated = table(results, args, use_wrk, started, load_before)
    print("\n" + generated)
    if not args.no_write:
        write_doc(generated)
        print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
