"""A small cluster on one machine, built from the same pieces an operator would run on several.

- Service hosts: each a Linux network namespace joined to a bridge by a veth pair, running the repository's
  unchanged supervisord.conf with TOKO_BIND_HOST set to the host's address.
- A gateway (`toko gateway` with TOKO_GATEWAY_HOSTS) on the bridge address, balancing over the hosts' own
  gateways (each host's nginx owns its ports and trusts the front gateway's X-Real-IP: TOKO_TRUSTED_PROXIES).
- PgBouncer (`toko pgbouncer`) on the bridge address, in transaction mode, between the hosts and PostgreSQL.
- A private primary PostgreSQL cluster (initdb in a temporary folder, its own port) and a streaming replica
  made from it with pg_basebackup, on another port; the report aggregates read the replica.

Everything is torn down on exit, also on failure: processes, namespaces, links, folders. Names carry the
pid of the run that made them, so a run also removes what a killed earlier run left behind.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg2
import requests

from toko.stack import run_environment
from toko.replica import render_primary_conf, render_standby_conf
from common.settings import load_settings
from tests.e2e.pgcluster import PrivateCluster, unavailable_reason as pg_unavailable
from tests.e2e.stack import ROOT, Stack, free_port, prepare_home
from tests.tools import missing

PREFIX = "tk"
_OWNED = re.compile(rf"^{PREFIX}(\d+)")
# Inside its namespace a host has the ports to itself; these are not the machine's defaults.
HOST_PORTS = {"user": 15001, "otp": 15002, "item": 15003, "transaction": 15004, "report": 15005}
HOST_GATEWAY_PORT = 18080
PRIMARY_MAX_CONNECTIONS = 30
PGBOUNCER_MAX_DB_CONNECTIONS = 20
TOKO = str(ROOT / ".venv/bin/toko")


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: the service hosts are network namespaces (run `make test-cluster` as root)"
    for tool in ("ip", "nginx", "pgbouncer"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return missing(tool, "iproute2" if tool == "ip" else tool, "the cluster tests need it")
    return pg_unavailable()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(ns: str) -> None:
    for _ in range(50):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def remove_leftovers() -> None:
    """Namespaces, links, servers and folders of earlier runs whose process is gone."""
    for ns in json.loads(_ip("-j", "netns", "list", check=False).stdout or "[]"):
        owner = _OWNED.match(ns["name"])
        if owner and not _alive(int(owner.group(1))):
            _kill_namespace_processes(ns["name"])
            _ip("netns", "del", ns["name"], check=False)
    for link in json.loads(_ip("-j", "link", "show", check=False).stdout or "[]"):
        owner = _OWNED.match(link["ifname"])
        if owner and not _alive(int(owner.group(1))):
            _ip("link", "del", link["ifname"], check=False)
    for home in Path(tempfile.gettempdir()).glob(f"toko-cluster-{PREFIX}*"):
        owner = _OWNED.match(home.name.removeprefix("toko-cluster-"))
        if owner and not _alive(int(owner.group(1))):
            for pidfile in home.glob("**/*.pid"):
                if pidfile.name in ("postmaster.pid", "pgbouncer.pid", "nginx.pid", "supervisord.pid"):
                    try:
                        os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
                    except (ValueError, IndexError, ProcessLookupError):
                        pass
            shutil.rmtree(home, ignore_errors=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A private /24 that no interface or route of this machine uses."""
    used = []
    for link in json.loads(_ip("-j", "-4", "addr", "show").stdout or "[]"):
        used += [ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False) for a in link.get("addr_info", [])]
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        if route.get("dst", "default") not in ("default",):
            try:
                used.append(ipaddress.ip_network(route["dst"] if "/" in route["dst"] else f"{route['dst']}/32",
                                                 strict=False))
            except ValueError:
                pass
    for second in range(217, 256):
        candidate = ipaddress.ip_network(f"10.{second}.17.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free 10.x.17.0/24 subnet on this machine")


@dataclass
class Host(Stack):
    """One service host: a network namespace running supervisord.conf unchanged."""

    ip: str = ""
    netns: str = ""

    def url(self, service: str, path: str = "") -> str:
        return f"http://{self.ip}:{self.ports[service]}{path}"

    def gateway_url(self, path: str = "") -> str:
        return f"http://{self.ip}:{self.env['TOKO_GATEWAY_PORT']}{path}"

    def start(self, timeout: float = 120) -> "Host":
        self.launch()
        self.wait_healthy(timeout=timeout)
        return self

    def launch(self) -> None:
        prepare_home(self.home)
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, str(ROOT / ".venv/bin/supervisord"), "-c",
             str(self.home / "supervisord.conf")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)

    def requests_logged(self, program: str) -> list[dict]:
        """The request lines of a program's log (the app's, or the edge's own answers in `gateway`)."""
        lines = []
        for raw in self.log(program).splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict) and line.get("msg") == "request":
                lines.append(line)
        return lines

    def crash(self) -> None:
        """Every process of the host killed at once, as when the machine dies."""
        _kill_namespace_processes(self.netns)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            _kill_namespace_processes(self.netns)


