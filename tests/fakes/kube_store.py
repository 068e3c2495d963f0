"""In-memory Kubernetes object store that mimics kube-apiserver semantics for tests.

It holds the logic (selectors, patches, server-side apply field ownership, validation,
pagination snapshots, garbage collection) so the HTTP layer in kube_api stays thin.
Stored objects are treated as immutable: every write stores a fresh dict, which lets
LIST pages reuse cached JSON bytes and lets pagination snapshots share objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
import uuid
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec
import yaml

_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


class SelectorError(ValueError):
    """A selector the real server would reject with 400 BadRequest."""


def qualified_name_errors(key: str) -> list[str]:
    """Return the real validation messages for a label/annotation key (empty when valid)."""
    prefix, sep, name = key.rpartition("/")
    errs: list[str] = []
    if sep:
        if not prefix:
            errs.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _SUBDOMAIN_RE.match(prefix):
            errs.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character"
            )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not _NAME_RE.match(name):
        errs.append(QUALIFIED_NAME_MSG)
    return errs


def label_value_errors(value: str) -> list[str]:
    """Return the real validation messages for a label value (empty when valid)."""
    errs: list[str] = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _VALUE_RE.match(value):
        errs.append(LABEL_VALUE_MSG)
    return errs


# ---------------------------------------------------------------------------- label selectors

_SPECIAL = "!(),=<>"
_OPS = {"=": "=", "==": "==", "!=": "!=", "in": "in", "notin": "notin", ">": "gt", "<": "lt"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "id", "op", "!", "(", ")", ",", "end"
    text: str


def _lex(selector: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(selector)
    while i < n:
        ch = selector[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(_Token(ch, ch))
            i += 1
        elif ch in "!=<>":
            two = selector[i : i + 2]
            if two in ("==", "!="):
                tokens.append(_Token("op", two))
                i += 2
            elif ch == "!":
                tokens.append(_Token("!", "!"))
                i += 1
            else:
                tokens.append(_Token("op", ch))
                i += 1
        else:
            j = i
            while j < n and not selector[j].isspace() and selector[j] not in _SPECIAL:
                j += 1
            word = selector[i:j]
            tokens.append(_Token("op" if word in ("in", "notin") else "id", word))
            i = j
    tokens.append(_Token("end", ""))
    return tokens


@dataclass(frozen=True)
class Requirement:
    """One parsed label requirement: key, operator and values."""

    key: str
    op: str  # exists, !exists, =, ==, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, Any]) -> bool:
        """Return whether a label map satisfies the requirement, with the real semantics."""
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!exists":
            return self.key not in labels
        if op in ("=", "==", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if self.key not in labels:
            return False
        try:
            have = int(labels[self.key])
        except (TypeError, ValueError):
            return False
        want = int(self.values[0])
        return have > want if op == "gt" else have < want


class _LabelParser:
    def __init__(self, selector: str) -> None:
        self.tokens = _lex(selector)
        self.pos = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        if tok.kind != "end":
            self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok = self.peek()
            if tok.kind == "end":
                return reqs
            if tok.kind not in ("id", "!"):
                raise SelectorError(
                    f"found '{tok.text}', expected: !, identifier, or 'end of string'"
                )
            reqs.append(self.requirement())
            after = self.take()
            if after.kind == "end":
                return reqs
            if after.kind != ",":
                raise SelectorError(f"found '{after.text}', expected: ',' or 'end of string'")
            if self.peek().kind not in ("id", "!"):
                raise SelectorError(f"found '{self.peek().text}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = False
        if self.peek().kind == "!":
            self.take()
            negated = True
        key_tok = self.take()
        if key_tok.kind != "id":
            raise SelectorError(f"found '{key_tok.text}', expected: identifier")
        key = key_tok.text
        errs = qualified_name_errors(key)
        if errs:
            raise SelectorError(f'key: Invalid value: "{key}": {"; ".join(errs)}')
        nxt = self.peek()
        if nxt.kind in ("end", ","):
            return Requirement(key, "!exists" if negated else "exists")
        if negated:
            raise SelectorError(f"found '{nxt.text}', expected: ',' or 'end of string'")
        op_tok = self.take()
        if op_tok.kind != "op":
            raise SelectorError(f"found '{op_tok.text}', expected: in, notin, =, ==, !=, gt, lt")
        op = _OPS[op_tok.text]
        values = self.set_values() if op in ("in", "notin") else (self.exact_value(),)
        return self.checked(Requirement(key, op, values))

    def exact_value(self) -> str:
        tok = self.peek()
        if tok.kind in ("end", ","):
            return ""
        self.take()
        if tok.kind != "id":
            raise SelectorError(f"found '{tok.text}', expected: identifier")
        return tok.text

    def set_values(self) -> tuple[str, ...]:
        if self.take().kind != "(":
            raise SelectorError("found '', expected: '('")
        if self.peek().kind == ")":
            self.take()
            return ("",)
        values: list[str] = []
        expect_value = True
        while True:
            tok = self.take()
            if tok.kind == ")":
                if expect_value and values:
                    values.append("")
                return tuple(values)
            if tok.kind == "," and not expect_value:
                expect_value = True
            elif tok.kind == "," and expect_value:
                values.append("")
            elif tok.kind == "id" and expect_value:
                values.append(tok.text)
                expect_value = False
            else:
                raise SelectorError(f"found '{tok.text}', expected: ',', ')' or identifier")

    @staticmethod
    def checked(req: Requirement) -> Requirement:
        if req.op in ("in", "notin") and not req.values:
            raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
        if req.op in ("gt", "lt"):
            try:
                int(req.values[0])
            except ValueError:
                raise SelectorError(
                    f"for 'Gt', 'Lt' operators, the value must be an integer: {req.values[0]}"
                ) from None
        for i, value in enumerate(req.values):
            errs = label_value_errors(value)
            if errs:
                raise SelectorError(
                    f'values[{i}][{req.key}]: Invalid value: "{value}": {"; ".join(errs)}'
                )
        return req


def parse_label_selector(selector: str) -> list[Requirement]:
    """Parse a label selector; raise SelectorError with the real server's wording."""
    try:
        return _LabelParser(selector).parse()
    except SelectorError as exc:
        raise SelectorError(f"unable to parse requirement: {exc}") from None


# ---------------------------------------------------------------------------- field selectors


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        cur.append("\\")
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            if ch not in "\\,=!":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: unterminated escape sequence")
    return "".join(out)


