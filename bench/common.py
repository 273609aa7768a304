"""Plumbing shared by the bench scripts: a database of their own, gunicorn on a free port, closed-loop load.

A script in bench/ is run as `.venv/bin/python bench/x.py`, which puts bench/ first on sys.path, where
this module would hide toko's own `common` package: put the repository root first and import this
module as `bench.common`. Call `bench_environment(db_name)` before importing anything from toko, which
reads its settings once per process.

    ROOT = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(ROOT))
    from bench.common import bench_environment, ...
    env = bench_environment("toko_bench_x")
    url = fresh_database(env.db_name)     # dropped, created, migrated to head
    with gunicorn_service("item", url) as base:   # http://127.0.0.1:<port>, base.pid the master
        result = closed_loop(lambda http: http.get(base + "/v1/items/1"), threads=8, seconds=5)
        print(result.summary())

The services connect as their own roles (TOKO_DB_ROLES=on, as `make run` deploys them) unless the
environment says otherwise; the floors connect as the same role as the service they stand under.
"""
from __future__ import annotations

import atexit
import argparse
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("TOKO_BENCH_DATABASE_SERVER", "postgresql://postgres@127.0.0.1:5432")
# Every bench process and the services it starts sign with this key, so a bench can mint a cursor.
BENCH_SECRET = "bench-secret-not-for-production-0123456789"


@dataclass(frozen=True)
class BenchEnv:
    db_name: str
    database_url: str

    def role_url(self, service: str) -> str:
        """The URL `service` connects with: its own role when TOKO_DB_ROLES is on."""
        from common.settings import get_settings

        return get_settings().database_url_for(service)


def bench_environment(db_name: str, **extra: str) -> BenchEnv:
    """Point this process's toko settings at the bench database (call before importing toko)."""
    url = f"{SERVER}/{db_name}"
    for var in [v for v in os.environ if v.startswith("TOKO_") and v.endswith("_DATABASE_URL")]:
        os.environ.pop(var)
    os.environ.setdefault("TOKO_DB_ROLES", "on")
    # In-process measurements record metrics the way gunicorn workers do (multiprocess files).
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="toko-bench-metrics-")
        atexit.register(shutil.rmtree, metrics_dir, True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ.update({"DATABASE_URL": url, "TOKO_ENV": "development", "TOKO_LOG_LEVEL": "WARNING",
                       "TOKO_SECRET_KEY": BENCH_SECRET, **extra})
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return BenchEnv(db_name, url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def admin_cursor(dbname: str = "postgres"):
    """An autocommit psycopg2 cursor on the bench server (CREATE/DROP DATABASE, VACUUM)."""
    import psycopg2

    conn = psycopg2.connect(f"{SERVER}/{dbname}")
    conn.autocommit = True
    try:
        yield conn.cursor()
    finally:
        conn.close()


def database_exists(db_name: str) -> bool:
    with admin_cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name,))
        return cur.fetchone() is not None


def fresh_database(db_name: str) -> str:
    """Drop, create and migrate the bench's own database; returns its URL."""
    from common.db.migrate import upgrade

    with admin_cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{db_name}"')
    url = f"{SERVER}/{db_name}"
    # Alembic's logging config adds a stderr handler to the root logger: in-process measurements that
    # follow would pay for a second, plain-text access line on the terminal.
    root = logging.getLogger()
    before = list(root.handlers)
    upgrade(url)
    for handler in [h for h in root.handlers if h not in before]:
        root.removeHandler(handler)
    return url


