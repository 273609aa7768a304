"""svc_report's /metrics: the outbox, the projector's backlog and lag, its dead letters."""
from __future__ import annotations

import re

from common.db.session import get_engine, session_factory
from common.events import record
from svc_report import projection
from tests.events.conftest import drain


def gauges(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    found = {}
    for line in response.get_data(as_text=True).splitlines():
        match = re.match(r'^(toko_events_\w+(?:\{consumer="svc_report_projector"\})?) (\S+)$', line)
        if match:
            found[match[1]] = float(match[2])
    return found


def test_the_projector_s_backlog_and_lag_are_gauges_of_the_report_service(make_client):
    client = make_client("report")
    drain(projection.projector(), session_factory())
    with get_engine().begin() as conn:
        record(conn, "item.created", ("item", "0"), {"id": 0})
        conn.exec_driver_sql("SELECT pg_sleep(0.05)")
    behind = gauges(client)
    assert behind["toko_events_up"] == 1 and behind["toko_events_outbox_events"] >= 1
    assert behind['toko_events_consumer_backlog{consumer="svc_report_projector"}'] >= 1
    assert behind['toko_events_consumer_lag_seconds{consumer="svc_report_projector"}'] > 0
    assert 'toko_events_dead_letters{consumer="svc_report_projector"}' in behind
    drain(projection.projector(), session_factory())
    caught_up = gauges(client)
    assert caught_up['toko_events_consumer_backlog{consumer="svc_report_projector"}'] == 0
    assert caught_up['toko_events_consumer_lag_seconds{consumer="svc_report_projector"}'] == 0
