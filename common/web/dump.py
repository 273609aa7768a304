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
    schema.dump = compile_dump(schema)
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
    """One object's dump, or None when the schema does something this does not reproduce."""
    if (schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]
            or type(schema).get_attribute is not ma.Schema.get_attribute
            or type(schema)._serialize is not ma.Schema._serialize):
        return None
    steps = []
    for name, field in schema.dump_fields.items():
        step = _field_step(name, field)
        if step is None:
            return None
        steps.append(step)
    dict_class = schema.dict_class

    def dump(obj):
        out = dict_class()
        for key, get, convert in steps:
            value = get(obj)
            if value is not _MISSING:
                value = convert(value, obj)
                if value is not _MISSING:
                    out[key] = value
        return out

    return dump


def _field_step(name: str, field: fields.Field):
    """(output key, value getter, converter) for one field, or None."""
    if type(field).serialize is not fields.Field.serialize:
        return None
    source = field.attribute if field.attribute is not None else name
    if "." in source and field._CHECK_ATTRIBUTE:
        return None
    key = field.data_key if field.data_key is not None else name
    get = _getter(source, field.dump_default) if field._CHECK_ATTRIBUTE else (lambda obj: None)
    convert = _converter(name, field)
    return None if convert is None else (key, get, convert)


def _getter(key: str, default) -> Callable[[Any], Any]:
    """marshmallow's value lookup (a mapping's key, else the attribute), with the field's dump_default."""

    def get(obj):
        if hasattr(obj, "__getitem__"):
            try:
                value = obj[key]
            except (KeyError, IndexError, TypeError, AttributeError):
                value = getattr(obj, key, _MISSING)
        else:
            value = getattr(obj, key, _MISSING)
        if value is _MISSING:
            value = default() if callable(default) else default
        return value

    return get


def _converter(name: str, field: fields.Field):
    """(value, obj) -> serialized value, exactly as the field's _serialize would give it."""
    kind = type(field)
    if kind is fields.Integer and not field.as_string:
        return lambda value, obj: None if value is None else int(value)
    if kind is fields.String:
        return lambda value, obj: None if value is None else (value if type(value) is str else ensure_text_type(value))
    if kind is fields.Nested and not field.many:
        nested = _nested(field)
        return None if nested is None else (lambda value, obj: None if value is None else nested(value))
    if kind is fields.List and type(field.inner) is fields.Nested and not field.inner.many:
        nested = _nested(field.inner)
        return None if nested is None else (
            lambda value, obj: None if value is None else [None if v is None else nested(v) for v in value])
    # Any other field: its own _serialize, called directly (what Field.serialize does after the lookup).
    serialize = field._serialize
    return lambda value, obj: serialize(value, name, obj)


def _nested(field: fields.Nested) -> Dump | None:
    schema = field.schema
    if schema.many:
        return None
    return _compile(schema)
