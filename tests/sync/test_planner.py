"""The planner's rules, one behaviour per test, with no server at all."""

from __future__ import annotations

import copy

from profiles_automator.pmr.kfam_names import binding_name
from profiles_automator.sync.kfam import (
    MANAGED_BY_LABEL,
    MANAGER_NAME,
    OWNER_AUTHORIZATION_POLICY,
    OWNER_ROLEBINDING,
    AccessPolicyOptions,
    PolicyShape,
    SharedParts,
    profile_object,
    same_quota,
)
from profiles_automator.sync.planner import PlanOptions, extra_paths, plan, plan_pending
from profiles_automator.sync.state import ObservedState, OwnerPolicy
from tests.cluster_sim import SimCluster, owner_policy
from tests.pmr_builders import (
    desired,
    kfam_binding,
    kfam_policy,
    namespace,
    policies,
    profile,
)


def _cluster_in_sync(*profiles, **kwargs) -> SimCluster:
    cluster = SimCluster(**kwargs)
    want = desired(*profiles)
    cluster.profiles = copy.deepcopy(dict(want.profiles))
    cluster.reconcile()
    cluster.role_bindings.update(copy.deepcopy(dict(want.role_bindings)))
    cluster.policies.update(policies(want))
    return cluster


def _actions(the_plan) -> set[tuple[str, str, str | None, str]]:
    return {(c.action, c.kind, c.namespace, c.name) for c in the_plan.changes}


ALICE_EDIT = binding_name("alice@example.com", "edit")
ALICE_VIEW = binding_name("alice@example.com", "view")


def test_missing_profile_is_created_and_its_contributors_wait_for_the_namespace():
    want = desired(profile("team-a", contributors={"alice@example.com": "edit"}))

    result = plan(want, ObservedState(), PlanOptions())

    assert _actions(result) == {("create", "Profile", None, "team-a")}
    assert result.pending == ("team-a",)


def test_in_sync_cluster_gives_an_empty_plan():
    team = profile("team-a", contributors={"alice@example.com": "edit", "bob@example.com": "view"})
    cluster = _cluster_in_sync(team)

    result = plan(desired(team), cluster.observed(), PlanOptions())

    assert result.is_empty
    assert result.stale_profiles == ()
    assert result.pending == ()


def test_missing_contributor_gets_a_binding_and_a_policy():
    cluster = _cluster_in_sync(profile("team-a"))
    want = desired(profile("team-a", contributors={"alice@example.com": "edit"}))

    result = plan(want, cluster.observed(), PlanOptions())

    assert _actions(result) == {
        ("create", "RoleBinding", "team-a", ALICE_EDIT),
        ("create", "AuthorizationPolicy", "team-a", ALICE_EDIT),
    }
    assert all(c.reason == "grant alice@example.com edit" for c in result.changes)


def test_contributor_removed_from_the_pmr_is_revoked():
    cluster = _cluster_in_sync(profile("team-a", contributors={"alice@example.com": "edit"}))

    result = plan(desired(profile("team-a")), cluster.observed(), PlanOptions())

    assert _actions(result) == {
        ("delete", "RoleBinding", "team-a", ALICE_EDIT),
        ("delete", "AuthorizationPolicy", "team-a", ALICE_EDIT),
    }
    assert "not a contributor of team-a" in result.changes[0].reason


def test_role_change_grants_the_new_role_before_revoking_the_old():
    cluster = _cluster_in_sync(profile("team-a", contributors={"alice@example.com": "view"}))
    want = desired(profile("team-a", contributors={"alice@example.com": "edit"}))

    result = plan(want, cluster.observed(), PlanOptions())

    order = [(c.action, c.name) for c in result.changes]
    assert order.index(("create", ALICE_EDIT)) < order.index(("delete", ALICE_VIEW))
    revoke = next(c for c in result.changes if c.action == "delete")
    assert revoke.reason == "alice@example.com is now edit in team-a, not view"


