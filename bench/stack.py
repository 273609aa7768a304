"""The stack as `make run` starts it (supervisord, every service and worker, the edge) against the floors.

    make bench-stack      (= .venv/bin/python bench/stack.py)
    .venv/bin/python bench/stack.py [--rounds 4] [--seconds 4] [--clients 16] [--no-write]

It seeds a database of its own (toko_bench_stack: 100,000 items, a buyer with one item per client), starts
the repository's supervisord.conf unchanged in a scratch directory on free ports (every program: the five
services, the workers and the nginx edge; TOKO_LOG_LEVEL=INFO, each service as its own role) and the bare
Flask + psycopg2 floors of `make bench` under gunicorn.conf.py, then alternates rounds of wrk (or Python
threads) on each side, for an item read and an authenticated one-line purchase, through each service's
own port as a client reaches it. While each round runs it reads the CPU time every process spent from
/proc: the service's gunicorn workers, supervisord (which copies every log line from the programs'
pipes to their log files), nginx and the PostgreSQL backends, so the table says where a request's CPU
goes on each side. It prints the table and writes it to docs/benchmarks.md between its own markers.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (BENCH_SECRET, BenchEnv, LoadResult, admin_cursor, bench_environment,  # noqa: E402
                          closed_loop, drop_database, fresh_database, gunicorn_service, merge,
                          wrk, wrk_available)

DB_NAME = "toko_bench_stack"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/stack.py: generated table begins -->", "<!-- bench/stack.py: generated table ends -->"
TICK = os.sysconf("SC_CLK_TCK")
SUBJECT, FLOOR = "stack", "floor"


# -- CPU accounting --------------------------------------------------------------------------------

def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU of one process so far (0 once it is gone), with its reaped children's if asked."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = int(fields[11]) + int(fields[12])
    return (own + (int(fields[13]) + int(fields[14]) if reaped_children else 0)) / TICK


def workers_cpu(master: int) -> float:
    """CPU of a gunicorn master's workers so far, those it already replaced included (max_requests
    recycles a worker mid-round; the master reaps it, and its CPU moves into the master's account)."""
    return cpu_seconds(master, reaped_children=True) - cpu_seconds(master) + sum(
        cpu_seconds(pid) for pid in process_tree(master) if pid != master)


