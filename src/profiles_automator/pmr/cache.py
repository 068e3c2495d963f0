"""The validated-model cache: a PMR whose exact content was validated before is not again.

Reading and validating 10,000 profiles costs seconds of CPU on every sync, though
the PMR rarely changes between two. The loader's result is kept in one file, keyed
by a digest of every document (names and bytes), the loader's options and the
engine that validated it (package version, the shipped schema and the ``pmr``
stage's source), so a changed PMR or a new engine never reuses an old result.

The file is JSON (never pickle: loading it must not run code). Its header carries
the key and a SHA-256 of the payload, so a truncated, corrupt or foreign file is
detected, logged and ignored: the PMR is then validated as if there were no cache.
The digest detects accidents, not forgeries; a forger needs write access to the
charm's own directory, which already means running as the charm.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import typing
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from profiles_automator.gc_pause import no_gc_pauses
from profiles_automator.pmr.loader import DocumentLike, LoadResult, load_pmr
from profiles_automator.pmr.model import PMR, EntraProvider, LDAPProvider, freeze
from profiles_automator.pmr.problems import Problem
from profiles_automator.pmr.yaml_reader import DEFAULT_MAX_BYTES, DEFAULT_MAX_NODES

log = logging.getLogger(__name__)

CACHE_FORMAT = "pmr-validated-model/2"
CLI_CACHE_FILE = "validated-pmr.json"  # in the CLI's --cache-dir, beside the fetch cache
_PACKAGE = "profiles_automator"
_DISTRIBUTION = "kubeflow-profiles-automator"


class _Header(msgspec.Struct):
    format: str
    key: str
    payload_sha256: str


_decode_header = msgspec.json.Decoder(_Header).decode
_PROVIDERS = {"entra": EntraProvider, "ldap": LDAPProvider}


class _Provider(msgspec.Struct):
    kind: str
    fields: msgspec.Raw


class _Payload(msgspec.Struct):
    pmr: dict[str, msgspec.Raw]
    providers: dict[str, _Provider]
    warnings: tuple[Problem, ...]


_decode_payload = msgspec.json.Decoder(_Payload).decode


def _decode_result(payload: bytes) -> LoadResult:
    """Rebuild the model field by field (msgspec cannot type a union of dataclasses).

    Each field is decoded straight from its bytes into the model's types, never
    through generic dicts first: at 10,000 profiles that intermediate tree was
    larger than the model.
    """
    data = _decode_payload(payload)
    hints = typing.get_type_hints(PMR)
    fields: dict[str, Any] = {
        field.name: msgspec.json.decode(data.pmr[field.name], type=hints[field.name])
        for field in dataclasses.fields(PMR)
        if field.name in data.pmr and field.name != "identity_providers"
    }
    fields["identity_providers"] = {
        name: msgspec.json.decode(entry.fields, type=_PROVIDERS[entry.kind])
        for name, entry in data.providers.items()
    }
    return LoadResult(PMR(**fields), data.warnings)


def _encode_result(result: LoadResult) -> bytes:
    providers = {
        name: {"kind": provider.kind, "fields": provider}
        for name, provider in result.pmr.identity_providers.items()
    }
    # The providers go beside the model, tagged by kind, so that the model is
    # encoded in one pass (no decode and re-encode of a tree of 10,000 profiles).
    pmr = dataclasses.replace(result.pmr, identity_providers=MappingProxyType({}))
    document = {"pmr": pmr, "providers": providers, "warnings": result.warnings}
    return msgspec.json.encode(document, enc_hook=_plain)


@functools.cache
def engine_fingerprint() -> str:
    """What validated a model: the package version, the schema and the loader's rules."""
    digest = hashlib.sha256()
    try:
        digest.update(importlib.metadata.version(_DISTRIBUTION).encode())
    except importlib.metadata.PackageNotFoundError:  # the charm runs from its src/
        digest.update(b"unpackaged")
    stage = resources.files(_PACKAGE).joinpath("pmr")
    for name in sorted(p.name for p in stage.iterdir() if p.name.endswith((".py", ".json"))):
        digest.update(name.encode() + b"\0" + stage.joinpath(name).read_bytes())
    return digest.hexdigest()


