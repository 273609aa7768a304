"""Request schemas with a compiled fast path: `Schema.load` of a well-formed body at a fraction of its cost.

marshmallow's load walks several layers per field (the error store, Field.deserialize, per-call option
checks, the validator plumbing); on a small body that is a large share of a request's Python. The
compiled loader accepts only what it can show marshmallow would accept unchanged: a JSON object whose
keys are all known, each value of the exact JSON type its field takes, every validator passing. Anything
else (a missing or unknown key, a value needing conversion, a failed check, an option it does not
reproduce) goes to the schema's own `load`, so every error is marshmallow's, word for word. The schema
stays the one description of a request, and the OpenAPI document is generated from it as before.
"""

from __future__ import annotations

from typing import Any, Callable

import marshmallow as ma
from marshmallow import fields, validate
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

_MISSING = ma.missing
# "Ask marshmallow": the compiled loader cannot vouch for this input.
REFER: Any = object()
Load = Callable[[Any], Any]
# Every schema instance whose load was given a fast path, so the tests can hold each to marshmallow's own.
compiled_load_schemas: list[ma.Schema] = []


def compiled_load(schema: ma.Schema) -> ma.Schema:
    """The schema instance with a compiled fast path in front of its `load` (other instances unchanged)."""
    fast = _compile(schema)
    if fast is not None:
        schema.load = FastLoad(fast, schema.load)  # type: ignore[method-assign]  # on this instance only
        compiled_load_schemas.append(schema)
    return schema


class FastLoad:
    """`Schema.load`: the fast path's answer when it has one, else marshmallow's."""

    __slots__ = ("fast", "marshmallow")

    def __init__(self, fast: Load, marshmallow: Callable[..., Any]):
        self.fast, self.marshmallow = fast, marshmallow

    def __call__(self, data, *, many=None, partial=None, **kwargs):
        # `unknown` needs no care: the fast path takes only bodies whose every key is a field.
        if many is None and partial is None:
            result = self.fast(data)
            if result is not REFER:
                return result
        return self.marshmallow(data, many=many, partial=partial, **kwargs)


def _compile(schema: ma.Schema) -> Load | None:
    """One object's load, or None when the schema does something this does not reproduce."""
    hooks = schema._hooks
    if (
        schema.many
        or schema.partial
        or hooks[PRE_LOAD]
        or hooks[POST_LOAD]
        or hooks[VALIDATES]
        or type(schema)._deserialize is not ma.Schema._deserialize
        or schema.dict_class is not dict
    ):
        return None
    schema_checks = []
    for attr_name, hook_many, options in hooks[VALIDATES_SCHEMA]:
        if hook_many or options.get("pass_original"):
            return None
        schema_checks.append(getattr(schema, attr_name))
    plan = []
    for name, field in schema.load_fields.items():
        attr = field.attribute if field.attribute is not None else name
        if "." in attr:
            return None
        convert = _converter(field)
        if convert is None:
            return None
        key = field.data_key if field.data_key is not None else name
        plan.append((key, attr, field.required, field.load_default, convert))
    keys = frozenset(key for key, *_ in plan)
    unknown = schema.unknown

    def load(data):
        if type(data) is not dict or not keys.issuperset(data):
            return REFER
        out = {}
        for key, attr, required, default, convert in plan:
            value = data.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    return REFER
                if default is not _MISSING:
                    out[attr] = default() if callable(default) else default
                continue
            value = convert(value)
            if value is REFER:
                return REFER
            out[attr] = value
        for check in schema_checks:
            try:
                check(out, partial=schema.partial, many=False, unknown=unknown)
            except ma.ValidationError:
                return REFER
        return out

    return load


def _converter(field: Any) -> Load | None:
    """A function giving the field's loaded value for a present value, or REFER; None if not reproducible."""
    kind = type(field)
    check = _validators(field)
    if kind is fields.Integer:
        exact: Any = int
    elif kind is fields.String:
        exact = str
    elif kind is fields.Boolean and (not field.truthy or (True in field.truthy and False in field.falsy)):
        exact = bool
    elif (
        kind is fields.Nested
        and not field.many
        and field.unknown is None
        and isinstance(field.schema, ma.Schema)
    ):
        nested = _compile(field.schema)
        if nested is None:
            return None
        return _then(nested, check)
    elif kind is fields.List and not isinstance(field.inner, fields.List):
        inner = _converter(field.inner)
        if inner is None:
            return None

        def each(value):
            if type(value) is not list:
                return REFER
            out = [inner(v) for v in value]
            return REFER if REFER in out else out

        return _then(each, check)
    else:
        # Any other field: its own deserialize (conversion and validators), a failure referred.
        def own(value, deserialize=field.deserialize):
            if value is None:
                return REFER
            try:
                return deserialize(value)
            except ma.ValidationError:
                return REFER

        return own

    # JSON's own types arrive as exactly these, and marshmallow keeps them unchanged (bool is not an int).
    def typed(value):
        return value if type(value) is exact else REFER

    return _then(typed, check)


def _then(convert: Load, check: Callable[[Any], bool]) -> Load:
    if check is _ALWAYS:
        return convert

    def checked(value):
        value = convert(value)
        if value is REFER or not check(value):
            return REFER
        return value

    return checked


def _ALWAYS(value) -> bool:
    return True


def _validators(field: fields.Field) -> Callable[[Any], bool]:
    """A predicate: every validator of the field passes."""
    checks: list[Callable[[Any], bool]] = []
    for validator in field.validators:
        if type(validator) is validate.Range:
            checks.append(_range(validator))
        elif type(validator) is validate.Length:
            checks.append(_length(validator))
        else:
            checks.append(_passes(validator))
    if not checks:
        return _ALWAYS
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _range(rule: validate.Range) -> Callable[[Any], bool]:
    lo, hi = rule.min, rule.max
    lo_in, hi_in = rule.min_inclusive, rule.max_inclusive

    def check(value) -> bool:
        if lo is not None and (value < lo if lo_in else value <= lo):
            return False
        return not (hi is not None and (value > hi if hi_in else value >= hi))

    return check


def _length(rule: validate.Length) -> Callable[[Any], bool]:
    lo, hi, equal = rule.min, rule.max, rule.equal

    def check(value) -> bool:
        n = len(value)
        if equal is not None:
            return n == equal
        return not ((lo is not None and n < lo) or (hi is not None and n > hi))

    return check


def _passes(validator: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def check(value) -> bool:
        try:
            return validator(value) is not False
        except ma.ValidationError:
            return False

    return check