def _split_term(term: str) -> tuple[str, str, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
        i += 1
    return None


def parse_field_selector(selector: str, supported: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Parse a field selector into (field, op, value) terms limited to supported fields."""
    terms: list[tuple[str, str, str]] = []
    if not selector.strip():
        return terms
    for raw in _split_unescaped(selector, ","):
        if not raw:
            continue
        split = _split_term(raw)
        if split is None:
            raise SelectorError(f"invalid selector: '{selector}'; can't understand '{raw}'")
        field, op, value = split
        field = field.strip()
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        terms.append((field, "!=" if op == "!=" else "=", _unescape(value)))
    return terms


def field_matcher(
    terms: list[tuple[str, str, str]], getter: Callable[[dict[str, Any], str], str]
) -> Callable[[dict[str, Any]], bool]:
    """Build a predicate over stored objects for parsed field-selector terms."""

    def match(obj: dict[str, Any]) -> bool:
        for name, op, value in terms:
            have = getter(obj, name)
            if (have == value) != (op == "="):
                return False
        return True

    return match


def label_matcher(reqs: list[Requirement]) -> Callable[[dict[str, Any]], bool]:
    """Build a predicate over stored objects for parsed label requirements."""

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req.matches(labels) for req in reqs)

    return match


# ---------------------------------------------------------------------------- errors

REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

DEFAULT_MESSAGES: dict[int, str] = {
    400: "the server rejected our request for an unknown reason",
    401: "Unauthorized",
    403: "forbidden",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    409: "the server reported a conflict",
    410: "the resource requested is no longer available",
    415: "the server does not support the media type of the request body",
    422: "the server rejected our request due to an error in our request",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: an error on the server has prevented the request from "
    "succeeding",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be "
    "processing the request",
}

NOT_FOUND_MESSAGE = DEFAULT_MESSAGES[404]


class ApiStatusError(Exception):
    """An API failure carried as a Kubernetes Status, serialized verbatim by the HTTP layer."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details if details is not None else {}

    def status(self) -> dict[str, Any]:
        """Return the Status body exactly as the real server shapes it."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def status_error(code: int, message: str | None = None, **details: Any) -> ApiStatusError:
    """Build a Status error whose reason follows from the HTTP code, as the real server does."""
    reason = REASONS.get(code, "Unknown")
    text = message if message is not None else DEFAULT_MESSAGES.get(code, f"status {code}")
    return ApiStatusError(code, reason, text, dict(details))


def bad_request(message: str) -> ApiStatusError:
    """Return a 400 BadRequest Status error."""
    return status_error(400, message)


class GoRepr(str):
    """A value already rendered the way Go's %#v prints it in field errors."""

    __slots__ = ()


def _go_value(value: Any) -> str:
    if isinstance(value, GoRepr):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value)


_CAUSE_REASONS = {
    "Invalid": "FieldValueInvalid",
    "Required": "FieldValueRequired",
    "NotSupported": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
}


@dataclass
class FieldError:
    """One validation failure, formatted like k8s.io/apimachinery field.Error."""

    kind: str
    field: str
    value: Any = None
    detail: str = ""
    supported: tuple[str, ...] = ()

    def body(self) -> str:
        """Return the message without the field path (the Status cause message)."""
        if self.kind == "Required":
            return "Required value" + (f": {self.detail}" if self.detail else "")
        if self.kind == "Forbidden":
            return f"Forbidden: {self.detail}"
        if self.kind == "NotSupported":
            opts = ", ".join(f'"{s}"' for s in self.supported)
            return f"Unsupported value: {_go_value(self.value)}: supported values: {opts}"
        return f"Invalid value: {_go_value(self.value)}: {self.detail}"

    def cause(self) -> dict[str, str]:
        """Return the StatusCause entry for details.causes."""
        return {"reason": _CAUSE_REASONS[self.kind], "message": self.body(), "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


# ---------------------------------------------------------------------------- resource types

RBAC_GROUP = "rbac.authorization.k8s.io"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class ResourceType:
    """A served resource; all versions share one storage, the first is the storage version."""

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    namespaced: bool
    crd: bool = False
    name_rule: str = "subdomain"  # "label", "subdomain" or "path"
    status_subresource: bool = False
    field_labels: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """Return the (group, plural) identity used for storage and lookups."""
        return (self.group, self.plural)

    def api_version(self, version: str | None = None) -> str:
        """Return group/version (or the bare version for the core group)."""
        ver = version or self.versions[0]
        return f"{self.group}/{ver}" if self.group else ver

    @property
    def group_resource(self) -> str:
        """Return e.g. rolebindings.rbac.authorization.k8s.io, as in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """Return e.g. RoleBinding.rbac.authorization.k8s.io, as in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        """Return the kind of the LIST envelope."""
        return f"{self.kind}List"

    @property
    def field_selectors(self) -> tuple[str, ...]:
        """Return the field labels the real server accepts in fieldSelector for this kind."""
        return ("metadata.name", "metadata.namespace", *self.field_labels)

    def details(self, name: str | None = None) -> dict[str, Any]:
        """Return Status details naming this resource (kind is the plural, as upstream)."""
        out: dict[str, Any] = {}
        if name is not None:
            out["name"] = name
        if self.group:
            out["group"] = self.group
        out["kind"] = self.plural
        return out


DEFAULT_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        ("v1",),
        "Namespace",
        "namespaces",
        False,
        name_rule="label",
        status_subresource=True,
        field_labels=("status.phase",),
    ),
    ResourceType("", ("v1",), "ServiceAccount", "serviceaccounts", True),
    ResourceType("", ("v1",), "ResourceQuota", "resourcequotas", True, status_subresource=True),
    ResourceType("", ("v1",), "ConfigMap", "configmaps", True),
    ResourceType("", ("v1",), "Secret", "secrets", True, field_labels=("type",)),
    ResourceType(RBAC_GROUP, ("v1",), "RoleBinding", "rolebindings", True, name_rule="path"),
    ResourceType(RBAC_GROUP, ("v1",), "Role", "roles", True, name_rule="path"),
    ResourceType(RBAC_GROUP, ("v1",), "ClusterRole", "clusterroles", False, name_rule="path"),
    ResourceType(
        RBAC_GROUP, ("v1",), "ClusterRoleBinding", "clusterrolebindings", False, name_rule="path"
    ),
    ResourceType(
        "kubeflow.org",
        ("v1", "v1beta1"),
        "Profile",
        "profiles",
        False,
        crd=True,
        name_rule="label",
        status_subresource=True,
    ),
    ResourceType(
        "security.istio.io",
        ("v1beta1", "v1"),
        "AuthorizationPolicy",
        "authorizationpolicies",
        True,
        crd=True,
        status_subresource=True,
    ),
    ResourceType(
        "gateway.networking.k8s.io",
        ("v1",),
        "Gateway",
        "gateways",
        True,
        crd=True,
        status_subresource=True,
    ),
)


def error_not_found(rt: ResourceType, name: str) -> ApiStatusError:
    """Return the real 404 for a missing object."""
    return ApiStatusError(
        404, "NotFound", f'{rt.group_resource} "{name}" not found', rt.details(name)
    )


def error_namespace_missing(namespace: str) -> ApiStatusError:
    """Return the real 404 for writes into a namespace that does not exist."""
    return ApiStatusError(
        404,
        "NotFound",
        f'namespaces "{namespace}" not found',
        {"name": namespace, "kind": "namespaces"},
    )


def error_invalid(rt: ResourceType, name: str, errs: list[FieldError]) -> ApiStatusError:
    """Return the real 422 Invalid with aggregated message and causes."""
    text = str(errs[0]) if len(errs) == 1 else "[" + ", ".join(str(e) for e in errs) + "]"
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [e.cause() for e in errs]
    return ApiStatusError(422, "Invalid", f'{rt.group_kind} "{name}" is invalid: {text}', details)


def error_modified(rt: ResourceType, name: str) -> ApiStatusError:
    """Return the real 409 for a stale resourceVersion precondition."""
    return ApiStatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        rt.details(name),
    )


# ---------------------------------------------------------------------------- helpers

Path = tuple[str, ...]
Key = tuple[str, str]
JSONDict = dict[str, Any]

_MISSING: Any = object()
_SYSTEM_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generateName",
    }
)
_encode = msgspec.json.encode


def clone(value: Any) -> Any:
    """Deep-copy a JSON value (much faster than copy.deepcopy for plain data)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def now_rfc3339() -> str:
    """Return the current time in the RFC3339 'Z' form the API uses."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JSONDict) -> JSONDict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _get_path(obj: Any, path: Path) -> Any:
    cur = obj
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _del_path(obj: JSONDict, path: Path) -> None:
    parents: list[JSONDict] = []
    cur: Any = obj
    for part in path[:-1]:
        if not isinstance(cur, dict) or not isinstance(cur.get(part), dict):
            return
        parents.append(cur)
        cur = cur[part]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # prune maps emptied by the removal, but keep top-level stanzas such as spec
    for depth in range(len(path) - 1, 1, -1):
        holder = _get_path(obj, path[: depth - 1])
        child = holder.get(path[depth - 1]) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and child == {}:
            holder.pop(path[depth - 1], None)
        else:
            break