def cache_key(
    documents: Sequence[DocumentLike],
    *,
    protected_namespaces: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> str:
    """Digest of everything a validation depends on; equal keys mean equal results."""
    digest = hashlib.sha256(engine_fingerprint().encode())
    options = {"protected": sorted(protected_namespaces), "bytes": max_bytes, "nodes": max_nodes}
    digest.update(msgspec.json.encode(options))
    for document in documents:
        name, content = document.name.encode(), document.content
        digest.update(b"%d:%s%d:" % (len(name), name, len(content)))
        digest.update(content)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """Msgspec's hook for the model's read-only mappings."""
    if type(value) is MappingProxyType or isinstance(value, Mapping):  # the ABC check is slow
        return dict(value)
    raise NotImplementedError(f"cannot cache a {type(value).__name__}")


def _refrozen(result: LoadResult) -> LoadResult:
    """Decoded mappings are plain dicts; the model hands out read-only ones."""
    pmr = result.pmr
    changes: dict[str, Any] = {
        f.name: MappingProxyType(dict(getattr(pmr, f.name)))
        for f in dataclasses.fields(pmr)
        if isinstance(getattr(pmr, f.name), dict)
    }
    changes["profiles"] = tuple(_frozen_parts(p) for p in pmr.profiles)
    if hasattr(pmr, "personal_profiles"):
        changes["personal_profiles"] = tuple(_frozen_parts(p) for p in pmr.personal_profiles)
    return LoadResult(dataclasses.replace(pmr, **changes), result.warnings)


def _frozen_parts(entry: Any) -> Any:
    return dataclasses.replace(
        entry, resources=freeze(entry.resources), plugins=freeze(entry.plugins)
    )


class ValidatedModelCache:
    """One file holding the last validated model (bounded: a new PMR replaces it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self, key: str) -> LoadResult | None:
        """The cached result for ``key``; None when absent, stale, or unusable (logged)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("ignoring the validated-PMR cache %s: %s", self.path, exc)
            return None
        try:
            head, payload = data.split(b"\n", 1)
            header = _decode_header(head)
            if header.key != key:
                return None  # another PMR or engine (an older format too): a plain miss
            if header.format != CACHE_FORMAT:
                raise ValueError(f"unknown format {header.format!r}")
            if hashlib.sha256(payload).hexdigest() != header.payload_sha256:
                raise ValueError("the payload does not match its digest (truncated or altered)")
            with no_gc_pauses(freeze_survivors=True):  # the model: acyclic, long-lived
                return _refrozen(_decode_result(payload))
        except (ValueError, TypeError, KeyError, msgspec.DecodeError) as exc:
            log.warning("ignoring the validated-PMR cache %s: %s", self.path, exc)
            return None

    def write(self, key: str, result: LoadResult) -> None:
        """Store atomically, readable by the owner only; a failure is logged, not raised."""
        try:
            payload = _encode_result(result)
        except (TypeError, NotImplementedError, msgspec.EncodeError) as exc:
            log.warning("not caching the validated PMR: %s", exc)
            return
        header = _Header(CACHE_FORMAT, key, hashlib.sha256(payload).hexdigest())
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-pmr-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(msgspec.json.encode(header) + b"\n" + payload)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("could not write the validated-PMR cache %s: %s", self.path, exc)


def load_pmr_cached(
    documents: Sequence[DocumentLike],
    cache: ValidatedModelCache | None,
    *,
    protected_namespaces: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> tuple[LoadResult, bool]:
    """``load_pmr`` unless this exact content was validated before; also says which.

    An invalid PMR is never cached: it raises PMRInvalidError each time, as uncached.
    """
    protected = tuple(protected_namespaces)
    options = {"protected_namespaces": protected, "max_bytes": max_bytes, "max_nodes": max_nodes}
    if cache is None:
        return load_pmr(documents, **options), False
    key = cache_key(documents, **options)
    cached = cache.read(key)
    if cached is not None:
        return cached, True
    result = load_pmr(documents, **options)
    with no_gc_pauses():  # encoding allocates, and a full collection would walk the model
        cache.write(key, result)
    return result, False
