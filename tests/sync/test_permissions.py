"""Which permissions a plan needs, and how a refusal names them: pure, no server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from profiles_automator.sync.permissions import Permission, describe, refusal, required_permissions
from profiles_automator.sync.planner import Change

RBAC = "rbac.authorization.k8s.io"


def _change(action: str, kind: str, role: str = "kubeflow-edit") -> Change:
    body = {"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}}
    return Change(action, kind, "x", "why", "ns", body)  # type: ignore[arg-type]


def test_required_permissions_follow_how_the_api_authorizes_each_write():
    needed = required_permissions(
        [
            _change("create", "RoleBinding"),
            _change("replace", "RoleBinding", "kubeflow-view"),
            _change("update", "AuthorizationPolicy"),
            _change("delete", "RoleBinding", "kubeflow-admin"),  # a delete needs no bind
            _change("update", "Namespace"),
        ]
    )

    assert [str(p) for p in needed] == [
        "bind clusterroles.rbac.authorization.k8s.io/kubeflow-edit",
        "bind clusterroles.rbac.authorization.k8s.io/kubeflow-view",
        "create rolebindings.rbac.authorization.k8s.io",
        "delete rolebindings.rbac.authorization.k8s.io",
        "patch namespaces",
        "patch rolebindings.rbac.authorization.k8s.io",
        "patch authorizationpolicies.security.istio.io",
    ]


def test_nothing_to_do_needs_nothing():
    assert required_permissions([]) == ()


def test_a_refusal_groups_verbs_by_resource_and_names_by_role():
    missing = [
        Permission("patch", RBAC, "rolebindings"),
        Permission("bind", RBAC, "clusterroles", "kubeflow-view"),
        Permission("create", RBAC, "rolebindings"),
        Permission("bind", RBAC, "clusterroles", "kubeflow-edit"),
        Permission("patch", "", "namespaces"),
    ]

    assert describe(missing) == (
        "create, patch rolebindings.rbac.authorization.k8s.io; patch namespaces; "
        "bind clusterroles.rbac.authorization.k8s.io/kubeflow-edit, kubeflow-view"
    )
    assert refusal(missing[:1]) == (
        "missing permissions (cluster-wide): patch rolebindings.rbac.authorization.k8s.io; "
        "nothing was written"
    )


# The writes the planner and the stale deletion make.
WRITES: list[tuple[str, str]] = [
    *((action, "Profile") for action in ("create", "update", "delete")),
    ("update", "Namespace"),
    *(
        (action, kind)
        for kind in ("RoleBinding", "AuthorizationPolicy")
        for action in ("create", "update", "delete", "replace")
    ),
]
CHANGES = st.builds(
    lambda write, role: _change(write[0], write[1], role),
    st.sampled_from(WRITES),
    st.sampled_from(["kubeflow-admin", "kubeflow-edit", "kubeflow-view"]),
)


@given(st.lists(CHANGES, max_size=30))
def test_one_check_per_distinct_permission_whatever_the_number_of_changes(changes):
    needed = required_permissions(changes)

    assert list(needed) == sorted(set(needed))
    assert needed == required_permissions(list(reversed(changes)))
    assert len(needed) <= 13  # 3 verbs x 3 kinds, patch namespaces, bind x 3 roles
    assert all(p.name == "" for p in needed if p.verb != "bind")


def test_a_watch_is_its_own_verb():
    needed = required_permissions([], watches=["AuthorizationPolicy", "AuthorizationPolicy"])

    assert needed == (Permission("watch", "security.istio.io", "authorizationpolicies"),)