def _deep_merge(target: JSONDict, src: JSONDict) -> None:
    for k, v in src.items():
        if isinstance(v, dict):
            if not isinstance(target.get(k), dict):
                target[k] = {}
            _deep_merge(target[k], v)
        else:
            target[k] = clone(v)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (null deletes, lists replace)."""
    if not isinstance(patch, dict):
        return clone(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---------------------------------------------------------------------------- JSON patch


class _PatchError(Exception):
    pass


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise _PatchError("path must be a string")
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError(f'invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, tokens: list[str], op: str, raw: str) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict) and tok in cur:
            cur = cur[tok]
        elif isinstance(cur, list) and tok.isdigit() and int(tok) < len(cur):
            cur = cur[int(tok)]
        else:
            raise _PatchError(f'{op} operation does not apply: doc is missing path: "{raw}"')
    return cur


def _jp_get(doc: Any, raw: Any, op: str) -> Any:
    tokens = _pointer(raw)
    if not tokens:
        return doc
    parent = _container(doc, tokens, op, raw)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _PatchError(f'{op} operation does not apply: doc is missing path: "{raw}"')


def _jp_add(doc: Any, raw: Any, value: Any, op: str = "add") -> Any:
    tokens = _pointer(raw)
    if not tokens:
        return value
    parent = _container(doc, tokens, op, raw)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and last == "-":
        parent.append(value)
    elif isinstance(parent, list) and last.isdigit() and int(last) <= len(parent):
        parent.insert(int(last), value)
    else:
        raise _PatchError(f'{op} operation does not apply: doc is missing path: "{raw}"')
    return doc


def _jp_remove(doc: Any, raw: Any, op: str = "remove") -> Any:
    tokens = _pointer(raw)
    if not tokens:
        raise _PatchError(f"{op} operation does not apply: cannot remove the document root")
    _jp_get(doc, raw, op)
    parent = _container(doc, tokens, op, raw)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[int(tokens[-1])]
    return doc


def _jp_step(doc: Any, op: JSONDict) -> Any:
    kind = op.get("op")
    path = op.get("path")
    if kind in ("add", "replace", "test") and "value" not in op:
        raise _PatchError(f"{kind} operation is missing a value")
    if kind == "add":
        return _jp_add(doc, path, clone(op["value"]))
    if kind == "remove":
        return _jp_remove(doc, path)
    if kind == "replace":
        _jp_get(doc, path, "replace")
        if not _pointer(path):
            return clone(op["value"])
        return _jp_add(_jp_remove(doc, path, "replace"), path, clone(op["value"]), "replace")
    if kind in ("move", "copy"):
        value = clone(_jp_get(doc, op.get("from"), kind))
        if kind == "move":
            doc = _jp_remove(doc, op.get("from"), "move")
        return _jp_add(doc, path, value, kind)
    if kind == "test":
        if _jp_get(doc, path, "test") != op["value"]:
            raise _PatchError(f"testing value {path} failed: test failed")
        return doc
    raise _PatchError(f"Unexpected kind: {kind}")


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch; failures become the real server's 422."""
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    out = clone(doc)
    try:
        for op in ops:
            out = _jp_step(out, op)
    except _PatchError as exc:
        raise status_error(
            422, None, causes=[{"reason": "UnexpectedServerResponse", "message": str(exc)}]
        ) from None
    return out


# ---------------------------------------------------------------------------- field ownership


def field_paths(obj: JSONDict, subresource: str = "") -> dict[Path, Any]:
    """Return leaf field paths -> values; maps are granular, lists and scalars atomic."""
    out: dict[Path, Any] = {}
    if subresource == "status":
        if "status" in obj:
            _walk(obj["status"], ("status",), out)
        return out
    for k, v in obj.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        if k == "metadata" and isinstance(v, dict):
            for mk, mv in v.items():
                if mk not in _SYSTEM_META:
                    _walk(mv, ("metadata", mk), out)
            continue
        _walk(v, (k,), out)
    return out


def _walk(value: Any, path: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, (*path, k), out)
    else:
        out[path] = value


class _PathIndex:
    """Answers 'does this path overlap (equal, ancestor or descendant) any indexed path'."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = set(paths)
        self.prefixes = {p[:i] for p in self.paths for i in range(1, len(p) + 1)}

    def overlaps(self, q: Path) -> bool:
        if q in self.prefixes:
            return True
        return any(q[:i] in self.paths for i in range(1, len(q)))


@dataclass
class Managed:
    """One managedFields entry with its field set as a set of paths."""

    manager: str
    operation: str
    api_version: str
    subresource: str = ""
    time: str = ""
    paths: set[Path] = field(default_factory=set)

    @property
    def ident(self) -> tuple[str, str, str]:
        """Return the identity the real server keys managers by."""
        return (self.manager, self.operation, self.subresource)

    def describe(self) -> str:
        """Return how conflict messages name this manager."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def _parse_fields(node: JSONDict, prefix: Path, out: set[Path]) -> None:
    for k, v in node.items():
        if k == ".":
            out.add(prefix)
        elif k.startswith("f:"):
            path = (*prefix, k[2:])
            if isinstance(v, dict) and v:
                _parse_fields(v, path, out)
            else:
                out.add(path)
        elif k[:2] in ("k:", "v:", "i:"):
            out.add(prefix)  # list items: we treat every list as atomic


def render_fields(paths: set[Path]) -> JSONDict:
    """Render a path set as FieldsV1 JSON (f:name nesting, '.' marks owned inner nodes)."""
    root: JSONDict = {}
    for p in sorted(paths):
        node = root
        for part in p:
            node = node.setdefault(f"f:{part}", {})
    for p in paths:
        node = root
        for part in p:
            node = node[f"f:{part}"]
        if node:
            node["."] = {}
    return root


def parse_managed(obj: JSONDict) -> list[Managed]:
    """Read metadata.managedFields into Managed entries (unknown shapes are skipped)."""
    out: list[Managed] = []
    for raw in _meta(obj).get("managedFields") or []:
        if not isinstance(raw, dict):
            continue
        paths: set[Path] = set()
        fields_v1 = raw.get("fieldsV1")
        if isinstance(fields_v1, dict):
            _parse_fields(fields_v1, (), paths)
        out.append(
            Managed(
                manager=str(raw.get("manager", "")),
                operation=str(raw.get("operation", "Update")),
                api_version=str(raw.get("apiVersion", "")),
                subresource=str(raw.get("subresource", "")),
                time=str(raw.get("time", "")),
                paths=paths,
            )
        )
    return out


def render_managed(entries: list[Managed]) -> list[JSONDict]:
    """Write Managed entries back as metadata.managedFields."""
    out: list[JSONDict] = []
    for e in entries:
        if not e.paths:
            continue
        raw: JSONDict = {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
            "time": e.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": render_fields(e.paths),
        }
        if e.subresource:
            raw["subresource"] = e.subresource
        out.append(raw)
    return out


def _entry(entries: list[Managed], ident: tuple[str, str, str], api_version: str) -> Managed:
    for e in entries:
        if e.ident == ident:
            return e
    e = Managed(ident[0], ident[1], api_version, ident[2])
    entries.append(e)
    return e


def track_update(
    entries: list[Managed],
    old: JSONDict,
    new: JSONDict,
    manager: str,
    api_version: str,
    subresource: str = "",
) -> list[Managed]:
    """Give an Update-operation manager the fields it changed, taking them from others."""
    old_paths = field_paths(old, subresource)
    new_paths = field_paths(new, subresource)
    changed = {p for p, v in new_paths.items() if old_paths.get(p, _MISSING) != v}
    touched = changed | (old_paths.keys() - new_paths.keys())
    if touched:
        idx = _PathIndex(touched)
        for e in entries:
            e.paths = {q for q in e.paths if not idx.overlaps(q)}
    if changed:
        mine = _entry(entries, (manager, "Update", subresource), api_version)
        mine.paths |= changed
        mine.time = now_rfc3339()
        mine.api_version = api_version
    return [e for e in entries if e.paths]


