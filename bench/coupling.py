"""The shared database's coupling, measured: purchase latency while heavy sales reports run, and contained.

    .venv/bin/python bench/coupling.py [--reports 4] [--clients 4] [--seconds 15] [--rounds 2]
                                       [--timeout-ms 250] [--pause 1.0]

On toko_bench (bench/run_all.py's database: 1,000,000 items, 1,000,000 transaction lines; seeded here
when missing or different, and kept), svc_transaction runs under gunicorn as deployed and `--clients`
closed-loop buyers (wrk when installed) buy one unit of their own item per request for `--seconds`,
in five phases:

  alone               nothing else runs
  http reports        `--reports` admins ask svc_report for the heaviest report its API allows (a year
                      of sales grouped by item), each waiting `--pause` s between answers
  http contained      the same against a second svc_report started with
                      TOKO_DB_STATEMENT_TIMEOUT_MS=`--timeout-ms`: heavy reports are cut off (503)
  http one at a time  the same against a third svc_report with one worker of one thread (a pool of
                      one connection): the reports queue and run one at a time
  sql reports         `--reports` sessions of the report's role (toko_report) run the same statement
                      over all three years directly, each waiting `--pause` s between them
  sql contained       the same after ALTER ROLE toko_report IN DATABASE toko_bench SET statement_timeout:
                      cut off by PostgreSQL (QueryCanceled); the setting is reset afterwards

Phases alternate over `--rounds` rounds (order reversed every round) and are merged. It prints purchase
req/s, p50 and p99 per phase, what happened to the reports, and whether the role's setting reaches a
connection opened the way toko's engine opens it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run_all, transaction_purchase  # noqa: E402
from bench.run_all import loadavg  # noqa: E402
from bench.common import (BenchEnv, LoadResult, admin_cursor, bench_environment, database_exists,  # noqa: E402
                          gunicorn_service, merge, wrk_available)

HTTP_WINDOW = ("2023-01-01", "2024-01-01")  # the longest the API allows (report_max_window_days)
SQL_WINDOW = ("2021-01-01", "2024-01-01")  # every sale of the data set: beyond what the API allows
PHASES = ["alone", "http reports", "http contained", "http one at a time", "sql reports", "sql contained"]
# Which svc_report each http phase asks.
REPORT_TARGET = {"http reports": "plain", "http contained": "contained", "http one at a time": "serial"}


@dataclass
class Reports:
    """What the report clients of one phase got."""

    durations: list[float] = field(default_factory=list)  # seconds, completed reports
    cut_off: list[float] = field(default_factory=list)  # seconds until a 503 / QueryCanceled
    other_errors: list[str] = field(default_factory=list)

    def add(self, other: "Reports") -> None:
        self.durations += other.durations
        self.cut_off += other.cut_off
        self.other_errors += other.other_errors

    def summary(self) -> str:
        if not (self.durations or self.cut_off or self.other_errors):
            return "-"
        done = (f"{len(self.durations)} completed, p50 {statistics.median(self.durations):.2f} s"
                if self.durations else "0 completed")
        cut = (f"{len(self.cut_off)} cut off after p50 {statistics.median(self.cut_off) * 1000:.0f} ms"
               if self.cut_off else "0 cut off")
        return f"{done}; {cut}; {len(self.other_errors)} other errors"


def http_report_client(url: str, token: str, stop: threading.Event, pause: float, out: Reports) -> None:
    import requests

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    params = {"from": HTTP_WINDOW[0], "to": HTTP_WINDOW[1], "group_by": "item"}
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            response = http.get(url, params=params, timeout=60)
            status, code = response.status_code, (response.json().get("error") or {}).get("code")
        except (requests.RequestException, ValueError) as exc:
            status, code = None, type(exc).__name__
        elapsed = time.perf_counter() - t0
        if status == 200:
            out.durations.append(elapsed)
        elif status == 503:
            out.cut_off.append(elapsed)
        else:
            out.other_errors.append(f"{status} {code}")
        stop.wait(pause)


def sql_report_client(env: BenchEnv, stop: threading.Event, pause: float, out: Reports) -> None:
    import psycopg2
    import psycopg2.errors

    from bench.report_sales import bind
    from svc_report.query import SalesQuery
    from svc_report.sales import sales_sql

    start, end = (datetime.fromisoformat(day).replace(tzinfo=timezone.utc) for day in SQL_WINDOW)
    sql, params = bind(sales_sql("item"), SalesQuery(start, end, "item", "UTC"))
    # A plain session of the report's role: whatever ALTER ROLE ... SET says applies to it.
    conn = psycopg2.connect(env.role_url("report"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    cur.execute(sql, params)
                    cur.fetchall()
                    out.durations.append(time.perf_counter() - t0)
                except psycopg2.errors.QueryCanceled:
                    out.cut_off.append(time.perf_counter() - t0)
                except psycopg2.Error as exc:
                    out.other_errors.append(type(exc).__name__)
                stop.wait(pause)
    finally:
        conn.close()


def set_report_timeout(env: BenchEnv, timeout_ms: int | None) -> None:
    """ALTER ROLE toko_report IN DATABASE <bench db>: roles are cluster-wide, this database only."""
    with admin_cursor(env.db_name) as cur:
        if timeout_ms is None:
            cur.execute(f'ALTER ROLE toko_report IN DATABASE "{env.db_name}" RESET statement_timeout')
        else:
            cur.execute(f'ALTER ROLE toko_report IN DATABASE "{env.db_name}" SET statement_timeout = %s',
                        (f"{timeout_ms}ms",))


def role_setting_reach(env: BenchEnv, timeout_ms: int) -> tuple[str, str]:
    """statement_timeout seen by (a plain toko_report session, one opened as toko's engine opens it)."""
    import psycopg2

    from common.db.session import make_engine

    set_report_timeout(env, timeout_ms)
    try:
        conn = psycopg2.connect(env.role_url("report"))
        with conn.cursor() as cur:
            cur.execute("SHOW statement_timeout")
            plain = cur.fetchone()[0]
        conn.close()
        engine = make_engine(env.role_url("report"), application_name="toko-bench-coupling")
        with engine.connect() as conn:
            from sqlalchemy import text

            engine_value = conn.execute(text("SHOW statement_timeout")).scalar_one()
        engine.dispose()
    finally:
        set_report_timeout(env, None)
    return plain, engine_value


def phase(name: str, *, env: BenchEnv, buyer, purchase_url: str, report_urls: dict, token: str, args,
          use_wrk: bool) -> tuple[LoadResult, Reports]:
    """Purchases for args.seconds while this phase's report clients run; waits for them to finish."""
    reports, stop, threads = Reports(), threading.Event(), []
    if name == "sql contained":
        set_report_timeout(env, args.timeout_ms)
    try:
        for _ in range(args.reports if name != "alone" else 0):
            if name.startswith("http"):
                url = report_urls[REPORT_TARGET[name]]
                target, call_args = http_report_client, (url, token, stop, args.pause, reports)
            else:
                target, call_args = sql_report_client, (env, stop, args.pause, reports)
            threads.append(threading.Thread(target=target, args=call_args, daemon=True))
        for t in threads:
            t.start()
        if threads:
            time.sleep(1.0)  # the reports are under way before the purchases are measured
        result = transaction_purchase.purchase_load(purchase_url, buyer, clients=args.clients, seconds=args.seconds,
                                                    label=name, use_wrk=use_wrk)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        if name == "sql contained":
            set_report_timeout(env, None)
    print(f"  {result.summary()}\n  {'':>10}  reports: {reports.summary()}", flush=True)
    return result, reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=4, help="concurrent heavy report clients")
    parser.add_argument("--clients", type=int, default=4, help="closed-loop buyers")
    parser.add_argument("--seconds", type=float, default=15.0, help="purchase load per phase and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the phases, order reversed each round")
    parser.add_argument("--timeout-ms", type=int, default=250, help="the containing statement_timeout")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds each report client waits between reports")
    parser.add_argument("--python-load", action="store_true", help="Python threads even if wrk is installed")
    args = parser.parse_args()

    load_before = loadavg()
    env = bench_environment(run_all.DB_NAME)
    from common.settings import get_settings

    items, lines, buyers = 1_000_000, 1_000_000, 8
    if database_exists(env.db_name) and run_all.seeded(env, items, lines, buyers):
        print(f"reusing {env.db_name}")
        data = run_all.reuse(env)
    else:
        data = run_all.seed(env, items, lines, buyers)
    set_report_timeout(env, None)  # whatever an interrupted run left behind
    use_wrk = wrk_available() and not args.python_load
    settings = get_settings()
    plain, via_engine = role_setting_reach(env, args.timeout_ms)
    print(f"ALTER ROLE toko_report IN DATABASE {env.db_name} SET statement_timeout = '{args.timeout_ms}ms' is seen "
          f"as {plain} by a plain toko_report session and as {via_engine} by a session opened like toko's engine "
          f"(its startup option -c statement_timeout={settings.db_statement_timeout_ms} outranks the role's setting)")
    print(f"{args.clients} buyers ({'wrk' if use_wrk else 'Python threads'}), {args.reports} report clients pausing "
          f"{args.pause:g} s, {args.rounds} rounds x {args.seconds:g} s per phase; gunicorn {settings.workers} workers "
          f"x {settings.threads} threads; containment {args.timeout_ms} ms")

    merged: dict[str, list[LoadResult]] = {name: [] for name in PHASES}
    reports: dict[str, Reports] = {name: Reports() for name in PHASES}
    with gunicorn_service("transaction", env.database_url) as txn, \
            gunicorn_service("report", env.database_url) as report, \
            gunicorn_service("report", env.database_url, TOKO_DB_STATEMENT_TIMEOUT_MS=str(args.timeout_ms)) as capped, \
            gunicorn_service("report", env.database_url, TOKO_WORKERS="1", TOKO_THREADS="1") as serial:
        purchase_url = f"{txn}/v1/transactions"
        report_urls = {"plain": f"{report}/v1/reports/sales", "contained": f"{capped}/v1/reports/sales",
                       "serial": f"{serial}/v1/reports/sales"}
        transaction_purchase.purchase_load(purchase_url, data.buyer, clients=args.clients, seconds=2, label="warm-up",
                                           use_wrk=use_wrk)
        for n in range(args.rounds):
            print(f"round {n + 1}/{args.rounds}")
            for name in (PHASES if n % 2 == 0 else PHASES[::-1]):
                result, got = phase(name, env=env, buyer=data.buyer, purchase_url=purchase_url,
                                    report_urls=report_urls, token=data.admin_token, args=args, use_wrk=use_wrk)
                merged[name].append(result)
                reports[name].add(got)
    taken, recorded = transaction_purchase.sold_units(env, data.buyer)

    alone = merge("alone", merged["alone"])
    print("\n| phase | purchases/s | purchase p50 ms | purchase p99 ms | p50 / p99 vs alone | purchase errors "
          "| reports |")
    print("|---|---|---|---|---|---|---|")
    for name in PHASES:
        r = merge(name, merged[name])
        print(f"| {name} | {r.rps:,.0f} | {r.percentile(50):.2f} | {r.percentile(99):.2f} | "
              f"{r.percentile(50) / alone.percentile(50):.2f}x / {r.percentile(99) / alone.percentile(99):.2f}x | "
              f"{r.failures} | {reports[name].summary()} |")
    print(f"\nload average (1/5/15 min) {load_before} before, {loadavg()} after; {os.cpu_count()} cores")
    print(f"\nunits taken from stock {taken}, recorded {recorded}: {'exact' if taken == recorded else 'MISMATCH'}")
    return 0 if taken == recorded else 1


if __name__ == "__main__":
    sys.exit(main())
