"""`make run`'s failures, each one clear message and a non-zero exit: a taken port, a second run, a program
that cannot start, a DATABASE_URL where no PostgreSQL answers. Always on free ports, never the defaults."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from tests.conftest import TEST_DATABASE_URL
from tests.e2e.stack import ROOT, free_port, make_stack

TOKO = str(ROOT / ".venv/bin/toko")


@contextmanager
def listener():
    """A port some other program (this test) holds, as a server would."""
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def scratch_home(tmp_path):
    """A folder laid out like a checkout, as tests/e2e/stack.py lays one out."""
    for name in ("supervisord.conf", "gunicorn.conf.py", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def toko(home, env, *args, timeout=60):
    return subprocess.run([TOKO, *args, "-c", str(home / "supervisord.conf")], cwd=home, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_preflight_names_the_taken_port_and_the_program_holding_it(tmp_path, database_url):
    stack = make_stack(scratch_home(tmp_path), database_url)
    with listener() as port:
        result = toko(stack.home, {**stack.env, "TOKO_ITEM_PORT": str(port)}, "preflight")
    assert result.returncode == 1
    assert f"127.0.0.1:{port} (TOKO_ITEM_PORT, for svc_item) is taken by pid {os.getpid()}" in result.stderr
    assert "Traceback" not in result.stderr


def test_preflight_passes_on_free_ports_and_reports_every_taken_one(tmp_path, database_url):
    stack = make_stack(scratch_home(tmp_path), database_url)
    assert toko(stack.home, stack.env, "preflight").returncode == 0
    with listener() as a, listener() as b:
        result = toko(stack.home, {**stack.env, "TOKO_USER_PORT": str(a), "TOKO_GATEWAY_PORT": str(b)},
                      "preflight")
    assert result.returncode == 1
    assert f":{a} (TOKO_USER_PORT" in result.stderr and f":{b} (TOKO_GATEWAY_PORT" in result.stderr


def test_a_second_run_says_toko_is_already_running_and_shows_the_status(stack):
    for command in ("preflight", "supervise"):
        result = toko(stack.home, stack.env, command)
        assert result.returncode == 1
        assert "toko is already running here" in result.stderr
        assert re.search(r"svc_item\s+RUNNING", result.stderr), result.stderr


def test_a_program_that_cannot_start_stops_the_run_with_its_log(tmp_path, database_url):
    """A port taken after the preflight: the program goes FATAL (no restart loop) and the run exits 1."""
    stack = make_stack(scratch_home(tmp_path), database_url, TOKO_WORKERS="1", TOKO_THREADS="2")
    with listener() as port:
        env = {**stack.env, "TOKO_ITEM_PORT": str(port)}
        started = time.monotonic()
        result = toko(stack.home, env, "supervise", timeout=240)
        took = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    failed = re.search(r"^(\w+) could not start \(FATAL\)", out, re.M)
    assert failed and failed.group(1) in ("svc_item", "gateway"), out[-3000:]
    tail = out[failed.end():]
    assert str(port) in tail and ("Address already in use" in tail or "is taken by" in tail)
    assert took < 120, took
    # Everything it started is gone: no program answers and the control socket is closed.
    for other in ("user", "otp", "transaction", "report"):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", stack.ports[other])) != 0
    assert toko(stack.home, env, "preflight").returncode == 0


def _pg_up(url: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([str(ROOT / "scripts/pg-up")], env={**os.environ, "DATABASE_URL": url},
                            capture_output=True, text=True, timeout=60)
    return result, time.monotonic() - started


def test_pg_up_points_at_the_port_where_postgresql_answers():
    real = urlsplit(TEST_DATABASE_URL)
    nothing = free_port()
    result, took = _pg_up(TEST_DATABASE_URL.replace(f":{real.port}/", f":{nothing}/"))
    assert result.returncode == 1 and took < 10, (result.stderr, took)
    assert f"nothing answers at 127.0.0.1:{nothing}" in result.stderr
    assert f"PostgreSQL answers on port(s) {real.port}" in result.stderr


def test_pg_up_reports_a_wrong_url_at_once():
    result, took = _pg_up(TEST_DATABASE_URL.replace("postgresql://", "postgersql://"))
    assert result.returncode == 1 and took < 5
    assert "must be a PostgreSQL URL" in result.stderr and "'postgersql://'" in result.stderr


def test_pg_up_passes_when_postgresql_answers():
    result, _ = _pg_up(TEST_DATABASE_URL)
    assert result.returncode == 0, result.stderr
