"""Small builders for PMR models and cluster objects, shared by the core tests."""

from __future__ import annotations

from profiles_automator.pmr.kfam_names import binding_name
from profiles_automator.pmr.model import PMR, Contributor, Owner, Profile, Role, freeze
from profiles_automator.sync.kfam import (
    AccessPolicyOptions,
    PolicyShape,
    authorization_policy,
    role_binding,
)
from profiles_automator.sync.state import DesiredState, desired_state

ACCESS = AccessPolicyOptions()
SHAPE = PolicyShape()  # upstream Kubeflow's settings, as the simulated controller has them


def profile(
    name: str,
    owner: str = "owner@example.com",
    contributors: dict[str, str] | None = None,
    hard: dict[str, str] | None = None,
    clusters: tuple[str, ...] | None = None,
) -> Profile:
    return Profile(
        name=name,
        owner=Owner("User", owner),
        contributors=tuple(
            Contributor(user, Role(role)) for user, role in sorted((contributors or {}).items())
        ),
        resources=freeze({"hard": hard} if hard else {}),
        clusters=clusters,
    )


def pmr(*profiles: Profile) -> PMR:
    return PMR(tuple(profiles))


def desired(*profiles: Profile, cluster: str | None = None) -> DesiredState:
    return desired_state(pmr(*profiles), cluster_name=cluster, access=ACCESS)


def policies(want: DesiredState, shape: PolicyShape = SHAPE) -> dict[tuple[str, str], dict]:
    """The contributor policies KFAM writes for ``want`` in namespaces of that shape."""
    return {key: grant.body(shape) for key, grant in want.policy_grants.items()}


def namespace(name: str, owner: str = "owner@example.com") -> dict:
    return {"metadata": {"name": name, "annotations": {"owner": owner}}}


def kfam_binding(ns: str, user: str, role: str, *, labelled: bool = False) -> dict:
    """A RoleBinding as KFAM itself makes it (no managed-by label unless asked)."""
    obj = role_binding(ns, user, Role(role))
    if not labelled:
        del obj["metadata"]["labels"]
    return obj


def kfam_policy(ns: str, user: str, role: str, *, labelled: bool = False) -> dict:
    obj = authorization_policy(ns, user, Role(role), SHAPE)
    if not labelled:
        del obj["metadata"]["labels"]
    return obj


__all__ = [
    "ACCESS",
    "SHAPE",
    "binding_name",
    "desired",
    "kfam_binding",
    "kfam_policy",
    "namespace",
    "pmr",
    "policies",
    "profile",
]
