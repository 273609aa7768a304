"""Every benchmark against its floor on one 1,000,000-item, 1,000,000-line database; the table in docs/.

    make bench        (= .venv/bin/python bench/run_all.py)
    .venv/bin/python bench/run_all.py [--rounds 6] [--seconds 4] [--reuse] [--keep] [--no-write]

It seeds a database of its own (toko_bench: 1,000,000 items in 50 categories, 2,000 buyers and
250,000 transactions of 4 lines over 2021-2023, with a progress bar), then, with the services and the
bare Flask + psycopg2 floors each under the repository's gunicorn.conf.py and connecting as the
service's role, alternates:

- item read: GET /v1/items/{id} on svc_item vs bench/floor_app.py (throughput ratio, target >= 0.9);
- purchase: an authenticated one-line POST /v1/transactions vs bench/transaction_floor.py (>= 0.7);
- deep page: the v2 page after item 900,000 vs the first page, per sort and filter (<= 1.2x), and the
  SQL statements one list request issues at page sizes 1..100 (one, whatever the size);
- report: GET /v1/reports/sales vs the very statement as raw SQL, per window (<= 1.3x);

and the RSS of every gunicorn worker after its runs (target <= 80 MB). It prints the table and writes it
to docs/benchmarks.md between the generated-table markers (the text around them is kept).
The bench scripts it reuses still run alone (bench/item_read.py, ...).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import deep_page, item_read, report_sales, transaction_purchase  # noqa: E402
from bench.common import (BenchEnv, admin_cursor, bench_environment, database_exists,  # noqa: E402
                          drop_database, fresh_database, gunicorn_service, wrk_available)

DB_NAME = "toko_bench"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/run_all.py: generated table begins -->", "<!-- bench/run_all.py: generated table ends -->"
RSS_TARGET_MB = 80
STATEMENT_SIZES = [1, 10, 50, 100]


@dataclass(frozen=True)
class BenchData:
    item_id: int  # the item the read bench asks for
    buyer: transaction_purchase.Buyer
    admin_token: str


# -- the database ----------------------------------------------------------------------------------

def seeded(env: BenchEnv, items: int, lines: int, clients: int) -> bool:
    """True when toko_bench holds this very data set at the code's migration head."""
    if not deep_page.seeded(env, items):
        return False
    with admin_cursor(env.db_name) as cur:
        cur.execute("SELECT count(*) FROM transaction_lines l JOIN transactions t ON t.id = l.transaction_id "
                    "WHERE t.created_at < '2024-01-01'")
        seeded_lines = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM items WHERE sku LIKE 'BENCH-%%'")
        buyer_items = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM users WHERE username IN (%s, %s)",
                    (transaction_purchase.BUYER, report_sales.ADMIN))
        users = cur.fetchone()[0]
    return seeded_lines == lines // 4 * 4 and buyer_items == clients and users == 2


def seed(env: BenchEnv, items: int, lines: int, clients: int) -> BenchData:
    """Migrate a fresh toko_bench and fill it: catalogue, sales, a buyer with one item per client, an admin."""
    started = time.perf_counter()
    print(f"seeding {env.db_name}: {items:,} items, {lines:,} transaction lines")
    fresh_database(env.db_name)
    deep_page.seed(env, items, analyze=False)
    report_sales.seed_sales(env, lines, analyze=False)
    print("vacuum analyze ...", flush=True)
    buyer = transaction_purchase.seed(env, clients)  # ends with VACUUM ANALYZE of the whole database
    token = report_sales.admin_token()
    print(f"seeded in {time.perf_counter() - started:.0f}s")
    return BenchData(item_read.middle_item(env), buyer, token)