def test_binding_made_by_hand_in_the_dashboard_is_reverted():
    cluster = _cluster_in_sync(profile("team-a"))
    cluster.role_bindings[("team-a", ALICE_EDIT)] = kfam_binding(
        "team-a", "alice@example.com", "edit"
    )
    cluster.policies[("team-a", ALICE_EDIT)] = kfam_policy("team-a", "alice@example.com", "edit")

    result = plan(desired(profile("team-a")), cluster.observed(), PlanOptions())

    assert {c.action for c in result.changes} == {"delete"}
    assert len(result.changes) == 2


def test_kfam_made_binding_matching_the_pmr_is_adopted_with_our_label():
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    cluster = _cluster_in_sync(profile("team-a"))
    cluster.role_bindings[("team-a", ALICE_EDIT)] = kfam_binding(
        "team-a", "alice@example.com", "edit"
    )

    result = plan(desired(team), cluster.observed(), PlanOptions())

    update = next(c for c in result.changes if c.kind == "RoleBinding")
    assert update.action == "update"
    assert f"label {MANAGED_BY_LABEL} is not {MANAGER_NAME}" in update.reason


def test_drifted_subjects_are_updated():
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    cluster = _cluster_in_sync(team)
    cluster.role_bindings[("team-a", ALICE_EDIT)]["subjects"].append(
        {"kind": "User", "name": "mallory@example.com", "apiGroup": "rbac.authorization.k8s.io"}
    )

    result = plan(desired(team), cluster.observed(), PlanOptions())

    assert _actions(result) == {("update", "RoleBinding", "team-a", ALICE_EDIT)}
    assert result.changes[0].reason == "subjects differ"


def test_drifted_policy_header_is_updated():
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    cluster = _cluster_in_sync(team)
    rule = cluster.policies[("team-a", ALICE_EDIT)]["spec"]["rules"][0]
    rule["when"][0]["values"] = ["mallory@example.com"]

    result = plan(desired(team), cluster.observed(), PlanOptions())

    assert _actions(result) == {("update", "AuthorizationPolicy", "team-a", ALICE_EDIT)}


def test_changed_role_ref_is_replaced_because_it_is_immutable():
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    cluster = _cluster_in_sync(team)
    cluster.role_bindings[("team-a", ALICE_EDIT)]["roleRef"]["name"] = "kubeflow-admin"

    result = plan(desired(team), cluster.observed(), PlanOptions())

    assert _actions(result) == {("replace", "RoleBinding", "team-a", ALICE_EDIT)}


def test_quota_change_updates_the_profile_and_removes_keys_the_pmr_dropped():
    cluster = _cluster_in_sync(profile("team-a", hard={"cpu": "1", "memory": "1Gi"}))
    want = desired(profile("team-a", hard={"cpu": "2"}))

    result = plan(want, cluster.observed(), PlanOptions())

    (change,) = result.changes
    assert (change.action, change.kind, change.name) == ("update", "Profile", "team-a")
    assert change.reason == "resource quota differs"
    assert change.remove_paths == ("/spec/resourceQuotaSpec/hard/memory",)


def test_numeric_quantities_compare_equal_to_the_strings_the_api_returns():
    cluster = _cluster_in_sync(profile("team-a", hard={"cpu": "1"}))
    team = profile("team-a")
    want = desired(team)
    want.profiles["team-a"]["spec"]["resourceQuotaSpec"] = {"hard": {"cpu": 1}}

    result = plan(want, cluster.observed(), PlanOptions())

    assert result.is_empty