def process_tree(root: int) -> dict[int, str]:
    """pid -> command name of `root` and all its descendants."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    names = {}
    for line in out.splitlines():
        pid, ppid, comm = line.split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), comm.strip()))
        names[int(pid)] = comm.strip()
    tree, todo = {root: names.get(root, "?")}, [root]
    while todo:
        for pid, comm in children.get(todo.pop(), []):
            tree[pid] = comm
            todo.append(pid)
    return tree


def backends(db_name: str, application: str | None) -> list[int]:
    """PostgreSQL backend pids on the bench database: a service's (by application_name) or the floors'."""
    with admin_cursor() as cur:
        if application:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                        (db_name, application))
        else:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = ''",
                        (db_name,))
        return [row[0] for row in cur.fetchall()]


@dataclass
class Groups:
    """Named groups of pids whose CPU a round measures."""

    pids: dict[str, list[int]] = field(default_factory=dict)
    masters: dict[str, int] = field(default_factory=dict)  # groups counted as a gunicorn master's workers

    def sample(self) -> dict[str, float]:
        sample = {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}
        sample.update({name: workers_cpu(master) for name, master in self.masters.items()})
        return sample


@contextmanager
def measured(groups_of):
    """Yields a dict filled, after the block, with CPU seconds per group spent during it."""
    groups = groups_of()
    before = groups.sample()
    spent: dict[str, float] = {}
    yield spent
    after = groups.sample()
    spent.update({name: after[name] - before.get(name, 0.0) for name in after})


# -- the run ---------------------------------------------------------------------------------------

@dataclass
class Side:
    results: list[LoadResult] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)

    def cpu_us_per_request(self) -> dict[str, float]:
        requests = sum(r.rps * r.seconds for r in self.results)
        names = {n for c in self.cpu for n in c}
        return {n: sum(c.get(n, 0.0) for c in self.cpu) / requests * 1e6 for n in sorted(names)}


def load(url: str, *, clients: int, seconds: float, label: str, use_wrk: bool, post=None) -> LoadResult:
    if post is not None:
        from bench.transaction_purchase import purchase_load

        return purchase_load(url, post, clients=clients, seconds=seconds, label=label, use_wrk=use_wrk)
    if use_wrk:
        return wrk(url, connections=clients, seconds=seconds, label=label)
    return closed_loop(lambda http: http.get(url, timeout=10), threads=clients, seconds=seconds, label=label)


def compare(name: str, urls: dict[str, str], groups: dict[str, callable], *, rounds: int, seconds: float,
            clients: int, use_wrk: bool, post=None) -> dict[str, Side]:
    sides = {side: Side() for side in urls}
    for side in urls:  # warm-up, not counted
        load(urls[side], clients=clients, seconds=1, label=side, use_wrk=use_wrk, post=post)
    for n in range(rounds):
        for side in (list(urls) if n % 2 == 0 else list(urls)[::-1]):
            with measured(groups[side]) as spent:
                result = load(urls[side], clients=clients, seconds=seconds, label=side, use_wrk=use_wrk, post=post)
            sides[side].results.append(result)
            sides[side].cpu.append(spent)
            print(f"  {name} round {n + 1}/{rounds} {result.summary()}", flush=True)
    return sides


ADMIN, ADMIN_PASSWORD = "bench-admin", "bench-admin-password-1"


def run_load(stack, seconds: float, users: int) -> dict:
    """`make load` (bench/locustfile.py, headless) against the stack's ports; its rows and verdict."""
    import csv

    from common.db.session import session_scope
    from svc_user.service import create_user

    with session_scope() as session:  # hashed with the deployed argon2 parameters
        create_user(session, username=ADMIN, email="bench-admin@example.test", password=ADMIN_PASSWORD, role="admin")
    prefix = Path(tempfile.mkdtemp(prefix="toko-bench-load-")) / "load"
    env = {**stack.env, "TOKO_ENV": "development", "TOKO_LOAD_ADMIN": ADMIN, "TOKO_LOAD_ADMIN_PASSWORD": ADMIN_PASSWORD}
    out = subprocess.run([str(ROOT / ".venv/bin/locust"), "-f", str(ROOT / "bench/locustfile.py"), "--headless",
                          "--only-summary", "--users", str(users + 1), "--spawn-rate", str(users + 1),
                          "--run-time", f"{seconds:g}s", "--stop-timeout", "10", "--csv", str(prefix)],
                         env=env, capture_output=True, text=True, timeout=seconds + 300, cwd=ROOT)
    rows, total = {}, None
    with open(f"{prefix}_stats.csv", newline="") as stats:
        for row in csv.DictReader(stats):
            entry = (int(row["Request Count"]), float(row["50%"]), float(row["99%"]), int(row["Failure Count"]))
            if row["Name"] == "Aggregated":
                total = entry
            else:
                rows[row["Name"]] = entry
    print("\n".join(f"{name:<18}{c:>7}{p50:>9.0f}{p99:>9.0f}{f:>6}" for name, (c, p50, p99, f) in rows.items()))
    summary = (f"{total[0]:,} requests in {seconds:g}s, {total[3]} failed" if total else "no requests")
    return {"rows": {k: v[:3] for k, v in rows.items()}, "ok": out.returncode == 0, "summary": summary}


