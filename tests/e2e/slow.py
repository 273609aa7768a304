"""Slow clients (slowloris): many connections that send their headers or body a byte a second.

A bounded harness for the suite and for a manual figure:
    .venv/bin/python -m tests.e2e.slow --port 5003 --port 8080 --connections 200 --seconds 30
holds that many trickling connections against each port (reopening any the server closes) while a
probe asks each port for a page of items every PROBE_INTERVAL, and prints the share answered.
"""
from __future__ import annotations

import argparse
import socket
import threading
import time
from dataclasses import dataclass, field

import requests

PROBE_INTERVAL = 0.25


@dataclass
class SlowClients:
    """`connections` sockets per port, half trickling headers, half a body, one byte per second each."""

    ports: list[int]
    connections: int = 200
    host: str = "127.0.0.1"
    sockets: list = field(default_factory=list)
    reopened: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _open(self, port: int, index: int) -> socket.socket | None:
        try:
            conn = socket.create_connection((self.host, port), timeout=5)
        except OSError:
            return None
        if index % 2:
            start = b"GET /v1/items HTTP/1.1\r\nHost: x\r\nX-Slow: "  # headers that never end
        else:
            start = (b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n{")  # a body that never ends
        try:
            conn.sendall(start)
        except OSError:
            conn.close()
            return None
        conn.setblocking(False)
        return conn

    def start(self) -> "SlowClients":
        for port in self.ports:
            for index in range(self.connections):
                self.sockets.append([port, index, self._open(port, index)])
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for entry in self.sockets:
                port, index, conn = entry
                try:
                    if conn is None:
                        raise OSError
                    conn.send(b"a")
                except OSError:
                    if conn is not None:
                        conn.close()
                    entry[2] = self._open(port, index)
                    self.reopened += 1

    def open_count(self, port: int) -> int:
        return sum(1 for p, _, conn in self.sockets if p == port and conn is not None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for _, _, conn in self.sockets:
            if conn is not None:
                conn.close()

    def __enter__(self) -> "SlowClients":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def probe(urls: dict[str, str], seconds: float, timeout: float = 5.0) -> dict[str, tuple[int, int]]:
    """Ask every url every PROBE_INTERVAL for `seconds` (one thread per url); (answered 200, asked) each."""
    results: dict[str, list[int]] = {name: [0, 0] for name in urls}

    def run(name: str, url: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            began = time.monotonic()
            results[name][1] += 1
            try:
                if requests.get(url, timeout=timeout).status_code == 200:
                    results[name][0] += 1
            except requests.RequestException:
                pass
            time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - began)))

    threads = [threading.Thread(target=run, args=item) for item in urls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: (ok, asked) for name, (ok, asked) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--connections", type=int, default=200, help="per port")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    with SlowClients(args.port, args.connections) as slow:
        time.sleep(2)
        answered = probe({str(p): f"http://127.0.0.1:{p}/v1/items?per_page=1" for p in args.port}, args.seconds)
        held = {p: slow.open_count(p) for p in args.port}
    for port in args.port:
        ok, asked = answered[str(port)]
        print(f":{port}: {ok}/{asked} probes answered ({100 * ok / max(asked, 1):.1f}%) while "
              f"{held[port]} slow connections were open ({args.connections} held, reopened as closed)")
    print(f"slow connections reopened after the server closed them: {slow.reopened}")


if __name__ == "__main__":
    main()
