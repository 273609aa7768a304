"""POST /v1/transactions on the real svc_transaction vs a bare Flask + psycopg2 floor, same gunicorn settings.

Run by hand (PostgreSQL up, .venv installed):

    .venv/bin/python bench/transaction_purchase.py [--rounds 6] [--seconds 4] [--clients 8] [--keep]

It creates a database of its own (toko_bench_transaction), migrates it and seeds one customer with a
live session and one item per client (stock that cannot run out, price below the OTP threshold), then
starts svc_transaction and bench/transaction_floor.py, each under gunicorn with the repository's
gunicorn.conf.py (same workers, threads, keepalive; only the WSGI app differs; both connect as
svc_transaction's role). Each closed-loop client (a wrk thread with one connection when wrk is
installed, else a Python thread) buys one unit of its own item per request with the same bearer token,
so both sides pay for the session lookup and neither waits on another client's row lock. Rounds
alternate between the two, swapping the order every round; it prints req/s, p50/p99 and the ratio
service / floor (target >= 0.7), and checks that every unit the 201s sold was taken from stock exactly
once. bench/run_all.py runs the same comparison on its 1,000,000-line database.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BenchEnv, LoadResult, access_log_discarded, alternate, bench_environment,  # noqa: E402
                          closed_loop, cpu_per_request, drop_database, fresh_database, gunicorn_service,
                          print_comparison, throughput_arguments, vacuum_analyze, wrk, wrk_available, wrk_post_script)

DB_NAME = "toko_bench_transaction"
TARGET = 0.7
STOCK = 1_000_000_000
BUYER = "bench"
SERVICE, FLOOR = "svc_transaction", "floor"


@dataclass(frozen=True)
class Buyer:
    user_id: int
    token: str
    item_ids: list[int]  # one per client, each with STOCK units


@dataclass
class PurchaseComparison:
    results: dict[str, LoadResult]
    rss: dict[str, list[float]]
    taken: int  # units taken from the buyer's items' stock
    recorded: int  # units on the transaction lines of the buyer's items
    tool: str

    @property
    def ratio(self) -> float:
        return self.results[SERVICE].rps / self.results[FLOOR].rps


def seed(env: BenchEnv, clients: int) -> Buyer:
    """A customer with a live session, and one item per client."""
    from common.db.models import Item
    from common.db.session import session_scope
    from svc_user.service import create_user, start_session

    with session_scope() as session:
        user = create_user(session, username=BUYER, email=f"{BUYER}@example.test", password="bench-password-1")
        token, _ = start_session(session, user)
        items = [Item(sku=f"BENCH-{n}", name=f"Bench item {n}", price=1000, stock=STOCK) for n in range(clients)]
        session.add_all(items)
        session.flush()
        buyer = Buyer(user.id, token, [item.id for item in items])
    vacuum_analyze(env.db_name)
    return buyer


def sold_units(env: BenchEnv, buyer: Buyer) -> tuple[int, int]:
    """(units taken from stock, units on transaction lines) for the buyer's items, both sides' sales."""
    import psycopg2

    conn = psycopg2.connect(env.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT sum(%s - stock) FROM items WHERE id = ANY(%s)", (STOCK, buyer.item_ids))
        taken = cur.fetchone()[0]
        cur.execute("SELECT coalesce(sum(quantity), 0) FROM transaction_lines WHERE item_id = ANY(%s)",
                    (buyer.item_ids,))
        lines = cur.fetchone()[0]
    conn.close()
    return int(taken), int(lines)


def purchase_load(url: str, buyer: Buyer, *, clients: int, seconds: float, label: str,
                  use_wrk: bool) -> LoadResult:
    """`clients` closed-loop buyers for `seconds`, each buying one unit of its own item per request."""
    headers = {"Authorization": f"Bearer {buyer.token}", "Content-Type": "application/json"}
    bodies = [json.dumps({"lines": [{"item_id": i, "quantity": 1}]}) for i in buyer.item_ids]
    if use_wrk:
        # One connection per wrk thread, each thread its own item.
        return wrk(url, connections=clients, threads=clients, seconds=seconds, label=label,
                   script=wrk_post_script(bodies, headers))
    import itertools
    import threading

    cycle, mine, lock = itertools.cycle(bodies), threading.local(), threading.Lock()

    def call(http):
        if not hasattr(mine, "body"):  # each client thread takes the next item at its first call
            with lock:
                mine.body = next(cycle)
        return http.post(url, data=mine.body, headers=headers, timeout=10)

    return closed_loop(call, threads=clients, seconds=seconds, label=label, check=lambda r: r.status_code == 201)


def compare(env: BenchEnv, buyer: Buyer, *, rounds: int, seconds: float, clients: int, use_wrk: bool,
            service_log_level: str = "INFO") -> PurchaseComparison:
    """Start svc_transaction and the floor, check both sell, then alternate closed-loop rounds."""
    import requests

    with gunicorn_service("transaction", env.database_url, TOKO_LOG_LEVEL=service_log_level) as svc, \
            gunicorn_service("transaction", env.database_url, app="bench.transaction_floor:app") as floor:
        bases = {SERVICE: svc, FLOOR: floor}
        body = {"lines": [{"item_id": buyer.item_ids[0], "quantity": 1}]}
        headers = {"Authorization": f"Bearer {buyer.token}"}
        answers = {name: requests.post(f"{base}/v1/transactions", json=body, headers=headers, timeout=10)
                   for name, base in bases.items()}
        for name, answer in answers.items():
            assert answer.status_code == 201, (name, answer.text)
        shape = {k: v for k, v in answers[SERVICE].json()["data"].items() if k in answers[FLOOR].json()["data"]}
        print(f"both buy: svc {shape}\n        floor {answers[FLOOR].json()['data']}")

        def run(name: str, length: float):
            return lambda: purchase_load(f"{bases[name]}/v1/transactions", buyer, clients=clients,
                                         seconds=length, label=name, use_wrk=use_wrk)

        alternate({name: run(name, 1.0) for name in bases}, rounds=1)  # warm-up, not counted
        results = alternate({name: run(name, seconds) for name in bases}, rounds=rounds)
        rss = {SERVICE: svc.worker_rss(), FLOOR: floor.worker_rss()}
    taken, recorded = sold_units(env, buyer)
    return PurchaseComparison(results, rss, taken, recorded, "wrk" if use_wrk else "python")


def cpu_in_process(buyer: Buyer, n: int = 1000, log_level: str = "INFO") -> dict[str, float]:
    """Python CPU per purchase of each side (microseconds), in process through Flask's test client."""
    from bench import transaction_floor
    from svc_transaction.app import create_app

    service, floor = create_app().test_client(), transaction_floor.app.test_client()
    body = {"lines": [{"item_id": buyer.item_ids[0], "quantity": 1}]}
    headers = {"Authorization": f"Bearer {buyer.token}"}

    def buy(client):
        assert client.post("/v1/transactions", json=body, headers=headers).status_code == 201

    with access_log_discarded(log_level):
        return {SERVICE: cpu_per_request(lambda: buy(service), n), FLOOR: cpu_per_request(lambda: buy(floor), n)}


