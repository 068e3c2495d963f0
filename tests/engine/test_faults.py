"""Failing writes, late namespaces and a cluster the engine cannot use."""

from __future__ import annotations

from dataclasses import replace

import pytest
from lightkube import Client

from profiles_automator.sync.cluster import ClusterError
from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import (
    OBSERVED,
    POLICY,
    PROFILE,
    ROLE_BINDING,
    contributor_names,
    get,
    list_calls,
    load,
    names,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

OWNER_ONLY = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: frank@example.com, role: view}
"""
FOUR = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: edit}
      - {name: carol@example.com, role: edit}
      - {name: dave@example.com, role: edit}
      - {name: erin@example.com, role: edit}
"""
KINDS = (ROLE_BINDING, POLICY)


def _path(plural: str, user: str, role: str = "edit") -> str:
    return f"/namespaces/team-a/{plural}/user-{user}-example-com-clusterrole-{role}$"


def _attempts(api: FakeKubeAPI, verb: str, plural: str, user: str, role: str = "edit") -> int:
    name = f"user-{user}-example-com-clusterrole-{role}"
    return sum(1 for r in api.requests if (r.verb, r.plural, r.name) == (verb, plural, name))


def test_writes_that_keep_failing_are_isolated_and_reported(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(OWNER_ONLY), settings)
    api.add_fault(verb="apply", path=_path("rolebindings", "bob"), status=500, times=10)
    api.add_fault(verb="apply", path=_path("authorizationpolicies", "carol"), drop=True, times=10)
    api.add_fault(
        verb="apply",
        path=_path("rolebindings", "dave"),
        status=502,
        headers={"Content-Type": "text/html"},  # a proxy's error page, not a Status
        times=10,
    )
    api.clear_requests()

    report = sync(client, load(FOUR), settings)

    failed = {(f.change.kind, f.change.name): f for f in report.failures}
    assert set(failed) == {
        ("RoleBinding", "user-bob-example-com-clusterrole-edit"),
        ("AuthorizationPolicy", "user-carol-example-com-clusterrole-edit"),
        ("RoleBinding", "user-dave-example-com-clusterrole-edit"),
        ("RoleBinding", "user-frank-example-com-clusterrole-view"),
        ("AuthorizationPolicy", "user-frank-example-com-clusterrole-view"),
    }
    bob = failed[("RoleBinding", "user-bob-example-com-clusterrole-edit")]
    assert bob.status == 500
    assert "an error on the server" in bob.message
    carol = failed[("AuthorizationPolicy", "user-carol-example-com-clusterrole-edit")]
    assert carol.status is None
    assert carol.message
    assert "no response" in str(carol)
    assert failed[("RoleBinding", "user-dave-example-com-clusterrole-edit")].status == 502
    # Grants failed in team-a, so its revocations wait for the next run: no gap in access.
    for kind in ("RoleBinding", "AuthorizationPolicy"):
        held = failed[(kind, "user-frank-example-com-clusterrole-view")]
        assert held.status is None
        assert held.message.startswith("not revoked: a grant in this namespace failed")
    assert _attempts(api, "apply", "rolebindings", "bob") == 3  # retried, then given up
    assert _attempts(api, "apply", "authorizationpolicies", "carol") == 3
    assert _attempts(api, "delete", "rolebindings", "frank", "view") == 0
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        "user-carol-example-com-clusterrole-edit",
        "user-erin-example-com-clusterrole-edit",
        "user-frank-example-com-clusterrole-view",
    }
    assert contributor_names(api, POLICY, "team-a") == {
        "user-bob-example-com-clusterrole-edit",
        "user-dave-example-com-clusterrole-edit",
        "user-erin-example-com-clusterrole-edit",
        "user-frank-example-com-clusterrole-view",
    }
    assert len(report.applied) == 5
    assert not report.in_sync

    api.clear_faults()
    api.clear_requests()
    second = sync(client, load(FOUR), settings)

    assert second.failures == ()
    assert {(c.kind, c.name) for c in second.applied} == set(failed)  # only what failed
    users = {f"user-{u}-example-com-clusterrole-edit" for u in ("bob", "carol", "dave", "erin")}
    for kind in KINDS:
        assert contributor_names(api, kind, "team-a") == users

    api.clear_requests()
    third = sync(client, load(FOUR), settings)

    assert third.changes == ()
    assert writes(api) == []