def test_owner_change_reowns_the_namespace_for_the_profile_controller():
    cluster = _cluster_in_sync(profile("team-a", owner="old@example.com"))
    want = desired(profile("team-a", owner="new@example.com"))

    result = plan(want, cluster.observed(), PlanOptions())

    assert _actions(result) == {
        ("update", "Namespace", None, "team-a"),
        ("delete", "RoleBinding", "team-a", OWNER_ROLEBINDING),
        ("delete", "AuthorizationPolicy", "team-a", OWNER_AUTHORIZATION_POLICY),
        ("update", "Profile", None, "team-a"),
    }
    reown = next(c for c in result.changes if c.kind == "Namespace")
    profile_update = next(c for c in result.changes if c.kind == "Profile")
    reset = [c for c in result.changes if c.action == "delete"]
    assert reown.phase < profile_update.phase < min(c.phase for c in reset)
    assert reown.body is not None
    assert reown.body["metadata"]["annotations"] == {"owner": "new@example.com"}
    assert not any(c.is_revocation for c in result.changes)


def test_owner_change_converges_after_the_controller_recreates_owner_objects():
    cluster = _cluster_in_sync(profile("team-a", owner="old@example.com"))
    want = desired(profile("team-a", owner="new@example.com"))

    cluster.apply(plan(want, cluster.observed(), PlanOptions()).changes)

    assert plan(want, cluster.observed(), PlanOptions()).is_empty
    owner_binding = cluster.role_bindings[("team-a", OWNER_ROLEBINDING)]
    assert owner_binding["subjects"][0]["name"] == "new@example.com"


def test_owner_objects_are_never_treated_as_contributors():
    cluster = _cluster_in_sync(profile("team-a"))

    result = plan(desired(profile("team-a")), cluster.observed(), PlanOptions())

    assert (("team-a", OWNER_ROLEBINDING)) in cluster.role_bindings
    assert result.is_empty


def test_stale_profile_is_reported_never_deleted_and_its_contributors_revoked():
    cluster = _cluster_in_sync(
        profile("team-a"), profile("old-team", contributors={"alice@example.com": "edit"})
    )

    result = plan(desired(profile("team-a")), cluster.observed(), PlanOptions(force=True))

    assert result.stale_profiles == ("old-team",)
    assert _actions(result) == {
        ("delete", "RoleBinding", "old-team", ALICE_EDIT),
        ("delete", "AuthorizationPolicy", "old-team", ALICE_EDIT),
    }
    assert not any(c.kind == "Profile" for c in result.changes)


def test_stale_access_is_kept_when_revocation_is_off():
    cluster = _cluster_in_sync(
        profile("team-a"), profile("old-team", contributors={"alice@example.com": "edit"})
    )
    options = PlanOptions(revoke_stale_access=False)

    result = plan(desired(profile("team-a")), cluster.observed(), options)

    assert result.stale_profiles == ("old-team",)
    assert result.is_empty


def test_ignored_profiles_by_name_or_glob_are_not_stale():
    cluster = _cluster_in_sync(
        profile("team-a"), profile("kubeflow-user-example-com"), profile("demo")
    )
    options = PlanOptions(ignored_profiles=("kubeflow-user-*", "demo"))

    result = plan(desired(profile("team-a")), cluster.observed(), options)

    assert result.stale_profiles == ()
    assert result.is_empty


def test_guard_holds_revocations_over_the_limit_but_lets_grants_through():
    users = {f"user{i}@example.com": "view" for i in range(3)}
    cluster = _cluster_in_sync(profile("team-a", contributors=users))
    want = desired(profile("team-a", contributors={"new@example.com": "edit"}))

    result = plan(want, cluster.observed(), PlanOptions(max_revocations=2))

    assert len(result.held) == 6  # three people's binding and policy each
    assert all(c.action == "delete" for c in result.held)
    assert {c.action for c in result.changes} == {"create"}
    assert result.hold_reason == "held 3 revocations (limit 2)"


def test_guard_counts_people_not_objects():
    users = {f"user{i}@example.com": "view" for i in range(3)}
    cluster = _cluster_in_sync(profile("team-a", contributors=users))
    want = desired(profile("team-a"))

    result = plan(want, cluster.observed(), PlanOptions(max_revocations=3))

    assert result.held == ()  # 3 people lose access (6 objects): within the limit
    assert len([c for c in result.changes if c.is_revocation]) == 6


