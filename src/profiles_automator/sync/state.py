"""Desired and observed cluster state as plain Kubernetes objects (dicts).

Both sides use the same shape so the planner is a pure comparison of data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from profiles_automator.pmr.model import PMR, Role
from profiles_automator.sync.kfam import (
    AccessPolicyOptions,
    authorization_policy,
    kfam_identity,
    profile_object,
    role_binding,
)

Obj = dict[str, Any]
NamespacedKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class DesiredState:
    """What the PMR says this cluster must contain."""

    profiles: Mapping[str, Obj] = field(default_factory=dict)
    role_bindings: Mapping[NamespacedKey, Obj] = field(default_factory=dict)
    authorization_policies: Mapping[NamespacedKey, Obj] = field(default_factory=dict)
    # Profile -> the widest role a group that could not be resolved grants there: an
    # existing contributor object is kept unless the PMR still grants its user that much.
    unknown_access: Mapping[str, Role] = field(default_factory=dict)
    # Groups with personal profiles whose members are not all known: their existing
    # personal Profiles are neither stale nor touched.
    unknown_personal_groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ObservedState:
    """What a handful of cluster-wide lists returned."""

    profiles: Mapping[str, Obj] = field(default_factory=dict)
    namespaces: Mapping[str, Obj] = field(default_factory=dict)
    role_bindings: Mapping[NamespacedKey, Obj] = field(default_factory=dict)
    authorization_policies: Mapping[NamespacedKey, Obj] = field(default_factory=dict)

    @classmethod
    def from_lists(
        cls,
        *,
        profiles: Iterable[Obj] = (),
        namespaces: Iterable[Obj] = (),
        role_bindings: Iterable[Obj] = (),
        authorization_policies: Iterable[Obj] = (),
    ) -> ObservedState:
        """Index list results by name; RoleBindings and policies only where KFAM-relevant."""
        return cls(
            profiles={_name(p): p for p in profiles},
            namespaces={_name(n): n for n in namespaces},
            role_bindings={_key(o): o for o in role_bindings},
            authorization_policies={_key(o): o for o in authorization_policies},
        )

    def contributor_objects(
        self, namespace: str
    ) -> tuple[dict[NamespacedKey, Obj], dict[NamespacedKey, Obj]]:
        """KFAM-annotated RoleBindings and policies in one namespace (owner's excluded)."""
        return (
            self._kfam_role_bindings.get(namespace, {}),
            self._kfam_policies.get(namespace, {}),
        )

    @cached_property
    def _kfam_role_bindings(self) -> dict[str, dict[NamespacedKey, Obj]]:
        return _kfam_by_namespace(self.role_bindings)

    @cached_property
    def _kfam_policies(self) -> dict[str, dict[NamespacedKey, Obj]]:
        return _kfam_by_namespace(self.authorization_policies)


def _kfam_by_namespace(
    objects: Mapping[NamespacedKey, Obj],
) -> dict[str, dict[NamespacedKey, Obj]]:
    """One pass over a cluster-wide list, so planning stays linear in its size."""
    grouped: dict[str, dict[NamespacedKey, Obj]] = {}
    for key, obj in objects.items():
        if kfam_identity(obj):
            grouped.setdefault(key[0], {})[key] = obj
    return grouped


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _key(obj: Obj) -> NamespacedKey:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def desired_state(
    pmr: PMR, *, cluster_name: str | None, access: AccessPolicyOptions
) -> DesiredState:
    """The Profiles, RoleBindings and AuthorizationPolicies the PMR asks of this cluster."""
    profiles: dict[str, Obj] = {}
    bindings: dict[NamespacedKey, Obj] = {}
    policies: dict[NamespacedKey, Obj] = {}
    for profile in pmr.for_cluster(cluster_name):
        profiles[profile.name] = profile_object(profile)
        for contributor in profile.contributors:
            rb = role_binding(profile.name, contributor.name, contributor.role)
            bindings[_key(rb)] = rb
            ap = authorization_policy(profile.name, contributor.name, contributor.role, access)
            policies[_key(ap)] = ap
    unknown_access = {
        p.name: max((g.role for g in p.group_grants), key=lambda r: r.rank)
        for p in pmr.for_cluster(cluster_name)
        if p.group_grants
    }
    unknown_personal = frozenset(t.group for t in pmr.personal_profiles)
    return DesiredState(profiles, bindings, policies, unknown_access, unknown_personal)
