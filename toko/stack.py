"""A whole toko on this machine: supervisord running every program of supervisord.conf, from a scratch home.

`make run` (toko.launch) runs the checkout's own; the end-to-end tests and the benchmarks run the same
supervisord.conf unchanged from a scratch directory of their own, linked to .venv and gunicorn.conf.py, so
`%(here)s` (sockets, logs) points there and several stacks live side by side with `make run`.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from common.settings import SERVICES
from toko.gateway import find_nginx

ROOT = Path(__file__).resolve().parents[1]


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kw)


def client_from(address: str) -> requests.Session:
    """An HTTP client whose connections come from `address` (any of 127.0.0.0/8 on loopback).

    The login throttles count per client address: a test plays a client of its own instead of spending
    127.0.0.1's budget, which every other test logs in from.
    """
    http = requests.Session()
    http.mount("http://", _SourceAddressAdapter(address))
    return http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_home(home: Path) -> None:
    """A scratch directory that runs the repository's unchanged supervisord.conf (its `%(here)s`)."""
    (home / "var/log").mkdir(parents=True, exist_ok=True)
    for name in ("supervisord.conf", "gunicorn.conf.py", ".venv"):
        link = home / name
        if not link.exists():
            link.symlink_to(ROOT / name)


class NginxMissing(RuntimeError):
    """The stack cannot start: nginx owns every port of it."""


def supervisord_command(config: Path) -> list[str]:
    """supervisord in the foreground on a configuration, from the virtualenv toko runs in."""
    return [str(Path(sys.executable).with_name("supervisord")), "-c", str(config)]


def run_environment(environ=None) -> dict[str, str]:
    """The environment supervisord.conf expects: TOKO_RUN_USER names the user it runs as (this one)."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("TOKO_RUN_USER", pwd.getpwuid(os.getuid()).pw_name)
    return env


@dataclass
class Stack:
    """supervisord running every program of the repository's supervisord.conf from a scratch home."""

    home: Path
    env: dict
    ports: dict
    process: subprocess.Popen | None = None
    http: requests.Session = field(default_factory=requests.Session)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def gateway_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.env['TOKO_GATEWAY_PORT']}{path}"

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        ctl = str(Path(sys.executable).with_name("supervisorctl"))
        return subprocess.run(
            [ctl, "-c", str(self.home / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=90,
            check=check,
        )

    def log(self, program: str) -> str:
        path = self.home / "var/log" / f"{program}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_lines(self, request_id: str, count: int = 1, timeout: float = 10) -> list[dict]:
        """The access lines nginx wrote for a request id, once `count` are there (each nginx worker
        flushes its own buffer within a second) or the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [
                json.loads(line)
                for line in self.log("gateway").splitlines()
                if line.startswith("{") and f'"request_id":"{request_id}"' in line.replace(" ", "")
            ]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.2)

    def start(self, timeout: float = 60) -> "Stack":
        if find_nginx() is None:
            raise NginxMissing(
                "nginx is not installed (apt-get install nginx): it owns every port of the stack"
            )
        prepare_home(self.home)
        self.process = subprocess.Popen(
            supervisord_command(self.home / "supervisord.conf"),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()  # a stack that never came up must not outlive the test that started it
            raise
        return self

    def wait_healthy(self, services=(*SERVICES, "gateway"), timeout: float = 60) -> None:
        """Every service answers /healthz on its port (through nginx), and the gateway its own."""
        deadline = time.monotonic() + timeout
        pending = set(services)
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                url = self.gateway_url("/healthz") if service == "gateway" else self.url(service, "/healthz")
                try:
                    if requests.get(url, timeout=1).status_code == 200:
                        pending.discard(service)
                except requests.RequestException:
                    pass
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"supervisord exited: {self.log('supervisord')[-2000:]}")
            time.sleep(0.2)
        if pending:
            logs = "\n".join(self.log("gateway" if s == "gateway" else f"svc_{s}")[-1500:] for s in pending)
            raise RuntimeError(f"services not healthy after {timeout}s: {sorted(pending)}\n{logs}")

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None:
            return
        self.ctl("shutdown")
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_stack(home: Path, database_url: str, *, cls: type[Stack] = Stack, **extra_env: str) -> Stack:
    """A stack on free ports against `database_url`, as the tests and benchmarks run it: each program
    as `make run` starts it (every service as its own role), argon2's cheap profile, two workers a service."""
    ports = {service: free_port() for service in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKO_") or k in ("TOKO_ENV",)}
    env.update(
        {
            "DATABASE_URL": database_url,
            "TOKO_ENV": "test",
            "TOKO_ARGON2_PROFILE": "fast",
            "TOKO_WORKERS": "2",
            "TOKO_THREADS": "4",
            "TOKO_LOG_LEVEL": "INFO",
            # As `make run`: every service and worker connects as its own least-privilege role.
            "TOKO_DB_ROLES": "on",
            **{f"TOKO_{s.upper()}_PORT": str(p) for s, p in ports.items()},
            "TOKO_GATEWAY_PORT": str(free_port()),
        }
    )
    env = run_environment(env)
    env.update(extra_env)
    return cls(home=home, env=env, ports=ports)