def reuse(env: BenchEnv) -> BenchData:
    """Fresh sessions for the seeded buyer and admin (tokens are stored hashed only)."""
    from sqlalchemy import select

    from common.db.models import Item, User
    from common.db.session import session_scope
    from svc_user.service import start_session

    with session_scope() as session:
        tokens = {}
        for name in (transaction_purchase.BUYER, report_sales.ADMIN):
            user = session.execute(select(User).where(User.username == name)).scalar_one()
            tokens[name] = (user.id, start_session(session, user)[0])
        item_ids = list(session.execute(select(Item.id).where(Item.sku.like("BENCH-%")).order_by(Item.id)).scalars())
    user_id, token = tokens[transaction_purchase.BUYER]
    return BenchData(item_read.middle_item(env), transaction_purchase.Buyer(user_id, token, item_ids),
                     tokens[report_sales.ADMIN][1])


# -- the table -------------------------------------------------------------------------------------

@dataclass
class Row:
    comparison: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool
    p50: str
    p99: str
    errors: int
    ratio_note: str = ""

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}{' ' + self.ratio_note if self.ratio_note else ''}"
        return [self.comparison, self.measured, self.baseline, ratio,
                self.target, "OK" if self.ok else "**short**", self.p50, self.p99, str(self.errors)]


HEADER = ["comparison", "toko", "floor / baseline", "ratio", "target", "verdict", "p50 ms (toko / base)",
          "p99 ms (toko / base)", "errors"]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    cpu: list[tuple[str, dict[str, float], str, str]] = field(default_factory=list)  # (request, us by side, subject, floor)
    rss: list[tuple[str, list[float]]] = field(default_factory=list)  # (process, MB per worker)
    notes: list[str] = field(default_factory=list)


def throughput_row(name: str, results: dict, subject: str, floor: str, target: float) -> Row:
    s, f = results[subject], results[floor]
    ratio = s.rps / f.rps
    per_round = [a.rps / b.rps for a, b in zip(s.rounds, f.rounds)]
    note = f"(rounds {min(per_round):.2f}-{max(per_round):.2f})" if per_round else ""
    return Row(name, f"{s.rps:,.0f} req/s", f"{f.rps:,.0f} req/s", ratio, f">= {target}", ratio >= target,
               f"{s.percentile(50):.2f} / {f.percentile(50):.2f}", f"{s.percentile(99):.2f} / {f.percentile(99):.2f}",
               s.failures + f.failures, note)


def latency_row(name: str, subject_ms: tuple[float, float], base_ms: tuple[float, float], target: float,
                errors: int) -> Row:
    ratio = subject_ms[0] / base_ms[0]
    return Row(name, f"{subject_ms[0]:.2f} ms", f"{base_ms[0]:.2f} ms", ratio, f"<= {target}x", ratio <= target,
               f"{subject_ms[0]:.2f} / {base_ms[0]:.2f}", f"{subject_ms[1]:.2f} / {base_ms[1]:.2f}", errors)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def rss_rows(report: Report) -> list[list[str]]:
    return [[process, ", ".join(f"{mb:.0f}" for mb in sizes), f"<= {RSS_TARGET_MB}",
             "OK" if sizes and max(sizes) <= RSS_TARGET_MB else "**over**"] for process, sizes in report.rss]


RSS_HEADER = ["gunicorn workers", "RSS per worker (MB)", "target", "verdict"]
CPU_HEADER = ["request, in process (Flask test client)", "toko CPU us/request", "floor CPU us/request",
              "floor / toko"]


def cpu_rows(report: Report) -> list[list[str]]:
    return [[name, f"{cpu[subject]:.0f}", f"{cpu[floor]:.0f}", f"{cpu[floor] / cpu[subject]:.2f}"]
            for name, cpu, subject, floor in report.cpu]


def write_doc(path: Path, generated: str) -> None:
    """Replace the generated part of the document, keeping what is written around it."""
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}"
    if path.exists() and BEGIN in (text := path.read_text()) and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + block + after)
    else:
        path.write_text("# Benchmarks\n\n" + block + "\n")


# -- the run ---------------------------------------------------------------------------------------