def argon2_cost(n: int = 15) -> tuple[str, float]:
    """The deployed argon2 parameters and the median CPU milliseconds of one hash."""
    from svc_user.passwords import PROFILES, hasher

    params = PROFILES["owasp"]
    h = hasher("owasp")
    times = []
    for _ in range(n):
        t0 = time.process_time()
        h.hash("bench-password-1")
        times.append((time.process_time() - t0) * 1000)
    label = f"m={params['memory_cost'] // 1024} MiB, t={params['time_cost']}, p={params['parallelism']}"
    return label, sorted(times)[n // 2]


@contextmanager
def closing(stack):
    """The stack started, and stopped afterwards even when it failed to come up (supervisord keeps running)."""
    try:
        yield stack.start()
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--load-seconds", type=float, default=30,
                        help="then make load's mix (bench/locustfile.py) against the stack this long; 0 skips it")
    parser.add_argument("--load-users", type=int, default=8)
    parser.add_argument("--python-load", action="store_true", help="Python threads even if wrk is installed")
    parser.add_argument("--no-write", action="store_true", help="print the table only, leave docs/ alone")
    args = parser.parse_args()

    began = time.perf_counter()
    load_before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    env: BenchEnv = bench_environment(DB_NAME)
    from bench import item_read, transaction_purchase
    from common.settings import get_settings
    from toko.stack import make_stack

    use_wrk = wrk_available() and not args.python_load
    fresh_database(env.db_name)
    item_id = item_read.seed(env, args.items)
    buyer = transaction_purchase.seed(env, args.clients)
    settings = get_settings()
    home = Path(tempfile.mkdtemp(prefix="toko-bench-stack-"))
    stack = make_stack(home, env.database_url, TOKO_ENV="development", TOKO_ARGON2_PROFILE="owasp",
                       TOKO_SECRET_KEY=BENCH_SECRET, TOKO_LOG_LEVEL="INFO",
                       TOKO_WORKERS=str(settings.workers), TOKO_THREADS=str(settings.threads))
    tables, mix = {}, None
    try:
        with closing(stack) as stack, gunicorn_service("item", env.database_url, app="bench.floor_app:app") as read_floor, \
                gunicorn_service("transaction", env.database_url, app="bench.transaction_floor:app") as buy_floor:
            supervisord = stack.process.pid

            def stack_groups(service: str):
                def groups() -> Groups:
                    tree = process_tree(supervisord)
                    master = int(stack.ctl("pid", f"svc_{service}").stdout.strip() or 0)
                    return Groups({"supervisord": [supervisord],
                                   "nginx": [p for p, comm in tree.items() if comm.startswith("nginx")],
                                   "PostgreSQL backends": backends(env.db_name, f"toko-{service}")},
                                  {"service workers (Python)": master})
                return groups

            def floor_groups(floor):
                def groups() -> Groups:
                    return Groups({"PostgreSQL backends": backends(env.db_name, None)},
                                  {"service workers (Python)": floor.pid})
                return groups

            common = dict(rounds=args.rounds, seconds=args.seconds, clients=args.clients, use_wrk=use_wrk)
            print(f"\n== item read through the edge (:{stack.ports['item']}) vs the floor, {args.clients} clients ==")
            tables["item read, GET /v1/items/{id}"] = compare(
                "read", {SUBJECT: stack.url("item", f"/v1/items/{item_id}"), FLOOR: f"{read_floor}/v1/items/{item_id}"},
                {SUBJECT: stack_groups("item"), FLOOR: floor_groups(read_floor)}, **common)
            print(f"\n== purchase through the edge (:{stack.ports['transaction']}) vs the floor ==")
            tables["purchase, POST /v1/transactions (1 line, bearer)"] = compare(
                "purchase", {SUBJECT: stack.url("transaction", "/v1/transactions"),
                             FLOOR: f"{buy_floor}/v1/transactions"},
                {SUBJECT: stack_groups("transaction"), FLOOR: floor_groups(buy_floor)}, post=buyer, **common)
            access_lines = sum(1 for line in stack.log("svc_item").splitlines() if '"toko.access"' in line)
            if args.load_seconds:
                print(f"\n== make load's mix against the stack: {args.load_users} customers and an admin, "
                      f"{args.load_seconds:g}s ==")
                try:
                    mix = run_load(stack, args.load_seconds, args.load_users)
                except (OSError, subprocess.SubprocessError, KeyError, ValueError) as error:
                    mix = {"rows": {}, "ok": False, "summary": f"the load run failed: {error!r}"[:300]}
    finally:
        drop_database(env.db_name)

    minutes = (time.perf_counter() - began) / 60
    rows, cpu_rows = [], []
    for name, sides in tables.items():
        s, f = merge(SUBJECT, sides[SUBJECT].results), merge(FLOOR, sides[FLOOR].results)
        per_round = [a.rps / b.rps for a, b in zip(sides[SUBJECT].results, sides[FLOOR].results)]
        rows.append([name, f"{s.rps:,.0f} req/s", f"{f.rps:,.0f} req/s",
                     f"{s.rps / f.rps:.2f} (rounds {min(per_round):.2f}-{max(per_round):.2f})",
                     f"{s.percentile(50):.2f} / {f.percentile(50):.2f}", str(s.failures + f.failures)])
        cs, cf = sides[SUBJECT].cpu_us_per_request(), sides[FLOOR].cpu_us_per_request()
        for group in cs:
            cpu_rows.append([name.split(",")[0], group, f"{cs[group]:.0f}",
                             f"{cf[group]:.0f}" if group in cf else "-"])
    header = ["request (through each service's own port)", "stack", "floor", "ratio", "p50 ms (stack / floor)",
              "errors"]
    cpu_header = ["request", "process", "stack CPU us/request", "floor CPU us/request"]
    from bench.run_all import markdown_table, text_table, wrk_version

    print("\n" + text_table(header, rows) + "\n\n" + text_table(cpu_header, cpu_rows))
    argon2_label, argon2_ms = argon2_cost()
    load_lines = []
    if mix:
        login = mix["rows"].get("login")
        load_lines = [
            "",
            f"`make load`'s mix (bench/locustfile.py: customers register, log in, browse, buy; an admin reads reports), "
            f"{args.load_users} users, {args.load_seconds:g}s against this stack: {mix['summary']}; "
            f"{'no errors' if mix['ok'] else '**errors**'}.",
            "",
            markdown_table(["request", "count", "p50 ms", "p99 ms"],
                           [[name, str(c), f"{p50:.1f}", f"{p99:.1f}"] for name, (c, p50, p99) in mix["rows"].items()]),
            "",
            f"Login p50 {login[1]:.0f} ms (target <= 150) with argon2id {argon2_label}, "
            f"{argon2_ms:.1f} ms of CPU per hash here." if login else "No login was timed.",
        ]
        print("\n".join(load_lines))
    print(f"{minutes:.1f} min; load average before {load_before}, after "
          f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}; svc_item wrote {access_lines:,} access lines")
    if not args.no_write:
        tool = (f"wrk {wrk_version()}, {args.clients} connections" if use_wrk
                else f"Python threads, {args.clients} clients")
        generated = "\n".join([
            f"Run on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {minutes:.1f} minutes.",
            "",
            f"- command: `{shlex.join(['.venv/bin/python', 'bench/stack.py', *sys.argv[1:]])}`"
            f"{' (`make bench-stack`)' if os.environ.get('MAKELEVEL') and not sys.argv[1:] else ''}",
            f"- the repository's supervisord.conf unchanged (every service and worker, the edge), "
            f"{settings.workers} workers x {settings.threads} threads, TOKO_LOG_LEVEL=INFO, each service as its "
            "own role; the floors of `make bench` under gunicorn.conf.py on their own TCP ports",
            f"- load: {tool}; {args.rounds} x {args.seconds:g}s per side, alternating; {args.items:,} items",
            f"- load average before {load_before}, after {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
            "",
            markdown_table(header, rows),
            "",
            "CPU per request of each process group while its rounds ran (from /proc; the load generator "
            "not counted):",
            "",
            markdown_table(cpu_header, cpu_rows),
            *load_lines,
        ])
        text = DOC.read_text()
        block = f"{BEGIN}\n{generated}\n{END}"
        if BEGIN in text and END in text:
            before, rest = text.split(BEGIN, 1)
            text = before + block + rest.split(END, 1)[1]
        else:
            text = text.rstrip() + "\n\n## The stack as `make run` starts it\n\n" + block + "\n"
        DOC.write_text(text)
        print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