def test_transient_faults_are_retried(api: FakeKubeAPI, client: Client, settings: SyncSettings):
    sync(client, load(OWNER_ONLY), settings)
    api.add_fault(verb="apply", path=_path("rolebindings", "bob"), status=500, times=1)
    api.add_fault(verb="apply", path=_path("authorizationpolicies", "carol"), drop=True, times=1)
    api.add_fault(
        verb="apply",
        path=_path("rolebindings", "dave"),
        status=429,
        headers={"Retry-After": "1"},
        times=1,
    )
    api.add_fault(verb="apply", path=_path("rolebindings", "erin"), status=409, times=1)
    api.add_fault(verb="delete", path=_path("rolebindings", "frank", "view"), drop=True, times=1)
    api.clear_requests()

    report = sync(client, load(FOUR), settings)

    assert report.failures == ()
    assert report.in_sync
    assert _attempts(api, "apply", "rolebindings", "bob") == 2
    assert _attempts(api, "apply", "authorizationpolicies", "carol") == 2
    assert _attempts(api, "apply", "rolebindings", "dave") == 2
    assert _attempts(api, "delete", "rolebindings", "frank", "view") == 2
    users = {f"user-{u}-example-com-clusterrole-edit" for u in ("bob", "carol", "dave", "erin")}
    for kind in KINDS:
        assert contributor_names(api, kind, "team-a") == users


def test_faults_do_not_leak_into_other_profiles(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    two = FOUR + "  - name: team-b\n    owner: {kind: User, name: zed@example.com}\n"
    api.add_fault(method="PATCH", path="/profiles/team-a$", status=500, times=10)

    report = sync(client, load(two), settings)

    assert [(f.change.kind, f.change.name, f.status) for f in report.failures] == [
        ("Profile", "team-a", 500)
    ]
    assert names(api, PROFILE) == {"team-b"}
    assert report.pending == ("team-a",)
    api.clear_faults()
    assert sync(client, load(two), settings).failures == ()
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        f"user-{u}-example-com-clusterrole-edit" for u in ("bob", "carol", "dave", "erin")
    }


def test_failed_grant_keeps_the_old_role(api: FakeKubeAPI, client: Client, settings: SyncSettings):
    edit = FOUR.replace("bob@example.com, role: edit", "bob@example.com, role: view")
    sync(client, load(edit), settings)
    api.add_fault(verb="apply", path=_path("rolebindings", "bob"), status=500, times=10)

    report = sync(client, load(FOUR), settings)

    assert report.failures
    assert contributor_names(api, ROLE_BINDING, "team-a") >= {
        "user-bob-example-com-clusterrole-view"  # still has some access until the grant works
    }


# ---------------------------------------------------------------------------- late namespaces