def find_conflicts(
    entries: list[Managed],
    live: JSONDict,
    applied: dict[Path, Any],
    manager: str,
    subresource: str,
) -> list[tuple[Managed, Path]]:
    """Return (owner, path) pairs where another manager owns a field applied with a new value."""
    idx = _PathIndex(applied)
    out: list[tuple[Managed, Path]] = []
    for e in entries:
        if e.manager == manager or e.subresource != subresource:
            continue
        for q in sorted(e.paths):
            if idx.overlaps(q) and _differs(live, applied, q):
                out.append((e, q))
    return out


def _differs(live: JSONDict, applied: dict[Path, Any], q: Path) -> bool:
    for i in range(1, len(q) + 1):
        if q[:i] in applied:
            return _get_path(live, q[:i]) != applied[q[:i]]
    current = _get_path(live, q)
    if isinstance(current, dict):
        return False  # owning a map is membership only; the new keys do not clash
    return any(_get_path(live, p) != v for p, v in applied.items() if p[: len(q)] == q)


def conflict_error(conflicts: list[tuple[Managed, Path]]) -> ApiStatusError:
    """Return the real 409 for SSA conflicts, worded like the apply manager does."""

    def path_str(p: Path) -> str:
        return "." + ".".join(p)

    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {e.describe()}",
            "field": path_str(p),
        }
        for e, p in conflicts
    ]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {e.describe()}: {path_str(p)}"
    else:
        grouped: dict[str, list[str]] = {}
        for e, p in conflicts:
            grouped.setdefault(e.describe(), []).append(path_str(p))
        lines: list[str] = []
        for who in sorted(grouped):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {p}" for p in grouped[who])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiStatusError(409, "Conflict", message, {"causes": causes})


# ---------------------------------------------------------------------------- validation

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def name_errors(rule: str, name: str) -> list[str]:
    """Return the real name-validation messages for a naming rule."""
    msgs: list[str] = []
    if rule == "path":
        if name in (".", ".."):
            msgs.append(f"may not be '{name}'")
        msgs.extend(f"may not contain '{ch}'" for ch in "/%" if ch in name)
        return msgs
    limit, regex, text = (
        (63, _LABEL_RE, DNS1123_LABEL_MSG)
        if rule == "label"
        else (253, _SUBDOMAIN_RE, DNS1123_SUBDOMAIN_MSG)
    )
    if len(name) > limit:
        msgs.append(f"must be no more than {limit} characters")
    if not regex.match(name):
        msgs.append(text)
    return msgs


def _meta_errors(meta: JSONDict, skip_label: str = "") -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in (meta.get("labels") or {}).items():
        if key == skip_label:
            continue
        errs.extend(
            FieldError("Invalid", "metadata.labels", key, m) for m in qualified_name_errors(key)
        )
        errs.extend(
            FieldError("Invalid", "metadata.labels", value, m) for m in label_value_errors(value)
        )
    for key in meta.get("annotations") or {}:
        errs.extend(
            FieldError("Invalid", "metadata.annotations", key, m)
            for m in qualified_name_errors(key)
        )
    return errs


def _check_string_map(meta: JSONDict, name: str) -> None:
    value = meta.get(name)
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(
            f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{name} of type "
            "map[string]string"
        )


def _role_ref_repr(ref: Any) -> GoRepr:
    ref = ref if isinstance(ref, dict) else {}
    return GoRepr(
        f"rbac.RoleRef{{APIGroup:{json.dumps(ref.get('apiGroup', ''))}, "
        f"Kind:{json.dumps(ref.get('kind', ''))}, Name:{json.dumps(ref.get('name', ''))}}}"
    )


