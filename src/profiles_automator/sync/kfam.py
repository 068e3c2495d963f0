"""Kubeflow's contracts: the objects KFAM, the dashboard and the profile controller expect.

Contributor objects must look exactly as KFAM (``bindings.go``) makes them, so the
Central Dashboard's "Manage contributors" lists them and can remove them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lightkube.utils.quantity import parse_quantity

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

# What the profile controller and KFAM fall back to without their environment
# (upstream Kubeflow's manifests); Charmed Kubeflow sets other principals.
UPSTREAM_INGRESS_GATEWAY_PRINCIPAL = (
    "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
)
UPSTREAM_KFP_UI_PRINCIPAL = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
UPSTREAM_USERID_HEADER = "kubeflow-userid"


@dataclass(frozen=True)
class PolicyShape:
    """How one namespace's policies identify the caller: what KFAM writes there.

    The profile controller and KFAM read the same settings, so the owner's
    ``ns-owner-access-istio`` shows them for each namespace: the principals
    allowed to carry the user header, the header, its prefix and (ambient mode)
    the waypoint the policy is attached to.
    """

    principals: tuple[str, ...] = (UPSTREAM_INGRESS_GATEWAY_PRINCIPAL, UPSTREAM_KFP_UI_PRINCIPAL)
    userid_header: str = UPSTREAM_USERID_HEADER
    userid_prefix: str = ""
    target_refs: tuple[tuple[tuple[str, str], ...], ...] = ()

    def target_refs_json(self) -> list[dict[str, str]]:
        """``spec.targetRefs`` as the API holds it."""
        return [dict(ref) for ref in self.target_refs]


@dataclass(frozen=True)
class AccessPolicyOptions:
    """The admin's overrides; every empty one follows the namespace's owner policy."""

    ingress_gateway_principal: str = ""
    kfp_ui_principal: str = ""
    additional_principals: tuple[str, ...] = ()
    userid_header: str = ""
    userid_prefix: str = ""

    def shape_for(self, owner: PolicyShape) -> PolicyShape:
        """What KFAM would write in a namespace whose owner policy has ``owner``'s shape.

        KFAM lists the gateway, then the KFP UI (the owner policy's first two
        principals); an override replaces its slot, extras come last.
        """
        principals = list(owner.principals)
        for slot, override in enumerate((self.ingress_gateway_principal, self.kfp_ui_principal)):
            if not override:
                continue
            if slot < len(principals):
                principals[slot] = override
            else:
                principals.append(override)
        principals.extend(self.additional_principals)
        return PolicyShape(
            principals=tuple(dict.fromkeys(p for p in principals if p)),
            userid_header=self.userid_header or owner.userid_header,
            userid_prefix=self.userid_prefix or owner.userid_prefix,
            target_refs=owner.target_refs,
        )


def freeze_target_refs(refs: Any) -> tuple[tuple[tuple[str, str], ...], ...]:
    """``spec.targetRefs`` as hashable data (sorted keys; list order kept)."""
    if not isinstance(refs, list):
        return ()
    return tuple(
        tuple(sorted((str(k), str(v)) for k, v in ref.items()))
        for ref in refs
        if isinstance(ref, dict)
    )


class SharedParts:
    """Equal sub-objects built once and shared (read-only) by every desired object of a run.

    At 10,000 profiles the desired state holds 200,000 contributor objects whose labels,
    annotations, ``roleRef``, subjects and policy spec repeat per user or role; building
    each once keeps that state a fraction of its size. Without one, every object is fresh.
    """

    def __init__(self) -> None:
        self._parts: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """The part for ``key``, made on first use."""
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = make()
        return part


def _metadata(
    name: str,
    namespace: str | None,
    user: str | None,
    role: Role | None,
    parts: SharedParts,
) -> dict:
    labels = parts.get(("labels",), lambda: {MANAGED_BY_LABEL: MANAGER_NAME})
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace is not None:
        meta["namespace"] = namespace
    if user is not None and role is not None:
        meta["annotations"] = parts.get(
            ("annotations", user, role),
            lambda: {USER_ANNOTATION: user, ROLE_ANNOTATION: role.value},
        )
    return meta


def profile_object(profile: Profile, parts: SharedParts | None = None) -> dict[str, Any]:
    """The ``Profile`` CR; the profile controller turns it into a namespace."""
    metadata = _metadata(profile.name, None, None, None, parts or SharedParts())
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


def same_quota(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """Equal the way Kubernetes compares quotas: ``0.5`` is ``500m``, ``1Gi`` is ``1024Mi``.

    The profile controller writes quantities back in canonical form; comparing
    the strings would rewrite such a Profile on every sync.
    """
    if want.keys() != have.keys():
        return False
    for key, value in want.items():
        other = have[key]
        if key != "hard" or not isinstance(value, dict) or not isinstance(other, dict):
            if value != other:
                return False
        elif value.keys() != other.keys() or not all(
            _same_quantity(value[k], other[k]) for k in value
        ):
            return False
    return True


def _same_quantity(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return parse_quantity(str(a)) == parse_quantity(str(b))
    except (ValueError, ArithmeticError):
        return False  # not a quantity: the API will say so when we write it


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


def role_binding(
    namespace: str, user: str, role: Role, parts: SharedParts | None = None
) -> dict[str, Any]:
    """A contributor RoleBinding exactly as KFAM creates it (plus our label)."""
    parts = parts or SharedParts()
    return {
        "apiVersion": f"{RBAC_API_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(binding_name(user, role), namespace, user, role, parts),
        "roleRef": parts.get(
            ("roleRef", role),
            lambda: {"apiGroup": RBAC_API_GROUP, "kind": "ClusterRole", "name": role.cluster_role},
        ),
        "subjects": parts.get(("subjects", user), lambda: [_user_subject(user)]),
    }


def _user_subject(user: str) -> dict[str, str]:
    return {"apiGroup": RBAC_API_GROUP, "kind": "User", "name": user}


def authorization_policy(
    namespace: str, user: str, role: Role, shape: PolicyShape, parts: SharedParts | None = None
) -> dict[str, Any]:
    """A contributor AuthorizationPolicy exactly as KFAM creates it (plus our label).

    With ``parts``, the spec (which depends only on the user and the namespace's policy
    shape), labels and annotations are shared with every other policy made with them.
    """
    parts = parts or SharedParts()
    return {
        "apiVersion": AUTHORIZATION_POLICY_API_VERSION,
        "kind": "AuthorizationPolicy",
        "metadata": _metadata(binding_name(user, role), namespace, user, role, parts),
        "spec": parts.get(("policy-spec", user, shape), lambda: _policy_spec(user, shape)),
    }


def _policy_spec(user: str, shape: PolicyShape) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rules": [
            {
                "from": [{"source": {"principals": list(shape.principals)}}],
                "when": [
                    {
                        "key": f"request.headers[{shape.userid_header}]",
                        "values": [f"{shape.userid_prefix}{user}"],
                    }
                ],
            }
        ]
    }
    if shape.target_refs:
        spec["targetRefs"] = shape.target_refs_json()
    return spec


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
