"""Cluster-wide lists decoded page by page into the compact objects the planner compares.

At 10,000 profiles the four lists return over 200,000 objects, most of whose bytes
(``managedFields``, status, ``last-applied-configuration``) the planner never reads.
Each page is decoded by msgspec into structs that declare only the fields below,
turned into small plain dicts shaped like the Kubernetes objects (so the planner reads
``obj["metadata"]["annotations"]`` as before), and dropped before the next page.
Values that recur across objects (``roleRef``, subjects, policy specs, labels) are
shared, which is safe because observed objects are read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from profiles_automator.sync.kfam import (
    NAMESPACE_OWNER_ANNOTATION,
    PERSONAL_GROUP_ANNOTATION,
    ROLE_ANNOTATION,
    USER_ANNOTATION,
)
from profiles_automator.sync.state import Obj

# Annotations can be large (kubectl's last-applied-configuration is a whole copy of the
# object), so only these are kept; labels are small and kept whole.
KEPT_ANNOTATIONS = frozenset(
    {USER_ANNOTATION, ROLE_ANNOTATION, NAMESPACE_OWNER_ANNOTATION, PERSONAL_GROUP_ANNOTATION}
)


@dataclass(frozen=True)
class KindFields:
    """What is kept of one kind: top-level fields besides metadata, and extra metadata."""

    top: tuple[str, ...] = ()
    metadata: tuple[str, ...] = ()


# The one place that says what the planner (and the stale report) read from each kind.
# Add a field here and to the structs below to observe more.
KEPT_FIELDS: dict[str, KindFields] = {
    "Profile": KindFields(top=("spec",), metadata=("uid", "ownerReferences", "creationTimestamp")),
    "Namespace": KindFields(metadata=("ownerReferences",)),  # adoption: which Profile owns it
    "RoleBinding": KindFields(top=("roleRef", "subjects")),
    "AuthorizationPolicy": KindFields(top=("spec",)),
}


# An empty Raw stands for a field the object does not have (msgspec.Raw cannot be Optional).
_ABSENT = msgspec.Raw()


class _Metadata(msgspec.Struct):
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    uid: str | None = None
    ownerReferences: msgspec.Raw = _ABSENT  # noqa: N815 - the API's field name
    creationTimestamp: str | None = None  # noqa: N815 - the API's field name


class _Item(msgspec.Struct):
    metadata: _Metadata
    spec: msgspec.Raw = _ABSENT
    roleRef: msgspec.Raw = _ABSENT  # noqa: N815 - the API's field name
    subjects: msgspec.Raw = _ABSENT


class _ListMeta(msgspec.Struct):
    continue_: str | None = msgspec.field(default=None, name="continue")
    resourceVersion: str = ""  # noqa: N815 - the API's field name


class _Page(msgspec.Struct):
    items: list[_Item] | None = None
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)


_decode_page = msgspec.json.Decoder(_Page).decode
_decode_value = msgspec.json.decode


class CompactDecoder:
    """Turns list pages into compact objects, sharing equal values across the whole list."""

    def __init__(self, kind: str) -> None:
        self.fields = KEPT_FIELDS[kind]
        self._values: dict[bytes, Any] = {}
        self._maps: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._strings: dict[str, str] = {}
        # The list's resourceVersion (every page of one list has the list's): where a watch
        # started after this list picks up.
        self.resource_version = ""

    def page(self, content: bytes) -> tuple[list[Obj], str | None]:
        """The compact objects of one page and its continue token (None on the last)."""
        page = _decode_page(content)
        self.resource_version = page.metadata.resourceVersion or self.resource_version
        return [self._compact(item) for item in page.items or ()], page.metadata.continue_ or None

    def _compact(self, item: _Item) -> Obj:
        meta = item.metadata
        metadata: Obj = {"name": self._string(meta.name)}
        if meta.namespace is not None:
            metadata["namespace"] = self._string(meta.namespace)
        if meta.labels:
            metadata["labels"] = self._map(meta.labels.items())
        if meta.annotations:
            kept = [(k, v) for k, v in meta.annotations.items() if k in KEPT_ANNOTATIONS]
            if kept:
                metadata["annotations"] = self._map(kept)
        for name in self.fields.metadata:
            value = getattr(meta, name)
            if isinstance(value, msgspec.Raw):
                if len(value):
                    metadata[name] = self._value(value)
            elif value is not None:
                metadata[name] = value
        obj: Obj = {"metadata": metadata}
        for name in self.fields.top:
            raw = getattr(item, name)
            if len(raw):
                obj[name] = self._value(raw)
        return obj

    def _string(self, text: str) -> str:
        return self._strings.setdefault(text, text)

    def _map(self, items: Any) -> dict[str, str]:
        key = tuple(items)
        shared = self._maps.get(key)
        if shared is None:
            shared = self._maps[key] = dict(key)
        return shared

    def _value(self, raw: msgspec.Raw) -> Any:
        key = bytes(raw)
        if key not in self._values:
            self._values[key] = _decode_value(key)
        return self._values[key]


def iter_pages(
    fetch_page: Callable[[str | None], bytes], decoder: CompactDecoder
) -> Iterator[list[Obj]]:
    """Fetch and digest pages one at a time, following continue tokens."""
    token: str | None = None
    while True:
        objects, token = decoder.page(fetch_page(token))
        yield objects
        if token is None:
            return
