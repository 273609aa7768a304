"""flask-smorest, shaped to toko: the contract's error envelope and auth documented with enforcement."""

from __future__ import annotations

import copy
import json

import flask
import flask_smorest
from flask_smorest.utils import resolve_schema_instance

from common.web.auth import SECURITY, login_required
from common.web.body import Parser
from common.web.errors import register_error_handlers
from common.web.fast.dump import compiled
from common.web.fast.load import compiled_load
from common.web.openapi import finish, operation_id
from common.web.schemas import ErrorSchema


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorSchema

    def __init__(self, app=None, *, service: str, **kwargs):
        self.service = service
        self._document_json: str | None = None
        super().__init__(app, **kwargs)

    def _register_error_handlers(self):
        register_error_handlers(self._app)

    def document(self) -> dict:
        """The service's OpenAPI document as served at /openapi.json (a copy of its own)."""
        return json.loads(self._document_text())

    def _document_text(self) -> str:
        # Built on the first read, when every blueprint is registered, and then served as it is.
        # apispec's to_dict hands back its own options (info included): finish works on a copy, or each
        # read would append to the live spec once more.
        if self._document_json is None:
            document = finish(copy.deepcopy(self.spec.to_dict()), self.service)
            self._document_json = self._app.json.dumps(document, indent=2, sort_keys=False)
        return self._document_json

    def _openapi_json(self):
        return flask.current_app.response_class(self._document_text(), mimetype="application/json")


class Blueprint(flask_smorest.Blueprint):
    """A smorest blueprint whose `auth` decorator both enforces and documents the session."""

    ARGUMENTS_PARSER = Parser()

    def add_url_rule(self, rule, endpoint=None, view_func=None, provide_automatic_options=None, **options):
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)
        # Generated clients name their methods after operationIds: listItems, not get_v1_items.
        docs = self._docs[endpoint or view_func.__name__]
        methods = [m for m in options.get("methods", ["GET"])]
        for method in methods:
            if method.lower() in docs:
                docs[method.lower()].setdefault("manual_doc", {}).setdefault(
                    "operationId", operation_id(view_func.__name__, rule, method, methods)
                )

    def arguments(self, schema, *args, **kwargs):
        # webargs builds a new schema from a class on every request; one instance serves them all, and
        # a well-formed body takes its compiled fast path.
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(compiled_load(schema), *args, **kwargs)

    def response(self, status_code, schema=None, **kwargs):
        # The schema documents the response; the dump that serves it is compiled from the same fields.
        if schema is not None and not isinstance(schema, (str, dict)):
            schema = compiled(resolve_schema_instance(schema))
        return super().response(status_code, schema, **kwargs)

    # flask-smorest's documentation decorators each wrap the view in a layer that only calls it (through
    # ensure_sync, an inspection per call): keep the documentation they attach, drop the layer.
    def alt_response(self, *args, **kwargs):
        return _documentation_only(super().alt_response(*args, **kwargs))

    @staticmethod
    def doc(**kwargs):
        return _documentation_only(flask_smorest.Blueprint.doc(**kwargs))

    def auth(self, func=None, *, admin: bool = False):
        def decorator(view):
            view = login_required(admin=admin)(view)
            view = self.doc(security=SECURITY)(view)
            view = self.alt_response(401, schema=ErrorSchema, description="No valid session.")(view)
            if admin:
                view = self.alt_response(403, schema=ErrorSchema, description="Not an admin.")(view)
            return view

        return decorator(func) if func is not None else decorator

    def errors(self, *statuses: int):
        """Document the error statuses a view can answer with (all in the one envelope)."""

        def decorator(view):
            for status in statuses:
                view = self.alt_response(status, schema=ErrorSchema)(view)
            return view

        return decorator


def _documentation_only(decorator):
    """Apply a smorest decorator for the `_apidoc` it builds, and return the view itself, unwrapped."""

    def apply(view):
        view._apidoc = decorator(view)._apidoc
        return view

    return apply
