"""Kubeflow's contracts: the objects KFAM, the dashboard and the profile controller expect.

Contributor objects must look exactly as KFAM (``bindings.go``) makes them, so the
Central Dashboard's "Manage contributors" lists them and can remove them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from profiles_automator.pmr.kfam_names import binding_name
from profiles_automator.pmr.model import Owner, Profile, Role, thaw

PROFILE_API_VERSION = "kubeflow.org/v1"
AUTHORIZATION_POLICY_API_VERSION = "security.istio.io/v1beta1"
RBAC_API_GROUP = "rbac.authorization.k8s.io"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER_NAME = "kubeflow-profiles-automator"

USER_ANNOTATION = "user"
ROLE_ANNOTATION = "role"
NAMESPACE_OWNER_ANNOTATION = "owner"
# On a personal profile: the PMR group whose member owns it. While that group cannot be
# resolved, the planner leaves such profiles alone instead of calling them stale.
PERSONAL_GROUP_ANNOTATION = "kubeflow-profiles-automator/personal-profile-of-group"

# Made by the profile controller for the owner; contributor logic never touches them.
OWNER_ROLEBINDING = "namespaceAdmin"
OWNER_AUTHORIZATION_POLICY = "ns-owner-access-istio"
PROFILE_RESOURCE_QUOTA = "kf-resource-quota"
OWNER_OBJECT_NAMES = frozenset({OWNER_ROLEBINDING, OWNER_AUTHORIZATION_POLICY})

DEFAULT_INGRESS_GATEWAY_PRINCIPAL = (
    "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
)
DEFAULT_KFP_UI_PRINCIPAL = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
DEFAULT_USERID_HEADER = "kubeflow-userid"


@dataclass(frozen=True)
class AccessPolicyOptions:
    """How Istio identifies the caller; the charm passes its config."""

    ingress_gateway_principal: str = DEFAULT_INGRESS_GATEWAY_PRINCIPAL
    kfp_ui_principal: str = DEFAULT_KFP_UI_PRINCIPAL
    additional_principals: tuple[str, ...] = ()
    userid_header: str = DEFAULT_USERID_HEADER
    userid_prefix: str = ""

    @functools.cached_property
    def principals(self) -> tuple[str, ...]:
        """Callers allowed to carry the user header: gateway first, then KFP UI, then extras."""
        ordered = [
            self.ingress_gateway_principal,
            self.kfp_ui_principal,
            *self.additional_principals,
        ]
        return tuple(dict.fromkeys(p for p in ordered if p))


def _metadata(name: str, namespace: str | None, user: str | None, role: Role | None) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": {MANAGED_BY_LABEL: MANAGER_NAME}}
    if namespace is not None:
        meta["namespace"] = namespace
    if user is not None and role is not None:
        meta["annotations"] = {USER_ANNOTATION: user, ROLE_ANNOTATION: role.value}
    return meta


def profile_object(profile: Profile) -> dict[str, Any]:
    """The ``Profile`` CR; the profile controller turns it into a namespace."""
    metadata = _metadata(profile.name, None, None, None)
    if profile.personal_group is not None:
        metadata["annotations"] = {PERSONAL_GROUP_ANNOTATION: profile.personal_group}
    return {
        "apiVersion": PROFILE_API_VERSION,
        "kind": "Profile",
        "metadata": metadata,
        "spec": {
            "owner": profile.owner.subject(),
            "resourceQuotaSpec": normalise_quota(thaw(profile.resources)),
            "plugins": thaw(profile.plugins),
        },
    }


def normalise_quota(spec: dict[str, Any]) -> dict[str, Any]:
    """Quantities as strings, the way the API returns them, so diffs are stable."""
    out = dict(spec)
    if "hard" in out:
        out["hard"] = {k: quantity_text(v) for k, v in out["hard"].items()}
    return out


def quantity_text(value: Any) -> str:
    """``1`` -> ``"1"``, ``0.5`` -> ``"0.5"``; strings are kept as written."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            format(value, "f").rstrip("0").rstrip(".") if value != int(value) else str(int(value))
        )
    return str(value)


def role_binding(namespace: str, user: str, role: Role) -> dict[str, Any]:
    """A contributor RoleBinding exactly as KFAM creates it (plus our label)."""
    return {
        "apiVersion": f"{RBAC_API_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(binding_name(user, role), namespace, user, role),
        "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": role.cluster_role},
        "subjects": [{"apiGroup": RBAC_API_GROUP, "kind": "User", "name": user}],
    }


def authorization_policy(
    namespace: str, user: str, role: Role, options: AccessPolicyOptions
) -> dict[str, Any]:
    """A contributor AuthorizationPolicy exactly as KFAM creates it (plus our label)."""
    return {
        "apiVersion": AUTHORIZATION_POLICY_API_VERSION,
        "kind": "AuthorizationPolicy",
        "metadata": _metadata(binding_name(user, role), namespace, user, role),
        "spec": {
            "rules": [
                {
                    "from": [{"source": {"principals": list(options.principals)}}],
                    "when": [
                        {
                            "key": f"request.headers[{options.userid_header}]",
                            "values": [f"{options.userid_prefix}{user}"],
                        }
                    ],
                }
            ]
        },
    }


def personal_group_of(profile: dict[str, Any]) -> str | None:
    """The PMR group a personal Profile was made for (None for any other Profile)."""
    annotations = (profile.get("metadata") or {}).get("annotations") or {}
    return annotations.get(PERSONAL_GROUP_ANNOTATION)


def owner_of_namespace(namespace: dict[str, Any]) -> str | None:
    """The profile controller's record of who owns a namespace."""
    return (namespace.get("metadata", {}).get("annotations") or {}).get(NAMESPACE_OWNER_ANNOTATION)


def kfam_identity(obj: dict[str, Any]) -> tuple[str, Role] | None:
    """(user, role) if the object is a KFAM contributor object, else None.

    Recognised by annotations whoever made it (our engine, KFAM, or a person in
    the dashboard); the owner's objects from the profile controller are excluded.
    """
    meta = obj.get("metadata") or {}
    if meta.get("name") in OWNER_OBJECT_NAMES:
        return None
    annotations = meta.get("annotations") or {}
    user, role = annotations.get(USER_ANNOTATION), annotations.get(ROLE_ANNOTATION)
    if not user or role not in {r.value for r in Role}:
        return None
    return user, Role(role)


def owner_from_subject(subject: dict[str, Any]) -> Owner:
    """Read ``Profile.spec.owner`` back into our model, for diffs and reports."""
    return Owner(
        kind=subject.get("kind", "User"),
        name=subject.get("name", ""),
        namespace=subject.get("namespace") or None,
    )