def loadavg() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per side (read, purchase)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round (read, purchase)")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients (read, purchase)")
    parser.add_argument("--deep-rounds", type=int, default=60, help="timed requests per page and deep-page case")
    parser.add_argument("--report-rounds", type=int, default=9, help="timed requests per side and report window")
    parser.add_argument("--service-log-level", default="INFO",
                        help="the services' TOKO_LOG_LEVEL (INFO, as deployed, logs one line per request)")
    parser.add_argument("--python-load", action="store_true", help="Python threads even if wrk is installed")
    parser.add_argument("--reuse", action="store_true", help=f"reuse {DB_NAME} when it holds this data set")
    parser.add_argument("--keep", action="store_true", help=f"keep {DB_NAME} afterwards (bench/coupling.py uses it)")
    parser.add_argument("--no-write", action="store_true", help="print the table only, leave docs/ alone")
    args = parser.parse_args()
    if args.items <= deep_page.DEPTH:
        raise SystemExit(f"--items must exceed {deep_page.DEPTH:,}")

    began, load_before = time.perf_counter(), loadavg()
    env = bench_environment(DB_NAME)
    from common.settings import get_settings

    settings = get_settings()
    use_wrk = wrk_available() and not args.python_load
    if not use_wrk and not args.python_load:
        print("wrk is not installed (apt-get install wrk): closed-loop load from Python threads instead")
    data = None
    if args.reuse and database_exists(env.db_name) and seeded(env, args.items, args.lines, args.clients):
        print(f"reusing {env.db_name}")
        data = reuse(env)
    report = Report()
    try:
        data = data or seed(env, args.items, args.lines, args.clients)
        load_seeded = loadavg()
        common_args = dict(rounds=args.rounds, seconds=args.seconds, clients=args.clients, use_wrk=use_wrk,
                           service_log_level=args.service_log_level)
        print(f"\n== item read: GET /v1/items/{data.item_id}, svc_item vs floor, {args.clients} clients, "
              f"{args.rounds} x {args.seconds:.0f}s each ==")
        read = item_read.compare(env, data.item_id, **common_args)
        report.rows.append(throughput_row("item read, GET /v1/items/{id}", read.results, item_read.SERVICE,
                                          item_read.FLOOR, item_read.TARGET))

        print("\n== purchase: one-line POST /v1/transactions, svc_transaction vs floor ==")
        buy = transaction_purchase.compare(env, data.buyer, **common_args)
        report.rows.append(throughput_row("purchase, POST /v1/transactions (1 line, bearer)", buy.results,
                                          transaction_purchase.SERVICE, transaction_purchase.FLOOR,
                                          transaction_purchase.TARGET))
        print("\n== Python CPU per request, in process ==")
        report.cpu.append(("GET /v1/items/{id}", item_read.cpu_in_process(data.item_id, log_level=args.service_log_level),
                           item_read.SERVICE, item_read.FLOOR))
        report.cpu.append(("POST /v1/transactions", transaction_purchase.cpu_in_process(
            data.buyer, log_level=args.service_log_level), transaction_purchase.SERVICE, transaction_purchase.FLOOR))
        print(text_table(CPU_HEADER, cpu_rows(report)))
        if buy.taken != buy.recorded:
            report.notes.append(f"purchase: {buy.taken} units taken from stock but {buy.recorded} recorded")

        print("\n== deep page: v2 page after item 900,000 vs the first page ==")
        with gunicorn_service("item", env.database_url, TOKO_LOG_LEVEL=args.service_log_level) as base:
            cases = deep_page.latency_cases(env, base, args.deep_rounds, 20)
            deep_rss = base.worker_rss()
        for case in cases:
            report.rows.append(latency_row(
                f"deep page {case.label} (after item {case.depth:,}) vs first", (case.p50("deep"), case.p99("deep")),
                (case.p50("first"), case.p99("first")), deep_page.TARGET, case.errors))
        statements = deep_page.count_statements(STATEMENT_SIZES)
        report.rows.append(Row(f"SQL statements per list request ({len(statements.counts)} list routes)",
                               f"{statements.most}", "", None, "1 at every size", statements.flat and statements.most == 1,
                               f"sizes {', '.join(map(str, STATEMENT_SIZES))}", "", 0))

        print("\n== report: GET /v1/reports/sales vs the same statement as raw SQL ==")
        sales = report_sales.run(env, data.admin_token, args.report_rounds, explain=False)
        for case in sales.cases:
            report.rows.append(latency_row(f"report {case.label} ({case.rows} rows) vs raw SQL",
                                           (case.p50("live"), case.p99("live")), (case.p50("raw"), case.p99("raw")),
                                           report_sales.TARGET, case.errors))
        report.rss = [("svc_item (after the item reads)", read.rss[item_read.SERVICE]),
                      ("svc_item (after the deep pages)", deep_rss),
                      ("svc_transaction (after the purchases)", buy.rss[transaction_purchase.SERVICE]),
                      ("svc_report (after the reports)", sales.rss),
                      ("floor, item read (for comparison)", read.rss[item_read.FLOOR]),
                      ("floor, purchase (for comparison)", buy.rss[transaction_purchase.FLOOR])]
    finally:
        if not args.keep:
            drop_database(env.db_name)

    minutes = (time.perf_counter() - began) / 60
    rows = [r.cells() for r in report.rows]
    print("\n" + text_table(HEADER, rows))
    print("\n" + text_table(RSS_HEADER, rss_rows(report)))
    print("\n" + text_table(CPU_HEADER, cpu_rows(report)))
    for note in report.notes:
        print("NOTE:", note)
    short = [r.comparison for r in report.rows if not r.ok]
    short += [p for p, sizes in report.rss if not sizes or max(sizes) > RSS_TARGET_MB]
    print(f"\n{len(report.rows) - len([r for r in report.rows if not r.ok])}/{len(report.rows)} comparisons "
          f"on target; short: {'; '.join(short) if short else 'none'}; {minutes:.1f} min; "
          f"load average {load_before} before, {loadavg()} after")

    if not args.no_write:
        command = shlex.join([".venv/bin/python", "bench/run_all.py", *sys.argv[1:]])
        via_make = " (`make bench`)" if os.environ.get("MAKELEVEL") and not sys.argv[1:] else ""
        tool = (f"wrk {wrk_version()} (Debian's `wrk` package: `apt-get install wrk`), {args.clients} connections"
                if use_wrk else f"Python threads with one requests.Session each, {args.clients} clients")
        generated = "\n".join([
            f"Run on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
            f"(os.cpu_count()), {minutes:.1f} minutes.",
            "",
            f"- command: `{command}`{via_make}",
            f"- load generator for the read and purchase rounds: {tool}; the deep pages and reports are one "
            "sequential Python client (latency, not throughput)",
            f"- gunicorn.conf.py as deployed: {settings.workers} workers x {settings.threads} threads (gthread), "
            f"TOKO_LOG_LEVEL={args.service_log_level}, each service and each floor connecting as the service's role",
            f"- rounds: {args.rounds} x {args.seconds:g}s per side for read and purchase (alternating, order swapped "
            f"every round, 1 s warm-up each), {args.deep_rounds} per page and deep-page case, "
            f"{args.report_rounds} per side and report window",
            f"- data: {args.items:,} items, {args.lines:,} transaction lines ({DB_NAME}, seeded by the run)",
            f"- load average (1/5/15 min) before the run {load_before}, after seeding {load_seeded}, "
            f"after the run {loadavg()}: the machine is shared, so absolute figures move with it; "
            "the ratios are taken between sides run alternately in the same minutes",
            "",
            markdown_table(HEADER, rows),
            "",
            markdown_table(RSS_HEADER, rss_rows(report)),
            "",
            "Python CPU per request, in process (no HTTP server, no network; the database's CPU not counted): "
            "on a machine whose cores are busy, a server's throughput follows this.",
            "",
            markdown_table(CPU_HEADER, cpu_rows(report)),
            "",
            f"Short of target: {'; '.join(short) if short else 'none'}.",
            *[f"Note: {n}" for n in report.notes],
        ])
        write_doc(DOC, generated)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


def wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


if __name__ == "__main__":
    sys.exit(main())
