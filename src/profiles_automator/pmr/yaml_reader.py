"""Defensive YAML reading that remembers where every value came from.

PyYAML's loaders silently keep the last of two equal keys, expand aliases without
bound and, outside ``SafeLoader``, build Python objects from tags. The PMR is
written by many hands, so we compose the node graph ourselves and refuse all of
that with a message that points at the offending line.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

from profiles_automator.pmr.problems import Location, Problem

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_NODES = 100_000
# A PMR is a few levels deep (profiles[0].plugins[0].spec.x is five); deeper is an
# anchor that contains itself or a mistake, and would exhaust Python's recursion.
MAX_DEPTH = 32
MAX_DEPTH_SHOWN = 6  # of such a path, the part an admin can find the mistake by

Path = tuple[str | int, ...]

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_KEY = re.compile(r"[\w-]+")  # keys shown bare in paths; others are quoted
# libyaml composes about three times faster and reports the same marks; the
# pure-Python loader is the fallback where PyYAML was built without it.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Composer(_SAFE_LOADER):
    """The safe loader, remembering the tag of each distinct plain scalar.

    Resolving a tag runs PyYAML's regular expressions in Python for every scalar,
    though a PMR repeats the same keys and values thousands of times. SafeLoader
    has no path resolvers, so a scalar's tag depends on its text and style alone,
    and a quoted scalar is always a string.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        assert not self.yaml_path_resolvers  # what makes the shortcuts below exact
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        if not implicit[0]:
            return _STR_TAG
        tag = self._plain_tags.get(value)
        if tag is None:
            tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
        return tag


_KIND_NAMES = {
    "list": "a list",
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
}


def format_path(path: Path) -> str:
    """Render ``("profiles", 3, "role")`` as ``profiles[3].role``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += key_text(part) if out else _first_key_text(part)
    return out


def extend_path(text: str, parts: Path) -> str:
    """``format_path((*path, *parts))`` given ``text``, the rendering of ``path``."""
    if not text:
        return format_path(parts)
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else key_text(part)
    return text


@functools.lru_cache(maxsize=4096)  # a PMR uses few distinct keys, in every entry
def key_text(key: str) -> str:
    """How a key after the first is shown in a path: ``.name`` or ``["odd key"]``."""
    return f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{json.dumps(key)}]"


@functools.lru_cache(maxsize=4096)
def _first_key_text(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else f"[{json.dumps(key)}]"


@dataclass
class ParsedYAML:
    """Plain data plus the location of each value (and of each mapping key)."""

    file: str
    data: Any
    # YAML marks, turned into Locations only when asked: most are never needed.
    value_marks: dict[Path, yaml.Mark] = field(default_factory=dict)
    key_marks: dict[Path, yaml.Mark] = field(default_factory=dict)

    def where(self, path: Path, *, key: bool = False) -> Location:
        """The closest known location for a path (walking up to a parent if needed)."""
        marks = self.key_marks if key else self.value_marks
        mark = marks.get(path)  # nearly always there
        if mark is not None:
            return _mark(self.file, mark)
        probe = tuple(path)
        while probe:
            if probe in marks:
                return _mark(self.file, marks[probe])
            if probe in self.value_marks:
                return _mark(self.file, self.value_marks[probe])
            probe = probe[:-1]
        return _mark(self.file, self.value_marks.get(()))


class YAMLReadError(Exception):
    """A file that is not usable YAML; carries one located problem."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