def test_guard_holds_when_too_many_managed_profiles_would_become_stale():
    teams = [profile(f"team-{i}", contributors={"alice@example.com": "view"}) for i in range(5)]
    cluster = _cluster_in_sync(*teams)

    result = plan(desired(*teams[:3]), cluster.observed(), PlanOptions())

    assert result.stale_profiles == ("team-3", "team-4")
    assert result.changes == ()
    assert len(result.held) == 4
    assert result.hold_reason == "2 of 5 managed profiles would become stale (limit 20%)"


def test_force_lifts_the_guard():
    teams = [profile(f"team-{i}", contributors={"alice@example.com": "view"}) for i in range(5)]
    cluster = _cluster_in_sync(*teams)

    result = plan(desired(*teams[:3]), cluster.observed(), PlanOptions(force=True))

    assert result.held == ()
    assert len(result.changes) == 4


def test_emptied_pmr_holds_every_revocation():
    teams = [profile(f"team-{i}", contributors={"alice@example.com": "view"}) for i in range(3)]
    cluster = _cluster_in_sync(*teams)

    result = plan(desired(), cluster.observed(), PlanOptions())

    assert result.changes == ()
    assert len(result.held) == 6
    assert result.stale_profiles == ("team-0", "team-1", "team-2")


def test_unmanaged_objects_and_other_namespaces_are_left_alone():
    cluster = _cluster_in_sync(profile("team-a"))
    cluster.namespaces["kubeflow"] = namespace("kubeflow")
    cluster.role_bindings[("kubeflow", ALICE_EDIT)] = kfam_binding(
        "kubeflow", "alice@example.com", "edit"
    )
    cluster.role_bindings[("team-a", "default-editor")] = {
        "metadata": {"name": "default-editor", "namespace": "team-a"},
        "roleRef": {"kind": "ClusterRole", "name": "kubeflow-edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "default-editor", "namespace": "team-a"}],
    }

    result = plan(desired(profile("team-a")), cluster.observed(), PlanOptions())

    assert result.is_empty


def test_clusters_filter_excludes_profiles_meant_elsewhere():
    staging_only = profile("team-s", clusters=("staging",))

    assert desired(staging_only, cluster="prod").profiles == {}
    assert set(desired(staging_only, cluster="staging").profiles) == {"team-s"}


def test_pending_namespaces_get_every_contributor_object_once_they_exist():
    want = desired(profile("team-a", contributors={"alice@example.com": "edit"}))

    owner = OwnerPolicy.from_object(owner_policy("team-a", "owner@example.com"))
    assert owner is not None

    changes = plan_pending(want, {"team-a": owner})

    assert {(c.action, c.kind) for c in changes} == {
        ("create", "RoleBinding"),
        ("create", "AuthorizationPolicy"),
    }


def test_pending_grants_made_with_shared_parts_are_the_same_writes_sharing_one_spec():
    # Arrange: one user in two namespaces of the same policy shape
    team = {"alice@example.com": "edit"}
    want = desired(profile("team-a", contributors=team), profile("team-b", contributors=team))
    owners = {
        name: OwnerPolicy.from_object(owner_policy(name, "owner@example.com"))
        for name in ("team-a", "team-b")
    }

    # Act
    fresh = plan_pending(want, owners)  # type: ignore[arg-type]
    shared = plan_pending(want, owners, parts=SharedParts())  # type: ignore[arg-type]

    # Assert
    assert shared == fresh
    assert [c.body for c in shared] == [c.body for c in fresh]
    specs = [c.body["spec"] for c in shared if c.kind == "AuthorizationPolicy" and c.body]
    assert len(specs) == 2
    assert specs[0] is specs[1]


def test_profile_object_matches_the_kubeflow_profile_shape():
    obj = profile_object(profile("team-a", owner="o@example.com", hard={"cpu": "1"}))

    assert obj["apiVersion"] == "kubeflow.org/v1"
    assert obj["spec"]["owner"] == {
        "kind": "User",
        "name": "o@example.com",
        "apiGroup": "rbac.authorization.k8s.io",
    }
    assert obj["spec"]["resourceQuotaSpec"] == {"hard": {"cpu": "1"}}
    assert obj["metadata"]["labels"] == {MANAGED_BY_LABEL: MANAGER_NAME}


def test_extra_paths_lists_only_map_keys_missing_from_desired():
    assert extra_paths({"a": {"b": 1}}, {"a": {"b": 1, "c/d": 2}, "e": [1]}) == ["/a/c~1d", "/e"]
    assert extra_paths({"a": [1]}, {"a": [1, 2]}) == []


def test_role_changes_are_not_revocations_for_the_guard():
    users = {f"user{i}@example.com": "view" for i in range(3)}
    cluster = _cluster_in_sync(profile("team-a", contributors=users))
    promoted = dict.fromkeys(users, "edit")

    result = plan(
        desired(profile("team-a", contributors=promoted)),
        cluster.observed(),
        PlanOptions(max_revocations=0),
    )

    assert result.held == ()
    assert sum(c.action == "delete" for c in result.changes) == 6
    assert not any(c.is_revocation for c in result.changes)


def test_bindings_of_an_older_naming_are_replaced_without_counting_as_revocations():
    """Migrating from a tool that named KFAM objects differently keeps everyone's access."""
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    cluster = _cluster_in_sync(profile("team-a"))
    for store, obj in (
        (cluster.role_bindings, kfam_binding("team-a", "alice@example.com", "edit")),
        (cluster.policies, kfam_policy("team-a", "alice@example.com", "edit")),
    ):
        obj["metadata"]["name"] = "alice-example-com-edit"
        store[("team-a", "alice-example-com-edit")] = obj

    result = plan(desired(team), cluster.observed(), PlanOptions(max_revocations=0))

    assert _actions(result) == {
        ("create", "RoleBinding", "team-a", ALICE_EDIT),
        ("create", "AuthorizationPolicy", "team-a", ALICE_EDIT),
        ("delete", "RoleBinding", "team-a", "alice-example-com-edit"),
        ("delete", "AuthorizationPolicy", "team-a", "alice-example-com-edit"),
    }
    removal = next(c for c in result.changes if c.action == "delete")
    assert removal.reason.startswith(
        "duplicate of the KFAM-named object for alice@example.com edit"
    )
    assert result.held == ()


def test_a_half_done_owner_change_is_finished_by_the_next_plan():
    cluster = _cluster_in_sync(profile("team-a", owner="old@example.com"))
    want = desired(profile("team-a", owner="new@example.com"))
    first = plan(want, cluster.observed(), PlanOptions())
    # the owner reset was held (a grant failed): everything else went through
    cluster.apply([c for c in first.changes if c.kind in ("Namespace", "Profile")])

    result = plan(want, cluster.observed(), PlanOptions())

    assert _actions(result) == {
        ("delete", "RoleBinding", "team-a", OWNER_ROLEBINDING),
        ("delete", "AuthorizationPolicy", "team-a", OWNER_AUTHORIZATION_POLICY),
    }
    cluster.apply(result.changes)
    assert plan(want, cluster.observed(), PlanOptions()).is_empty


# ---------------------------------------------------------------------------- Kubeflow contracts


def test_owner_differing_only_in_api_group_says_what_differs():
    cluster = _cluster_in_sync(profile("team-a"))
    del cluster.profiles["team-a"]["spec"]["owner"]["apiGroup"]

    result = plan(desired(profile("team-a")), cluster.observed(), PlanOptions())

    (change,) = result.changes
    assert change.reason == (
        "owner User owner@example.com: apiGroup (unset) -> rbac.authorization.k8s.io"
    )


def test_canonical_quantities_are_no_drift():
    team = profile("team-a", hard={"cpu": "0.5", "memory": "1024Mi", "pods": "1000"})
    cluster = _cluster_in_sync(team)
    cluster.profiles["team-a"]["spec"]["resourceQuotaSpec"]["hard"] = {
        "cpu": "500m",
        "memory": "1Gi",
        "pods": "1k",
    }

    assert plan(desired(team), cluster.observed(), PlanOptions()).is_empty
    assert same_quota({"hard": {"cpu": "1"}}, {"hard": {"cpu": "1000m"}})
    assert not same_quota({"hard": {"cpu": "1"}}, {"hard": {"cpu": "1001m"}})
    assert not same_quota({"hard": {"cpu": "1"}}, {"hard": {"cpu": "1", "pods": "2"}})
    assert not same_quota({"hard": {"cpu": "lots"}}, {"hard": {"cpu": "1"}})


def test_contributor_policy_takes_the_owner_policy_shape():
    shape = PolicyShape(
        principals=("cluster.local/ns/kubeflow/sa/gw", "cluster.local/ns/kubeflow/sa/kfp-ui"),
        userid_header="x-user",
        userid_prefix="oidc:",
        target_refs=(
            (("group", "gateway.networking.k8s.io"), ("kind", "Gateway"), ("name", "waypoint")),
        ),
    )
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    cluster = _cluster_in_sync(team)
    cluster.policies[("team-a", OWNER_AUTHORIZATION_POLICY)] = owner_policy(
        "team-a", "owner@example.com", shape
    )

    result = plan(desired(team), cluster.observed(), PlanOptions())

    (change,) = result.changes
    assert change.reason == (
        "differs from ns-owner-access-istio: principals, user header, user value, "
        "targetRefs (the owner policy is on a waypoint: ambient mode)"
    )
    assert change.body is not None
    assert change.body["spec"] == {
        "rules": [
            {
                "from": [{"source": {"principals": list(shape.principals)}}],
                "when": [{"key": "request.headers[x-user]", "values": ["oidc:alice@example.com"]}],
            }
        ],
        "targetRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}
        ],
    }


