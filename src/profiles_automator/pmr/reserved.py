"""Namespaces that must never become profiles, built in or named by the admin."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable

# A contributor binding in any of these would hand out power over the platform itself.
RESERVED_NAMESPACES = (
    "default",
    "kube-*",
    "kubeflow",
    "istio-system",
    "knative-*",
    "cert-manager",
    "auth",
    "dex",
    "oauth2-proxy",
    "metallb-system",
)


def is_reserved(name: str, protected: Iterable[str] = ()) -> bool:
    """True for namespaces that must never become profiles."""
    return _matcher((*RESERVED_NAMESPACES, *protected))(name) is not None


@functools.lru_cache(maxsize=16)  # one per set of protected namespaces; called per profile
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One regular expression for all the shell patterns, as ``fnmatchcase`` reads them."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns if p) or "(?!)").match
