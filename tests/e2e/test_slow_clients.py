"""Slow clients cannot close a port: hundreds of connections trickling a byte a second, probes still answered."""
from __future__ import annotations

import time

from tests.e2e.slow import SlowClients, probe

CONNECTIONS = 200  # per port: a service's own port and the gateway, at once
SECONDS = 20


def test_a_service_port_and_the_gateway_keep_answering_under_slow_clients(stack):
    item, gateway = stack.ports["item"], int(stack.env["TOKO_GATEWAY_PORT"])
    with SlowClients([item, gateway], CONNECTIONS) as slow:
        time.sleep(2)  # every slow connection has started its request
        assert slow.open_count(item) == CONNECTIONS and slow.open_count(gateway) == CONNECTIONS
        answered = probe({"item": stack.url("item", "/v1/items?per_page=1"),
                          "gateway": stack.gateway_url("/v1/items?per_page=1")}, SECONDS)
        held = {"item": slow.open_count(item), "gateway": slow.open_count(gateway)}
    for name, (ok, asked) in answered.items():
        assert ok / asked >= 0.95, f"{name}: {ok}/{asked} probes answered under {CONNECTIONS} slow connections"
        assert asked >= 20, (name, asked)
        assert held[name] >= CONNECTIONS * 0.9, (name, held)
