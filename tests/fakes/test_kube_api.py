"""Tests of the fake kube-apiserver itself, driven through lightkube's real Client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import yaml
from lightkube import ALL_NS, ApiError, Client, KubeConfig
from lightkube import operators as op
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.models.core_v1 import ResourceQuotaSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ConfigMap, Namespace, ResourceQuota, Secret
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding
from lightkube.types import CascadeType, PatchType

from tests.fakes.kube_api import FakeKubeAPI
from tests.fakes.profile_controller import CHARMED_AMBIENT, canonical_quantity

Profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
ProfileV1beta1 = create_global_resource("kubeflow.org", "v1beta1", "Profile", "profiles")
AuthorizationPolicy = create_namespaced_resource(
    "security.istio.io", "v1beta1", "AuthorizationPolicy", "authorizationpolicies"
)
RBAC = "rbac.authorization.k8s.io"
RB_V1 = f"{RBAC}/v1"
OWNER = "ns-owner-access-istio"


# ---------------------------------------------------------------------------- fixtures/helpers


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(profile_controller="sync") as fake:
        yield fake


@pytest.fixture
def client(api: FakeKubeAPI) -> Client:
    return api.client()


@pytest.fixture
def raw(api: FakeKubeAPI) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=api.url, trust_env=False, verify=False) as http:
        yield http


def make_ns(api: FakeKubeAPI, name: str, **annotations: str) -> None:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})


def rolebinding(
    name: str,
    namespace: str,
    *,
    role: str = "kubeflow-edit",
    user: str = "alice@example.com",
    labels: dict[str, str] | None = None,
) -> RoleBinding:
    return RoleBinding(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels),
        roleRef=RoleRef(apiGroup=RBAC, kind="ClusterRole", name=role),
        subjects=[Subject(kind="User", name=user, apiGroup=RBAC)],
    )


def raw_rb(name: str, namespace: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": RB_V1,
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "kubeflow-edit"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": f"{name}@example.com"}],
    }


def profile(name: str, owner: str, hard: dict[str, str] | None = None) -> Any:
    spec: dict[str, Any] = {"owner": {"kind": "User", "name": owner, "apiGroup": RBAC}}
    if hard is not None:
        spec["resourceQuotaSpec"] = {"hard": hard}
    return Profile(metadata=ObjectMeta(name=name), spec=spec)


def api_error(fn: Any, *args: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    return info.value


def message(err: ApiError) -> str:
    return err.status.message or ""


def assert_status(err: ApiError, code: int, reason: str) -> None:
    assert err.status.code == code
    assert err.status.reason == reason
    assert err.response is not None
    assert err.response.status_code == code
    assert err.response.headers["Content-Type"] == "application/json"
    body = err.response.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure" and body["metadata"] == {}
    assert isinstance(body["details"], dict)


# ---------------------------------------------------------------------------- basics


def test_kubeconfig_points_a_real_client_at_the_server(api: FakeKubeAPI, tmp_path: Any) -> None:
    path = api.write_kubeconfig(tmp_path / "config")
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == api.url
    with Client(KubeConfig.from_file(path), trust_env=False) as c:
        names = [ns.metadata.name for ns in c.list(Namespace) if ns.metadata]
    assert "default" in names and "kube-system" in names


def test_create_get_fill_server_metadata(api: FakeKubeAPI, client: Client) -> None:
    created = client.create(
        ConfigMap(metadata=ObjectMeta(name="cm", namespace="default"), data={"k": "v"})
    )
    assert api.requests[-1].status == 201 and api.requests[-1].verb == "create"
    meta = created.metadata
    assert meta is not None and meta.uid and meta.creationTimestamp
    assert meta.resourceVersion and meta.resourceVersion.isdigit()
    assert meta.generation == 1
    assert meta.managedFields and meta.managedFields[0].manager == "unknown"
    assert meta.managedFields[0].operation == "Update"
    got = client.get(ConfigMap, "cm", namespace="default")
    assert got.metadata is not None and got.metadata.uid == meta.uid
    assert got.apiVersion == "v1" and got.kind == "ConfigMap"


def test_resource_versions_are_one_global_increasing_counter(client: Client) -> None:
    versions = []
    for i in range(3):
        obj = client.create(ConfigMap(metadata=ObjectMeta(name=f"c{i}", namespace="default")))
        assert obj.metadata is not None and obj.metadata.resourceVersion
        versions.append(int(obj.metadata.resourceVersion))
    ns = client.create(Namespace(metadata=ObjectMeta(name="other")))
    assert ns.metadata is not None and ns.metadata.resourceVersion
    versions.append(int(ns.metadata.resourceVersion))
    assert versions == sorted(versions) and len(set(versions)) == 4


def test_get_and_list_wire_format(api: FakeKubeAPI, raw: httpx2.Client) -> None:
    make_ns(api, "b")
    make_ns(api, "a")
    api.put(raw_rb("z", "a"))
    api.put(raw_rb("y", "b"))
    api.put(raw_rb("x", "b"))
    body = raw.get(f"/apis/{RB_V1}/rolebindings").json()
    assert body["kind"] == "RoleBindingList" and body["apiVersion"] == RB_V1
    assert body["metadata"]["resourceVersion"].isdigit()
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]] == [
        ("a", "z"),
        ("b", "x"),
        ("b", "y"),
    ]
    assert all("apiVersion" not in i and "kind" not in i for i in body["items"])
    single = raw.get(f"/apis/{RB_V1}/namespaces/b/rolebindings/x").json()
    assert single["apiVersion"] == RB_V1 and single["kind"] == "RoleBinding"
    api.put({"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "p"}})
    crd_list = raw.get("/apis/kubeflow.org/v1/profiles").json()
    assert crd_list["kind"] == "ProfileList"
    assert crd_list["items"][0]["apiVersion"] == "kubeflow.org/v1"
    assert crd_list["items"][0]["kind"] == "Profile"


def test_replace_and_stale_resource_version(client: Client) -> None:
    cm = client.create(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default")))
    cm.data = {"k": "v1"}
    updated = client.replace(cm)
    assert updated.data == {"k": "v1"}
    cm.data = {"k": "stale"}
    err = api_error(client.replace, cm)  # cm still carries the old resourceVersion
    assert_status(err, 409, "Conflict")
    assert "the object has been modified; please apply your changes" in message(err)
    missing = ConfigMap(metadata=ObjectMeta(name="nope", namespace="default"))
    assert_status(api_error(client.replace, missing), 404, "NotFound")


def test_noop_update_keeps_resource_version(client: Client) -> None:
    cm = client.create(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default")))
    assert cm.metadata is not None
    same = client.replace(cm)
    assert same.metadata is not None
    assert same.metadata.resourceVersion == cm.metadata.resourceVersion


def test_generation_moves_only_with_spec_changes(client: Client) -> None:
    client.create(profile("gen", "o@x"))
    client.set(Profile, "gen", labels={"a": "b"})
    assert client.get(Profile, "gen")["metadata"]["generation"] == 1
    client.patch(Profile, "gen", {"spec": {"x": 1}}, patch_type=PatchType.MERGE)
    assert client.get(Profile, "gen")["metadata"]["generation"] == 2


def test_merge_patch_null_deletes(client: Client) -> None:
    client.create(
        ConfigMap(
            metadata=ObjectMeta(name="cm", namespace="default", labels={"a": "1", "b": "2"}),
            data={"x": "1"},
        )
    )
    patched = client.patch(
        ConfigMap,
        "cm",
        {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": "2"}},
        namespace="default",
        patch_type=PatchType.MERGE,
    )
    assert patched.metadata is not None and patched.metadata.labels == {"b": "2", "c": "3"}
    assert patched.data == {"x": "1", "y": "2"}


def test_json_patch_operations_and_failures(client: Client) -> None:
    client.create(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default"), data={"a": "1"}))
    ops = [
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "3"},
        {"op": "copy", "from": "/data/b", "path": "/data/c"},
        {"op": "move", "from": "/data/c", "path": "/data/d"},
        {"op": "remove", "path": "/data/b"},
    ]
    patched = client.patch(ConfigMap, "cm", ops, namespace="default", patch_type=PatchType.JSON)
    assert patched.data == {"a": "3", "d": "2"}
    failed_test = [{"op": "test", "path": "/data/a", "value": "nope"}]
    err = api_error(
        client.patch, ConfigMap, "cm", failed_test, namespace="default", patch_type=PatchType.JSON
    )
    assert_status(err, 422, "Invalid")
    missing = [{"op": "remove", "path": "/data/zzz"}]
    err = api_error(
        client.patch, ConfigMap, "cm", missing, namespace="default", patch_type=PatchType.JSON
    )
    assert_status(err, 422, "Invalid")
    assert client.get(ConfigMap, "cm", namespace="default").data == {"a": "3", "d": "2"}


def test_strategic_merge_patch_builtin_ok_crd_unsupported(client: Client) -> None:
    client.create(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default"), data={"a": "1"}))
    patched = client.patch(ConfigMap, "cm", {"data": {"b": "2"}}, namespace="default")
    assert patched.data == {"a": "1", "b": "2"}
    client.create(profile("p", "o@x"))
    err = api_error(client.patch, Profile, "p", {"spec": {"x": 1}})
    assert_status(err, 415, "UnsupportedMediaType")
    assert "strategic" not in message(err)


def test_patch_of_missing_object_is_404(client: Client) -> None:
    err = api_error(
        client.patch,
        ConfigMap,
        "nope",
        {"data": {}},
        namespace="default",
        patch_type=PatchType.MERGE,
    )
    assert_status(err, 404, "NotFound")
    assert err.status.message == 'configmaps "nope" not found'


def test_delete_returns_object_then_404(
    api: FakeKubeAPI, client: Client, raw: httpx2.Client
) -> None:
    client.create(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default")))
    resp = raw.delete("/api/v1/namespaces/default/configmaps/cm")
    assert resp.status_code == 200 and resp.json()["metadata"]["name"] == "cm"
    err = api_error(client.delete, ConfigMap, "cm", namespace="default")
    assert_status(err, 404, "NotFound")
    assert api.get("v1", "ConfigMap", "cm", "default") is None


def test_delete_collection_with_label_selector(api: FakeKubeAPI, raw: httpx2.Client) -> None:
    for i, team in enumerate(["a", "a", "b"]):
        api.put(raw_rb(f"rb{i}", "default", team=team))
    resp = raw.delete(  # lightkube's deletecollection cannot pass a selector
        f"/apis/{RB_V1}/namespaces/default/rolebindings", params={"labelSelector": "team=a"}
    )
    assert resp.status_code == 200 and len(resp.json()["items"]) == 2
    assert [o["metadata"]["name"] for o in api.list(RB_V1, "RoleBinding")] == ["rb2"]
    assert api.count("deletecollection", "rolebindings") == 1


# ---------------------------------------------------------------------------- errors on create


def test_already_exists(client: Client) -> None:
    client.create(rolebinding("x", "default"))
    err = api_error(client.create, rolebinding("x", "default"))
    assert_status(err, 409, "AlreadyExists")
    assert err.status.message == f'rolebindings.{RBAC} "x" already exists'
    details = err.status.details
    assert details is not None
    assert (details.name, details.group, details.kind) == ("x", RBAC, "rolebindings")


def test_create_in_missing_namespace(client: Client) -> None:
    err = api_error(client.create, ConfigMap(metadata=ObjectMeta(name="c", namespace="ghost")))
    assert_status(err, 404, "NotFound")
    assert err.status.message == 'namespaces "ghost" not found'


@pytest.mark.parametrize(
    ("obj", "ok"),
    [
        (Namespace(metadata=ObjectMeta(name="Bad_NS")), False),
        (Namespace(metadata=ObjectMeta(name="a" * 64)), False),
        (Namespace(metadata=ObjectMeta(name="good-ns")), True),
        (Profile(metadata=ObjectMeta(name="Alice"), spec={}), False),
        (Profile(metadata=ObjectMeta(name="alice.smith"), spec={}), False),
        (ConfigMap(metadata=ObjectMeta(name="a.b-c", namespace="default")), True),
        (ConfigMap(metadata=ObjectMeta(name="UPPER", namespace="default")), False),
        (Secret(metadata=ObjectMeta(name="a_b", namespace="default")), False),
        (rolebinding("namespaceAdmin", "default"), True),
        (rolebinding("user-a@b.c-clusterrole-edit", "default"), True),
        (rolebinding("..", "default"), False),
        (rolebinding("a%b", "default"), False),
        (
            AuthorizationPolicy(
                metadata=ObjectMeta(name="Not-Valid", namespace="default"), spec={}
            ),
            False,
        ),
    ],
)
def test_name_validation(client: Client, obj: Any, ok: bool) -> None:
    if ok:
        client.create(obj)
        return
    err = api_error(client.create, obj)
    assert_status(err, 422, "Invalid")
    assert "is invalid: metadata.name: Invalid value" in message(err).replace("[", "")
    details = err.status.details
    assert details is not None and details.causes
    assert details.causes[0].field == "metadata.name"
    assert details.causes[0].reason == "FieldValueInvalid"


def test_rolebinding_roleref_validation(client: Client, raw: httpx2.Client) -> None:
    body = raw_rb("norole", "default")
    del body["roleRef"]
    resp = raw.post(f"/apis/{RB_V1}/namespaces/default/rolebindings", json=body)
    assert resp.status_code == 422 and resp.json()["reason"] == "Invalid"
    assert resp.headers["Content-Type"] == "application/json"
    bad_kind = rolebinding("badkind", "default")
    bad_kind.roleRef = RoleRef(apiGroup=RBAC, kind="Foo", name="x")
    err = api_error(client.create, bad_kind)
    assert_status(err, 422, "Invalid")
    assert 'roleRef.kind: Unsupported value: "Foo"' in message(err)


def test_body_namespace_must_match_url(raw: httpx2.Client) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}
    resp = raw.post("/api/v1/namespaces/default/configmaps", json=body)
    assert resp.status_code == 400
    assert resp.json()["reason"] == "BadRequest"
    assert "does not match the namespace" in resp.json()["message"]


def test_resource_version_on_create_is_rejected(raw: httpx2.Client) -> None:
    body = {"metadata": {"name": "c", "resourceVersion": "5"}}
    resp = raw.post("/api/v1/namespaces/default/configmaps", json=body)
    assert resp.status_code == 500 and resp.json()["reason"] == "InternalError"


def test_generate_name_and_dry_run(api: FakeKubeAPI, client: Client) -> None:
    made = client.create(ConfigMap(metadata=ObjectMeta(generateName="gen-", namespace="default")))
    assert made.metadata is not None and made.metadata.name
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9
    client.create(ConfigMap(metadata=ObjectMeta(name="dry", namespace="default")), dry_run=True)
    assert api.get("v1", "ConfigMap", "dry", "default") is None


def test_secret_string_data_is_encoded(client: Client) -> None:
    made = client.create(
        Secret(metadata=ObjectMeta(name="s", namespace="default"), stringData={"k": "v"})
    )
    assert made.data == {"k": "dg=="} and made.type == "Opaque" and made.stringData is None


# ---------------------------------------------------------------------------- immutability


def test_role_ref_is_immutable_for_every_verb(client: Client) -> None:
    client.create(rolebinding("rb", "default"))
    current = client.get(RoleBinding, "rb", namespace="default")
    current.roleRef = RoleRef(apiGroup=RBAC, kind="ClusterRole", name="kubeflow-admin")
    changed = {"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "kubeflow-admin"}}
    attempts = [
        lambda: client.replace(current),
        lambda: client.patch(
            RoleBinding, "rb", changed, namespace="default", patch_type=PatchType.MERGE
        ),
        lambda: client.apply(
            rolebinding("rb", "default", role="kubeflow-admin"), field_manager="charm", force=True
        ),
    ]
    for attempt in attempts:
        err = api_error(attempt)
        assert_status(err, 422, "Invalid")
        assert err.status.message == (
            f'RoleBinding.{RBAC} "rb" is invalid: roleRef: Invalid value: rbac.RoleRef'
            f'{{APIGroup:"{RBAC}", Kind:"ClusterRole", Name:"kubeflow-admin"}}: cannot change '
            "roleRef"
        )


# ---------------------------------------------------------------------------- selectors


@pytest.fixture
def labelled(api: FakeKubeAPI) -> FakeKubeAPI:
    api.put(raw_rb("a", "default", app="web", tier="front"))
    api.put(raw_rb("b", "default", app="web", tier="back"))
    api.put(raw_rb("c", "default", app="db"))
    api.put(raw_rb("d", "default"))
    return api


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"app": "web"}, "ab"),
        ({"app": op.not_equal("web")}, "cd"),
        ({"app": op.in_(["web", "db"])}, "abc"),
        ({"app": op.not_in(["web"])}, "cd"),
        ({"tier": op.exists()}, "ab"),
        ({"tier": op.not_exists()}, "cd"),
        ({"app": "web", "tier": op.not_equal("front")}, "b"),
        ({"app": op.in_(["web"]), "tier": op.not_in(["back"])}, "a"),
    ],
)
def test_label_selectors(
    labelled: FakeKubeAPI, client: Client, labels: dict[str, Any], expected: str
) -> None:
    got = client.list(RoleBinding, namespace="default", labels=labels)
    assert "".join(rb.metadata.name for rb in got if rb.metadata and rb.metadata.name) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app==web", "ab"),
        ("app=web,tier", "ab"),
        ("!tier,app", "c"),
        ("app in (db, web),!tier", "c"),
    ],
)
def test_label_selector_raw_grammar(
    labelled: FakeKubeAPI, raw: httpx2.Client, selector: str, expected: str
) -> None:
    resp = raw.get(f"/apis/{RB_V1}/rolebindings", params={"labelSelector": selector})
    assert "".join(i["metadata"]["name"] for i in resp.json()["items"]) == expected


@pytest.mark.parametrize(
    "selector", ["app in (web", "app=web=x", "app in web", "=x", "a,", "!a=b"]
)
def test_malformed_label_selector_is_400(raw: httpx2.Client, selector: str) -> None:
    resp = raw.get(f"/apis/{RB_V1}/rolebindings", params={"labelSelector": selector})
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"


def test_field_selectors(api: FakeKubeAPI, client: Client) -> None:
    make_ns(api, "other")
    api.put(raw_rb("x", "default"))
    api.put(raw_rb("y", "default"))
    api.put(raw_rb("x", "other"))
    by_name = client.list(RoleBinding, namespace=ALL_NS, fields={"metadata.name": "x"})
    assert sorted(str(r.metadata.namespace) for r in by_name if r.metadata) == ["default", "other"]
    not_default = client.list(
        RoleBinding, namespace=ALL_NS, fields={"metadata.namespace": op.not_equal("default")}
    )
    assert [r.metadata.namespace for r in not_default if r.metadata] == ["other"]
    err = api_error(lambda: list(client.list(RoleBinding, fields={"roleRef.name": "x"})))
    assert_status(err, 400, "BadRequest")
    assert err.status.message == "field label not supported: roleRef.name"


# ---------------------------------------------------------------------------- pagination


def test_pagination_returns_everything_once(api: FakeKubeAPI, client: Client) -> None:
    for i in range(23):
        api.put(raw_rb(f"rb-{i:02d}", "default"))
    api.clear_requests()
    names = [
        r.metadata.name
        for r in client.list(RoleBinding, namespace=ALL_NS, chunk_size=5)
        if r.metadata
    ]
    assert names == [f"rb-{i:02d}" for i in range(23)]
    assert api.count("list", "rolebindings") == 5
    assert [r.query.get("limit") for r in api.requests] == ["5"] * 5
    assert "continue" not in api.requests[0].query and "continue" in api.requests[1].query


def test_pagination_is_a_consistent_snapshot(api: FakeKubeAPI, raw: httpx2.Client) -> None:
    for i in range(10):
        api.put(raw_rb(f"rb-{i}", "default"))
    url = f"/apis/{RB_V1}/rolebindings"
    first = raw.get(url, params={"limit": 4}).json()
    assert first["metadata"]["remainingItemCount"] == 6
    api.put(raw_rb("rb-00-new", "default"))  # sorts before the next page start and after
    api.put(raw_rb("rb-9-new", "default"))
    api.remove(RB_V1, "RoleBinding", "rb-8", "default")
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = raw.get(url, params={"limit": 4, "continue": token}).json()
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == [f"rb-{i}" for i in range(10)]


def test_bad_and_expired_continue_tokens(api: FakeKubeAPI, raw: httpx2.Client) -> None:
    for i in range(5):
        api.put(raw_rb(f"rb-{i}", "default"))
    url = f"/apis/{RB_V1}/rolebindings"
    resp = raw.get(url, params={"limit": 2, "continue": "garbage!!"})
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    token = raw.get(url, params={"limit": 2}).json()["metadata"]["continue"]
    api.expire_continue_tokens()
    resp = raw.get(url, params={"limit": 2, "continue": token})
    assert resp.status_code == 410 and resp.json()["reason"] == "Expired"


def test_pagination_with_selector_and_page_cap() -> None:
    with FakeKubeAPI(page_size_cap=3) as capped:
        for i in range(10):
            capped.put(raw_rb(f"rb-{i}", "default", even=str(i % 2 == 0).lower()))
        c = capped.client()
        evens = [
            r.metadata.name
            for r in c.list(RoleBinding, labels={"even": "true"}, chunk_size=100)
            if r.metadata
        ]
        assert evens == ["rb-0", "rb-2", "rb-4", "rb-6", "rb-8"]
        assert capped.count("list") == 2


def test_list_of_20000_rolebindings_is_fast(api: FakeKubeAPI, client: Client) -> None:
    for i in range(20_000):
        api.store.put_raw(raw_rb(f"rb-{i:05d}", "default"))
    api.clear_requests()
    start = time.perf_counter()
    count = sum(1 for _ in client.list(RoleBinding, namespace=ALL_NS, chunk_size=500))
    elapsed = time.perf_counter() - start
    print(f"\nlisted {count} RoleBindings in {api.count('list')} pages: {elapsed:.3f}s")
    assert count == 20_000 and api.count("list", "rolebindings") == 40
    assert elapsed < 5


# ---------------------------------------------------------------------------- server-side apply


def test_apply_creates_then_updates(api: FakeKubeAPI, client: Client) -> None:
    client.apply(rolebinding("rb", "default", labels={"a": "1"}), field_manager="charm")
    assert api.requests[-1].status == 201 and api.requests[-1].verb == "apply"
    first = client.get(RoleBinding, "rb", namespace="default")
    client.apply(rolebinding("rb", "default", labels={"a": "2"}), field_manager="charm")
    assert api.requests[-1].status == 200
    second = client.get(RoleBinding, "rb", namespace="default")
    assert second.metadata is not None and second.metadata.labels == {"a": "2"}
    managers = [(m.manager, m.operation) for m in second.metadata.managedFields or []]
    assert managers == [("charm", "Apply")]
    client.apply(rolebinding("rb", "default", labels={"a": "2"}), field_manager="charm")
    third = client.get(RoleBinding, "rb", namespace="default")
    assert first.metadata is not None and third.metadata is not None
    assert third.metadata.resourceVersion == second.metadata.resourceVersion


def test_apply_removes_fields_it_no_longer_sets(client: Client) -> None:
    client.apply(rolebinding("rb", "default", labels={"a": "1", "b": "2"}), field_manager="charm")
    client.set(RoleBinding, "rb", namespace="default", labels={"c": "3"}, field_manager="human")
    client.apply(rolebinding("rb", "default", labels={"a": "1"}), field_manager="charm")
    got = client.get(RoleBinding, "rb", namespace="default")
    assert got.metadata is not None and got.metadata.labels == {"a": "1", "c": "3"}


def test_apply_keeps_field_shared_with_another_manager(client: Client) -> None:
    client.apply(rolebinding("rb", "default", labels={"a": "1"}), field_manager="one")
    client.apply(rolebinding("rb", "default", labels={"a": "1"}), field_manager="two")
    client.apply(rolebinding("rb", "default"), field_manager="one")
    got = client.get(RoleBinding, "rb", namespace="default")
    assert got.metadata is not None and got.metadata.labels == {"a": "1"}


def test_apply_conflict_and_force(client: Client) -> None:
    client.apply(rolebinding("rb", "default", user="a@x"), field_manager="charm")
    client.patch(
        RoleBinding,
        "rb",
        {"subjects": [{"kind": "User", "name": "b@x", "apiGroup": RBAC}]},
        namespace="default",
        patch_type=PatchType.MERGE,
        field_manager="kubectl-edit",
    )
    err = api_error(client.apply, rolebinding("rb", "default", user="a@x"), field_manager="charm")
    assert_status(err, 409, "Conflict")
    assert err.status.message == (
        f'Apply failed with 1 conflict: conflict with "kubectl-edit" using {RB_V1}: .subjects'
    )
    details = err.status.details
    assert details is not None and details.causes
    assert details.causes[0].field == ".subjects"
    forced = client.apply(
        rolebinding("rb", "default", user="a@x"), field_manager="charm", force=True
    )
    assert forced.subjects is not None and forced.subjects[0].name == "a@x"
    assert forced.metadata is not None
    assert [m.manager for m in forced.metadata.managedFields or []] == ["charm"]


def test_apply_conflicts_with_other_appliers(client: Client) -> None:
    client.apply(rolebinding("rb", "default", labels={"a": "1"}), field_manager="one")
    err = api_error(
        client.apply, rolebinding("rb", "default", labels={"a": "2"}), field_manager="two"
    )
    assert (
        err.status.message
        == 'Apply failed with 1 conflict: conflict with "one": .metadata.labels.a'
    )


def test_apply_requires_field_manager_and_accepts_yaml(
    api: FakeKubeAPI, raw: httpx2.Client
) -> None:
    url = "/api/v1/namespaces/default/configmaps/cm"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: v\n"
    resp = raw.patch(url, content=doc, headers=headers)
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    resp = raw.patch(url, content=doc, headers=headers, params={"fieldManager": "yaml"})
    assert resp.status_code == 201 and resp.json()["data"] == {"k": "v"}
    assert api.requests[-1].data()["data"] == {"k": "v"}


def test_apply_on_crds_and_namespaced_crds(client: Client) -> None:
    client.apply(profile("p", "o@x", hard={"cpu": "1"}), field_manager="charm")
    client.apply(profile("p", "o@x"), field_manager="charm")
    got = client.get(Profile, "p")
    assert "resourceQuotaSpec" not in got["spec"]
    policy = AuthorizationPolicy(
        metadata=ObjectMeta(name="ap", namespace="default"), spec={"action": "ALLOW"}
    )
    client.apply(policy, field_manager="charm")
    client.patch(
        AuthorizationPolicy,
        "ap",
        [{"op": "add", "path": "/spec/rules", "value": []}],
        namespace="default",
        patch_type=PatchType.JSON,
    )
    assert client.get(AuthorizationPolicy, "ap", namespace="default")["spec"]["rules"] == []
    listed = list(client.list(AuthorizationPolicy, namespace=ALL_NS))
    assert listed[0]["apiVersion"] == "security.istio.io/v1beta1"
    client.delete(AuthorizationPolicy, "ap", namespace="default")
    assert list(client.list(AuthorizationPolicy, namespace="default")) == []


# ---------------------------------------------------------------------------- status, versions


def test_profile_status_subresource(client: Client, raw: httpx2.Client) -> None:
    client.create(profile("p", "o@x"))
    client.patch(
        Profile.Status,
        "p",
        {"status": {"conditions": [{"type": "Ready"}]}},
        patch_type=PatchType.MERGE,
    )
    got = raw.get("/apis/kubeflow.org/v1/profiles/p/status").json()
    assert got["status"] == {"conditions": [{"type": "Ready"}]}
    got["status"] = {"conditions": []}
    got["spec"] = {"ignored": True}
    assert raw.put("/apis/kubeflow.org/v1/profiles/p/status", json=got).status_code == 200
    after = client.get(Profile, "p")
    assert after["status"] == {"conditions": []} and "ignored" not in after["spec"]
    client.patch(Profile, "p", {"status": {"x": 1}}, patch_type=PatchType.MERGE)
    assert client.get(Profile, "p")["status"] == {"conditions": []}


def test_crd_versions_share_storage(client: Client) -> None:
    client.create(profile("p", "o@x"))
    old = client.get(ProfileV1beta1, "p")
    assert old["apiVersion"] == "kubeflow.org/v1beta1" and old["spec"]["owner"]["name"] == "o@x"


# ---------------------------------------------------------------------------- deletion cascade


def test_namespace_delete_cascades(api: FakeKubeAPI, client: Client) -> None:
    client.create(Namespace(metadata=ObjectMeta(name="team")))
    client.create(ConfigMap(metadata=ObjectMeta(name="c", namespace="team")))
    client.create(rolebinding("rb", "team"))
    client.create(rolebinding("rb", "default"))
    client.delete(Namespace, "team")
    assert api.list("v1", "ConfigMap", "team") == []
    assert [r["metadata"]["namespace"] for r in api.list(RB_V1, "RoleBinding")] == ["default"]
    assert_status(api_error(client.delete, Namespace, "default"), 403, "Forbidden")


def test_owner_references_are_garbage_collected(api: FakeKubeAPI, client: Client) -> None:
    owner = client.create(ConfigMap(metadata=ObjectMeta(name="owner", namespace="default")))
    assert owner.metadata is not None
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "dep", "ownerReferences": [ref]},
        }
    )
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "orphan", "ownerReferences": [ref]},
        }
    )
    client.delete(ConfigMap, "owner", namespace="default")
    assert api.list("v1", "Secret", "default") == []
    owner = client.create(ConfigMap(metadata=ObjectMeta(name="owner", namespace="default")))
    assert owner.metadata is not None
    ref["uid"] = owner.metadata.uid
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kept", "ownerReferences": [ref]},
        }
    )
    client.delete(ConfigMap, "owner", namespace="default", cascade=CascadeType.ORPHAN)
    assert [s["metadata"]["name"] for s in api.list("v1", "Secret", "default")] == ["kept"]


# ---------------------------------------------------------------------------- missing CRDs, RBAC


def test_uninstalled_crd_answers_404(api: FakeKubeAPI, client: Client) -> None:
    client.create(profile("p", "o@x"))
    api.uninstall("kubeflow.org", "profiles")
    for call in (
        lambda: list(client.list(Profile)),
        lambda: client.get(Profile, "p"),
        lambda: client.create(profile("q", "o@x")),
    ):
        err = api_error(call)
        assert_status(err, 404, "NotFound")
        assert err.status.message == "the server could not find the requested resource"
    assert api.count("list", "profiles") == 1
    assert list(client.list(Namespace))  # everything else still served


def test_forbid(api: FakeKubeAPI, client: Client) -> None:
    api.forbid("list", "profiles")
    err = api_error(lambda: list(client.list(Profile)))
    assert_status(err, 403, "Forbidden")
    assert err.status.message == (
        'profiles.kubeflow.org is forbidden: User "system:serviceaccount:test:test" cannot '
        'list resource "profiles" in API group "kubeflow.org" at the cluster scope'
    )
    api.forbid("apply", "rolebindings")
    err = api_error(client.apply, rolebinding("rb", "default"), field_manager="charm")
    assert err.status.message == (
        f'rolebindings.{RBAC} "rb" is forbidden: User "system:serviceaccount:test:test" cannot '
        f'patch resource "rolebindings" in API group "{RBAC}" in the namespace "default"'
    )
    client.create(rolebinding("rb", "default"))  # other verbs still allowed


# ---------------------------------------------------------------------------- faults


def test_fault_status_then_recovers(api: FakeKubeAPI, client: Client) -> None:
    fault = api.add_fault(verb="list", path="/configmaps", status=500)
    assert_status(api_error(lambda: list(client.list(ConfigMap))), 500, "InternalError")
    assert list(client.list(ConfigMap)) == []
    assert fault.hits == 1
    assert [r.status for r in api.requests] == [500, 200]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (403, "Forbidden"),
        (404, "NotFound"),
        (409, "Conflict"),
        (429, "TooManyRequests"),
        (503, "ServiceUnavailable"),
    ],
)
def test_fault_reasons(api: FakeKubeAPI, client: Client, code: int, reason: str) -> None:
    api.add_fault(method="GET", status=code, headers={"Retry-After": "0"}, message="boom")
    err = api_error(client.get, Namespace, "default")
    assert_status(err, code, reason)
    assert err.status.message == "boom" and err.response is not None
    assert err.response.headers["Retry-After"] == "0"


def test_fault_drop_raises_transport_error(api: FakeKubeAPI, client: Client) -> None:
    api.add_fault(verb="create", drop=True, times=2)
    cm = ConfigMap(metadata=ObjectMeta(name="c", namespace="default"))
    for _ in range(2):
        with pytest.raises(httpx2.TransportError):
            client.create(cm)
    client.create(cm)
    assert [r.status for r in api.requests] == [0, 0, 201]


def test_fault_delay_and_forever(api: FakeKubeAPI, client: Client) -> None:
    api.add_fault(verb="get", delay=0.2)
    start = time.perf_counter()
    client.get(Namespace, "default")
    assert time.perf_counter() - start >= 0.2
    api.add_fault(path=r"/namespaces/default$", status=503, times=-1)
    for _ in range(3):
        assert_status(api_error(client.get, Namespace, "default"), 503, "ServiceUnavailable")
    api.clear_faults()
    client.get(Namespace, "default")


def test_connections_are_kept_alive(api: FakeKubeAPI, client: Client) -> None:
    for _ in range(20):
        client.get(Namespace, "default")
    server = api._server
    assert server is not None and len(server.connections) == 1


# ---------------------------------------------------------------------------- profile controller


def test_profile_controller_sync(api: FakeKubeAPI, client: Client) -> None:
    client.create(profile("alice", "alice@example.com", hard={"cpu": "2"}))
    assert api.profile_controller.reconcile_count == 1
    ns = api.get("v1", "Namespace", "alice")
    assert ns is not None
    assert ns["metadata"]["annotations"] == {"owner": "alice@example.com"}
    assert ns["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubeflow-profile"
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
    ref = ns["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("Profile", "alice", True)
    policy = api.get(
        "security.istio.io/v1beta1", "AuthorizationPolicy", "ns-owner-access-istio", "alice"
    )
    assert policy is not None
    when = policy["spec"]["rules"][0]["when"][0]
    assert when == {"key": "request.headers[kubeflow-userid]", "values": ["alice@example.com"]}
    bindings = {b["metadata"]["name"]: b for b in api.list(RB_V1, "RoleBinding", "alice")}
    assert set(bindings) == {"default-editor", "default-viewer", "namespaceAdmin"}
    admin = bindings["namespaceAdmin"]
    assert admin["metadata"]["annotations"] == {"user": "alice@example.com", "role": "admin"}
    assert admin["roleRef"]["name"] == "kubeflow-admin"
    assert admin["subjects"] == [{"kind": "User", "name": "alice@example.com", "apiGroup": RBAC}]
    assert "annotations" not in bindings["default-editor"]["metadata"]
    accounts = [s["metadata"]["name"] for s in api.list("v1", "ServiceAccount", "alice")]
    assert accounts == ["default-editor", "default-viewer"]
    quota = api.get("v1", "ResourceQuota", "kf-resource-quota", "alice")
    assert quota is not None and quota["spec"] == {"hard": {"cpu": "2"}}
    assert api.count() == 1  # the controller's own writes are not client requests
    managers = {m["manager"] for m in quota["metadata"]["managedFields"]}
    assert managers == {"profile-controller"}


def test_profile_controller_manual_and_off() -> None:
    with FakeKubeAPI(profile_controller="manual") as api:
        c = api.client()
        c.create(profile("bob", "bob@x"))
        assert api.get("v1", "Namespace", "bob") is None
        api.profile_controller.reconcile()
        assert api.get("v1", "Namespace", "bob") is not None
        assert api.profile_controller.reconcile_count == 1
    with FakeKubeAPI(profile_controller="off") as api:
        api.client().create(profile("carol", "carol@x"))
        assert api.get("v1", "Namespace", "carol") is None
        assert api.profile_controller.reconcile_count == 0


def test_profile_controller_owner_mismatch(api: FakeKubeAPI, client: Client) -> None:
    make_ns(api, "dave", owner="someone-else@x")
    client.create(profile("dave", "dave@x"))
    got = client.get(Profile, "dave")
    assert got["status"]["conditions"] == [
        {
            "type": "Failed",
            "message": "namespace already exist, but not owned by profile creator dave@x",
        }
    ]
    assert api.list(RB_V1, "RoleBinding", "dave") == []
    client.set(Namespace, "dave", annotations={"owner": "dave@x"})  # the charm's workaround
    assert {b["metadata"]["name"] for b in api.list(RB_V1, "RoleBinding", "dave")} == {
        "default-editor",
        "default-viewer",
        "namespaceAdmin",
    }


def test_profile_owner_change_rewrites_the_policy_spec_but_not_its_annotations(
    api: FakeKubeAPI, client: Client
) -> None:
    client.create(profile("erin", "old@x"))
    client.patch(
        Profile, "erin", {"spec": {"owner": {"name": "new@x"}}}, patch_type=PatchType.MERGE
    )
    client.set(Namespace, "erin", annotations={"owner": "new@x"})
    kind = ("security.istio.io/v1beta1", "AuthorizationPolicy", "ns-owner-access-istio", "erin")
    policy = api.get(*kind)
    assert policy is not None
    assert policy["spec"]["rules"][0]["when"][0]["values"] == ["new@x"]  # upstream updates spec
    assert policy["metadata"]["annotations"]["user"] == "old@x"  # ... and never annotations
    client.delete(AuthorizationPolicy, "ns-owner-access-istio", namespace="erin")
    policy = api.get(*kind)
    assert policy is not None
    assert policy["metadata"]["annotations"]["user"] == "new@x"


def test_profile_quota_follows_spec(api: FakeKubeAPI, client: Client) -> None:
    client.create(profile("fay", "fay@x", hard={"cpu": "1"}))
    client.patch(
        Profile,
        "fay",
        {"spec": {"resourceQuotaSpec": {"hard": {"cpu": "4"}}}},
        patch_type=PatchType.MERGE,
    )
    quota = client.get(ResourceQuota, "kf-resource-quota", namespace="fay")
    assert quota.spec == ResourceQuotaSpec(hard={"cpu": "4"})
    client.patch(Profile, "fay", {"spec": {"resourceQuotaSpec": None}}, patch_type=PatchType.MERGE)
    assert api.get("v1", "ResourceQuota", "kf-resource-quota", "fay") is None


def test_profile_delete_collects_namespace(api: FakeKubeAPI, client: Client) -> None:
    client.create(profile("gus", "gus@x"))
    client.create(ConfigMap(metadata=ObjectMeta(name="c", namespace="gus")))
    client.delete(Profile, "gus")
    assert api.get("v1", "Namespace", "gus") is None
    assert api.list(RB_V1, "RoleBinding", "gus") == []
    assert api.list("v1", "ConfigMap", "gus") == []


# ---------------------------------------------------------------------------- direct access


def test_direct_access_is_not_logged(api: FakeKubeAPI) -> None:
    stored = api.put(raw_rb("rb", "default", a="b"))
    assert stored["metadata"]["uid"] and stored["metadata"]["resourceVersion"]
    assert api.get(RB_V1, "RoleBinding", "rb", "default") == stored
    api.remove(RB_V1, "RoleBinding", "rb", "default")
    assert api.get(RB_V1, "RoleBinding", "rb", "default") is None
    assert api.requests == [] and api.count() == 0
    api.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    cluster_binding = {
        "apiVersion": RB_V1,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "crb"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "x"},
    }
    api.put(cluster_binding)
    c = api.client()
    assert c.get(ClusterRoleBinding, "crb").roleRef.name == "x"
    assert [m["metadata"]["name"] for m in api.list("v1", "ConfigMap")] == ["c"]
    assert api.count("get", "clusterrolebindings") == 1
    api.clear_requests()
    assert api.count() == 0


def test_unknown_paths_are_404(raw: httpx2.Client) -> None:
    for path in ("/apis/example.com/v1/widgets", "/api/v1/namespaces/default/widgets", "/nope"):
        resp = raw.get(path)
        assert resp.status_code == 404
        assert resp.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "the server could not find the requested resource",
            "reason": "NotFound",
            "details": {},
            "code": 404,
        }


def test_request_record_fields(api: FakeKubeAPI, client: Client) -> None:
    client.patch(
        Namespace,
        "default",
        {"metadata": {"labels": {"x": "y"}}},
        patch_type=PatchType.MERGE,
        field_manager="me",
    )
    rec = api.requests[-1]
    assert (rec.method, rec.path, rec.verb, rec.status) == (
        "PATCH",
        "/api/v1/namespaces/default",
        "patch",
        200,
    )
    assert rec.query == {"fieldManager": "me"}
    assert rec.content_type == "application/merge-patch+json"
    assert json.loads(rec.body) == {"metadata": {"labels": {"x": "y"}}}


# ---------------------------------------------------------------------------- watch


def _watch(raw: httpx2.Client, path: str, **params: str) -> list[dict[str, Any]]:
    """Every event of one watch request, read until the server ends the stream."""
    with raw.stream("GET", path, params={"watch": "true", **params}) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def _cm(name: str, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


def test_watch_without_version_starts_with_the_current_objects(
    api: FakeKubeAPI, raw: httpx2.Client
) -> None:
    api.put(_cm("a"))

    events = _watch(raw, "/api/v1/namespaces/default/configmaps", timeoutSeconds="1")

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]
    assert events[0]["object"]["kind"] == "ConfigMap"


def test_watch_from_a_version_streams_each_later_change_once(
    api: FakeKubeAPI, raw: httpx2.Client, client: Client
) -> None:
    api.put(_cm("before"))
    start = str(api.store.resource_version)
    client.create(ConfigMap(metadata=ObjectMeta(name="a", namespace="default")))
    client.patch(ConfigMap, "a", {"data": {"x": "1"}}, namespace="default")
    client.delete(ConfigMap, "a", namespace="default")
    api.put({**_cm("other"), "metadata": {"name": "other", "namespace": "kube-system"}})

    events = _watch(
        raw, "/api/v1/namespaces/default/configmaps", resourceVersion=start, timeoutSeconds="1"
    )

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(start)


def test_watch_selectors_apply_to_the_old_and_new_object(
    api: FakeKubeAPI, raw: httpx2.Client, client: Client
) -> None:
    start = str(api.store.resource_version)
    api.put(_cm("a", team="x"))
    api.put(_cm("a", team="y"))  # leaves the selection
    api.put(_cm("a", team="x"))  # comes back

    events = _watch(
        raw,
        "/api/v1/configmaps",
        resourceVersion=start,
        labelSelector="team=x",
        timeoutSeconds="1",
    )

    assert [e["type"] for e in events] == ["ADDED", "DELETED", "ADDED"]


def test_watch_of_a_compacted_version_answers_410_expired(
    api: FakeKubeAPI, raw: httpx2.Client
) -> None:
    start = str(api.store.resource_version)
    api.put(_cm("a"))
    api.store.compact()

    events = _watch(raw, "/api/v1/configmaps", resourceVersion=start, timeoutSeconds="5")

    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"
    assert events[0]["object"]["message"].startswith(f"too old resource version: {start} (")


def test_watch_sends_bookmarks_when_allowed_and_lives_until_its_timeout(
    api: FakeKubeAPI, raw: httpx2.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.store, "BOOKMARK_INTERVAL", 0.2)
    start = time.monotonic()

    events = _watch(
        raw,
        "/api/v1/configmaps",
        resourceVersion=str(api.store.resource_version),
        allowWatchBookmarks="true",
        timeoutSeconds="1",
    )

    assert 1.0 <= time.monotonic() - start < 3.0
    assert events and {e["type"] for e in events} == {"BOOKMARK"}
    assert set(events[0]["object"]["metadata"]) == {"resourceVersion"}


def test_lightkube_watch_sees_a_live_change(api: FakeKubeAPI, client: Client) -> None:
    version = str(api.store.resource_version)
    timer = threading.Timer(0.2, lambda: api.put(_cm("late")))
    timer.start()
    try:
        stream = client.watch(
            ConfigMap, namespace="default", resource_version=version, server_timeout=5
        )
        kind, obj = next(iter(stream))
    finally:
        timer.cancel()

    assert (kind, obj.metadata.name if obj.metadata else None) == ("ADDED", "late")
    assert api.count("watch", "configmaps") == 1


# ---------------------------------------------------------------------------- controller settings


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0.5", "500m"),
        ("1.5Gi", "1536Mi"),
        ("1024Mi", "1Gi"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("2", "2"),
        ("512Ki", "512Ki"),
        ("0.5Ki", "512"),
        ("100m", "100m"),
        ("0.1m", "100u"),
        ("1e3", "1e3"),
        ("1000M", "1G"),
        ("0", "0"),
    ],
)
def test_quantities_are_written_back_as_go_serializes_them(text: str, canonical: str) -> None:
    assert canonical_quantity(text) == canonical


def test_controller_is_asynchronous_by_default() -> None:
    with FakeKubeAPI(controller_delay=0.3) as api:
        api.client().create(profile("late", "late@x"))
        assert api.get("v1", "Namespace", "late") is None
        deadline = time.monotonic() + 5
        while api.get("v1", "Namespace", "late") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.get("v1", "Namespace", "late") is not None


def test_charmed_ambient_controller_binds_the_owner_policy_to_a_waypoint() -> None:
    with FakeKubeAPI(profile_controller="sync", controller_settings=CHARMED_AMBIENT) as api:
        api.client().create(profile("amb", "amb@x"))

        policy = api.get("security.istio.io/v1beta1", "AuthorizationPolicy", OWNER, "amb")
        waypoint = api.get("gateway.networking.k8s.io/v1", "Gateway", "waypoint", "amb")
        namespace = api.get("v1", "Namespace", "amb")

    assert policy is not None and waypoint is not None and namespace is not None
    assert policy["spec"]["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}
    ]
    assert policy["spec"]["rules"][0]["from"][0]["source"]["principals"] == [
        "cluster.local/ns/kubeflow/sa/istio-ingress-k8s-istio",
        "cluster.local/ns/kubeflow/sa/kfp-ui",
    ]
    assert namespace["metadata"]["labels"]["istio.io/use-waypoint"] == "waypoint"
