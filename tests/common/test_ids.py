"""An id past BIGINT answers like an id that does not exist, whatever the verb."""
from __future__ import annotations

import pytest

from tests.factories import make_account

BIG = 2**63
# Every route of every service with an integer id in its path.
ID_ROUTES = {
    "user": ["/v1/users/{}"],
    "item": ["/v1/items/{}", "/v1/categories/{}", "/v2/items/{}", "/v2/categories/{}/items"],
    "transaction": ["/v1/transactions/{}", "/v1/transactions/{}/confirm"],
    "report": ["/v1/reports/{}", "/v1/reports/{}.csv", "/v1/reports/{}/chart.svg"],
}
VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.parametrize("service", sorted(ID_ROUTES))
def test_an_id_beyond_bigint_answers_as_a_missing_one_for_every_verb(make_client, db_session, service):
    client = make_client(service)
    admin = make_account(db_session, "admin")
    for template in ID_ROUTES[service]:
        for verb in VERBS:
            missing = client.open(template.format(987654321987), method=verb, headers=admin.headers, json={})
            beyond = client.open(template.format(BIG), method=verb, headers=admin.headers, json={})
            huge = client.open(template.format("9" * 40), method=verb, headers=admin.headers, json={})
            expected = missing.status_code if missing.status_code in (404, 405) else 404
            assert (beyond.status_code, huge.status_code) == (expected, expected), (template, verb)
            if verb != "HEAD":
                assert beyond.get_json()["error"]["code"] in ("not_found", "method_not_allowed", "report_not_found")
