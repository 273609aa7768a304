"""JSON and text checks that need no web framework: a sane parse, and text PostgreSQL can store.

The web layer parses request bodies with these (common/web/body.py); cursors decode with them too.
Python's json raises RecursionError for JSON nested about a thousand deep and a bare ValueError for an
integer over 4,300 digits; neither is a JSONDecodeError. Nesting far below the recursion limit still makes
every recursive walk of the value a hazard, so values deeper than MAX_DEPTH are refused outright.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


def loads(data: str | bytes) -> Any:
    """json.loads, raising JSONDecodeError (a ValueError) for anything it cannot turn into a sane value.

    The error carries the document: webargs takes a JSONDecodeError with an empty one for "no body".
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise json.JSONDecodeError(str(exc).split(":")[0], text, 0) from None
    # Containers can only be that deep when that many brackets exist: skip the walk for ordinary bodies.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, 0)
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in node)
    return deepest


def unstorable(value: Any) -> bool:
    """NUL characters and lone surrogates: valid in JSON and Python, refused by PostgreSQL's text types."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable(v) for v in value)
    return False
