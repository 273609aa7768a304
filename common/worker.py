"""The loop every background worker runs: claim work in short transactions, survive outages, stop cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Callable

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from common.db.session import session_factory
from common.logs import configure_logging
from common.settings import get_settings

log = logging.getLogger("toko.worker")


class Worker:
    """Calls `tick(session)` until stopped; a tick returns how many units of work it did.

    Each tick runs in its own session and transaction: the tick commits what it claims and finishes, so
    a worker killed mid-way leaves every unit either untouched, claimed with a lease that expires, or
    done. When a tick did nothing the loop sleeps `idle_seconds`; when the database is unreachable it
    backs off and tries again instead of dying.
    """

    def __init__(
        self,
        name: str,
        tick: Callable[[Session], int],
        *,
        service: str,
        idle_seconds: float = 1.0,
        max_backoff: float = 10.0,
    ):
        self.name, self.tick, self.service = name, tick, service
        self.idle_seconds, self.max_backoff = idle_seconds, max_backoff
        self.stopping = threading.Event()

    def stop(self, *_args) -> None:
        log.info("worker stopping", extra={"worker": self.name})
        self.stopping.set()

    def idle(self, seconds: float) -> None:
        """Wait `seconds` for more work, or until stopped (a subclass may be woken sooner)."""
        self.stopping.wait(seconds)

    def run_once(self) -> int:
        session = session_factory(self.service)()
        try:
            done = self.tick(session)
            session.commit()
            return done
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("worker started", extra={"worker": self.name})
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                done = self.run_once()
                backoff = 0.5
            except DBAPIError as exc:
                log.warning(
                    "database unavailable, retrying",
                    extra={"worker": self.name, "error": str(exc.orig)[:200]},
                )
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            except Exception:  # noqa: BLE001 - a bug in one unit must not kill the loop
                log.exception("worker tick failed", extra={"worker": self.name})
                self.idle(self.idle_seconds)
                continue
            if not done:
                self.idle(self.idle_seconds)
        log.info("worker stopped", extra={"worker": self.name})


def run_worker(worker: Worker) -> None:
    configure_logging(f"{worker.service}_worker", get_settings().log_level)
    worker.run()
