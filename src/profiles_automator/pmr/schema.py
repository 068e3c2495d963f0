"""The PMR JSON Schema and the translation of its errors into located problems."""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any, cast

import jsonschema

from profiles_automator.pmr.problems import Problem
from profiles_automator.pmr.yaml_reader import ParsedYAML, Path, format_path

_PACKAGE = "profiles_automator.pmr"

_TYPE_NAMES = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


@cache
def pmr_schema() -> dict[str, Any]:
    """The shipped draft 2020-12 schema: the one source of structural truth."""
    text = resources.files(_PACKAGE).joinpath("pmr.schema.json").read_text("utf-8")
    return json.loads(text)


def schema_text() -> str:
    """The schema as shipped, for ``pmr schema`` and editors."""
    return resources.files(_PACKAGE).joinpath("pmr.schema.json").read_text("utf-8")


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every local ``$ref`` replaced by its definition.

    Resolving references dominates validation time for large PMRs; the schema
    has no recursive definitions, so inlining is exact and about twice as fast.
    """
    if isinstance(node, dict):
        if set(node) == {"$ref"} and node["$ref"].startswith("#/$defs/"):
            return _inline_refs(defs[node["$ref"].removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@cache
def _inlined_schema() -> dict[str, Any]:
    schema = pmr_schema()
    return _inline_refs(schema, schema["$defs"])


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_inlined_schema())


Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "x-message", "examples", "default"}
)
_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
}


class _UnsupportedError(Exception):
    """A keyword the fast check does not know: the schema is then always run by jsonschema."""


def _same(value: Any, expected: Any) -> bool:
    """JSON Schema's equality for strings; stricter for the rest (1.0 is not 1 here)."""
    return type(value) is type(expected) and value == expected


def _exact(schema: Any) -> None:  # noqa: C901 - one branch per keyword
    """An ``if`` condition must be decided exactly: a stricter "no" would skip its ``then``."""
    if schema is True:
        return
    if not isinstance(schema, dict):
        raise _UnsupportedError(repr(schema))
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS or keyword in _EXACT_KEYWORDS:
            continue
        if keyword in ("const", "enum"):
            if not all(isinstance(x, str) for x in (arg if keyword == "enum" else [arg])):
                raise _UnsupportedError(f"{keyword} of a non-string in an if")
        elif keyword == "type":
            if {"integer", "number"} & set([arg] if isinstance(arg, str) else arg):
                raise _UnsupportedError("a numeric type in an if")
        elif keyword == "properties":
            for sub in arg.values():
                _exact(sub)
        elif keyword == "allOf":
            for sub in arg:
                _exact(sub)
        else:
            raise _UnsupportedError(f"{keyword} in an if")


_EXACT_KEYWORDS = frozenset(
    {"required", "pattern", "minLength", "maxLength", "minItems", "minProperties", "maxProperties"}
)


def _compile(schema: Any) -> Check:
    """A validity-only check of a schema, never more lenient than jsonschema.

    jsonschema builds a validator object for every node it descends into, which
    made validation most of the load of a 10,000-profile PMR. Whatever this check
    accepts, jsonschema would accept too; whatever it rejects (or cannot compile)
    goes to jsonschema, which finds and describes the errors.
    """
    if schema is True:
        return lambda v: True
    if not isinstance(schema, dict):
        raise _UnsupportedError(repr(schema))
    kind = schema.get("type")
    typed = _TYPED.get(kind) if isinstance(kind, str) else None
    if typed is not None:
        return typed(schema)
    return _all_of(_keywords(schema, ()))


def _keywords(schema: dict[str, Any], handled: tuple[str, ...]) -> list[Check]:
    return [
        _keyword(keyword, arg, schema)
        for keyword, arg in schema.items()
        if keyword not in _ANNOTATIONS and keyword != "then" and keyword not in handled
    ]


def _rest(schema: dict[str, Any], handled: tuple[str, ...]) -> Check | None:
    """The keywords a typed check leaves to others, as one check (None when none are left)."""
    checks = _keywords(schema, handled)
    return _all_of(checks) if checks else None


