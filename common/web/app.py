"""The one app factory every service uses."""

from __future__ import annotations

import logging
import os
import re
import time
from types import FunctionType
from typing import Iterable

from flask import Flask, g, request
from werkzeug.exceptions import MethodNotAllowed

from common.errors import ApiError, NotFound
from common.http import METHODS
from common.ids import is_id
from common.jsontext import unstorable
from common.logs import configure_logging
from common.settings import get_settings
from common.web.api import Api, Blueprint
from common.web.auth import SECURITY_SCHEMES
from common.web.db import end_request, init_db
from common.web.docs import docs_blueprint
from common.web.edge import EdgePrefix, through_edge
from common.web.errors import database_unavailable
from common.web.fast.encoding import OrjsonProvider
from common.web.headers import decorate, preflight
from common.web.health import blp as health_blp
from common.web.metrics import observe, register_metrics

access_log = logging.getLogger("toko.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class _Flask(Flask):
    """Flask, asking once per function rather than on every call whether it is a coroutine."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync: dict = {}

    def ensure_sync(self, func):
        if type(func) is not FunctionType:
            return super().ensure_sync(func)
        try:
            return self._sync[func]
        except KeyError:
            synced = self._sync[func] = super().ensure_sync(func)
            return synced


def create_app(
    service: str,
    blueprints: Iterable[Blueprint] = (),
    *,
    description: str = "",
    public_reads: tuple[str, ...] = (),
) -> Flask:
    """A Flask app for one toko service: envelope, errors, request ids, logs, probes, OpenAPI, docs.

    public_reads: path prefixes whose anonymous GETs answer data anyone may see (the catalogue): when they
    succeed they may be kept a second, with an ETag. A service that has any sends no no-store on anonymous
    reads.
    """
    settings = get_settings()
    configure_logging(service, settings.log_level)
    app = _Flask(f"svc_{service}")
    app.json = OrjsonProvider(app)
    app.config.update(
        API_TITLE=f"toko {service} service",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    init_db(app, service)
    api = Api(
        app,
        service=service,
        spec_kwargs={"info": {"description": description or f"The toko {service} service."}},
    )
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    _register_request_hooks(app, service, public_reads, frozenset(settings.cors_origins))
    register_metrics(app)
    api.register_blueprint(health_blp)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.register_blueprint(docs_blueprint(service))
    app.wsgi_app = EdgePrefix(app.wsgi_app)  # type: ignore[method-assign]  # Flask's middleware idiom
    app.extensions["toko"]["api"] = api
    return app


def _register_request_hooks(
    app: Flask, service: str, public_reads: tuple[str, ...], origins: frozenset
) -> None:
    # These run on every request of every service: the proxies are resolved once per hook.
    @app.before_request
    def _start():
        req, ctx = request._get_current_object(), g._get_current_object()
        ctx.started = time.perf_counter()
        # Request headers are read from the WSGI environ: werkzeug's header lookup raises (and builds) a
        # KeyError for every header a request does not carry.
        incoming = req.environ.get("HTTP_X_REQUEST_ID", "")
        ctx.request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        if req.method not in METHODS:
            # Whatever the path: a made-up method names nothing any route could serve.
            raise MethodNotAllowed()
        if origins and req.method == "OPTIONS":
            answer = preflight(req, origins)
            if answer is not None:
                return answer
        if req.view_args and not all(is_id(v) for v in req.view_args.values() if type(v) is int):
            # Ids are BIGINT: a larger one names nothing, whatever the verb (the database would refuse it).
            raise NotFound()
        if (
            req.method in _BODY_METHODS
            and req.routing_exception is None
            and _has_body(req)
            and not req.is_json
        ):
            raise ApiError("Send the body as application/json.", code="unsupported_media_type", status=415)
        _reject_unstorable_text(req)

    @app.after_request
    def _finish(response):
        req, ctx = request._get_current_object(), g._get_current_object()
        # End the transaction before logging and counting, so a connection lost meanwhile is answered,
        # logged and counted as the 503 it is.
        engine, failure = end_request(ctx)
        if failure is not None:
            response = database_unavailable()
        response.headers.add("X-Request-ID", ctx.get("request_id") or os.urandom(16).hex())
        decorate(response, req, public_reads=public_reads, origins=origins)
        seconds = time.perf_counter() - ctx.get("started", time.perf_counter())
        route = req.url_rule.rule if req.url_rule else None
        if through_edge(req.environ):
            # toko's nginx writes this request's access line (toko/gateway.py) with these, and drops them.
            headers = response.headers
            headers.add("X-Toko-Service", service)
            if route:
                headers.add("X-Toko-Route", route)
            if (user_id := ctx.get("user_id")) is not None:
                headers.add("X-Toko-User", str(user_id))
        else:
            access_log.info(
                "request",
                extra={
                    "method": req.method,
                    "path": req.path,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 2),
                    "user_id": ctx.get("user_id"),
                },
            )
        observe(service, req.method, route, response.status_code, seconds, engine)
        return response


def _reject_unstorable_text(req) -> None:
    bad = (
        [key for key, values in req.args.lists() if unstorable(key) or unstorable(values)]
        if req.query_string
        else []
    )
    # In JSON text a NUL or a lone surrogate can only arrive escaped (a raw one does not parse or decode),
    # so a body without a \u escape needs no walk.
    if req.is_json and _has_body(req) and b"\\u" in req.get_data(cache=True):
        if unstorable(req.get_json(silent=True)):
            bad.append("body")
    if bad:
        raise ApiError(
            "Text must not contain NUL characters or unpaired surrogates.",
            code="validation_error",
            status=422,
            details={"fields": {name: ["Contains a character that cannot be stored."] for name in bad}},
        )


def _has_body(req) -> bool:
    return bool(req.content_length) or req.environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