def _subject_errors(subject: Any, i: int, namespaced: bool) -> list[FieldError]:
    base = f"subjects[{i}]"
    subject = subject if isinstance(subject, dict) else {}
    errs: list[FieldError] = []
    name = subject.get("name") or ""
    kind = subject.get("kind") or ""
    group = subject.get("apiGroup") or ""
    if not name:
        errs.append(FieldError("Required", f"{base}.name"))
    if kind == "ServiceAccount":
        if name:
            errs.extend(
                FieldError("Invalid", f"{base}.name", name, m)
                for m in name_errors("subdomain", name)
            )
        if group:
            errs.append(FieldError("NotSupported", f"{base}.apiGroup", group, supported=("",)))
        if not namespaced and not subject.get("namespace"):
            errs.append(FieldError("Required", f"{base}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            errs.append(
                FieldError("NotSupported", f"{base}.apiGroup", group, supported=(RBAC_GROUP,))
            )
    else:
        errs.append(
            FieldError(
                "NotSupported", f"{base}.kind", kind, supported=("ServiceAccount", "User", "Group")
            )
        )
    return errs


def _binding_errors(rt: ResourceType, obj: JSONDict, old: JSONDict | None) -> list[FieldError]:
    raw_ref = obj.get("roleRef")
    ref: JSONDict = raw_ref if isinstance(raw_ref, dict) else {}
    errs: list[FieldError] = []
    if ref.get("apiGroup", "") != RBAC_GROUP:
        errs.append(
            FieldError(
                "NotSupported",
                "roleRef.apiGroup",
                ref.get("apiGroup", ""),
                supported=(RBAC_GROUP,),
            )
        )
    kinds = ("Role", "ClusterRole") if rt.kind == "RoleBinding" else ("ClusterRole",)
    if ref.get("kind", "") not in kinds:
        errs.append(
            FieldError("NotSupported", "roleRef.kind", ref.get("kind", ""), supported=kinds)
        )
    if not ref.get("name"):
        errs.append(FieldError("Required", "roleRef.name"))
    else:
        errs.extend(
            FieldError("Invalid", "roleRef.name", ref["name"], m)
            for m in name_errors("path", str(ref["name"]))
        )
    subjects = obj.get("subjects") or []
    for i, subject in enumerate(subjects if isinstance(subjects, list) else []):
        errs.extend(_subject_errors(subject, i, rt.namespaced))
    if old is not None and old.get("roleRef") != obj.get("roleRef"):
        errs.append(
            FieldError(
                "Invalid", "roleRef", _role_ref_repr(obj.get("roleRef")), "cannot change roleRef"
            )
        )
    return errs


def validate(rt: ResourceType, obj: JSONDict, old: JSONDict | None) -> list[FieldError]:
    """Return the validation errors the real server would report for this write."""
    meta = _meta(obj)
    errs: list[FieldError] = []
    name = meta.get("name") or ""
    if old is None:
        if not name:
            errs.append(
                FieldError("Required", "metadata.name", detail="name or generateName is required")
            )
        else:
            errs.extend(
                FieldError("Invalid", "metadata.name", name, m)
                for m in name_errors(rt.name_rule, name)
            )
    # the server-set namespace name label is only as valid as the (already checked) name
    auto_label = NAMESPACE_NAME_LABEL if rt.kind == "Namespace" and not rt.group else ""
    errs.extend(_meta_errors(meta, auto_label))
    if rt.group == RBAC_GROUP and rt.kind in ("RoleBinding", "ClusterRoleBinding"):
        errs.extend(_binding_errors(rt, obj, old))
    return errs


def apply_defaults(rt: ResourceType, obj: JSONDict, creating: bool) -> None:
    """Fill server-side defaults the real API adds for these kinds."""
    meta = obj.setdefault("metadata", {})
    if rt.kind == "Namespace" and not rt.group:
        meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta.get("name", "")
        if creating:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
    elif rt.kind == "Secret" and not rt.group:
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        obj.setdefault("type", "Opaque")
    elif rt.group == RBAC_GROUP and rt.kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        for subject in obj.get("subjects") or []:
            if (
                isinstance(subject, dict)
                and not subject.get("apiGroup")
                and subject.get("kind") in ("User", "Group")
            ):
                subject["apiGroup"] = RBAC_GROUP


# ---------------------------------------------------------------------------- storage


class _Entry:
    """A stored object plus its cached JSON renderings (objects are never mutated)."""

    __slots__ = ("cache", "obj")

    def __init__(self, obj: JSONDict) -> None:
        self.obj = obj
        self.cache: dict[tuple[str, bool], bytes] = {}

    def encoded(self, rt: ResourceType, version: str, typed: bool) -> bytes:
        key = (version, typed)
        data = self.cache.get(key)
        if data is None:
            data = _encode(render_object(rt, version, self.obj, typed))
            self.cache[key] = data
        return data


def render_object(rt: ResourceType, version: str, obj: JSONDict, typed: bool = True) -> JSONDict:
    """Return obj as served at version; typed=False drops apiVersion/kind (built-in list items)."""
    out: JSONDict = {"apiVersion": rt.api_version(version), "kind": rt.kind} if typed else {}
    for k, v in obj.items():
        if k not in ("apiVersion", "kind"):
            out[k] = v
    return out


class _Bucket:
    """All objects of one resource: a dict for lookups plus a sorted key list for paging."""

    __slots__ = ("keys", "objs")

    def __init__(self) -> None:
        self.objs: dict[Key, _Entry] = {}
        self.keys: list[Key] = []

    def set(self, key: Key, entry: _Entry) -> None:
        if key not in self.objs:
            if not self.keys or key > self.keys[-1]:
                self.keys.append(key)
            else:
                insort(self.keys, key)
        self.objs[key] = entry

    def pop(self, key: Key) -> _Entry | None:
        entry = self.objs.pop(key, None)
        if entry is not None:
            del self.keys[bisect_left(self.keys, key)]
        return entry

    def scope(self, namespace: str | None) -> list[_Entry]:
        keys = self.keys
        if namespace is not None:
            keys = keys[bisect_left(keys, (namespace,)) : bisect_left(keys, (namespace + "\0",))]
        objs = self.objs
        return [objs[k] for k in keys]


@dataclass
class _Snapshot:
    scope: str
    rv: int
    entries: list[_Entry]


@dataclass(frozen=True)
class _Event:
    """One committed change, kept for watches (etcd's history until compaction)."""

    rv: int
    key: tuple[str, str]
    type: str  # ADDED, MODIFIED or DELETED
    old: JSONDict | None
    new: JSONDict | None


def _watch_line(kind: str, obj: JSONDict) -> bytes:
    return _encode({"type": kind, "object": obj}) + b"\n"


def _expired_event(requested: int, oldest: int) -> bytes:
    """What kube-apiserver's watch cache streams for a compacted resourceVersion."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {requested} ({oldest})",
        "reason": "Expired",
        "code": 410,
    }
    return _watch_line("ERROR", status)


Listener = Callable[[ResourceType, JSONDict | None, JSONDict | None], None]

EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}
UNDELETABLE_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


def object_key(rt: ResourceType, obj: JSONDict) -> Key:
    """Return the storage key (namespace or '', name) of an object."""
    meta = _meta(obj)
    return (meta.get("namespace", "") if rt.namespaced else "", meta.get("name", ""))


def _field_value(obj: JSONDict, name: str) -> str:
    if name == "metadata.name":
        return _meta(obj).get("name", "")
    if name == "metadata.namespace":
        return _meta(obj).get("namespace", "")
    value = _get_path(obj, tuple(name.split(".")))
    return "" if value is _MISSING or value is None else str(value)


def load_body(body: bytes, content_type: str = "application/json") -> Any:
    """Decode a request body as JSON, or YAML when the media type says so."""
    try:
        if "yaml" in content_type:
            try:
                return json.loads(body)
            except ValueError:
                return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"error decoding request body: {exc}") from None


def _expect_object(body: Any) -> JSONDict:
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    meta = body.get("metadata", {})
    if meta is not None and not isinstance(meta, dict):
        raise bad_request(
            "json: cannot unmarshal into Go struct field .metadata of type ObjectMeta"
        )
    for name in ("labels", "annotations"):
        _check_string_map(meta or {}, name)
    return body


class _Watch:
    """One watch request's stream of newline-delimited JSON events."""

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        match: Callable[[JSONDict], bool],
        *,
        timeout: float,
        bookmarks: bool,
    ) -> None:
        self.store, self.rt, self.namespace, self.match = store, rt, namespace, match
        self.render = partial(render_object, rt, version)
        self.timeout, self.bookmarks = timeout, bookmarks
        self.initial: list[JSONDict] = []
        self.cursor = 0

    def _selected(self, obj: JSONDict | None) -> bool:
        if obj is None:
            return False
        in_scope = self.namespace is None or _meta(obj).get("namespace") == self.namespace
        return in_scope and self.match(obj)

    def _line(self, event: _Event) -> bytes | None:
        was, now_in, new = self._selected(event.old), self._selected(event.new), event.new
        if new is None:
            return None
        if event.type == "DELETED":
            return _watch_line("DELETED", self.render(new)) if was else None
        if now_in:
            return _watch_line("MODIFIED" if was else "ADDED", self.render(new))
        if was:
            return _watch_line("DELETED", self.render(new))  # left the selection
        return None

    def _bookmark(self) -> bytes:
        mark = {"apiVersion": self.render({})["apiVersion"], "kind": self.rt.kind}
        return _watch_line("BOOKMARK", {**mark, "metadata": {"resourceVersion": str(self.cursor)}})

    def __iter__(self) -> Iterator[bytes]:
        store = self.store
        for obj in self.initial:
            yield _watch_line("ADDED", self.render(obj))
        deadline = time.monotonic() + self.timeout
        interval = store.BOOKMARK_INTERVAL
        next_bookmark = time.monotonic() + interval
        while True:
            since = self.cursor
            with store.changed:
                batch, newest, lost = store.history_after(self.rt.key, since)
                self.cursor = max(since, newest)
                done = time.monotonic() >= deadline or store.closed
                if not (lost or batch or done):
                    until = min(deadline, next_bookmark) if self.bookmarks else deadline
                    store.changed.wait(max(until - time.monotonic(), 0.0))
            if lost:
                yield _expired_event(since, store.oldest_version)
                return
            lines = (self._line(event) for event in batch)
            yield from (line for line in lines if line is not None)
            if self.bookmarks and time.monotonic() >= next_bookmark:
                yield self._bookmark()
                next_bookmark = time.monotonic() + interval
            if done and not batch:
                return


