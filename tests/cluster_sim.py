"""A pure, in-memory stand-in for applying a plan, for property tests of the planner.

It applies changes the way the API server would for the fields the planner
looks at (server-side apply merges maps and replaces lists; JSON-patch removes),
and plays the profile controller (namespace plus owner objects per Profile).
The HTTP-level fake in tests/fakes/ covers the real protocol; this one is fast
enough for thousands of hypothesis examples.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from profiles_automator.sync.kfam import (
    NAMESPACE_OWNER_ANNOTATION,
    OWNER_AUTHORIZATION_POLICY,
    OWNER_ROLEBINDING,
    PolicyShape,
)
from profiles_automator.sync.planner import Change
from profiles_automator.sync.state import ObservedState
from tests.fakes.profile_controller import canonical_quantity

Obj = dict[str, Any]


def merge(base: Any, patch: Any) -> Any:
    """Server-side-apply-like merge: maps merged key by key, everything else replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base.get(key), value)
        return out
    return copy.deepcopy(patch)


def remove(obj: Obj, pointer: str) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    target: Any = obj
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            return
    if isinstance(target, dict):
        target.pop(parts[-1], None)


@dataclass
class SimCluster:
    """Four object maps, like the four lists the engine makes."""

    profiles: dict[str, Obj] = field(default_factory=dict)
    namespaces: dict[str, Obj] = field(default_factory=dict)
    role_bindings: dict[tuple[str, str], Obj] = field(default_factory=dict)
    policies: dict[tuple[str, str], Obj] = field(default_factory=dict)
    controller_enabled: bool = True
    # The profile controller's settings, as its owner policies show them.
    shape: PolicyShape = field(default_factory=PolicyShape)
    writes: list[Change] = field(default_factory=list)

    def observed(self) -> ObservedState:
        return ObservedState(
            profiles=copy.deepcopy(self.profiles),
            namespaces=copy.deepcopy(self.namespaces),
            role_bindings=copy.deepcopy(self.role_bindings),
            authorization_policies=copy.deepcopy(self.policies),
        )

    def _store(self, kind: str) -> dict[Any, Obj]:
        return {
            "Profile": self.profiles,
            "Namespace": self.namespaces,
            "RoleBinding": self.role_bindings,
            "AuthorizationPolicy": self.policies,
        }[kind]

    def apply(self, changes: list[Change] | tuple[Change, ...]) -> None:
        for change in changes:
            self.writes.append(change)
            store = self._store(change.kind)
            key = change.name if change.namespace is None else (change.namespace, change.name)
            if change.action in ("delete", "replace"):
                store.pop(key, None)
            if change.action == "delete":
                continue
            if change.namespace is not None and change.namespace not in self.namespaces:
                continue  # the API answers 404: namespace missing
            current = copy.deepcopy(store.get(key, {}))
            body = change.body or {}
            if current.get("roleRef") not in (None, body.get("roleRef")):
                continue  # the API answers 422: roleRef is immutable
            for pointer in change.remove_paths:
                remove(current, pointer)
            store[key] = merge(current, body)
        self.reconcile()

    def reconcile(self) -> None:
        """The profile controller: namespace and owner objects for each Profile."""
        if not self.controller_enabled:
            return
        for name, profile in self.profiles.items():
            owner = profile["spec"]["owner"]["name"]
            quota = profile["spec"].get("resourceQuotaSpec") or {}
            if isinstance(quota.get("hard"), dict):  # written back through Go's types
                quota["hard"] = {k: canonical_quantity(str(v)) for k, v in quota["hard"].items()}
            ns = self.namespaces.get(name)
            if ns is None:
                self.namespaces[name] = {
                    "metadata": {"name": name, "annotations": {NAMESPACE_OWNER_ANNOTATION: owner}}
                }
            elif ns["metadata"].get("annotations", {}).get(NAMESPACE_OWNER_ANNOTATION) != owner:
                continue  # the real controller refuses to take over the namespace
            self.role_bindings.setdefault(
                (name, OWNER_ROLEBINDING),
                {
                    "metadata": {
                        "name": OWNER_ROLEBINDING,
                        "namespace": name,
                        "annotations": {"user": owner, "role": "admin"},
                    },
                    "roleRef": {"kind": "ClusterRole", "name": "kubeflow-admin"},
                    "subjects": [profile["spec"]["owner"]],
                },
            )
            self.policies[(name, OWNER_AUTHORIZATION_POLICY)] = owner_policy(
                name, owner, self.shape
            )


UPSTREAM_SHAPE = PolicyShape()


def owner_policy(namespace: str, owner: str, shape: PolicyShape = UPSTREAM_SHAPE) -> Obj:
    """The profile controller's ns-owner-access-istio (its first rule is what KFAM copies)."""
    spec: Obj = {
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"principals": list(shape.principals)}}],
                "when": [
                    {
                        "key": f"request.headers[{shape.userid_header}]",
                        "values": [f"{shape.userid_prefix}{owner}"],
                    }
                ],
            },
            {"when": [{"key": "source.namespace", "values": [namespace]}]},
        ],
    }
    if shape.target_refs:
        spec["targetRefs"] = shape.target_refs_json()
    return {
        "metadata": {
            "name": OWNER_AUTHORIZATION_POLICY,
            "namespace": namespace,
            "annotations": {"user": owner, "role": "admin"},
        },
        "spec": spec,
    }
