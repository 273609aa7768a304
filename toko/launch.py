"""`make run`'s two steps: refuse to start when something is in the way, then run supervisord and watch it.

A port taken by another program, or a toko already running from the same folder, is reported before
anything starts. Once supervisord runs, a program that cannot start goes FATAL (its `startsecs` exceeds
gunicorn's and nginx's bind retries): the whole run then stops with that program's last log lines.
"""

from __future__ import annotations

import configparser
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from common.settings import SERVICES, Settings
from toko.demo import DEMO_ADMIN
from toko.stack import run_environment, supervisord_command

LOG_LINES = 20


class LaunchError(RuntimeError):
    """Something in the way of starting toko, already explained for the operator."""


@dataclass(frozen=True)
class Supervisor:
    """Where a supervisord.conf puts its control socket and logs."""

    config: Path

    @property
    def here(self) -> Path:
        # As supervisord computes %(here)s: the folder of the path given, links not followed.
        return Path(os.path.abspath(self.config)).parent

    def _option(self, section: str, key: str) -> str:
        parser = configparser.RawConfigParser()
        parser.read(self.config)
        return parser.get(section, key).replace("%(here)s", str(self.here))

    @property
    def socket_path(self) -> Path:
        return Path(self._option("unix_http_server", "file"))

    @property
    def log_dir(self) -> Path:
        return Path(self._option("supervisord", "childlogdir"))

    def rpc(self):
        from supervisor.xmlrpc import SupervisorTransport

        login = (self._option("supervisorctl", "username"), self._option("supervisorctl", "password"))
        transport = SupervisorTransport(*login, f"unix://{self.socket_path}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running_pid(self) -> int | None:
        """supervisord's pid when one answers on this folder's control socket."""
        if not self.socket_path.exists():
            return None
        try:
            return int(self.rpc().getPID())
        except (OSError, xmlrpc.client.Error):
            return None

    def status_text(self) -> str:
        ctl = Path(sys.executable).with_name("supervisorctl")
        result = subprocess.run(
            [str(ctl), "-c", str(self.config), "status"], capture_output=True, text=True, timeout=30
        )
        return result.stdout.rstrip()

    def log_tail(self, program: str, lines: int = LOG_LINES) -> str:
        path = self.log_dir / f"{program}.log"
        if not path.exists():
            return f"(no log at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def listening_ports(settings: Settings) -> list[tuple[str, str, int]]:
    """(program, setting, port) for every TCP port toko listens on."""
    ports = [(f"svc_{s}", f"TOKO_{s.upper()}_PORT", settings.ports[s]) for s in SERVICES]
    return ports + [("gateway", "TOKO_GATEWAY_PORT", settings.gateway_port)]


def port_holder(port: int) -> str | None:
    """'pid N (command line)' of the process listening on a TCP port, when /proc shows it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
                    return f"pid {pid} ({raw.decode(errors='replace')[:120]})"
            except OSError:
                continue
    return None


def port_in_use(host: str, port: int) -> OSError | None:
    """The error binding host:port gives, as gunicorn and nginx would bind it (SO_REUSEADDR), or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_ports(settings: Settings) -> list[str]:
    """One line per port toko cannot have, naming the program that holds it when one does."""
    problems = []
    seen: dict[int, str] = {}
    for program, setting, port in listening_ports(settings):
        if port in seen:
            problems.append(f"{setting}={port} is also {seen[port]}'s port: give every program its own port")
            continue
        seen[port] = program
        error = port_in_use(settings.bind_host, port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            holder = port_holder(port) or f"another program (`ss -ltnp 'sport = :{port}'` shows which)"
            problems.append(
                f"port {settings.bind_host}:{port} ({setting}, for {program}) is taken by {holder}: "
                f"stop it or set {setting} to a free port"
            )
        else:
            problems.append(
                f"cannot listen on {settings.bind_host}:{port} ({setting}, for {program}): "
                f"{error.strerror}; check TOKO_BIND_HOST"
            )
    return problems


def preflight(settings: Settings, supervisor: Supervisor) -> None:
    """Raise LaunchError when toko already runs from this folder or one of its ports is taken."""
    pid = supervisor.running_pid()
    if pid is not None:
        raise LaunchError(
            f"toko is already running here (supervisord pid {pid}, {supervisor.config}):\n"
            f"{supervisor.status_text()}\n"
            f"Stop it first: .venv/bin/supervisorctl -c {supervisor.config.name} shutdown"
        )
    problems = check_ports(settings)
    if problems:
        raise LaunchError("toko cannot start:\n" + "\n".join(f"  - {p}" for p in problems))


def banner(settings: Settings) -> str:
    host = "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::", "") else settings.bind_host
    width = max(len(s) for s in SERVICES)
    lines = [
        "toko is starting (nginx holds every port below; the services listen on unix sockets in var/run):"
    ]
    for service in SERVICES:
        base = f"http://{host}:{settings.ports[service]}"
        lines.append(f"  {service:<{width}}  {base}   docs {base}/docs")
    gateway = f"http://{host}:{settings.gateway_port}"
    lines.append(
        f"  {'gateway':<{width}}  {gateway}/   the storefront, every service by path, all five docs at /docs/"
    )
    cache = "on: anonymous catalogue reads may be 1 s old" if settings.edge_cache else "off (TOKO_EDGE_CACHE)"
    lines.append(f"  edge cache: {cache}")
    lines.append(f"  admin login (demo data): {DEMO_ADMIN[0]} / {DEMO_ADMIN[1]}")
    lines.append("  logs in var/log/; Ctrl-C stops everything")
    return "\n".join(lines)


def supervise(settings: Settings, supervisor: Supervisor, echo: Callable[[str], None] = print) -> int:
    """Run supervisord in the foreground until it exits; stop it and fail when a program cannot start.

    Returns the exit status for `make run`: supervisord's own, or 1 when a program went FATAL (it could
    not start, startretries times in a row: supervisor gives up on it). Ctrl-C reaches supervisord
    too (same process group), which then stops every program.
    """
    pid = supervisor.running_pid()
    if pid is not None:
        raise LaunchError(
            f"toko is already running here (supervisord pid {pid}):\n{supervisor.status_text()}"
        )
    supervisor.log_dir.mkdir(parents=True, exist_ok=True)
    echo(banner(settings))
    process = subprocess.Popen(supervisord_command(supervisor.config), env=run_environment())

    def forward(signum, frame):
        if process.poll() is None:
            process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, lambda *_: None)  # the terminal already sent it to supervisord
    if _watch(supervisor, process, echo):
        if process.poll() is None:
            process.terminate()
        process.wait()
        return 1
    return process.wait()


def _watch(supervisor: Supervisor, process: subprocess.Popen, echo) -> list[str]:
    """Until supervisord exits: say when every program is up; name those that go FATAL (and return them)."""
    announced = False
    while process.poll() is None:
        time.sleep(0.5)
        try:
            infos = supervisor.rpc().getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            continue  # supervisord is still opening its socket, or already closed it
        states = {info["name"]: info["statename"] for info in infos}
        fatal = sorted(name for name, state in states.items() if state == "FATAL")
        if fatal:
            for name in fatal:
                echo(
                    f"{name} could not start (FATAL). The last lines of "
                    f"{supervisor.log_dir / (name + '.log')}:\n{supervisor.log_tail(name)}"
                )
            echo("stopping toko")
            return fatal
        if not announced and states and all(state == "RUNNING" for state in states.values()):
            announced = True
            echo(
                f"toko is running: all {len(states)} programs are up "
                f"(.venv/bin/supervisorctl -c {supervisor.config.name} status)"
            )
    return []
