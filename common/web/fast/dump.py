"""Response schemas compiled into plain functions: the output of `Schema.dump`, at a fraction of its cost.

marshmallow's dump goes through several layers per field (Field.serialize, the schema's accessor,
the value lookup, hooks, per-call option checks); on a one-row response that is a large share of a
request's Python. The schema stays the single description of a response (the OpenAPI document is
generated from it); `compile_dump` only reads its fields once and builds the same result directly.
Field kinds it cannot reproduce exactly make it fall back to `schema.dump` for that schema.
"""

from __future__ import annotations

from typing import Any, Callable

import marshmallow as ma
from marshmallow import fields
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type

_MISSING = ma.missing
Dump = Callable[[Any], Any]
# Every schema instance whose dump was replaced, so the tests can hold each to marshmallow's own.
compiled_schemas: list[ma.Schema] = []


def compiled(schema: ma.Schema) -> ma.Schema:
    """The schema instance with its `dump` replaced by the compiled one (other instances unchanged)."""
    schema.dump = compile_dump(schema)  # type: ignore[method-assign, assignment]  # on this instance only
    compiled_schemas.append(schema)
    return schema


def compile_dump(schema: ma.Schema) -> Dump:
    """A function equal to `schema.dump` (with the schema's own `many`)."""
    one = _compile(schema)
    if one is None:
        return schema.dump
    if schema.many:
        return lambda objs: None if objs is None else [one(obj) for obj in objs]
    return one


def _compile(schema: ma.Schema) -> Dump | None:
    """One object's dump, or None when the schema does something this does not reproduce.

    The dump is generated as Python source: one straight block per field, per kind of object (a plain
    dict, an object without item access such as an ORM instance or a dataclass, anything else), so a
    response costs a few operations per field instead of several calls.
    """
    if (
        schema._hooks[PRE_DUMP]
        or schema._hooks[POST_DUMP]
        or type(schema).get_attribute is not ma.Schema.get_attribute
        or type(schema)._serialize is not ma.Schema._serialize
        or schema.dict_class is not dict
    ):
        return None
    env: dict[str, Any] = {"_M": _MISSING, "_text": ensure_text_type}
    blocks: dict[str, list[str]] = {"dict": [], "attrs": [], "other": []}
    for i, (name, field) in enumerate(schema.dump_fields.items()):
        if type(field).serialize is not fields.Field.serialize:
            return None
        source = field.attribute if field.attribute is not None else name
        if "." in source and field._CHECK_ATTRIBUTE:
            return None
        convert = _conversion(i, name, field, env)
        if convert is None:
            return None
        key = field.data_key if field.data_key is not None else name
        default = field.dump_default
        if default is _MISSING:
            on_missing = []
        else:
            env[f"D{i}"] = default
            on_missing = [f"if v is _M: v = D{i}()" if callable(default) else f"if v is _M: v = D{i}"]
        if not field._CHECK_ATTRIBUTE:
            fetches = {kind: "v = None" for kind in blocks}
        else:
            env[f"G{i}"] = _getter(source)
            by_item = (
                f"v = obj[{source!r}] if {source!r} in obj else getattr(obj, {source!r}, _M)"
                if hasattr(dict, source)
                else f"v = obj.get({source!r}, _M)"
            )
            fetches = {
                "dict": by_item,
                "attrs": f"v = getattr(obj, {source!r}, _M)",
                "other": f"v = G{i}(obj)",
            }
        for kind, lines in blocks.items():
            lines += [
                fetches[kind],
                *on_missing,
                "if v is not _M:",
                *[f"    {c}" for c in convert],
                f"    if v is not _M: out[{key!r}] = v",
            ]
    body = [
        "def dump(obj):",
        "    out = {}",
        "    if type(obj) is dict:",
        *[f"        {line}" for line in blocks["dict"]],
        "    elif not hasattr(obj, '__getitem__'):",
        *[f"        {line}" for line in blocks["attrs"]],
        "    else:",
        *[f"        {line}" for line in blocks["other"]],
        "    return out",
    ]
    exec("\n".join(body), env)  # noqa: S102 - source built above from the schema's own field names only
    return env["dump"]


def _getter(key: str) -> Callable[[Any], Any]:
    """marshmallow's value lookup for any object: a key when it has item access, else the attribute."""

    def get(obj):
        if hasattr(obj, "__getitem__"):
            try:
                return obj[key]
            except (KeyError, IndexError, TypeError, AttributeError):
                pass
        return getattr(obj, key, _MISSING)

    return get


def _conversion(i: int, name: str, field: Any, env: dict) -> list[str] | None:
    """Source lines turning `v` into the field's output exactly as its _serialize would."""
    kind = type(field)
    if kind is fields.Integer and not field.as_string:
        return ["if v is not None and type(v) is not int: v = int(v)"]
    if kind is fields.String:
        return ["if v is not None and type(v) is not str: v = _text(v)"]
    if kind is fields.Nested and not field.many:
        nested = _nested(field)
        if nested is None:
            return None
        env[f"N{i}"] = nested
        return [f"if v is not None: v = N{i}(v)"]
    if kind is fields.List and type(field.inner) is fields.Nested and not field.inner.many:
        nested = _nested(field.inner)
        if nested is None:
            return None
        env[f"N{i}"] = nested
        return [f"if v is not None: v = [None if e is None else N{i}(e) for e in v]"]
    # Any other field: its own _serialize, called directly (what Field.serialize does after the lookup).
    env[f"S{i}"] = field._serialize
    return [f"v = S{i}(v, {name!r}, obj)"]


def _nested(field: fields.Nested) -> Dump | None:
    schema = field.schema
    if schema.many:
        return None
    return _compile(schema)