def test_owner_policy_is_read_for_the_old_or_the_new_owner():
    policy = owner_policy("team-a", "new@example.com")
    policy["metadata"]["annotations"]["user"] = "old@example.com"  # spec rewritten, not this

    read = OwnerPolicy.from_object(policy, "new@example.com")

    assert read is not None and read.owner == "new@example.com"
    assert read.shape.userid_prefix == ""
    assert OwnerPolicy.from_object({"spec": {"rules": []}}, "x") is None


def test_existing_namespace_without_a_profile_is_refused_unless_adopted():
    team = profile("team-a", contributors={"alice@example.com": "edit"})
    observed = ObservedState(namespaces={"team-a": namespace("team-a")})

    refused = plan(desired(team), observed, PlanOptions())
    adopted = plan(desired(team), observed, PlanOptions(adopt_namespaces=True))

    assert [r.name for r in refused.refused] == ["team-a"] and refused.changes == ()
    assert adopted.refused == ()
    assert ("create", "Profile", None, "team-a") in _actions(adopted)


def test_overrides_take_the_slot_kfam_puts_them_in():
    owner = PolicyShape(principals=("gw", "kfp"), userid_header="h", userid_prefix="p:")
    follow = AccessPolicyOptions()
    override = AccessPolicyOptions(
        ingress_gateway_principal="gw2",
        additional_principals=("extra", "kfp"),
        userid_header="h2",
    )

    assert follow.shape_for(owner) == owner
    assert override.shape_for(owner) == PolicyShape(
        principals=("gw2", "kfp", "extra"), userid_header="h2", userid_prefix="p:"
    )
    only_gateway = PolicyShape(principals=("gw",))
    assert AccessPolicyOptions(kfp_ui_principal="ui").shape_for(only_gateway).principals == (
        "gw",
        "ui",
    )
