"""The fake's RBAC answers as kube-apiserver's RBAC authorizer does (cases with known answers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_global_resource
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.resources.rbac_authorization_v1 import RoleBinding
from lightkube.types import PatchType

from tests.fakes.kube_api import FakeKubeAPI
from tests.fakes.kube_rbac import (
    Attributes,
    RBACAuthorizer,
    UserInfo,
    compact_string,
    rule_allows,
    service_account,
    uncovered,
)

RBAC = "rbac.authorization.k8s.io"
SA = service_account("test", "test")  # the fake's default token
SA_GROUPS = '["system:serviceaccounts" "system:serviceaccounts:test" "system:authenticated"]'
Profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")


def cluster_role(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": list(rules),
    }


def bind_to_sa(role: str, *, namespace: str | None = None) -> dict[str, Any]:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta: dict[str, Any] = {"name": f"sa-{role}"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "test", "namespace": "test"}],
    }


def rule(groups: list[str], resources: list[str], verbs: list[str], **extra: Any) -> dict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **extra}


def contributor_binding(namespace: str, role: str) -> RoleBinding:
    return RoleBinding(
        metadata=ObjectMeta(name=f"user-alice-{role}", namespace=namespace),
        roleRef=RoleRef(apiGroup=RBAC, kind="ClusterRole", name=role),
        subjects=[Subject(kind="User", name="alice@example.com", apiGroup=RBAC)],
    )


def review(
    client: Client,
    verb: str,
    resource: str,
    group: str = "",
    *,
    namespace: str = "",
    name: str = "",
) -> Any:
    attributes = ResourceAttributes(
        verb=verb, resource=resource, group=group, namespace=namespace or None, name=name or None
    )
    answer = client.create(
        SelfSubjectAccessReview(spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes))
    )
    assert answer.status is not None
    return answer.status


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as fake:
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        yield fake


@pytest.fixture
def client(api: FakeKubeAPI) -> Client:
    return api.client()


# ---------------------------------------------------------------------------- pure rule logic


@pytest.mark.parametrize(
    ("attrs", "the_rule", "allowed"),
    [
        # resourceNames restrict get, and a request without a name (list) never matches them
        (
            Attributes(SA, "get", "", "configmaps", name="a"),
            rule([""], ["configmaps"], ["get"], resourceNames=["a"]),
            True,
        ),
        (
            Attributes(SA, "list", "", "configmaps"),
            rule([""], ["configmaps"], ["list"], resourceNames=["a"]),
            False,
        ),
        # a subresource needs its own entry, or "*/subresource"; the parent is not enough
        (Attributes(SA, "get", "", "pods", "log"), rule([""], ["pods"], ["get"]), False),
        (Attributes(SA, "get", "", "pods", "log"), rule([""], ["*/log"], ["get"]), True),
        (Attributes(SA, "get", "", "pods", "log"), rule([""], ["pods/log"], ["get"]), True),
        # the API group must match; "*" matches every group, verb and resource
        (Attributes(SA, "list", "apps", "pods"), rule([""], ["pods"], ["list"]), False),
        (Attributes(SA, "bind", RBAC, "clusterroles", name="x"), rule(["*"], ["*"], ["*"]), True),
    ],
)
def test_rule_allows_like_the_rbac_authorizer(attrs: Attributes, the_rule: dict, allowed: bool):
    assert rule_allows(attrs, the_rule) is allowed


def test_covers_breaks_rules_down_and_wildcards_are_literal():
    owner = [rule([""], ["pods"], ["get", "list"]), rule(["apps"], ["*"], ["get"])]

    missing = uncovered(
        owner,
        [
            rule([""], ["pods"], ["get", "delete"]),
            rule(["apps"], ["deployments"], ["get"]),
            rule([""], ["pods"], ["*"]),  # a "*" verb is only covered by a "*" verb
        ],
    )

    assert [compact_string(m) for m in missing] == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:[""], Resources:["pods"], Verbs:["*"]}',
    ]


def test_aggregated_kubeflow_roles_collect_their_parts(api: FakeKubeAPI):
    api.enable_rbac()
    rules = RBACAuthorizer(api.store).cluster_role_rules

    admin, edit, view = (rules(f"kubeflow-{r}") for r in ("admin", "edit", "view"))

    assert all(r in edit for r in view) and all(r in admin for r in edit)
    assert len(view) < len(edit) < len(admin)
    pods_create = Attributes(SA, "create", "", "pods", namespace="team")
    assert any(rule_allows(pods_create, r) for r in edit)
    assert not any(rule_allows(pods_create, r) for r in view)


# ---------------------------------------------------------------------------- over HTTP


def test_without_rbac_everything_is_allowed(api: FakeKubeAPI, client: Client):
    status = review(client, "delete", "namespaces")

    assert status.allowed is True
    client.create(contributor_binding("team", "kubeflow-admin"))


def test_rbac_denies_what_no_binding_grants_with_the_real_message(
    api: FakeKubeAPI, client: Client
):
    api.enable_rbac(
        cluster_role("reader", rule([""], ["namespaces"], ["list"])), bind_to_sa("reader")
    )

    list(client.list(Namespace))
    with pytest.raises(ApiError) as raised:
        client.create(ConfigMap(metadata=ObjectMeta(name="c", namespace="team")))

    assert raised.value.status.code == 403
    assert raised.value.status.message == (
        'configmaps is forbidden: User "system:serviceaccount:test:test" cannot create '
        'resource "configmaps" in API group "" in the namespace "team"'
    )


def test_access_review_answers_from_the_same_rules(api: FakeKubeAPI, client: Client):
    api.enable_rbac(
        cluster_role("reader", rule([""], ["configmaps"], ["get", "list"])),
        bind_to_sa("reader", namespace="team"),
    )

    allowed = review(client, "list", "configmaps", namespace="team")
    elsewhere = review(client, "list", "configmaps", namespace="default")
    cluster_wide = review(client, "list", "configmaps")  # "" means all namespaces

    assert allowed.allowed is True
    assert allowed.reason == (
        'RBAC: allowed by RoleBinding "sa-reader/team" of ClusterRole "reader" to '
        'ServiceAccount "test/test"'
    )
    assert (elsewhere.allowed, elsewhere.reason) == (False, None)
    assert cluster_wide.allowed is False


def test_access_review_wire_shape(api: FakeKubeAPI):
    api.enable_rbac()
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "pods"}},
    }
    headers = {"Authorization": "Bearer fake-token"}
    with httpx2.Client(base_url=api.url, trust_env=False, headers=headers) as http:
        answer = http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body)
        invalid = http.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json={"spec": {}}
        )

    assert answer.status_code == 201
    assert answer.json() == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": body["spec"],
        "status": {"allowed": False},
    }
    assert invalid.status_code == 422
    assert (
        "exactly one of nonResourceAttributes or resourceAttributes" in invalid.json()["message"]
    )


def test_apply_that_creates_needs_create_as_well_as_patch(api: FakeKubeAPI, client: Client):
    api.enable_rbac(
        cluster_role("patcher", rule([""], ["configmaps"], ["patch"])), bind_to_sa("patcher")
    )
    api.put(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "team"}}
    )

    def apply(name: str) -> None:
        client.patch(
            ConfigMap,
            name,
            {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}},
            namespace="team",
            patch_type=PatchType.APPLY,
            field_manager="t",
        )

    apply("old")  # an update is a patch
    with pytest.raises(ApiError) as raised:
        apply("new")

    assert raised.value.status.code == 403
    # patch.go's create-on-update check: NewForbidden with the authorizer's (empty) reason
    assert raised.value.status.message == 'configmaps "new" is forbidden: '
    assert api.get("v1", "ConfigMap", "new", "team") is None


def test_binding_a_role_needs_bind_or_every_permission_in_it(api: FakeKubeAPI, client: Client):
    writer = cluster_role("rb-writer", rule([RBAC], ["rolebindings"], ["create", "patch"]))
    api.enable_rbac(writer, bind_to_sa("rb-writer"))

    with pytest.raises(ApiError) as raised:
        client.create(contributor_binding("team", "kubeflow-view"))

    message = raised.value.status.message or ""
    assert raised.value.status.code == 403
    assert message.startswith(
        f'rolebindings.{RBAC} "user-alice-kubeflow-view" is forbidden: user '
        f'"system:serviceaccount:test:test" (groups={SA_GROUPS}) is attempting to grant RBAC '
        "permissions not currently held:\n{APIGroups:["
    )
    assert '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list" "watch"]}' in message
    assert api.list(f"{RBAC}/v1", "RoleBinding", "team") == []


def test_bind_on_the_role_by_name_is_enough(api: FakeKubeAPI, client: Client):
    writer = cluster_role(
        "rb-writer",
        rule([RBAC], ["rolebindings"], ["create", "patch"]),
        rule([RBAC], ["clusterroles"], ["bind"], resourceNames=["kubeflow-view"]),
    )
    api.enable_rbac(writer, bind_to_sa("rb-writer"))

    client.create(contributor_binding("team", "kubeflow-view"))
    with pytest.raises(ApiError) as raised:
        client.create(contributor_binding("team", "kubeflow-edit"))

    assert raised.value.status.code == 403
    assert review(client, "bind", "clusterroles", RBAC, name="kubeflow-view").allowed
    assert not review(client, "bind", "clusterroles", RBAC, name="kubeflow-edit").allowed


def test_holding_every_permission_of_the_role_is_enough_without_bind(
    api: FakeKubeAPI, client: Client
):
    api.enable_rbac()
    view_rules = RBACAuthorizer(api.store).cluster_role_rules("kubeflow-view")
    api.put(cluster_role("viewer-plus", rule([RBAC], ["rolebindings"], ["create"]), *view_rules))
    api.put(bind_to_sa("viewer-plus"))

    client.create(contributor_binding("team", "kubeflow-view"))

    assert api.get(f"{RBAC}/v1", "RoleBinding", "user-alice-kubeflow-view", "team") is not None


def test_system_masters_may_bind_anything(api: FakeKubeAPI):
    api.enable_rbac()
    api.add_token("admin", UserInfo("admin", ("system:masters", "system:authenticated")))

    api.client(token="admin").create(contributor_binding("team", "kubeflow-admin"))

    assert review(api.client(token="admin"), "delete", "profiles", "kubeflow.org").allowed


def test_unknown_token_is_401_and_no_token_is_anonymous(api: FakeKubeAPI):
    api.enable_rbac()
    api.revoke_token("fake-token")

    with pytest.raises(ApiError) as raised:
        list(api.client().list(Profile))
    with httpx2.Client(base_url=api.url, trust_env=False) as http:
        anonymous = http.get("/apis/kubeflow.org/v1/profiles")

    assert raised.value.status.code == 401
    assert raised.value.status.message == "Unauthorized"
    assert anonymous.status_code == 403
    assert 'User "system:anonymous" cannot list resource "profiles"' in anonymous.json()["message"]
    assert [r.status for r in api.requests] == [401, 403]


def test_updating_a_binding_needs_bind_too(api: FakeKubeAPI, client: Client):
    writer = cluster_role("rb-writer", rule([RBAC], ["rolebindings"], ["create", "patch"]))
    api.enable_rbac(writer, bind_to_sa("rb-writer"))
    existing = contributor_binding("team", "kubeflow-view").to_dict()
    api.put(existing)

    with pytest.raises(ApiError) as raised:
        client.patch(
            RoleBinding,
            "user-alice-kubeflow-view",
            {**existing, "metadata": {**existing["metadata"], "labels": {"a": "b"}}},
            namespace="team",
            patch_type=PatchType.APPLY,
            field_manager="t",
        )

    assert raised.value.status.code == 403
    assert "is attempting to grant RBAC permissions not currently held" in (
        raised.value.status.message or ""
    )
    stored = api.get(f"{RBAC}/v1", "RoleBinding", "user-alice-kubeflow-view", "team")
    assert stored is not None and "labels" not in stored["metadata"]
