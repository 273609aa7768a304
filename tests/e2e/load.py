"""A small bounded background load for operations tests: counts every answer and every failure."""
from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Callable

import requests


class Load:
    """Threads calling `targets` (callables taking a requests.Session and returning a Response) in turn."""

    def __init__(self, targets: list[Callable[[requests.Session], requests.Response]], threads: int = 4,
                 fresh_connections: bool = False, max_seconds: float = 60):
        self.targets, self.threads = targets, threads
        self.fresh_connections, self.max_seconds = fresh_connections, max_seconds
        self.statuses: Counter = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _run(self, offset: int) -> None:
        http = requests.Session()
        deadline = time.monotonic() + self.max_seconds
        i = offset
        while not self._stop.is_set() and time.monotonic() < deadline:
            target = self.targets[i % len(self.targets)]
            i += 1
            if self.fresh_connections:
                http.close()
            try:
                response = target(http)
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code >= 500:
                        self.errors.append(f"{response.status_code} {response.url} {response.text[:200]}")
            except requests.RequestException as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])

    def __enter__(self) -> "Load":
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.total < count and time.monotonic() < deadline:
            time.sleep(0.05)
