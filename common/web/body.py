"""Parsing request bodies: absurd JSON is a 400, never a crash, whichever path reads the body.

Flask and webargs turn only a JSONDecodeError into a 400: both parse through common.jsontext.loads,
which raises one for JSON nested too deep or a number too long (no request toko serves nests more than
a few levels).
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from common.jsontext import loads


class JSONProvider(DefaultJSONProvider):
    """Flask's request.get_json through `loads`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class Parser(FlaskParser):
    """webargs (flask-smorest's @arguments) through `loads`."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        # The request hooks have parsed the body already (Flask keeps it); parse again only to raise
        # the error a body that did not parse deserves.
        parsed = req.get_json(silent=True)
        if parsed is not None:
            return parsed
        try:
            return loads(req.get_data(cache=True))
        except UnicodeDecodeError as exc:
            raise json.JSONDecodeError(
                f"Bytes decoding error : {exc.reason}", str(exc.object), exc.start
            ) from exc
