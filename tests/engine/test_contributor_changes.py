"""Contributors follow the PMR: added, removed, role changed, via groups, or edited by hand."""

from __future__ import annotations

from dataclasses import replace

from lightkube import Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from profiles_automator.sync.engine import SyncSettings, sync
from profiles_automator.sync.kfam import AccessPolicyOptions
from tests.engine.conftest import (
    GATEWAY,
    KFP_UI,
    MANAGED,
    POLICY,
    ROLE_BINDING,
    contributor_names,
    dashboard_binding,
    dashboard_policy,
    get,
    list_calls,
    load,
    put_all,
    write_index,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

BEFORE = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: edit}
      - {name: carol@example.com, role: view}
"""
AFTER = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: admin}
      - {name: dave@example.com, role: view}
"""
OWNER_ONLY = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
"""
KINDS = (ROLE_BINDING, POLICY)
AuthorizationPolicy = create_namespaced_resource(
    "security.istio.io", "v1beta1", "AuthorizationPolicy", "authorizationpolicies"
)


def test_contributor_added_removed_and_role_changed(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    api.clear_requests()

    report = sync(client, load(AFTER), settings)

    assert report.failures == ()
    for kind in KINDS:
        assert contributor_names(api, kind, "team-a") == {
            "user-bob-example-com-clusterrole-admin",
            "user-dave-example-com-clusterrole-view",
        }
    bob = get(api, ROLE_BINDING, "user-bob-example-com-clusterrole-admin", "team-a")
    assert bob["roleRef"]["name"] == "kubeflow-admin"
    for plural in ("rolebindings", "authorizationpolicies"):
        granted = write_index(api, "apply", plural, "user-bob-example-com-clusterrole-admin")
        revoked = write_index(api, "delete", plural, "user-bob-example-com-clusterrole-edit")
        assert granted < revoked
    reasons = {(c.kind, c.name): c.reason for c in report.changes if c.action == "delete"}
    assert reasons[("RoleBinding", "user-bob-example-com-clusterrole-edit")] == (
        "bob@example.com is now admin in team-a, not edit"
    )
    assert reasons[("RoleBinding", "user-carol-example-com-clusterrole-view")] == (
        "carol@example.com is not a contributor of team-a in the PMR"
    )
    assert report.counts() == {"created": 4, "updated": 0, "deleted": 4, "replaced": 0}


def test_changes_converge_then_stay_quiet(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    sync(client, load(AFTER), settings)
    api.clear_requests()

    report = sync(client, load(AFTER), settings)

    assert report.changes == ()
    assert list_calls(api) == ["profiles", "namespaces", "rolebindings", "authorizationpolicies"]
    assert writes(api) == []


def test_bindings_follow_group_membership(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    template = """
    groups:
      data-team:
        members: [{members}]
    profiles:
      - name: team-a
        owner: {{kind: User, name: alice@example.com}}
        contributors:
          - {{group: data-team, role: view}}
          - {{name: carol@example.com, role: edit}}
    """
    sync(client, load(template.format(members="bob@example.com, carol@example.com")), settings)
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        "user-bob-example-com-clusterrole-view",
        "user-carol-example-com-clusterrole-edit",  # the wider of her two roles
    }

    report = sync(
        client, load(template.format(members="carol@example.com, erin@example.com")), settings
    )

    assert report.failures == ()
    for kind in KINDS:
        assert contributor_names(api, kind, "team-a") == {
            "user-carol-example-com-clusterrole-edit",
            "user-erin-example-com-clusterrole-view",
        }
    erin = get(api, POLICY, "user-erin-example-com-clusterrole-view", "team-a")
    assert erin["spec"]["rules"][0]["when"][0]["values"] == ["erin@example.com"]


def test_contributor_added_in_the_dashboard_is_reverted(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    put_all(
        api,
        [
            dashboard_binding("team-a", "mallory@example.com", "admin"),
            dashboard_policy("team-a", "mallory@example.com", "admin"),
        ],
    )
    api.clear_requests()

    report = sync(client, load(BEFORE), settings)

    name = "user-mallory-example-com-clusterrole-admin"
    assert {(c.action, c.kind, c.name) for c in report.changes} == {
        ("delete", "RoleBinding", name),
        ("delete", "AuthorizationPolicy", name),
    }
    for kind in KINDS:
        assert api.get(*kind, name, "team-a") is None
        assert contributor_names(api, kind, "team-a") == {
            "user-bob-example-com-clusterrole-edit",
            "user-carol-example-com-clusterrole-view",
        }
    assert {(r.verb, r.plural, r.name) for r in writes(api)} == {
        ("delete", "rolebindings", name),
        ("delete", "authorizationpolicies", name),
    }


def test_dashboard_binding_for_a_pmr_contributor_is_adopted_not_recreated(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(OWNER_ONLY), settings)
    put_all(
        api,
        [
            dashboard_binding("team-a", "bob@example.com", "edit"),
            dashboard_policy("team-a", "bob@example.com", "edit"),
        ],
    )
    name = "user-bob-example-com-clusterrole-edit"
    uids = {kind: get(api, kind, name, "team-a")["metadata"]["uid"] for kind in KINDS}
    api.clear_requests()

    report = sync(client, load(BEFORE), settings)

    adopted = {(c.action, c.kind) for c in report.changes if c.name == name}
    assert adopted == {("update", "RoleBinding"), ("update", "AuthorizationPolicy")}
    for kind in KINDS:
        stored = get(api, kind, name, "team-a")
        assert stored["metadata"]["uid"] == uids[kind]
        assert stored["metadata"]["labels"] == MANAGED
    assert not [r for r in writes(api) if r.name == name and r.verb in ("create", "delete")]
    api.clear_requests()
    assert sync(client, load(BEFORE), settings).changes == ()
    assert writes(api) == []


def test_binding_with_a_wrong_role_ref_is_replaced(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    name = "user-bob-example-com-clusterrole-edit"
    tampered = dashboard_binding("team-a", "bob@example.com", "edit")
    tampered["roleRef"]["name"] = "kubeflow-admin"  # roleRef is immutable: only recreated
    api.remove(*ROLE_BINDING, name, "team-a")
    api.put(tampered)
    api.clear_requests()

    report = sync(client, load(BEFORE), settings)

    assert [(c.action, c.kind, c.name) for c in report.changes] == [
        ("replace", "RoleBinding", name)
    ]
    assert report.failures == ()
    stored = get(api, ROLE_BINDING, name, "team-a")
    assert stored["roleRef"]["name"] == "kubeflow-edit"
    assert stored["metadata"]["labels"] == MANAGED
    assert write_index(api, "delete", "rolebindings", name) < write_index(
        api, "apply", "rolebindings", name
    )


def test_policy_edited_by_hand_is_restored(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    name = "user-bob-example-com-clusterrole-edit"
    edited = get(api, POLICY, name, "team-a")
    edited["spec"]["rules"][0]["when"][0]["values"] = ["someone-else@example.com"]
    api.put(edited)

    sync(client, load(BEFORE), settings)

    restored = get(api, POLICY, name, "team-a")
    assert restored["spec"]["rules"][0]["when"][0]["values"] == ["bob@example.com"]
    api.clear_requests()
    assert sync(client, load(BEFORE), settings).changes == ()


def test_field_another_manager_added_to_a_policy_is_removed(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    name = "user-bob-example-com-clusterrole-edit"
    with api.client() as someone:
        someone.patch(
            AuthorizationPolicy,
            name,
            {"spec": {"action": "DENY"}},
            namespace="team-a",
            patch_type=PatchType.MERGE,
            field_manager="kubectl-edit",
        )

    sync(client, load(BEFORE), settings)

    assert "action" not in get(api, POLICY, name, "team-a")["spec"]
    api.clear_requests()
    assert sync(client, load(BEFORE), settings).changes == ()
    assert writes(api) == []


def test_access_settings_change_updates_policies_in_place(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(BEFORE), settings)
    name = "user-bob-example-com-clusterrole-edit"
    uid = get(api, POLICY, name, "team-a")["metadata"]["uid"]
    extra = "cluster.local/ns/kubeflow/sa/notebook-controller"
    changed = replace(
        settings,
        access=AccessPolicyOptions(additional_principals=(extra,), userid_prefix="oidc:"),
    )

    report = sync(client, load(BEFORE), changed)

    assert {(c.action, c.kind) for c in report.changes} == {("update", "AuthorizationPolicy")}
    policy = get(api, POLICY, name, "team-a")
    assert policy["metadata"]["uid"] == uid
    rule = policy["spec"]["rules"][0]
    assert rule["from"][0]["source"]["principals"] == [GATEWAY, KFP_UI, extra]
    assert rule["when"][0]["values"] == ["oidc:bob@example.com"]
    assert policy["metadata"]["annotations"]["user"] == "bob@example.com"
    api.clear_requests()
    assert sync(client, load(BEFORE), changed).changes == ()


def test_bindings_named_by_another_tool_are_renamed_without_tripping_the_guard(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    """github-profiles-automator named KFAM objects `<user>-<role>`; access never lapses."""
    sync(client, load(OWNER_ONLY), settings)
    legacy = []
    for user, role in (("bob@example.com", "edit"), ("carol@example.com", "view")):
        for obj in (
            dashboard_binding("team-a", user, role),
            dashboard_policy("team-a", user, role),
        ):
            obj["metadata"]["name"] = user.replace("@", "-").replace(".", "-") + f"-{role}"
            legacy.append(obj)
    put_all(api, legacy)
    strict = replace(settings, options=replace(settings.options, max_revocations=0))

    report = sync(client, load(BEFORE), strict)

    assert report.plan.held == ()
    assert report.failures == ()
    expected = {"user-bob-example-com-clusterrole-edit", "user-carol-example-com-clusterrole-view"}
    for kind in KINDS:
        assert contributor_names(api, kind, "team-a") == expected
