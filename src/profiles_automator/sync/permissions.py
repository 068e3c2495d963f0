"""The API permissions a plan needs, and whether the credentials hold them (the preflight).

`required_permissions` is pure: it maps planned changes to the checks kube-apiserver makes.
A server-side apply is a PATCH, and one that creates the object is also authorized as
`create`; creating or updating a RoleBinding needs `bind` on the ClusterRole it references
(RBAC escalation prevention) unless the caller already holds every permission in that role;
a replace is a delete and a create. `missing_permissions` asks SelfSubjectAccessReview, one
review per distinct permission, concurrently. Everything is checked cluster-wide, the scope
the engine's lists already need.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lightkube import Client
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

from profiles_automator.sync.cluster import HTTP_ERRORS, RetryPolicy, _with_retries, diagnose
from profiles_automator.sync.kfam import RBAC_API_GROUP
from profiles_automator.sync.planner import Change

# Where each kind the planner writes is served: (API group, resource).
RESOURCES = {
    "Profile": ("kubeflow.org", "profiles"),
    "Namespace": ("", "namespaces"),
    "RoleBinding": (RBAC_API_GROUP, "rolebindings"),
    "AuthorizationPolicy": ("security.istio.io", "authorizationpolicies"),
}
# The verbs kube-apiserver authorizes for each way the shell writes.
VERBS = {
    "create": ("create", "patch"),  # server-side apply that creates
    "update": ("patch",),  # server-side apply (and a JSON patch removing fields)
    "delete": ("delete",),
    "replace": ("delete", "create", "patch"),  # an immutable roleRef: delete, then apply
}


@dataclass(frozen=True, order=True)
class Permission:
    """One permission, named the way `kubectl auth can-i VERB RESOURCE[/NAME]` takes it."""

    verb: str
    group: str
    resource: str
    name: str = ""

    @property
    def qualified_resource(self) -> str:
        """``rolebindings.rbac.authorization.k8s.io``; core resources stay bare."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def __str__(self) -> str:
        name = f"/{self.name}" if self.name else ""
        return f"{self.verb} {self.qualified_resource}{name}"

    def to_json(self) -> dict[str, str | None]:
        """For ``--output json``: a cluster-wide check has no namespace."""
        return {
            "verb": self.verb,
            "group": self.group,
            "resource": self.resource,
            "name": self.name or None,
            "namespace": None,
            "check": f"kubectl auth can-i {self}",
        }


def required_permissions(
    changes: Iterable[Change], *, watches: Iterable[str] = ()
) -> tuple[Permission, ...]:
    """Every distinct permission applying these changes takes, sorted.

    ``watches`` names the kinds the run will also watch (a watch is its own verb).
    """
    needed = {Permission("watch", *RESOURCES[kind]) for kind in watches}
    for change in changes:
        group, resource = RESOURCES[change.kind]
        needed.update(Permission(verb, group, resource) for verb in VERBS[change.action])
        if change.kind == "RoleBinding" and change.action != "delete" and change.body:
            ref = change.body.get("roleRef") or {}
            kind = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            group = ref.get("apiGroup") or RBAC_API_GROUP
            needed.add(Permission("bind", group, kind, str(ref.get("name") or "")))
    return tuple(sorted(needed))


def describe(missing: Sequence[Permission]) -> str:
    """``create, patch rolebindings.rbac.authorization.k8s.io; bind clusterroles.../a, b``."""
    verbs_of: dict[str, list[str]] = {}
    names_of: dict[str, list[str]] = {}
    for permission in sorted(missing):
        if permission.name:
            names_of.setdefault(
                str(Permission(permission.verb, permission.group, permission.resource)), []
            ).append(permission.name)
        else:
            verbs_of.setdefault(permission.qualified_resource, []).append(permission.verb)
    parts = [f"{', '.join(verbs)} {resource}" for resource, verbs in verbs_of.items()]
    parts += [f"{what}/{', '.join(names)}" for what, names in names_of.items()]
    return "; ".join(parts)


def refusal(missing: Sequence[Permission]) -> str:
    """The one-line reason a run wrote nothing (each front end appends its fix)."""
    return f"missing permissions (cluster-wide): {describe(missing)}; nothing was written"


def missing_permissions(
    client: Client,
    needed: Sequence[Permission],
    *,
    workers: int = 8,
    retry: RetryPolicy | None = None,
) -> tuple[Permission, ...]:
    """The permissions in ``needed`` the credentials lack; no request when nothing is needed."""
    if not needed:
        return ()
    retry = retry or RetryPolicy()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(needed)))) as pool:
        answers = list(pool.map(lambda p: (p, _allowed(client, p, retry)), needed))
    return tuple(p for p, allowed in answers if not allowed)


def _allowed(client: Client, permission: Permission, retry: RetryPolicy) -> bool:
    attributes = ResourceAttributes(
        verb=permission.verb,
        group=permission.group,
        resource=permission.resource,
        name=permission.name or None,
    )
    review = SelfSubjectAccessReview(
        spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes)
    )
    try:
        answer = _with_retries(lambda: client.create(review), retry, time.sleep)
    except HTTP_ERRORS as exc:
        raise diagnose("SelfSubjectAccessReview", "create", exc) from exc
    return bool(answer.status is not None and answer.status.allowed)