def main() -> None:
    parser = throughput_arguments(__doc__.splitlines()[0], SERVICE)
    args = parser.parse_args()

    env = bench_environment(DB_NAME)
    from common.settings import get_settings

    fresh_database(env.db_name)
    buyer = seed(env, args.clients)
    settings = get_settings()
    use_wrk = wrk_available() and not args.python_load
    print(f"gunicorn.conf.py: {settings.workers} workers x {settings.threads} threads (gthread); "
          f"{args.clients} closed-loop clients ({'wrk, one connection per thread' if use_wrk else 'Python threads + requests.Session'}), "
          f"each buying 1 unit of its own item per request; {args.rounds} rounds x {args.seconds:.0f}s per target")
    try:
        outcome = compare(env, buyer, rounds=args.rounds, seconds=args.seconds, clients=args.clients,
                          use_wrk=use_wrk, service_log_level=args.service_log_level)
        cpu = cpu_in_process(buyer, log_level=args.service_log_level)
    finally:
        if not args.keep:
            drop_database(env.db_name)
    print_comparison(outcome.results, SERVICE, FLOOR, TARGET,
                     extra=f"units taken from stock {outcome.taken}, recorded {outcome.recorded}: "
                           f"{'exact' if outcome.taken == outcome.recorded else 'MISMATCH'}")
    print(f"Python CPU per purchase in process: {SERVICE} {cpu[SERVICE]:.0f} us, {FLOOR} {cpu[FLOOR]:.0f} us "
          f"(floor / service {cpu[FLOOR] / cpu[SERVICE]:.2f})")


if __name__ == "__main__":
    main()