class Store:
    """Thread-safe in-memory object storage with kube-apiserver semantics.

    Callers from several threads must hold `lock` around compound operations; every
    public method also takes it (it is re-entrant), so single calls are always safe.
    """

    SNAPSHOT_LIMIT = 256
    EVENT_HISTORY = 10000  # committed changes kept for watches, like etcd before compaction
    BOOKMARK_INTERVAL = 1.0  # seconds; kube-apiserver sends one about every minute

    def __init__(self, resources: Iterable[ResourceType] = DEFAULT_RESOURCES) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.listener: Listener | None = None
        self._events: deque[_Event] = deque()
        self.closed = False  # set when the server stops: open watches end
        self._compacted_rv = 0  # events at or below this are gone
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._rv = 0
        self._uids: dict[str, tuple[tuple[str, str], Key]] = {}
        self._dependents: dict[str, set[tuple[tuple[str, str], Key]]] = {}
        self._snapshots: OrderedDict[int, _Snapshot] = OrderedDict()
        self._snapshot_seq = 0
        for rt in resources:
            self.install(rt)

    # ------------------------------------------------------------------ registry

    def install(self, rt: ResourceType) -> None:
        """Serve a resource type (idempotent)."""
        with self.lock:
            self._types[rt.key] = rt
            self._buckets.setdefault(rt.key, _Bucket())

    def uninstall(self, group: str, plural: str) -> None:
        """Stop serving a resource and drop its objects, like deleting a CRD."""
        with self.lock:
            rt = self._types.get((group, plural))
            if rt is None:
                return
            for entry in self._buckets[rt.key].scope(None):
                self._remove(rt, object_key(rt, entry.obj), None)
            del self._types[rt.key]
            del self._buckets[rt.key]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """Return the served resource for a URL triple, or None (-> 404)."""
        rt = self._types.get((group, plural))
        return rt if rt is not None and version in rt.versions else None

    def type_for(self, group: str, plural: str) -> ResourceType | None:
        """Return an installed resource by group and plural."""
        return self._types.get((group, plural))

    def resolve(self, api_version: str, kind: str) -> tuple[ResourceType, str]:
        """Map apiVersion/kind to (resource, version); KeyError when not served."""
        group, _, version = api_version.rpartition("/")
        with self.lock:
            types = list(self._types.values())
        for rt in types:
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt, version
        raise KeyError(f"{api_version}/{kind} is not served (not installed?)")

    @property
    def resource_version(self) -> int:
        """Return the last resourceVersion handed out."""
        return self._rv

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    # ------------------------------------------------------------------ reads

    def get_obj(self, rt: ResourceType, namespace: str | None, name: str) -> JSONDict | None:
        """Return the stored object (shared; do not mutate) or None."""
        with self.lock:
            bucket = self._buckets.get(rt.key)
            entry = bucket.objs.get((namespace or "", name)) if bucket else None
            return entry.obj if entry else None

    def list_objs(self, rt: ResourceType, namespace: str | None = None) -> list[JSONDict]:
        """Return stored objects (shared; do not mutate) sorted by namespace then name."""
        with self.lock:
            bucket = self._buckets.get(rt.key)
            return [e.obj for e in bucket.scope(namespace)] if bucket else []

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> JSONDict:
        obj = self.get_obj(rt, namespace, name)
        if obj is None:
            raise error_not_found(rt, name)
        return obj

    def _namespace_exists(self, namespace: str) -> bool:
        ns_rt = self._types.get(("", "namespaces"))
        return ns_rt is not None and self.get_obj(ns_rt, None, namespace) is not None

    # ------------------------------------------------------------------ LIST

    def list_bytes(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        query: dict[str, str],
        page_size_cap: int | None = None,
    ) -> bytes:
        """Serve a LIST with selectors and limit/continue pagination over a snapshot."""
        with self.lock:
            match = self._matcher(rt, query)
            limit = _parse_limit(query.get("limit"))
            if limit and page_size_cap:
                limit = min(limit, page_size_cap)
            scope = f"{rt.group}/{rt.plural}/{namespace or ''}"
            token = query.get("continue")
            if token:
                snap_id, pos = self._resume(token, scope)
                snap = self._snapshots[snap_id]
                entries, rv = snap.entries, snap.rv
            else:
                snap_id, pos, rv = None, 0, self._rv
                entries = self._buckets[rt.key].scope(namespace)
            page, end = _take_page(entries, pos, limit, match)
            meta: JSONDict = {"resourceVersion": str(rv)}
            if limit and len(page) == limit and end < len(entries):
                if snap_id is None:
                    snap_id = self._save_snapshot(_Snapshot(scope, rv, entries))
                meta["continue"] = _encode_token(
                    snap_id, end, rv, scope, object_key(rt, page[-1].obj)
                )
                if match is None:
                    meta["remainingItemCount"] = len(entries) - end
            return self._list_envelope(rt, version, meta, page)

    def _list_envelope(
        self, rt: ResourceType, version: str, meta: JSONDict, page: list[_Entry]
    ) -> bytes:
        head = _encode(
            {"apiVersion": rt.api_version(version), "kind": rt.list_kind, "metadata": meta}
        )
        items = b",".join(e.encoded(rt, version, rt.crd) for e in page)
        return head[:-1] + b',"items":[' + items + b"]}"

    def _matcher(
        self, rt: ResourceType, query: dict[str, str]
    ) -> Callable[[JSONDict], bool] | None:
        preds: list[Callable[[JSONDict], bool]] = []
        try:
            if query.get("labelSelector"):
                reqs = parse_label_selector(query["labelSelector"])
                if reqs:
                    preds.append(label_matcher(reqs))
            if query.get("fieldSelector"):
                terms = parse_field_selector(query["fieldSelector"], rt.field_selectors)
                if terms:
                    preds.append(field_matcher(terms, _field_value))
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        if not preds:
            return None
        if len(preds) == 1:
            return preds[0]
        return lambda obj: all(p(obj) for p in preds)

    def _save_snapshot(self, snap: _Snapshot) -> int:
        self._snapshot_seq += 1
        self._snapshots[self._snapshot_seq] = snap
        while len(self._snapshots) > self.SNAPSHOT_LIMIT:
            self._snapshots.popitem(last=False)
        return self._snapshot_seq

    def compact(self) -> None:
        """Forget the change history (etcd compaction): older watches get 410 Expired."""
        with self.lock:
            self._events.clear()
            self._compacted_rv = self._rv
            self.changed.notify_all()

    def _record(self, rt: ResourceType, kind: str, old: JSONDict | None, new: JSONDict | None):
        self._events.append(_Event(self._rv, rt.key, kind, old, new))
        while len(self._events) > self.EVENT_HISTORY:
            self._compacted_rv = self._events.popleft().rv
        self.changed.notify_all()

    # ------------------------------------------------------------------ WATCH

    def watch(
        self, rt: ResourceType, version: str, namespace: str | None, query: dict[str, str]
    ) -> Iterator[bytes]:
        """Start a watch as kube-apiserver does; the stream is read outside the lock.

        No resourceVersion (or "0") starts with a synthetic ADDED per existing object;
        a given one streams every change after it, or one ERROR (410 Expired) when
        that history is compacted. Selectors apply to the old and new object, so an
        object leaving the selection is DELETED and one entering it ADDED. BOOKMARKs
        (allowWatchBookmarks) carry only the resourceVersion; timeoutSeconds ends it.
        """
        with self.lock:
            match = self._matcher(rt, query) or (lambda _obj: True)
            requested = query.get("resourceVersion") or "0"
            if not requested.isdigit():
                raise bad_request(f"invalid resource version: {requested!r}")
            watch = _Watch(
                self,
                rt,
                version,
                namespace,
                match,
                timeout=_parse_timeout(query.get("timeoutSeconds")),
                bookmarks=query.get("allowWatchBookmarks") in ("true", "1"),
            )
            start = int(requested)
            if start == 0:
                entries = self._buckets[rt.key].scope(namespace)
                watch.initial = [e.obj for e in entries if match(e.obj)]
                start = self._rv
            watch.cursor = start
        return iter(watch)

    def history_after(self, key: tuple[str, str], cursor: int) -> tuple[list[_Event], int, bool]:
        """Events of one resource after cursor, the newest version, whether some are lost."""
        with self.lock:
            lost = cursor < self._compacted_rv
            return [e for e in self._events if e.rv > cursor and e.key == key], self._rv, lost

    @property
    def oldest_version(self) -> int:
        """The oldest resourceVersion a watch can still start after."""
        return self._compacted_rv + 1

    def expire_snapshots(self) -> None:
        """Forget pagination snapshots so pending continue tokens answer 410 Expired."""
        with self.lock:
            self._snapshots.clear()

    def _resume(self, token: str, scope: str) -> tuple[int, int]:
        try:
            raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
            data = json.loads(raw)
            snap_id, pos, token_scope = int(data["s"]), int(data["p"]), str(data["r"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise bad_request(f"continue key is not valid: {exc}") from None
        if token_scope != scope:
            raise bad_request("continue key is not valid: the token belongs to another list")
        if snap_id not in self._snapshots:
            raise status_error(410, EXPIRED_MESSAGE)
        self._snapshots.move_to_end(snap_id)
        return snap_id, pos

    # ------------------------------------------------------------------ writes

    def create(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        body: Any,
        *,
        manager: str = "unknown",
        dry_run: bool = False,
        entries: list[Managed] | None = None,
    ) -> JSONDict:
        """POST: validate and store a new object; raises ApiStatusError like the server."""
        obj = clone(_expect_object(body))
        _check_type(rt, version, obj)
        meta = obj.setdefault("metadata", {})
        self._place(rt, meta, namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choices("bcdfghjklmnpqrstvwxz2456789", k=5)
            )
        if meta.get("resourceVersion"):
            raise status_error(500, "resourceVersion should not be set on objects to be created")
        with self.lock:
            if rt.namespaced and not self._namespace_exists(namespace or ""):
                raise error_namespace_missing(namespace or "")
            obj.pop("status", None)
            apply_defaults(rt, obj, creating=True)
            errs = validate(rt, obj, None)
            if errs:
                raise error_invalid(rt, meta.get("name", ""), errs)
            if self.get_obj(rt, namespace, meta["name"]) is not None:
                raise ApiStatusError(
                    409,
                    "AlreadyExists",
                    f'{rt.group_resource} "{meta["name"]}" already exists',
                    rt.details(meta["name"]),
                )
            if entries is None:
                entries = track_update([], {}, obj, manager, rt.api_version(version))
            obj["apiVersion"], obj["kind"] = rt.api_version(), rt.kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            _set_managed(meta, entries)
            meta["resourceVersion"] = str(self._rv + 1)
            if not dry_run:
                self._next_rv()
                self._commit(rt, obj, None)
            return obj

    @staticmethod
    def _place(rt: ResourceType, meta: JSONDict, namespace: str | None) -> None:
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)

    def replace(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        manager: str = "unknown",
        subresource: str = "",
        dry_run: bool = False,
    ) -> JSONDict:
        """PUT: replace an existing object (or only its status for the status subresource)."""
        obj = clone(_expect_object(body))
        _check_type(rt, version, obj)
        meta = obj.setdefault("metadata", {})
        _check_name(meta, name)
        self._place(rt, meta, namespace)
        with self.lock:
            old = self._require(rt, namespace, name)
            if subresource == "status":
                new = clone(old)
                _set_status(new, obj)
                new["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            else:
                new = obj
                _set_status(new, old)
            return self._update(rt, version, old, new, manager, subresource, dry_run)

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        content_type: str,
        body: bytes,
        *,
        manager: str = "unknown",
        subresource: str = "",
        dry_run: bool = False,
    ) -> JSONDict:
        """PATCH with JSON, merge or (built-ins only) strategic-merge patch media types."""
        kind = _PATCH_TYPES.get(content_type)
        if kind is None or (kind == "strategic" and rt.crd):
            accepted = [t for t, k in _PATCH_TYPES.items() if not (k == "strategic" and rt.crd)]
            accepted.append("application/apply-patch+yaml")
            raise status_error(
                415,
                "the body of the request was in an unknown format - accepted media types "
                "include: " + ", ".join(accepted),
            )
        doc = load_body(body)
        with self.lock:
            old = self._require(rt, namespace, name)
            if kind == "json":
                patched = json_patch(old, doc)
            elif isinstance(doc, dict):
                patched = clone(merge_patch(old, doc))
            else:
                raise bad_request("the patch must be a JSON object")
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise status_error(422, "the patched object is not a valid object")
            _check_name(patched["metadata"], name)
            if rt.namespaced and patched["metadata"].get("namespace") != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            if subresource == "status":
                new = clone(old)
                _set_status(new, patched)
                new["metadata"]["resourceVersion"] = patched["metadata"].get("resourceVersion")
            else:
                new = patched
                _set_status(new, old)
            return self._update(rt, version, old, new, manager, subresource, dry_run)

    def apply(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        manager: str,
        force: bool = False,
        subresource: str = "",
        dry_run: bool = False,
    ) -> tuple[JSONDict, bool]:
        """Server-side apply; returns (object, created)."""
        cfg = _strip_nulls(clone(_expect_object(body)))
        if not cfg.get("apiVersion") or not cfg.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        _check_type(rt, version, cfg)
        meta = cfg.setdefault("metadata", {})
        _check_name(meta, name)
        self._place(rt, meta, namespace)
        with self.lock:
            old = self.get_obj(rt, namespace, name)
            if old is None:
                if subresource:
                    raise error_not_found(rt, name)
                meta.pop("resourceVersion", None)
                entries = [
                    Managed(
                        manager,
                        "Apply",
                        rt.api_version(version),
                        "",
                        now_rfc3339(),
                        set(field_paths(cfg)),
                    )
                ]
                obj = self.create(rt, version, namespace, cfg, dry_run=dry_run, entries=entries)
                return obj, True
            if meta.get("resourceVersion") and meta["resourceVersion"] != _meta(old).get(
                "resourceVersion"
            ):
                raise error_modified(rt, name)
            new, entries = _merge_apply(rt, version, old, cfg, manager, force, subresource)
            obj = self._update(rt, version, old, new, manager, subresource, dry_run, entries)
            return obj, False

    def _update(
        self,
        rt: ResourceType,
        version: str,
        old: JSONDict,
        new: JSONDict,
        manager: str,
        subresource: str,
        dry_run: bool,
        entries: list[Managed] | None = None,
    ) -> JSONDict:
        old_meta, meta = _meta(old), new.setdefault("metadata", {})
        name = old_meta.get("name", "")
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise error_modified(rt, name)
        for k in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
        new["apiVersion"], new["kind"] = rt.api_version(), rt.kind
        if rt.kind == "Namespace" and not rt.group and "spec" in old:
            new["spec"] = clone(old["spec"])  # spec.finalizers is server-managed
        apply_defaults(rt, new, creating=False)
        errs = validate(rt, new, old)
        if errs:
            raise error_invalid(rt, name, errs)
        if entries is None:
            entries = track_update(
                parse_managed(old), old, new, manager, rt.api_version(version), subresource
            )
        _set_managed(meta, entries)
        if _spec_part(new) != _spec_part(old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if new == old:
            return old
        meta["resourceVersion"] = str(self._rv + 1)
        if not dry_run:
            self._next_rv()
            self._commit(rt, new, old)
        return new

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> JSONDict:
        """DELETE one object (immediately) with garbage collection of its dependents."""
        with self.lock:
            old = self._require(rt, namespace, name)
            if rt.kind == "Namespace" and not rt.group and name in UNDELETABLE_NAMESPACES:
                raise ApiStatusError(
                    403,
                    "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    rt.details(name),
                )
            if not dry_run:
                self._remove(rt, (namespace or "", name), propagation)
            return old

    def delete_collection(
        self, rt: ResourceType, version: str, namespace: str | None, query: dict[str, str]
    ) -> bytes:
        """DELETE on a collection URL: remove every selected object, answer the deleted list."""
        with self.lock:
            match = self._matcher(rt, query)
            victims = [
                e for e in self._buckets[rt.key].scope(namespace) if match is None or match(e.obj)
            ]
            if query.get("dryRun") != "All":
                for e in victims:
                    self._remove(rt, object_key(rt, e.obj), query.get("propagationPolicy"))
            return self._list_envelope(rt, version, {"resourceVersion": str(self._rv)}, victims)

    # ------------------------------------------------------------------ raw access

    def put_raw(self, obj: JSONDict) -> JSONDict:
        """Create or overwrite without validation or field tracking (test arrangement)."""
        rt, _ = self.resolve(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        obj = clone(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ValueError("put() needs metadata.name")
        if rt.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        with self.lock:
            old = self.get_obj(rt, meta.get("namespace"), meta["name"])
            old_meta = _meta(old) if old else {}
            apply_defaults(rt, obj, creating=old is None and "status" not in obj)
            obj["apiVersion"], obj["kind"] = rt.api_version(), rt.kind
            meta.setdefault("uid", old_meta.get("uid") or str(uuid.uuid4()))
            meta.setdefault(
                "creationTimestamp", old_meta.get("creationTimestamp") or now_rfc3339()
            )
            if "generation" not in meta:
                gen = int(old_meta.get("generation") or 0)
                meta["generation"] = (
                    gen + 1 if old is None or _spec_part(old) != _spec_part(obj) else gen
                )
            meta["resourceVersion"] = self._next_rv()
            self._commit(rt, obj, old)
            return obj

    def remove_raw(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        """Delete without HTTP semantics (still cascades, like the cluster would)."""
        with self.lock:
            self._remove(rt, (namespace or "", name), None)

    # ------------------------------------------------------------------ commit / GC

    def _commit(self, rt: ResourceType, obj: JSONDict, old: JSONDict | None) -> None:
        key = object_key(rt, obj)
        self._buckets[rt.key].set(key, _Entry(obj))
        uid = _meta(obj).get("uid", "")
        self._uids[uid] = (rt.key, key)
        for owner in _owner_uids(old) - _owner_uids(obj):
            self._dependents.get(owner, set()).discard((rt.key, key))
        for owner in _owner_uids(obj):
            self._dependents.setdefault(owner, set()).add((rt.key, key))
        self._record(rt, "ADDED" if old is None else "MODIFIED", old, obj)
        if self.listener is not None:
            self.listener(rt, old, obj)

    def _remove(self, rt: ResourceType, key: Key, propagation: str | None) -> JSONDict | None:
        bucket = self._buckets.get(rt.key)
        entry = bucket.pop(key) if bucket else None
        if entry is None:
            return None
        obj = entry.obj
        uid = _meta(obj).get("uid", "")
        self._uids.pop(uid, None)
        self._rv += 1
        for owner in _owner_uids(obj):
            self._dependents.get(owner, set()).discard((rt.key, key))
        gone = {**obj, "metadata": {**_meta(obj), "resourceVersion": str(self._rv)}}
        self._record(rt, "DELETED", obj, gone)
        if self.listener is not None:
            self.listener(rt, obj, None)
        if rt.kind == "Namespace" and not rt.group:
            for other in list(self._types.values()):
                if other.namespaced:
                    for e in self._buckets[other.key].scope(key[1]):
                        self._remove(other, object_key(other, e.obj), propagation)
        dependents = self._dependents.pop(uid, set())
        if propagation != "Orphan":
            for type_key, dep_key in sorted(dependents):
                self._collect(type_key, dep_key)
        return obj

    def _collect(self, type_key: tuple[str, str], key: Key) -> None:
        rt = self._types.get(type_key)
        bucket = self._buckets.get(type_key)
        entry = bucket.objs.get(key) if bucket else None
        if rt is None or entry is None:
            return
        if not any(uid in self._uids for uid in _owner_uids(entry.obj)):
            self._remove(rt, key, None)


# ---------------------------------------------------------------------------- store helpers


def _parse_timeout(value: str | None) -> float:
    """timeoutSeconds; without it kube-apiserver picks 30-60 minutes."""
    if not value:
        return 1800.0
    try:
        seconds = int(value)
    except ValueError:
        raise bad_request(f"invalid timeoutSeconds: {value!r}") from None
    return float(max(seconds, 0))


def _parse_limit(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        limit = int(value)
    except ValueError:
        raise bad_request(f'invalid value for limit: "{value}"') from None
    return limit if limit > 0 else None


def _take_page(
    entries: list[_Entry], pos: int, limit: int | None, match: Callable[[JSONDict], bool] | None
) -> tuple[list[_Entry], int]:
    if match is None:
        end = len(entries) if limit is None else min(len(entries), pos + limit)
        return entries[pos:end], end
    page: list[_Entry] = []
    end = pos
    for end in range(pos, len(entries)):
        if match(entries[end].obj):
            page.append(entries[end])
            if limit is not None and len(page) == limit:
                return page, end + 1
    return page, len(entries)


def _encode_token(snap_id: int, pos: int, rv: int, scope: str, last: Key) -> str:
    data = {
        "v": "meta.k8s.io/v1",
        "rv": rv,
        "start": f"{last[0]}/{last[1]}\0",
        "s": snap_id,
        "p": pos,
        "r": scope,
    }
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _owner_uids(obj: JSONDict | None) -> set[str]:
    if not obj:
        return set()
    refs = _meta(obj).get("ownerReferences") or []
    return {r["uid"] for r in refs if isinstance(r, dict) and r.get("uid")}


def _spec_part(obj: JSONDict) -> JSONDict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _set_status(target: JSONDict, source: JSONDict) -> None:
    if "status" in source:
        target["status"] = clone(source["status"])
    else:
        target.pop("status", None)


def _set_managed(meta: JSONDict, entries: list[Managed]) -> None:
    rendered = render_managed(entries)
    if rendered:
        meta["managedFields"] = rendered
    else:
        meta.pop("managedFields", None)


def _check_type(rt: ResourceType, version: str, obj: JSONDict) -> None:
    expected = rt.api_version(version)
    if obj.get("apiVersion") not in (None, expected):
        raise bad_request(
            f"the API version in the data ({obj['apiVersion']}) does not match the expected API "
            f"version ({expected})"
        )
    if obj.get("kind") not in (None, rt.kind):
        raise bad_request(
            f"the kind in the data ({obj['kind']}) does not match the expected kind ({rt.kind})"
        )


def _check_name(meta: JSONDict, name: str) -> None:
    if meta.get("name") and meta["name"] != name:
        raise bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    meta["name"] = name


def _merge_apply(
    rt: ResourceType,
    version: str,
    old: JSONDict,
    cfg: JSONDict,
    manager: str,
    force: bool,
    subresource: str,
) -> tuple[JSONDict, list[Managed]]:
    """Merge an apply configuration into the live object and update field ownership."""
    applied = field_paths(cfg, subresource)
    entries = parse_managed(old)
    conflicts = find_conflicts(entries, old, applied, manager, subresource)
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e, path in conflicts:
        e.paths.discard(path)
    mine = _entry(entries, (manager, "Apply", subresource), rt.api_version(version))
    others = _PathIndex(p for e in entries if e is not mine for p in e.paths)
    applied_idx = _PathIndex(applied)
    new = clone(old)
    for path in sorted(mine.paths - applied.keys(), key=len, reverse=True):
        if not applied_idx.overlaps(path) and not others.overlaps(path):
            _del_path(new, path)
    if subresource == "status":
        if isinstance(cfg.get("status"), dict):
            _deep_merge(new.setdefault("status", {}), cfg["status"])
    else:
        _merge_main(new, cfg)
    if mine.paths != set(applied) or mine.api_version != rt.api_version(version):
        mine.time = now_rfc3339()
    mine.paths = set(applied)
    mine.api_version = rt.api_version(version)
    return new, [e for e in entries if e.paths]


def _merge_main(new: JSONDict, cfg: JSONDict) -> None:
    for k, v in cfg.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        if k == "metadata":
            meta = new.setdefault("metadata", {})
            _deep_merge(meta, {mk: mv for mk, mv in v.items() if mk not in _SYSTEM_META})
        elif isinstance(v, dict):
            if not isinstance(new.get(k), dict):
                new[k] = {}
            _deep_merge(new[k], v)
        else:
            new[k] = clone(v)
