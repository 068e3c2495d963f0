"""Desired and observed cluster state as plain Kubernetes objects (dicts).

Both sides use the same shape so the planner is a pure comparison of data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from profiles_automator.pmr.model import PMR, Role
from profiles_automator.sync.kfam import (
    NAMESPACE_OWNER_ANNOTATION,
    OWNER_AUTHORIZATION_POLICY,
    USER_ANNOTATION,
    AccessPolicyOptions,
    PolicyShape,
    SharedParts,
    authorization_policy,
    freeze_target_refs,
    kfam_identity,
    profile_object,
    role_binding,
)

Obj = dict[str, Any]
NamespacedKey = tuple[str, str]  # (namespace, name)


_HEADER_KEY = re.compile(r"^request\.headers\[(.+)\]$")
JUJU_MODEL_LABEL = "model.juju.is/name"
MANAGED_BY_LABEL_KEY = "app.kubernetes.io/managed-by"


@dataclass(frozen=True)
class PolicyGrant:
    """One contributor's AuthorizationPolicy before its namespace's shape is known."""

    namespace: str
    user: str
    role: Role

    def body(self, shape: PolicyShape, parts: SharedParts | None = None) -> Obj:
        """The policy KFAM would write with that shape."""
        return authorization_policy(self.namespace, self.user, self.role, shape, parts)


@dataclass(frozen=True)
class DesiredState:
    """What the PMR says this cluster must contain.

    Contributor policies are kept as grants: their principals, header, prefix
    and targetRefs come from each namespace's owner policy, seen only at plan time.
    """

    profiles: Mapping[str, Obj] = field(default_factory=dict)
    role_bindings: Mapping[NamespacedKey, Obj] = field(default_factory=dict)
    policy_grants: Mapping[NamespacedKey, PolicyGrant] = field(default_factory=dict)
    access: AccessPolicyOptions = field(default_factory=AccessPolicyOptions)
    # Profile -> the widest role a group that could not be resolved grants there: an
    # existing contributor object is kept unless the PMR still grants its user that much.
    unknown_access: Mapping[str, Role] = field(default_factory=dict)
    # Groups with personal profiles whose members are not all known: their existing
    # personal Profiles are neither stale nor touched.
    unknown_personal_groups: frozenset[str] = frozenset()

    def policies_in(
        self,
        grants: Mapping[NamespacedKey, PolicyGrant],
        owner: OwnerPolicy,
        parts: SharedParts | None = None,
    ) -> dict[NamespacedKey, Obj]:
        """One namespace's contributor policies, shaped like its owner policy.

        ``parts`` shares their specs and metadata with policies made before: for bodies
        that are all kept (the late grants' writes). A plan compares and drops them
        namespace by namespace, so it shares nothing that would outlive the namespace.
        """
        shape = self.access.shape_for(owner.shape)
        return {key: grant.body(shape, parts) for key, grant in grants.items()}


@dataclass(frozen=True)
class OwnerPolicy:
    """The profile controller's ``ns-owner-access-istio``: the template for contributors."""

    owner: str
    shape: PolicyShape

    @classmethod
    def from_object(cls, obj: Obj, namespace_owner: str | None = None) -> OwnerPolicy | None:
        """Read its first rule; None when it is not in the shape the controller writes."""
        spec = obj.get("spec") or {}
        try:
            rule = spec["rules"][0]
            principals = rule["from"][0]["source"]["principals"]
            condition = rule["when"][0]
            header_match = _HEADER_KEY.match(condition["key"])
            value = condition["values"][0]
        except (KeyError, IndexError, TypeError):
            return None
        if not header_match or not isinstance(value, str) or not isinstance(principals, list):
            return None
        # The controller rewrites the spec for a new owner but keeps its annotations.
        candidates = (_annotations_of(obj).get(USER_ANNOTATION), namespace_owner)
        owner = next((c for c in candidates if c and value.endswith(c)), None)
        if owner is None:
            return None
        shape = PolicyShape(
            principals=tuple(str(p) for p in principals),
            userid_header=header_match.group(1),
            userid_prefix=value[: len(value) - len(owner)],
            target_refs=freeze_target_refs(spec.get("targetRefs")),
        )
        return cls(owner, shape)


@dataclass(frozen=True)
class NamespaceRecord:
    """What the planner needs of a Namespace: who owns it and whether it may be adopted."""

    name: str
    owner: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # (name, uid) of each Profile in its ownerReferences
    profile_owners: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_object(cls, obj: Obj) -> NamespaceRecord:
        """Read a listed Namespace."""
        meta = obj.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        owners = tuple(
            (str(r.get("name", "")), str(r.get("uid", "")))
            for r in refs
            if isinstance(r, dict)
            and r.get("kind") == "Profile"
            and str(r.get("apiVersion", "")).startswith("kubeflow.org/")
        )
        return cls(
            name=meta.get("name", ""),
            owner=(meta.get("annotations") or {}).get(NAMESPACE_OWNER_ANNOTATION),
            labels=dict(meta.get("labels") or {}),
            profile_owners=owners,
        )

    @property
    def juju_model(self) -> bool:
        """A Juju model's namespace: never handed to a profile."""
        return JUJU_MODEL_LABEL in self.labels or self.labels.get(MANAGED_BY_LABEL_KEY) == "juju"


@dataclass(frozen=True)
class ObservedState:
    """What a handful of cluster-wide lists returned.

    ``namespace_records`` and ``owner_policies`` are what the planner reads of
    Namespaces and owner policies; left as None they are derived from the raw
    lists (a compact observer may fill them directly).
    """

    profiles: Mapping[str, Obj] = field(default_factory=dict)
    namespaces: Mapping[str, Obj] = field(default_factory=dict)
    role_bindings: Mapping[NamespacedKey, Obj] = field(default_factory=dict)
    authorization_policies: Mapping[NamespacedKey, Obj] = field(default_factory=dict)
    namespace_records: Mapping[str, NamespaceRecord] = None  # type: ignore[assignment]
    owner_policies: Mapping[str, OwnerPolicy] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.namespace_records is None:
            records = {n: NamespaceRecord.from_object(o) for n, o in self.namespaces.items()}
            object.__setattr__(self, "namespace_records", records)
        if self.owner_policies is None:
            object.__setattr__(self, "owner_policies", self._read_owner_policies())

    def _read_owner_policies(self) -> dict[str, OwnerPolicy]:
        found: dict[str, OwnerPolicy] = {}
        for (namespace, name), obj in self.authorization_policies.items():
            if name != OWNER_AUTHORIZATION_POLICY:
                continue
            record = self.namespace_records.get(namespace)
            policy = OwnerPolicy.from_object(obj, record.owner if record else None)
            if policy is not None:
                found[namespace] = policy
        return found

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


def _annotations_of(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _key(obj: Obj) -> NamespacedKey:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def desired_state(
    pmr: PMR, *, cluster_name: str | None, access: AccessPolicyOptions
) -> DesiredState:
    """The Profiles, RoleBindings and policy grants the PMR asks of this cluster."""
    profiles: dict[str, Obj] = {}
    bindings: dict[NamespacedKey, Obj] = {}
    grants: dict[NamespacedKey, PolicyGrant] = {}
    parts = SharedParts()  # read-only sub-objects shared across this state's objects
    for profile in pmr.for_cluster(cluster_name):
        profiles[profile.name] = profile_object(profile, parts)
        for contributor in profile.contributors:
            rb = role_binding(profile.name, contributor.name, contributor.role, parts)
            key = _key(rb)
            bindings[key] = rb
            grants[key] = PolicyGrant(profile.name, contributor.name, contributor.role)
    unknown_access = {
        p.name: max((g.role for g in p.group_grants), key=lambda r: r.rank)
        for p in pmr.for_cluster(cluster_name)
        if p.group_grants
    }
    unknown_personal = frozenset(t.group for t in pmr.personal_profiles)
    return DesiredState(profiles, bindings, grants, access, unknown_access, unknown_personal)
