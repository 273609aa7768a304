"""The bell: a NOTIFY on CHANNEL soon after events were written, from a small transaction of its own.

Consumers LISTEN and poll besides (TOKO_EVENTS_POLL_MS), so a missed or early ring costs at most one
poll interval. The writer only sets a flag: no round trip, no lock in its transaction. A thread per
process and database rings once per TOKO_EVENTS_BELL_MS however many events were written meanwhile,
by which time the writers have usually committed.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy.engine import Engine

from common.settings import get_settings

# Rung after the writers' commits, never inside them: a NOTIFY takes a database-wide lock at commit,
# which would queue every purchase behind the one committing.
CHANNEL = "toko_events"

log = logging.getLogger("toko.events")
_lock = threading.Lock()
_bells: dict[tuple[int, Engine], "_Bell"] = {}


class _Bell:
    def __init__(self, engine: Engine, delay: float) -> None:
        # The writers' own engine: a ring borrows one of its connections for a moment, so the bell adds
        # no connection to the budget.
        self.engine, self.delay = engine, delay
        self.wanted = threading.Event()
        threading.Thread(target=self._loop, name="toko-events-bell", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self.wanted.wait()
            time.sleep(self.delay)
            self.wanted.clear()
            try:
                self._notify()
            except Exception as exc:  # noqa: BLE001 - the consumers' polling covers a lost ring
                log.warning("events bell failed", extra={"error": type(exc).__name__})

    def _notify(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql(f"NOTIFY {CHANNEL}")
            connection.commit()


def ring_soon(engine: Engine) -> None:
    """Have the consumers of this engine's database woken shortly (after the caller's commit, usually)."""
    delay_ms = get_settings().events_bell_ms
    if not delay_ms:
        return
    # Per process: a thread does not survive gunicorn's fork.
    key = (os.getpid(), engine)
    bell = _bells.get(key)
    if bell is None:
        with _lock:
            bell = _bells.get(key)
            if bell is None:
                bell = _bells[key] = _Bell(engine, delay_ms / 1000)
    bell.wanted.set()
