"""The PMR JSON Schema and the translation of its errors into located problems."""

from __future__ import annotations

import datetime
import difflib
import json
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
def _validator() -> jsonschema.Draft202012Validator:
    schema = pmr_schema()
    return jsonschema.Draft202012Validator(_inline_refs(schema, schema["$defs"]))


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
