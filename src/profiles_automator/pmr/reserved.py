"""Namespaces that must never become profiles, built in or named by the admin."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

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
    return any(fnmatch.fnmatchcase(name, p) for p in (*RESERVED_NAMESPACES, *protected) if p)
