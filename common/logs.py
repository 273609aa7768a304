"""JSON log lines, one per event, carrying the service and (inside a request) the request id."""

from __future__ import annotations

import json
import logging
import sys
import time
from itertools import islice

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_STANDARD = len(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)))


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service
        self._second: tuple[int | None, str] = (
            None,
            "",
        )  # (whole second, its text): one tuple, so threads never see half an update

    def _timestamp(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds and Z; the text of the second is reused within that second."""
        second = int(created)
        cached, text = self._second
        if second != cached:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = _request_id()
        if request_id:
            line["request_id"] = request_id
        # A record's own attributes come first in its __dict__, the `extra` ones after them.
        for key, value in islice(record.__dict__.items(), _STANDARD, None):
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # The standard encoder, not orjson: operators' and tests' searches rely on its `"key": value` spacing.
        return json.dumps(line, default=str)


def _request_id() -> str | None:
    # Only a process that serves HTTP has loaded Flask; the workers log without importing it.
    flask = sys.modules.get("flask")
    if flask is not None and flask.has_request_context():
        return getattr(flask.g, "request_id", None)
    return None


def json_handler(service: str) -> logging.Handler:
    """A handler writing `service`'s JSON lines to stderr, the one configure_logging replaces."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler._toko = True  # type: ignore[attr-defined]
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON (once per process)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_toko", False):
            root.removeHandler(handler)
    root.addHandler(json_handler(service))
    root.setLevel(level)
    # The JSON line carries none of the caller's file or line: skip the stack walk that finds them.
    # Thread and process stay collected (0.6 us a record): another handler's format may name them, and
    # a record without them makes that format fail with a traceback on every line.
    logging._srcfile = None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
