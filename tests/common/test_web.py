"""The shared factory: envelope, errors, request ids, probes, OpenAPI and offline docs."""
import json

import pytest
from flask import abort

from common.errors import Conflict
from common.paging import CursorCodec


@pytest.fixture
def client(make_client):
    return make_client("item")


def assert_envelope(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"data": {"service": "item", "status": "ok"}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["data"]["database"] == "ok"


def test_unknown_route_and_wrong_method_use_the_envelope(client):
    assert_envelope(client.get("/v1/nothing-here"), 404, "not_found")
    response = client.delete("/healthz")
    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_head_works_where_get_does(client):
    response = client.head("/healthz")
    assert response.status_code == 200 and response.get_data() == b""


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert made and made != "bad id with spaces"
    assert client.get("/nowhere").headers["X-Request-ID"]


def test_openapi_document_and_offline_swagger_ui(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/healthz" in spec["paths"]
    assert {"bearerAuth", "cookieAuth"} <= set(spec["components"]["securitySchemes"])
    page = client.get("/docs/").get_data(as_text=True)
    assert "swagger-ui-bundle.js" in page and "//cdn" not in page and "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert client.get(f"/docs/{asset}").status_code == 200


@pytest.fixture
def app_with_probes(make_client):
    """The factory's error handling, exercised through a throwaway blueprint."""
    from marshmallow import fields

    from common.web import Blueprint, create_app
    from common.web.schemas import StrictSchema

    blp = Blueprint("probe", __name__)

    class Body(StrictSchema):
        n = fields.Integer(required=True)

    @blp.route("/probe", methods=["POST"])
    @blp.arguments(Body)
    def probe(body):
        return {"data": body}

    @blp.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @blp.route("/conflict")
    def conflict():
        raise Conflict("taken", code="already_exists", details={"field": "sku"})

    @blp.route("/teapot")
    def teapot():
        abort(410)

    @blp.route("/every-connection-dropped")
    def every_connection_dropped():
        # A real pool whose every checkout finds the server gone: SQLAlchemy gives up after three.
        from sqlalchemy import event
        from sqlalchemy.exc import DisconnectionError

        from common.db.session import make_engine
        from common.settings import get_settings

        engine = make_engine(get_settings().database_url, pool_size=1)

        def dropped(*_):
            raise DisconnectionError("the server closed the connection")

        event.listen(engine, "checkout", dropped)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()

    @blp.route("/misused-session")
    def misused_session():
        from sqlalchemy.exc import InvalidRequestError

        raise InvalidRequestError("A programming error, not the database")

    app = create_app("item", [blp])
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app.test_client()


def test_malformed_json_is_400(app_with_probes):
    response = app_with_probes.post("/probe", data="{not json", content_type="application/json")
    assert_envelope(response, 400, "bad_request")


def test_other_content_type_is_415(app_with_probes):
    assert_envelope(app_with_probes.post("/probe", data="n=1", content_type="text/plain"), 415,
                    "unsupported_media_type")


def test_wrong_shape_is_422_naming_fields(app_with_probes):
    err = assert_envelope(app_with_probes.post("/probe", json={"n": "x", "extra": 1}), 422, "validation_error")
    assert set(err["details"]["fields"]) == {"n", "extra"}
    err = assert_envelope(app_with_probes.post("/probe", json=[1, 2]), 422, "validation_error")


def test_huge_body_is_413(app_with_probes):
    body = json.dumps({"n": 1, "pad": "x" * (2 * 1024 * 1024)})
    assert_envelope(app_with_probes.post("/probe", data=body, content_type="application/json"), 413,
                    "payload_too_large")


def test_unexpected_error_is_500_with_request_id_only(app_with_probes):
    response = app_with_probes.get("/boom", headers={"X-Request-ID": "req-42"})
    err = assert_envelope(response, 500, "internal_error")
    assert err["details"] == {"request_id": "req-42"}
    assert "secret internals" not in response.get_data(as_text=True)


def test_a_pool_that_finds_every_connection_dropped_is_a_503(app_with_probes):
    response = app_with_probes.get("/every-connection-dropped")
    assert_envelope(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "1"
    assert_envelope(app_with_probes.get("/misused-session"), 500, "internal_error")


def test_domain_errors_keep_their_code(app_with_probes):
    err = assert_envelope(app_with_probes.get("/conflict"), 409, "already_exists")
    assert err["details"] == {"field": "sku"}
    assert_envelope(app_with_probes.get("/teapot"), 410, "gone")


def test_cursor_round_trips_and_rejects_tampering():
    codec = CursorCodec(secret="s")
    token = codec.encode([15000, 42], {"sort": "price"})
    assert codec.decode(token, {"sort": "price"}) == [15000, 42]
    from common.errors import BadRequest
    for bad in (token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], "garbage", "", "%%%"):
        with pytest.raises(BadRequest):
            codec.decode(bad, {"sort": "price"})
    with pytest.raises(BadRequest):
        codec.decode(token, {"sort": "name"})
    with pytest.raises(BadRequest):
        CursorCodec(secret="other").decode(token, {"sort": "price"})


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/healthz")
    client.get("/no/such/path")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'toko_http_requests_total{method="GET",route="/healthz",service="item",status="200"}' in text
    assert 'route="<unmatched>",service="item",status="404"' in text
    assert "toko_http_request_duration_seconds_bucket" in text



def test_metric_labels_stay_bounded_whatever_clients_send(client):
    from prometheus_client import REGISTRY

    def series() -> set:
        return {tuple(sorted(sample.labels.items())) for metric in REGISTRY.collect()
                if metric.name == "toko_http_requests" for sample in metric.samples
                if sample.name == "toko_http_requests_total" and sample.labels["service"] == "item"}

    for n in range(3):
        client.open(f"/made/up/{n}", method=f"FROB{n}")
        client.open("/healthz", method=f"FROB{n}")
        client.get(f"/nowhere/{n}")
    before = series()
    for n in range(3, 300):
        assert_envelope(client.open(f"/made/up/{n}", method=f"FROB{n}"), 405, "method_not_allowed")
        assert_envelope(client.open("/healthz", method=f"FROB{n}"), 405, "method_not_allowed")
        assert_envelope(client.get(f"/nowhere/{n}"), 404, "not_found")
    assert series() == before
    methods = {dict(labels)["method"] for labels in before}
    assert "other" in methods and not any(m.startswith("FROB") for m in methods), methods

@pytest.mark.parametrize("body", ['{"n": "a\\u0000b"}', '{"n": "\\udb6f"}', '{"a\\u0000": 1}'])
def test_text_the_database_cannot_store_is_422(app_with_probes, body):
    err = assert_envelope(app_with_probes.post("/probe", data=body, content_type="application/json"), 422,
                          "validation_error")
    assert err["details"]["fields"] == {"body": ["Contains a character that cannot be stored."]}


def test_nul_in_query_is_422(client):
    assert_envelope(client.get("/healthz?q=a%00b"), 422, "validation_error")


def test_readyz_fails_while_the_schema_is_behind_the_code(client, db_session):
    from sqlalchemy import text

    from common.db.migrate import head_revision

    db_session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    err = assert_envelope(client.get("/readyz"), 503, "schema_out_of_date")
    assert err["details"] == {"database_revision": "0001", "code_revision": head_revision()}
    assert "0001" in err["message"] and head_revision() in err["message"]


def test_the_access_line_is_the_apps_own_unless_toko_nginx_writes_it(make_client, customer, caplog):
    client = make_client("item")
    with caplog.at_level("INFO", logger="toko.access"):
        direct = client.get("/v1/items/999999999", headers={"X-Request-ID": "direct-1", **customer.headers})
    (line,) = [r for r in caplog.records if r.name == "toko.access"]
    assert (line.status, line.route, line.user_id) == (404, "/v1/items/<int:item_id>", None)
    assert not [name for name in direct.headers.keys() if name.startswith("X-Toko-")]

    caplog.clear()
    with caplog.at_level("INFO", logger="toko.access"):
        # gunicorn leaves REMOTE_ADDR empty for a unix-socket peer: the request came through toko's nginx.
        edge = make_client("transaction").get("/v1/transactions", headers=customer.headers,
                                              environ_base={"REMOTE_ADDR": ""})
    assert edge.status_code == 200
    assert [r for r in caplog.records if r.name == "toko.access"] == []
    assert edge.headers["X-Toko-Service"] == "transaction" and edge.headers["X-Toko-Route"] == "/v1/transactions"
    assert edge.headers["X-Toko-User"] == str(customer.id)
