"""The projector as a real process under faults: killed mid-batch, and its database restarted under it.

Either way nothing is lost and nothing is counted twice: once it has caught up, the projection gives the
shared tables' rows and totals to the rupiah, with no dead letter.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from common.db.migrate import upgrade
from common.db.session import driver_url
from svc_report import projection
from tests.conftest import scratch_database, unique
from tests.e2e.pgcluster import private_cluster, unavailable_reason
from tests.e2e.stack import ROOT
from tests.events.test_projection import Shop

TOKO = str(ROOT / ".venv/bin/toko")


class Projector:
    """`toko worker report_projector` in a process of its own, against one database."""

    def __init__(self, url: str, **env: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOKO_")}
        self.env.update({"DATABASE_URL": url, "TOKO_ENV": "test", "TOKO_LOG_LEVEL": "WARNING",
                         "TOKO_EVENTS_POLL_MS": "200", **env})
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([TOKO, "worker", "report_projector"], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def kill(self) -> None:
        assert self.process is not None and self.process.poll() is None, "the projector died by itself"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err or ""


def backlog(url: str) -> int:
    """Events in the outbox the projector has not read yet."""
    engine = create_engine(driver_url(url))
    try:
        with engine.connect() as conn:
            return projection.projector().backlog(conn)
    finally:
        engine.dispose()


def position(engine) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT position_tx_id::text, position_seq FROM event_consumers "
                                       "WHERE name = :n"), {"n": projection.CONSUMER}).first() or ())


def moved_on(engine, since: tuple, timeout: float = 20) -> tuple:
    """The projector's position once it has moved past `since` (it is at work: a kill now lands in a batch)."""
    deadline = time.monotonic() + timeout
    while (now := position(engine)) == since:
        assert time.monotonic() < deadline, "the projector made no progress"
        time.sleep(0.01)
    return now


def caught_up(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (left := backlog(url)) > 0:
        assert time.monotonic() < deadline, f"the projector still has {left} events to read"
        time.sleep(0.2)


def shop_in_the_background(shop: Shop, purchases: int, seed: int) -> threading.Thread:
    """Purchases (some cancelled at once) through the service layer, on a thread of their own."""
    rng = random.Random(seed)

    def run() -> None:
        for n in range(purchases):
            shop.buy(rng.randrange(3), {rng.randrange(3): rng.randint(1, 2)})
            if n % 7 == 3:
                shop.cancel(0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_projector_killed_mid_batch_again_and_again_loses_and_doubles_nothing():
    with scratch_database(unique("toko_faults_")) as url:
        shop = Shop(url)
        with shop.engine.begin() as conn:
            conn.execute(text("UPDATE items SET stock = 100000"))
        # Small batches, each its own transaction: a SIGKILL lands inside one often.
        projector = Projector(url, TOKO_EVENTS_BATCH="5")
        projector.start()
        buying = shop_in_the_background(shop, purchases=600, seed=7)
        kills, seen = 0, position(shop.engine)
        try:
            while buying.is_alive() or kills < 6:
                seen = moved_on(shop.engine, seen)  # wait for it to be at work, then kill it within a batch
                time.sleep(random.uniform(0, 0.02))
                projector.kill()
                kills += 1
                projector.start()
            buying.join()
            caught_up(url)
        finally:
            log = projector.stop()
        assert kills >= 6 and len(shop.bought) > 500, (kills, len(shop.bought))
        shop.assert_sources_agree()
        with shop.engine.connect() as conn:
            applied = conn.execute(text("SELECT count(*) FROM applied_events WHERE consumer = :c"),
                                   {"c": projection.CONSUMER}).scalar_one()
            written = conn.execute(text("SELECT count(*) FROM outbox_events WHERE type LIKE 'transaction.%'"))
            assert applied == written.scalar_one(), log[-2000:]
        shop.engine.dispose()


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_a_projector_reconnects_by_itself_after_its_database_restarts_and_catches_up():
    with private_cluster() as cluster:
        url = f"{cluster.server_url()}/toko"
        admin = create_engine(driver_url(f"{cluster.server_url()}/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE toko"))
        admin.dispose()
        upgrade(url)
        shop = Shop(url)
        with shop.engine.begin() as conn:
            conn.execute(text("UPDATE items SET stock = 100000"))
        projector = Projector(url)
        projector.start()
        try:
            for n in range(40):
                shop.buy(n % 3, {n % 3: 1})
            shop.engine.dispose()
            cluster.stop()  # every connection of the projector dies with the server
            time.sleep(2)
            cluster.start()
            cluster.wait_ready()
            for n in range(40):
                shop.buy(n % 3, {(n + 1) % 3: 2})
            caught_up(url, timeout=60)
            assert projector.process is not None and projector.process.poll() is None, "the projector exited"
        finally:
            log = projector.stop()
        assert len(shop.bought) == 80, log[-2000:]
        shop.assert_sources_agree()
        shop.engine.dispose()