class Cluster:
    """Build with `with Cluster(hosts=3) as c:`; everything it made is gone after the block."""

    def __init__(self, hosts: int = 3):
        self.count = hosts
        self.tag = f"{PREFIX}{os.getpid()}"
        self.home = Path(tempfile.mkdtemp(prefix=f"toko-cluster-{self.tag}-"))
        self.home.chmod(0o711)  # the servers run as postgres, in folders of their own below
        self.hosts: list[Host] = []
        self._exit = ExitStack()

    # -- building ------------------------------------------------------------------------------------------

    def __enter__(self) -> "Cluster":
        try:
            remove_leftovers()
            self._exit.callback(shutil.rmtree, self.home, True)
            self._network()
            self._databases()
            self._pgbouncer()
            self._hosts()
            self._gateway()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._exit.close()

    def _network(self) -> None:
        subnet = free_subnet()
        addresses = list(subnet.hosts())
        self.bridge_ip = str(addresses[0])
        self.host_ips = [str(addresses[10 + i]) for i in range(self.count)]
        bridge = f"{self.tag}br"
        _ip("link", "add", bridge, "type", "bridge")
        self._exit.callback(_ip, "link", "del", bridge, check=False)
        _ip("addr", "add", f"{self.bridge_ip}/{subnet.prefixlen}", "dev", bridge)
        # A second address on this side, for a client that is not the gateway.
        self.client_ip = str(addresses[1])
        _ip("addr", "add", f"{self.client_ip}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, ip in enumerate(self.host_ips):
            ns, outside = f"{self.tag}h{i}", f"{self.tag}v{i}"
            _ip("netns", "add", ns)
            self._exit.callback(_ip, "netns", "del", ns, check=False)
            self._exit.callback(_kill_namespace_processes, ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", f"{self.tag}p{i}")
            self._exit.callback(_ip, "link", "del", outside, check=False)
            _ip("link", "set", f"{self.tag}p{i}", "netns", ns)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "link", "set", f"{self.tag}p{i}", "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{ip}/{subnet.prefixlen}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _databases(self) -> None:
        settings = self._settings()
        home = self.home / "primary"
        home.mkdir()
        self.primary = PrivateCluster(home, free_port())
        shutil.chown(home, "postgres", "postgres")
        self.primary.init()
        with open(self.primary.data / "postgresql.conf", "a") as conf:
            conf.write(render_primary_conf(settings, self.primary.port, PRIMARY_MAX_CONNECTIONS))
            # Every statement in the log, with its role: the tests read which server ran what, and how.
            conf.write("log_statement = 'all'\nlog_line_prefix = '%m [%p] %u@%d '\n")
        self._exit.callback(self._stop_server, self.primary)
        self.primary.start()
        self.primary.wait_ready()
        with self.connect(self.primary, "postgres") as conn:
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE toko")
        subprocess.run([TOKO, "migrate"], env=self._env(DATABASE_URL=self.primary_url), check=True,
                       capture_output=True, timeout=120)
        home = self.home / "replica"
        home.mkdir()
        self.replica = PrivateCluster(home, free_port())
        shutil.chown(home, "postgres", "postgres")
        self.replica._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                          "-D", str(self.replica.data), "-R", "-X", "stream", "-c", "fast")
        with open(self.replica.data / "postgresql.conf", "a") as conf:
            conf.write(render_standby_conf(settings, self.replica.port))
        self._exit.callback(self._stop_server, self.replica)
        self.start_replica()

    def start_replica(self) -> None:
        self.replica.start()
        self.replica.wait_ready()
        self.wait_streaming()

    def wait_streaming(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.connect(self.primary) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                if cur.fetchone()[0]:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the replica does not stream: {(self.replica.home / 'server.log').read_text()[-2000:]}")

    @staticmethod
    def _stop_server(server: PrivateCluster) -> None:
        if (server.data / "postmaster.pid").exists():
            try:
                server.stop()
            except (RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")

    def _pgbouncer(self) -> None:
        self.pgbouncer_port = free_port()
        home = self.home / "pgbouncer"
        home.mkdir()
        env = self._env(DATABASE_URL=self.primary_url, TOKO_REPORT_DATABASE_URL=self.replica_url,
                        TOKO_BIND_HOST=self.bridge_ip, TOKO_PGBOUNCER_PORT=str(self.pgbouncer_port),
                        TOKO_PGBOUNCER_MAX_DB_CONNECTIONS=str(PGBOUNCER_MAX_DB_CONNECTIONS))
        process = subprocess.Popen([TOKO, "pgbouncer", "--user", "postgres"], cwd=home, env=env,
                                   stdout=open(home / "pgbouncer.log", "w"), stderr=subprocess.STDOUT)
        self._exit.callback(self._terminate, process)
        self.pgbouncer_log = home / "pgbouncer.log"
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(host=self.bridge_ip, port=self.pgbouncer_port, user="postgres", dbname="toko",
                                 connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {self.pgbouncer_log.read_text()[-2000:]}")
                time.sleep(0.2)

    def _hosts(self) -> None:
        for i, ip in enumerate(self.host_ips):
            home = self.home / f"host{i}"
            home.mkdir()
            env = self._env(
                DATABASE_URL=f"postgresql://postgres@{self.bridge_ip}:{self.pgbouncer_port}/toko",
                TOKO_REPORT_DATABASE_URL=f"postgresql://toko_report@{self.bridge_ip}:{self.pgbouncer_port}"
                                         f"/toko_replica",
                TOKO_DB_ROLES="on", TOKO_BIND_HOST=ip, TOKO_GATEWAY_PORT=str(HOST_GATEWAY_PORT),
                # Through PgBouncer in transaction mode a LISTEN holds nothing: the consumers poll alone.
                TOKO_EVENTS_LISTEN="off",
                TOKO_TRUSTED_PROXIES=self.bridge_ip,
                **{f"TOKO_{s.upper()}_PORT": str(p) for s, p in HOST_PORTS.items()})
            host = Host(home=home, env=env, ports=dict(HOST_PORTS), ip=ip, netns=f"{self.tag}h{i}")
            self._exit.callback(host.stop)
            self.hosts.append(host)
        # Started side by side: each host's imports take a while on a busy machine.
        for host in self.hosts:
            host.launch()
        for host in self.hosts:
            host.wait_healthy(timeout=180)

    def _gateway(self) -> None:
        self.gateway_port = free_port()
        home = self.home / "gateway"
        home.mkdir()
        env = self._env(TOKO_BIND_HOST=self.bridge_ip, TOKO_GATEWAY_PORT=str(self.gateway_port),
                        TOKO_GATEWAY_HOSTS=",".join(f"{ip}:{HOST_GATEWAY_PORT}" for ip in self.host_ips),
                        TOKO_GATEWAY_FAIL_TIMEOUT_SECONDS="2")
        self.gateway_log = home / "gateway.log"
        process = subprocess.Popen([TOKO, "gateway"], cwd=home, env=env, stdout=open(self.gateway_log, "w"),
                                   stderr=subprocess.STDOUT)
        self._exit.callback(self._terminate, process, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.gateway_url("/healthz"), timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start: {self.gateway_log.read_text()[-2000:]}")
            time.sleep(0.2)

    @staticmethod
    def _terminate(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- using ---------------------------------------------------------------------------------------------

    def _env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKO_") and k != "DATABASE_URL"}
        env.update({"TOKO_ENV": "test", "TOKO_ARGON2_PROFILE": "fast", "TOKO_WORKERS": "2", "TOKO_THREADS": "4",
                    "TOKO_LOG_LEVEL": "INFO", "TOKO_DB_ROLES": "on"})
        env.update(extra)
        return run_environment(env)

    def _settings(self):
        return load_settings(self._env(TOKO_PGBOUNCER_MAX_DB_CONNECTIONS=str(PGBOUNCER_MAX_DB_CONNECTIONS)))

    @property
    def primary_url(self) -> str:
        return f"{self.primary.server_url()}/toko"

    @property
    def replica_url(self) -> str:
        return f"{self.replica.server_url()}/toko"

    def gateway_url(self, path: str = "") -> str:
        return f"http://{self.bridge_ip}:{self.gateway_port}{path}"

    @contextmanager
    def connect(self, server: PrivateCluster, database: str = "toko", user: str = "postgres") -> Iterator:
        conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=user, dbname=database, connect_timeout=5)
        try:
            yield conn
        finally:
            conn.close()

    def pgbouncer_show(self, what: str) -> list[dict]:
        """SHOW POOLS / CLIENTS / SERVERS on PgBouncer's admin console."""
        conn = psycopg2.connect(host=self.bridge_ip, port=self.pgbouncer_port, user="postgres", dbname="pgbouncer",
                                connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"SHOW {what}")
                names = [c.name for c in cur.description]
                return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            conn.close()

    def server_log(self, server: PrivateCluster) -> str:
        return (server.home / "server.log").read_text(errors="replace")