def _all_of(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check_all(value: Any) -> bool:
        for check in checks:  # noqa: SIM110 - a plain loop is faster than all() here
            if not check(value):
                return False
        return True

    return check_all


# A schema of one type is checked by one function: the PMR's schema is mostly
# mappings of strings, and one call per node instead of one per keyword halves
# the time of the check.
_OBJECT_KEYWORDS = (
    "type",
    "properties",
    "additionalProperties",
    "required",
    "minProperties",
    "maxProperties",
)


def _object(schema: dict[str, Any]) -> Check:
    props = {k: _compile(sub) for k, sub in schema.get("properties", {}).items()}
    additional = schema.get("additionalProperties", True)
    closed = additional is False
    extra = None if isinstance(additional, bool) else _compile(additional)
    known = frozenset(props)
    required = frozenset(schema.get("required", ()))
    low, high = schema.get("minProperties", 0), schema.get("maxProperties")
    rest = _rest(schema, _OBJECT_KEYWORDS)

    def check_object(value: Any) -> bool:
        if type(value) is not dict:
            return False
        if closed and not known.issuperset(value):
            return False
        if not required <= value.keys():
            return False
        if len(value) < low or (high is not None and len(value) > high):
            return False
        for key, item in value.items():
            check = props.get(key, extra)
            if check is not None and not check(item):
                return False
        return rest is None or rest(value)

    return check_object


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_STRING_KEYWORDS = ("type", "pattern", "minLength", "maxLength", "enum", "const")


def _string(schema: dict[str, Any]) -> Check:
    search = re.compile(schema["pattern"]).search if "pattern" in schema else None
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    choices: frozenset[Any] | None = None
    if "enum" in schema or "const" in schema:
        # Only the strings among the choices can match a string.
        choices = frozenset(e for e in schema.get("enum", [schema.get("const")]) if _is_str(e))
        if "enum" in schema and "const" in schema:
            choices &= {schema["const"]} if _is_str(schema["const"]) else set()
    rest = _rest(schema, _STRING_KEYWORDS)

    def check_string(value: Any) -> bool:
        if type(value) is not str:
            return False
        if len(value) < low or (high is not None and len(value) > high):
            return False
        if search is not None and search(value) is None:
            return False
        if choices is not None and value not in choices:
            return False
        return rest is None or rest(value)

    return check_string


_ARRAY_KEYWORDS = ("type", "minItems")  # `items` is the generic keyword's check


def _array(schema: dict[str, Any]) -> Check:
    low = schema.get("minItems", 0)
    rest = _rest(schema, _ARRAY_KEYWORDS)

    def check_array(value: Any) -> bool:
        if type(value) is not list or len(value) < low:
            return False
        return rest is None or rest(value)

    return check_array


_TYPED: dict[str, Callable[[dict[str, Any]], Check]] = {
    "object": _object,
    "string": _string,
    "array": _array,
}


def _keyword(keyword: str, arg: Any, schema: dict[str, Any]) -> Check:  # noqa: C901
    if keyword == "type":
        types = [_TYPES[t] for t in ([arg] if isinstance(arg, str) else arg)]
        if len(types) == 1:
            return types[0]
        return lambda v: any(t(v) for t in types)
    if keyword == "enum":
        if all(isinstance(e, str) for e in arg):
            strings = frozenset(arg)
            return lambda v: type(v) is str and v in strings
        return lambda v: any(_same(v, e) for e in arg)
    if keyword == "const":
        return lambda v: _same(v, arg)
    if keyword == "pattern":
        search = re.compile(arg).search
        return lambda v: not isinstance(v, str) or search(v) is not None
    if keyword in ("minLength", "maxLength", "minItems", "minProperties", "maxProperties"):
        kind = {"L": str, "I": list, "P": dict}[keyword[3]]
        low = keyword.startswith("min")
        return lambda v: not isinstance(v, kind) or (len(v) >= arg if low else len(v) <= arg)
    if keyword == "minimum":
        return lambda v: type(v) not in (int, float) or v >= arg
    if keyword == "required":
        return lambda v: not isinstance(v, dict) or all(k in v for k in arg)
    if keyword == "properties":
        props = {k: _compile(sub) for k, sub in arg.items()}

        def check_properties(value: Any) -> bool:
            if isinstance(value, dict):
                for key, item in value.items():
                    check = props.get(key)
                    if check is not None and not check(item):
                        return False
            return True

        return check_properties
    if keyword == "additionalProperties":
        known = frozenset(schema.get("properties", {}))
        if arg is False:
            return lambda v: not isinstance(v, dict) or known.issuperset(v)
        extra = _compile(arg)
        return lambda v: (
            not isinstance(v, dict) or all(extra(x) for k, x in v.items() if k not in known)
        )
    if keyword == "propertyNames":
        name = _compile(arg)
        return lambda v: not isinstance(v, dict) or all(name(k) for k in v)
    if keyword == "items":
        if "prefixItems" in schema:
            raise _UnsupportedError("prefixItems")
        item = _compile(arg)

        def check_items(value: Any) -> bool:
            if isinstance(value, list):
                for element in value:
                    if not item(element):
                        return False
            return True

        return check_items
    if keyword == "allOf":
        return _all_of([_compile(sub) for sub in arg])
    if keyword == "anyOf":  # monotone: a stricter branch passing means jsonschema's passes
        branches = [_compile(sub) for sub in arg]
        return lambda v: any(branch(v) for branch in branches)
    if keyword == "if":
        _exact(arg)
        condition = _compile(arg)
        then = _compile(schema.get("then", True))
        return lambda v: not condition(v) or then(v)
    raise _UnsupportedError(keyword)


@cache
def _fast_check() -> Check | None:
    try:
        return _compile(_inlined_schema())
    except (_UnsupportedError, KeyError, re.error):
        return None


def _describe(value: Any) -> str:
    if isinstance(value, datetime.date):
        return f"{value.isoformat()} (read as a date: quote it)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _expected_type(schema_type: str | list[str]) -> str:
    names = [schema_type] if isinstance(schema_type, str) else schema_type
    return " or ".join(_TYPE_NAMES.get(n, n) for n in names)


def _unknown_keys(err: jsonschema.ValidationError, parsed: ParsedYAML) -> list[Problem]:
    path: Path = tuple(err.absolute_path)
    schema = cast(dict[str, Any], err.schema)
    allowed = sorted(schema.get("properties", {}))
    problems = []
    for key in cast(dict[str, Any], err.instance):
        if key in allowed:
            continue
        hint = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        message = f"unknown key {key!r}{suggestion}; allowed keys: {', '.join(allowed)}"
        child = (*path, key)
        problems.append(Problem(parsed.where(child, key=True), format_path(child), message))
    return problems


def _message(err: jsonschema.ValidationError) -> str:
    kind = err.validator
    schema = cast(dict[str, Any], err.schema) if isinstance(err.schema, dict) else {}
    if kind == "type":
        expected = _expected_type(cast(str | list[str], err.validator_value))
        return f"expected {expected}, got {_describe(err.instance)}"
    if kind == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return f"missing required key {missing!r}"
    if kind == "enum":
        choices: list[Any] = cast(list[Any], err.validator_value)
        return f"{_describe(err.instance)} is not one of {', '.join(map(str, choices))}"
    if "x-message" in schema:
        if isinstance(err.instance, str | int | float) and kind != "const":
            return f"{_describe(err.instance)} {schema['x-message']}"
        return str(schema["x-message"])
    if kind == "minItems":
        return "must not be empty"
    if kind == "minLength":
        return "must not be empty"
    if kind == "const":
        return f"must be {err.validator_value!r}"
    return err.message


def schema_problems(parsed: ParsedYAML) -> list[Problem]:
    """Every structural error in one parsed file, located at its YAML node."""
    problems: list[Problem] = []
    fast = _fast_check()
    if fast is not None and fast(parsed.data):
        return problems
    errors = list(_validator().iter_errors(parsed.data))
    # A contributor's key count stands for "exactly one of name or group"; an
    # unknown key already explains a wrong count, so do not report it twice.
    with_unknown_keys = {
        tuple(e.absolute_path) for e in errors if e.validator == "additionalProperties"
    }
    for err in errors:
        path: Path = tuple(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            problems.extend(_unknown_keys(err, parsed))
            continue
        if err.validator in ("minProperties", "maxProperties") and path in with_unknown_keys:
            continue
        if "propertyNames" in err.absolute_schema_path and isinstance(err.instance, str):
            key_path = (*path, err.instance)
            message = f"key {_message(err)}"
            problems.append(
                Problem(parsed.where(key_path, key=True), format_path(key_path), message)
            )
            continue
        problems.append(Problem(parsed.where(path), format_path(path), _message(err)))
    return problems