def _mark(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


def _fail(
    file: str, message: str, mark: yaml.Mark | None = None, path: Path = ()
) -> YAMLReadError:
    return YAMLReadError(Problem(_mark(file, mark), format_path(path), message))


def _decode(file: str, content: bytes, max_bytes: int) -> str:
    if len(content) > max_bytes:
        raise YAMLReadError(
            Problem(
                Location(file),
                "",
                f"file is {len(content)} bytes, over the {max_bytes}-byte limit; "
                "split it into several files in a folder",
            )
        )
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = content[: exc.start]
        line = before.count(b"\n") + 1
        line_start = before[before.rfind(b"\n") + 1 :]
        column = len(line_start.decode("utf-8", errors="replace")) + 1
        raise YAMLReadError(
            Problem(
                Location(file, line, column),
                "",
                f"not valid UTF-8 (byte 0x{content[exc.start]:02x}); save the file as UTF-8",
            )
        ) from None


class _Builder:
    """Turns a composed node graph into plain data, enforcing our rules."""

    def __init__(self, file: str, max_nodes: int):
        self.file = file
        self.max_nodes = max_nodes
        self.visited = 0
        self.result = ParsedYAML(file, None)
        self.scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.visited += 1
        if self.visited > self.max_nodes:
            raise self._too_many(node, path)
        self.result.value_marks[path] = node.start_mark
        if node.tag not in _PLAIN_TAGS:
            raise _fail(
                self.file,
                f"tag {node.tag!r} is not allowed; "
                "the PMR holds plain mappings, lists and scalars",
                node.start_mark,
                path,
            )
        if isinstance(node, yaml.CollectionNode):
            if len(path) >= MAX_DEPTH:
                raise _fail(
                    self.file,
                    f"nested more than {MAX_DEPTH} levels deep (an anchor used inside itself?); "
                    "the PMR needs only a few levels: remove the alias or flatten the value",
                    node.start_mark,
                    path[:MAX_DEPTH_SHOWN],
                )
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return self._sequence(cast(yaml.SequenceNode, node), path)
        if node.tag == _STR_TAG:
            return node.value
        return self.scalars.construct_object(node, deep=True)

    def _too_many(self, node: yaml.Node, path: Path) -> YAMLReadError:
        return _fail(
            self.file,
            f"document expands to more than {self.max_nodes} values "
            "(YAML aliases used to inflate it?); simplify the anchors and aliases",
            node.start_mark,
            path,
        )

    def _sequence(self, node: yaml.SequenceNode, path: Path) -> list[Any]:
        out: list[Any] = []
        value_marks = self.result.value_marks
        for index, item in enumerate(node.value):
            child = (*path, index)
            if item.tag == _STR_TAG and type(item) is yaml.ScalarNode:
                # Most values are plain strings: what build() does, without its call.
                self.visited += 1
                if self.visited > self.max_nodes:
                    raise self._too_many(item, child)
                value_marks[child] = item.start_mark
                out.append(item.value)
            else:
                out.append(self.build(item, child))
        return out

    def _pairs(
        self, node: yaml.MappingNode, path: Path, merging: frozenset[int] = frozenset()
    ) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        """Key/value pairs with ``<<`` merge keys expanded; explicit keys win.

        ``merging`` holds the mappings whose merges are being expanded, so that a mapping
        merging itself (through an alias) is refused instead of recursing for ever.
        """
        if id(node) in merging:
            raise _fail(
                self.file,
                "'<<' merges a mapping into itself (through an alias); merge another mapping",
                node.start_mark,
                path,
            )
        merging = merging | {id(node)}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        own: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        raise _fail(
                            self.file, "'<<' must merge a mapping", source.start_mark, path
                        )
                    # The YAML merge spec: mappings earlier in the list win.
                    for pair in self._pairs(source, path, merging):
                        merged.setdefault(pair[0].value, pair)
            else:
                own.append((key_node, value_node))
        own_keys = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
        yield from (pair for key, pair in merged.items() if key not in own_keys)
        yield from own

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        key_marks, value_marks = self.result.key_marks, self.result.value_marks
        visited = self.visited
        for key_node, value_node in node.value:
            if key_node.tag != _STR_TAG or type(key_node) is not yaml.ScalarNode:
                if key_node.tag == _MERGE_TAG:  # rare: start again, expanding merges
                    self.visited = visited
                    return self._merged_mapping(node, path)
                raise self._bad_key(key_node, path)
            key = key_node.value
            child = (*path, key)
            if key in out:
                raise self._duplicate(key, key_marks[child], key_node, child)
            key_marks[child] = key_node.start_mark
            if value_node.tag == _STR_TAG and type(value_node) is yaml.ScalarNode:
                self.visited += 1
                if self.visited > self.max_nodes:
                    raise self._too_many(value_node, child)
                value_marks[child] = value_node.start_mark
                out[key] = value_node.value
            else:
                out[key] = self.build(value_node, child)
        return out

    def _bad_key(self, key_node: yaml.Node, path: Path) -> YAMLReadError:
        return _fail(
            self.file,
            "mapping keys must be plain strings (quote keys such as yes, no, on or 1)",
            key_node.start_mark,
            path,
        )

    def _duplicate(
        self, key: str, first: yaml.Mark, key_node: yaml.Node, child: Path
    ) -> YAMLReadError:
        return _fail(
            self.file,
            f"key {key!r} appears twice in the same mapping (first at line "
            f"{first.line + 1}); YAML keeps only one, so remove the duplicate",
            key_node.start_mark,
            child,
        )

    def _merged_mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, yaml.Mark] = {}
        explicit = {id(k) for k, _ in node.value}
        for key_node, value_node in self._pairs(node, path):
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag != "tag:yaml.org,2002:str"
            ):
                raise _fail(
                    self.file,
                    "mapping keys must be plain strings (quote keys such as yes, no, on or 1)",
                    key_node.start_mark,
                    path,
                )
            key = key_node.value
            child = (*path, key)
            if key in seen and id(key_node) in explicit:
                first = seen[key]
                raise _fail(
                    self.file,
                    f"key {key!r} appears twice in the same mapping (first at line "
                    f"{first.line + 1}); YAML keeps only one, so remove the duplicate",
                    key_node.start_mark,
                    child,
                )
            if id(key_node) in explicit:
                seen[key] = key_node.start_mark
            self.result.key_marks[child] = key_node.start_mark
            out[key] = self.build(value_node, child)
        return out