@pytest.mark.parametrize("api", ["manual"], indirect=True)
def test_contributors_wait_for_the_namespace(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    settings = replace(settings, namespace_wait=0.3)  # a controller that does nothing

    first = sync(client, load(FOUR), settings)

    assert [(c.action, c.kind) for c in first.applied] == [("create", "Profile")]
    assert first.pending == ("team-a",)
    assert not first.in_sync
    assert api.list(*ROLE_BINDING, "team-a") == []
    assert api.list(*POLICY, "team-a") == []

    api.profile_controller.reconcile()
    second = sync(client, load(FOUR), settings)

    assert second.pending == ()
    assert second.counts()["created"] == 8
    for kind in KINDS:
        assert len(contributor_names(api, kind, "team-a")) == 4

    api.clear_requests()
    third = sync(client, load(FOUR), settings)

    assert third.changes == ()
    assert third.in_sync
    assert writes(api) == []


def test_namespace_made_during_the_run_gets_contributors_at_once(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    report = sync(client, load(FOUR), settings)

    assert report.pending == ()
    assert report.in_sync
    assert list_calls(api) == [*OBSERVED, "authorizationpolicies"]  # then the owner policies
    assert {(c.action, c.kind) for c in report.changes} == {
        ("create", "Profile"),
        ("create", "RoleBinding"),
        ("create", "AuthorizationPolicy"),
    }
    for kind in KINDS:
        assert len(contributor_names(api, kind, "team-a")) == 4


def test_failed_owner_policy_list_leaves_namespaces_pending(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    policies = "^/apis/security.istio.io/v1beta1/authorizationpolicies$"
    api.add_fault(verb="list", path=policies, times=1)  # the observing list: served
    api.add_fault(verb="list", path=policies, status=500, times=10)  # the owner policies

    report = sync(client, load(FOUR), settings)

    assert [(c.action, c.kind) for c in report.applied] == [("create", "Profile")]
    assert report.pending == ("team-a",)


# ---------------------------------------------------------------------------- unusable cluster


@pytest.mark.parametrize(
    ("group", "plural", "message"),
    [
        (
            "kubeflow.org",
            "profiles",
            "Profile CRD not found: is Kubeflow's profile controller deployed?",
        ),
        (
            "security.istio.io",
            "authorizationpolicies",
            "AuthorizationPolicy CRD not found: is Istio deployed?",
        ),
    ],
)
def test_missing_crd_is_explained(
    api: FakeKubeAPI,
    client: Client,
    settings: SyncSettings,
    group: str,
    plural: str,
    message: str,
):
    api.uninstall(group, plural)

    with pytest.raises(ClusterError) as raised:
        sync(client, load(FOUR), settings)

    assert str(raised.value) == message
    assert writes(api) == []


def test_a_list_without_permission_is_explained(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api.forbid("list", "rolebindings")

    with pytest.raises(ClusterError) as raised:
        sync(client, load(FOUR), settings)

    assert raised.value.missing_permissions and not raised.value.unauthenticated
    assert str(raised.value).startswith(
        "missing permissions to list rolebindings.rbac.authorization.k8s.io (the API said: "
        "rolebindings.rbac.authorization.k8s.io is forbidden: "
    )
    assert writes(api) == []


def test_rejected_credentials_are_not_called_missing_permissions(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api.revoke_token("fake-token")  # e.g. an expired token

    with pytest.raises(ClusterError) as raised:
        sync(client, load(FOUR), settings)

    assert raised.value.unauthenticated and not raised.value.missing_permissions
    assert str(raised.value) == (
        "the Kubernetes API rejected the credentials (HTTP 401 Unauthorized) to list "
        "profiles.kubeflow.org: the token is invalid or expired, or belongs to another cluster"
    )
    assert [r.status for r in api.requests] == [401]


def test_a_missing_write_permission_is_refused_before_writing(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(OWNER_ONLY), settings)
    api.forbid("apply", "authorizationpolicies")
    api.clear_requests()

    report = sync(client, load(FOUR), settings)

    assert report.refusal == (
        "missing permissions (cluster-wide): patch authorizationpolicies.security.istio.io; "
        "nothing was written"
    )
    assert report.applied == () and report.failures == ()
    assert writes(api) == []
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        "user-frank-example-com-clusterrole-view"
    }


def test_writes_forbidden_after_the_preflight_fail_per_object(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(OWNER_ONLY), settings)
    # the permission disappears between the preflight and the writes
    api.add_fault(verb="apply", path="/authorizationpolicies/", status=403, times=-1)
    api.clear_requests()

    report = sync(client, load(FOUR), settings)

    refused = [f for f in report.failures if f.status is not None]
    held = [f for f in report.failures if f.status is None]
    assert {f.change.kind for f in refused} == {"AuthorizationPolicy"}
    assert {f.status for f in refused} == {403}
    assert all("forbidden" in f.message for f in refused)
    assert {f.change.name for f in held} == {"user-frank-example-com-clusterrole-view"}
    assert _attempts(api, "apply", "authorizationpolicies", "bob") == 1  # 403 is not retried
    # the four new grants, plus frank's old one: not revoked while grants here fail
    assert len(contributor_names(api, ROLE_BINDING, "team-a")) == 5


OWNED_BY = """
profiles:
  - name: team-a
    owner: {{kind: User, name: {owner}}}
    contributors:
      - {{name: bob@example.com, role: edit}}
      - {{name: {extra}@example.com, role: view}}
"""


@pytest.mark.parametrize(
    ("verb", "path"),
    [
        ("apply", "/namespaces/team-a/rolebindings/user-"),  # a contributor grant
        ("apply", "/namespaces/team-a/authorizationpolicies/user-"),
        ("apply", "/api/v1/namespaces/team-a$"),  # the owner annotation
        ("apply", "/profiles/team-a$"),  # the Profile's owner
    ],
)
def test_an_owner_change_keeps_the_owner_objects_when_a_change_there_fails(
    api: FakeKubeAPI, client: Client, settings: SyncSettings, verb: str, path: str
):
    sync(client, load(OWNED_BY.format(owner="alice@example.com", extra="carol")), settings)
    owner_binding = api.get(*ROLE_BINDING, "namespaceAdmin", "team-a")
    owner_policy = get(api, POLICY, "ns-owner-access-istio", "team-a")
    api.add_fault(verb=verb, path=path, status=500, times=-1)
    api.clear_requests()

    report = sync(client, load(OWNED_BY.format(owner="erin@example.com", extra="dave")), settings)

    kept = {f.change.name for f in report.failures if f.message.startswith("not reset:")}
    assert kept == {"namespaceAdmin", "ns-owner-access-istio"}
    assert api.get(*ROLE_BINDING, "namespaceAdmin", "team-a") == owner_binding
    # never deleted (the controller itself rewrites its spec for a new owner, as upstream's does)
    assert (
        get(api, POLICY, "ns-owner-access-istio", "team-a")["metadata"]["uid"]
        == (owner_policy["metadata"]["uid"])
    )
    assert not [r for r in writes(api) if r.verb == "delete" and r.name in kept]

    api.clear_faults()
    again = sync(client, load(OWNED_BY.format(owner="erin@example.com", extra="dave")), settings)

    assert again.in_sync
    new_owner_binding = get(api, ROLE_BINDING, "namespaceAdmin", "team-a")
    assert new_owner_binding["subjects"][0]["name"] == "erin@example.com"


@pytest.mark.parametrize(
    ("plural", "status"),
    [
        ("rolebindings", 503),  # a transient server error
        ("authorizationpolicies", 410),  # the continue token expired: the list starts over
    ],
)
def test_a_failed_list_is_retried_whole(
    api: FakeKubeAPI, client: Client, settings: SyncSettings, plural: str, status: int
):
    api.add_fault(verb="list", path=plural, status=status, times=1)

    report = sync(client, load(FOUR), settings)

    assert report.failures == ()
    assert report.in_sync
