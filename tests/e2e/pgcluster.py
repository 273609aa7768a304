"""A PostgreSQL cluster of the test's own, for tests that need a database server to die.

The server the suite was given is shared (other databases, other people's work on the same machine): no test
stops or restarts it. A fault test runs `initdb` into a temporary folder instead, starts that cluster on a
free port, and removes it afterwards.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.e2e.stack import free_port
from tests.tools import missing


def _bin_dir() -> Path | None:
    """The newest installed server binaries (Debian keeps them off PATH, under /usr/lib/postgresql)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _run_as() -> list[str] | None:
    """PostgreSQL refuses to run as root: as root, run the binaries as the `postgres` system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


def unavailable_reason() -> str | None:
    if _bin_dir() is None:
        return missing("initdb", "postgresql", "the fault tests start a private PostgreSQL")
    if _run_as() is None:
        return "running as root without a `postgres` user and runuser to run initdb as"
    return None


class PrivateCluster:
    def __init__(self, home: Path, port: int):
        self.home = home
        self.data = home / "data"
        self.port = port
        self.bin = _bin_dir()
        self.prefix = _run_as()

    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self.prefix, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            log = (self.home / "server.log")
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stdout}{done.stderr}"
                               f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        with open(self.data / "postgresql.conf", "a") as conf:
            # Its own port, TCP on loopback only, its unix socket inside its own folder: nothing is shared
            # with the machine's server. fsync off: the data is thrown away.
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.home}'\nfsync = off\nmax_connections = 100\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.home / "server.log"), "-w", "-t", "60", "start")

    def reload(self) -> None:
        """Read postgresql.conf and pg_hba.conf again, as the server does on SIGHUP."""
        self._run("pg_ctl", "-D", str(self.data), "reload")
        time.sleep(0.5)  # the postmaster applies it asynchronously

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def is_ready(self) -> bool:
        return subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                              timeout=10).returncode == 0

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the private PostgreSQL on port {self.port} does not answer")
            time.sleep(0.2)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """An initialised, running cluster in a temporary folder; stopped and deleted afterwards."""
    home = Path(tempfile.mkdtemp(prefix="toko-pg-"))
    cluster = PrivateCluster(home, free_port())
    try:
        if cluster.prefix:
            shutil.chown(home, "postgres", "postgres")
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            try:
                cluster.stop()
            except (RuntimeError, subprocess.TimeoutExpired):
                cluster.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)