def _syntax_error(file: str, text: str, first: yaml.YAMLError) -> YAMLReadError:
    """The error as the pure-Python parser words it, or as libyaml did (``first``).

    The pure-Python parser recurses once per nesting level; on input nested deeper
    than Python's recursion limit (which libyaml refuses too) its words are not had.
    """
    try:
        list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        return _described(file, exc)
    except RecursionError:
        pass  # nested deeper than Python recurses: keep libyaml's words
    return _described(file, first)


def _described(file: str, exc: yaml.YAMLError) -> YAMLReadError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return _fail(file, f"invalid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    reason = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.context_mark and exc.problem_mark:
        opened = exc.context_mark
        reason += f" ({exc.context} started at line {opened.line + 1}, column {opened.column + 1})"
    return _fail(file, f"invalid YAML: {reason}", mark)


def _is_empty(node: yaml.Node) -> bool:
    """A bare ``---`` with nothing after it composes to an empty null scalar."""
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and node.value == ""


def read_yaml(
    file: str,
    content: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> ParsedYAML:
    """Parse one PMR file into plain data with locations, or raise YAMLReadError."""
    text = _decode(file, content, max_bytes)
    if "\x00" in text:
        before = text[: text.index("\x00")]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        raise YAMLReadError(
            Problem(Location(file, line, column), "", "contains a NUL character; is it binary?")
        )
    try:
        documents = list(yaml.compose_all(text, Loader=_Composer))
    except yaml.YAMLError as exc:
        # Errors are rare: re-read with the pure-Python parser, whose messages
        # are the same wherever the charm runs, libyaml or not.
        raise _syntax_error(file, text, exc) from None
    documents = [d for d in documents if d is not None and not _is_empty(d)]
    if not documents:
        raise _fail(file, "file is empty; a PMR needs at least a `profiles:` list")
    if len(documents) > 1:
        raise _fail(
            file,
            f"holds {len(documents)} YAML documents separated by '---'; "
            "put each in its own file of the PMR folder",
            documents[1].start_mark,
        )
    builder = _Builder(file, max_nodes)
    builder.result.data = builder.build(documents[0], ())
    if not isinstance(builder.result.data, dict):
        kind = _KIND_NAMES.get(type(builder.result.data).__name__, "a scalar")
        raise _fail(
            file,
            f"the top level must be a mapping with a `profiles:` key, not {kind}",
            documents[0].start_mark,
        )
    return builder.result