def drop_database(db_name: str) -> None:
    from common.db.session import dispose_engines

    dispose_engines()
    with admin_cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def vacuum_analyze(db_name: str) -> None:
    with admin_cursor(db_name) as cur:
        cur.execute("VACUUM ANALYZE")


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30, path: str = "/healthz") -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with status {process.returncode} before answering")
        try:
            if requests.get(url + path, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer {path} within {timeout}s")


class RunningService(str):
    """A running gunicorn's base URL (a str), with its master's pid."""

    pid: int

    def __new__(cls, url: str, pid: int) -> "RunningService":
        self = super().__new__(cls, url)
        self.pid = pid
        return self

    def worker_rss(self) -> list[float]:
        """RSS in MB of each of its workers, now."""
        return worker_rss(self.pid)


def rss_mb(pid: int | str) -> float | None:
    """Resident set size of a process in MB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def worker_rss(master_pid: int | str) -> list[float]:
    """RSS in MB of each child of a gunicorn master."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master_pid)], capture_output=True,
                              text=True).stdout.split()
    return [size for size in map(rss_mb, children) if size is not None]


@contextmanager
def gunicorn_service(service: str, database_url: str, *, app: str | None = None,
                     health_path: str = "/healthz", edge: bool = False, **env: str) -> Iterator[RunningService]:
    """Run gunicorn with the repository's gunicorn.conf.py; yields the base URL of a free port.

    edge=False: gunicorn itself listens on the port (--bind replaces the config's unix socket), the way
    the floors run: the service alone. edge=True: as deployed, gunicorn on its unix socket and toko's
    nginx (toko/gateway.py, rendered from the settings) on the port in front of it.
    `app` replaces the service's WSGI app (e.g. "bench.floor_app:app", importable because the repository
    root leads PYTHONPATH) while every other gunicorn setting stays exactly as configured. The processes
    run in a scratch directory, so a stack started with `make run` keeps its metrics, logs and sockets.
    """
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix=f"toko-bench-{service}-"))
    process_env = {**os.environ, "TOKO_SERVICE": service, f"TOKO_{service.upper()}_PORT": str(port),
                   "DATABASE_URL": database_url, **env}
    process_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), process_env.get("PYTHONPATH")]))
    # The deployed gunicorn listens on a unix socket behind nginx; without `edge` it serves a TCP port
    # itself, so a service and its floor are measured alone.
    command = [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")]
    command += [] if edge else ["--bind", f"127.0.0.1:{port}"]
    command += [app] if app else []
    log = open(scratch / "gunicorn.log", "wb")
    processes = [subprocess.Popen(command, cwd=scratch, env=process_env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)]
    if edge:
        processes.append(_edge(service, port, scratch, log))
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            for process in processes:
                wait_healthy(base, process, path=health_path)
        except SystemExit:
            log.flush()
            print((scratch / "gunicorn.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        yield RunningService(base, processes[0].pid)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _edge(service: str, port: int, scratch: Path, log) -> subprocess.Popen:
    """toko's nginx serving `service` on `port` from the gunicorn socket under `scratch` (the bench's edge)."""
    from toko.gateway import find_nginx, render_config
    from common.settings import SERVICES, load_settings

    nginx = find_nginx()
    if nginx is None:
        raise SystemExit("nginx is not installed: the edge needs it (Debian: apt-get install nginx)")
    ports = {f"TOKO_{s.upper()}_PORT": str(free_port()) for s in SERVICES}
    ports[f"TOKO_{service.upper()}_PORT"] = str(port)
    settings = load_settings({**os.environ, **ports})
    var = scratch / "var" / "gateway"
    var.mkdir(parents=True)
    (var / "nginx.conf").write_text(render_config(settings, var, scratch, services=(service,), gateway=False))
    return subprocess.Popen([nginx, "-c", str(var / "nginx.conf"), "-e", "stderr"], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


# -- floors ----------------------------------------------------------------------------------------

_floor_local = threading.local()


def floor_connection(service: str, *, autocommit: bool = False):
    """This thread's one persistent psycopg2 connection for a floor, as the role of the service it stands under."""
    conns = getattr(_floor_local, "conns", None)
    if conns is None:
        conns = _floor_local.conns = {}
    conn = conns.get(service)
    if conn is None or conn.closed:
        import psycopg2

        from common.settings import get_settings

        conn = conns[service] = psycopg2.connect(get_settings().database_url_for(service))
        conn.autocommit = autocommit
    return conn


def utc(value) -> str:
    """An aware datetime as ISO 8601 with Z, as the services write it."""
    from datetime import timezone

    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# -- progress --------------------------------------------------------------------------------------

class Progress:
    """A progress bar (rich's) for one step: `with Progress("items", n) as bar: bar.advance(k)`."""

    def __init__(self, label: str, total: int, unit: str = ""):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        self.label, self.total, self.unit = label, total, unit
        self._bar = Bar(TextColumn(f"  {label:<22}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
                        TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn())
        self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> "Progress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)


# -- load ------------------------------------------------------------------------------------------

@dataclass
class LoadResult:
    label: str
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    failures: int = 0
    tool: str = "python"
    rps_override: float | None = None  # wrk reports its own rate and percentiles
    percentiles_override: dict | None = None
    rounds: list["LoadResult"] = field(default_factory=list)  # what `merge` merged, in order

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.rps_override if self.rps_override is not None else self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds."""
        if self.percentiles_override and p in self.percentiles_override:
            return self.percentiles_override[p]
        return percentile(self.latencies, p) * 1000

    def summary(self) -> str:
        return (f"{self.label:>10}: {self.rps:8.1f} req/s  p50 {self.percentile(50):6.2f} ms  "
                f"p99 {self.percentile(99):6.2f} ms  ({self.requests} ok, {self.failures} failed, "
                f"{self.seconds:.1f}s, {self.tool})")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def throughput_arguments(description: str, service: str) -> argparse.ArgumentParser:
    """The options every service-against-floor throughput comparison takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=6, help="rounds per target (alternating)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--service-log-level", default="INFO",
                        help=f"{service}'s TOKO_LOG_LEVEL (INFO, as deployed, logs one line per request)")
    parser.add_argument("--python-load", action="store_true", help="use Python threads even if wrk is installed")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    return parser


class LatencySides:
    """Per-request latencies in seconds, one list per named side, read in milliseconds."""

    def p50(self, side: str) -> float:
        return statistics.median(getattr(self, side)) * 1000

    def p99(self, side: str) -> float:
        return percentile(getattr(self, side), 99) * 1000


def merge(label: str, results: list[LoadResult]) -> LoadResult:
    """Several rounds against one target as one result (rate = all requests / all time)."""
    merged = LoadResult(label, sum(r.seconds for r in results), tool=results[0].tool if results else "python",
                        rounds=list(results))
    for r in results:
        merged.latencies += r.latencies
        merged.failures += r.failures
    if results and results[0].rps_override is not None:
        merged.rps_override = statistics.fmean(r.rps for r in results)
        merged.percentiles_override = {p: statistics.median(r.percentile(p) for r in results)
                                       for p in (50, 99)}
    return merged


def closed_loop(call: Callable, *, threads: int, seconds: float, label: str = "",
                check: Callable | None = None, max_requests: int = 10_000_000) -> LoadResult:
    """`threads` clients, each with its own requests.Session, calling back to back for `seconds`.

    `call(session)` returns a response; `check(response)` (default: status 200) decides success.
    Bounded in time and count, whatever the server does.
    """
    import requests

    check = check or (lambda r: r.status_code == 200)
    result = LoadResult(label, seconds)
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def client() -> None:
        http = requests.Session()
        mine, failed = [], 0
        start.wait()
        while time.perf_counter() < stop_at[0] and len(mine) < max_requests:
            t0 = time.perf_counter()
            try:
                ok = check(call(http))
            except requests.RequestException:
                ok = False
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                failed += 1
        with lock:
            result.latencies += mine
            result.failures += failed

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for w in workers:
        w.join(timeout=seconds + 30)
    result.seconds = time.perf_counter() - began
    return result


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, *, connections: int, seconds: float, threads: int = 2, label: str = "",
        script: str | None = None, timeout: float = 10) -> LoadResult:
    """One wrk run (a C load generator: far less client CPU than Python threads).

    `script` is Lua source for wrk's -s (e.g. from `wrk_post_script`); non-2xx/3xx answers are failures.
    """
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               f"--timeout={max(1, round(timeout))}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="toko-bench-") as lua:
        if script:
            lua.write(script)
            lua.flush()
            command += ["-s", lua.name]
        out = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 60,
                             check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    count = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    pcts = {}
    for p, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        pcts[float(p)] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    result = LoadResult(label, seconds, tool="wrk", rps_override=rps, percentiles_override=pcts)
    non_2xx = int(bad.group(1)) if bad else 0
    result.latencies = [0.0] * (count - non_2xx)  # the count only: wrk keeps the distribution to itself
    result.failures = non_2xx + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return result


def wrk_post_script(bodies: list[str], headers: dict[str, str]) -> str:
    """Lua for wrk: POST, each wrk thread sending its own body (one connection per thread: no shared rows)."""
    def lua_string(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    return "\n".join([
        "local bodies = {" + ", ".join(lua_string(b) for b in bodies) + "}",
        "local created = 0",
        "function setup(thread)",
        "  created = created + 1",
        "  thread:set('body', bodies[(created - 1) % #bodies + 1])",
        "end",
        "function init(args)",
        "  wrk.method = 'POST'",
        "  wrk.body = body",
        *[f"  wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()],
        "end",
    ]) + "\n"


def alternate(targets: dict[str, Callable[[], LoadResult]], rounds: int) -> dict[str, LoadResult]:
    """Run each target once per round, swapping the order every round so drift hits both alike."""
    names = list(targets)
    results: dict[str, list[LoadResult]] = {name: [] for name in names}
    for n in range(rounds):
        for name in (names if n % 2 == 0 else names[::-1]):
            r = targets[name]()
            results[name].append(r)
            print(f"  round {n + 1}/{rounds} {r.summary()}", flush=True)
    return {name: merge(name, rs) for name, rs in results.items()}


def print_comparison(results: dict[str, LoadResult], subject: str, floor: str, target: float,
                     extra: str = "") -> float:
    """Print each side's summary and the throughput ratio subject / floor against its target; returns it."""
    print()
    for result in results.values():
        print(result.summary())
    ratio = results[subject].rps / results[floor].rps
    failures = sum(r.failures for r in results.values())
    print(f"\nthroughput {subject} / {floor} = {ratio:.3f} (target >= {target}): "
          f"{'OK' if ratio >= target else 'BELOW TARGET'}; p50 {results[subject].percentile(50):.2f} vs "
          f"{results[floor].percentile(50):.2f} ms; failures {failures}{'; ' + extra if extra else ''}")
    return ratio


def cpu_per_request(call: Callable[[], object], n: int, warmup: int = 100) -> float:
    """Mean CPU time of this process per call, in microseconds (the database's own CPU is not counted)."""
    for _ in range(warmup):
        call()
    t0 = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - t0) / n * 1e6


@contextmanager
def access_log_discarded(level: str = "INFO"):
    """Log at `level` as deployed, but into /dev/null: the formatting is paid, the terminal stays quiet.

    For services created in process (their create_app configured toko's JSON handler on the root logger).
    """
    import logging

    root = logging.getLogger()
    handlers = [h for h in root.handlers if getattr(h, "_toko", False)]
    previous_level = root.level
    with open(os.devnull, "w") as sink:
        streams = [h.setStream(sink) for h in handlers]
        root.setLevel(level)
        try:
            yield
        finally:
            root.setLevel(previous_level)
            for handler, stream in zip(handlers, streams):
                handler.setStream(stream)


def timed(call: Callable[[], object]) -> float:
    """Seconds one call takes."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0
