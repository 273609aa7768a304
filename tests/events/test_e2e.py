"""The projection over the real stack: a purchase over HTTP reaches svc_report_projector's projection."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import requests

from tests.factories import committed_account, committed_item

TIMEOUT = 30


def sales(stack, admin, source: str) -> dict:
    today = datetime.now(timezone.utc).date()
    response = requests.get(stack.url("report", "/v1/reports/sales"), headers=admin.headers, timeout=TIMEOUT,
                            params={"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=2)),
                                    "group_by": "user", "source": source})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_purchase_over_http_reaches_the_projection_and_both_sources_agree(stack):
    assert "RUNNING" in stack.ctl("status", "svc_report_projector").stdout
    admin, buyer = committed_account("admin"), committed_account()
    item = committed_item(price=4321, stock=5)
    for quantity in (1, 2):
        response = requests.post(stack.url("transaction", "/v1/transactions"), headers=buyer.headers,
                                 json={"lines": [{"item_id": item, "quantity": quantity}]}, timeout=TIMEOUT)
        assert response.status_code == 201, response.text
    expected = [{"key": buyer.id, "transactions": 2, "quantity": 3, "revenue": 3 * 4321,
                 "username": buyer.username}]
    tables = sales(stack, admin, "tables")
    assert [row for row in tables["data"]["rows"] if row["key"] == buyer.id] == expected
    assert tables["meta"] == {"source": "tables", "lag_seconds": 0}
    deadline = time.monotonic() + TIMEOUT
    while True:
        events = sales(stack, admin, "events")
        mine = [row for row in events["data"]["rows"] if row["key"] == buyer.id]
        if mine == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine == expected, stack.log("svc_report_projector")
    assert events["meta"]["source"] == "events"
