"""The leader syncs on each trigger event; the unit status says how the last sync went."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ops
import pytest
from ops import testing

from tests.charm.conftest import (
    APP,
    OWNER,
    POLICY_API,
    PROFILE,
    PROFILE_API,
    REPO,
    ROLE_BINDING_API,
    contributor_names,
    head,
    in_sync,
    leader,
    names,
    profile_object,
    writes,
)
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

CONTRIBUTORS = [
    "user-alice-example-com-clusterrole-admin",
    "user-bob-example-com-clusterrole-view",
]
TOKEN_SECRET = testing.Secret({"token": GOOD_TOKEN}, owner=None)

SYNC_EVENTS: dict[str, Callable[[testing.Context[Any]], Any]] = {
    "install": lambda ctx: ctx.on.install(),
    "config-changed": lambda ctx: ctx.on.config_changed(),
    "update-status": lambda ctx: ctx.on.update_status(),
    "leader-elected": lambda ctx: ctx.on.leader_elected(),
    "upgrade-charm": lambda ctx: ctx.on.upgrade_charm(),
    "secret-changed": lambda ctx: ctx.on.secret_changed(TOKEN_SECRET),
}


def with_token(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "token-secret-id": TOKEN_SECRET.id}


@pytest.mark.parametrize("event", SYNC_EVENTS)
def test_leader_syncs_the_pmr_into_the_cluster(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    github: FakeGitHub,
    config: dict[str, Any],
    event: str,
):
    state = leader(with_token(config), secrets={TOKEN_SECRET})

    out = ctx.run(SYNC_EVENTS[event](ctx), state)

    assert out.unit_status == in_sync(github)
    assert out.unit_status.message == f"1 profile in sync @ {head(github)[:7]}"
    assert names(kube, PROFILE_API) == [PROFILE]
    profile = kube.get(*PROFILE_API, PROFILE)
    assert profile is not None
    assert profile["spec"]["owner"]["name"] == OWNER
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == CONTRIBUTORS
    assert contributor_names(kube, POLICY_API, PROFILE) == CONTRIBUTORS


@pytest.mark.parametrize("event", SYNC_EVENTS)
def test_non_leader_stands_by_and_touches_nothing(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    github: FakeGitHub,
    config: dict[str, Any],
    event: str,
):
    state = testing.State(leader=False, config=with_token(config), secrets={TOKEN_SECRET})

    out = ctx.run(SYNC_EVENTS[event](ctx), state)

    assert out.unit_status == ops.ActiveStatus("standby: the leader syncs")
    assert kube.requests == []
    assert github.log == []


def test_second_sync_of_the_same_commit_writes_nothing(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    first = ctx.run(ctx.on.install(), leader(config))
    kube.clear_requests()

    out = ctx.run(ctx.on.update_status(), first)

    assert out.unit_status == in_sync(github)
    assert writes(kube) == []


def test_unchanged_branch_does_not_download_the_files_again(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    first = ctx.run(ctx.on.update_status(), leader(config))
    assert len(github.requests_matching(r"/contents/")) == 1
    github.clear_log()

    out = ctx.run(ctx.on.update_status(), first)

    assert out.unit_status == in_sync(github)
    assert github.requests_matching(r"/contents/") == []
    assert [entry.route for entry in github.log] == [f"/repos/{REPO}/commits/main"]
    assert [entry.status for entry in github.log] == [304]  # free against the rate limit


def test_a_new_commit_is_picked_up(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    first = ctx.run(ctx.on.update_status(), leader(config))
    pmr = (
        b"profiles:\n"
        b"- name: ml-engineers\n"
        b"  owner: {kind: User, name: admin@example.com}\n"
        b"- name: data\n"
        b"  owner: {kind: User, name: dana@example.com}\n"
    )
    github.commit(REPO, {"pmr.yaml": pmr})

    out = ctx.run(ctx.on.update_status(), first)

    assert out.unit_status == in_sync(github, profiles=2)
    assert names(kube, PROFILE_API) == ["data", PROFILE]
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == []


def test_invalid_pmr_blocks_with_file_line_and_writes_nothing(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    pmr = (
        b"profiles:\n"
        b"- name: ml-engineers\n"
        b"  owner: {kind: User, name: admin@example.com}\n"
        b"  contributors:\n"
        b"  - {name: alice@example.com, role: boss}\n"
        b"- name: Bad_Name\n"
        b"  owner: {kind: User, name: x@example.com}\n"
    )
    github.commit(REPO, {"pmr.yaml": pmr})

    out = ctx.run(ctx.on.update_status(), leader(config))

    assert out.unit_status == ops.BlockedStatus(
        f"invalid PMR @ {head(github)[:7]}: pmr.yaml:5:37: profiles[0].contributors[0].role: "
        "'boss' is not one of admin, edit, view (1 more, run `pmr validate`)"
    )
    assert kube.requests == []


def test_stale_profile_is_listed_in_the_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    kube.put(profile_object("old-team"))

    out = ctx.run(ctx.on.update_status(), leader(config))

    sha = head(github)[:7]
    assert out.unit_status == ops.ActiveStatus(
        f"1 profile in sync @ {sha}; 1 stale: old-team, see list-stale-profiles"
    )
    assert names(kube, PROFILE_API) == [PROFILE, "old-team"]  # never deleted on its own


def test_many_long_stale_names_keep_the_status_under_120_characters(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    stale = [f"a-long-profile-name-for-team-number-{i:02d}" for i in range(12)]
    for name in stale:
        kube.put(profile_object(name))

    out = ctx.run(ctx.on.update_status(), leader(config))

    message = out.unit_status.message
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert len(message) < 120
    assert message.startswith(f"1 profile in sync @ {head(github)[:7]}; 12 stale: {stale[0]}")
    assert message.endswith(" (+11 more), see list-stale-profiles")


def test_a_stale_name_too_long_to_show_is_counted(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    kube.put(profile_object("x" * 63))
    kube.put(profile_object("y" * 63))

    out = ctx.run(ctx.on.update_status(), leader(config))

    assert out.unit_status == ops.ActiveStatus(
        f"1 profile in sync @ {head(github)[:7]}; 2 stale, see list-stale-profiles"
    )


def test_ignored_profiles_are_not_stale(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    kube.put(profile_object("kubeflow-user-example-com"))

    out = ctx.run(
        ctx.on.update_status(), leader({**config, "ignored-profiles": "kubeflow-user-*"})
    )

    assert out.unit_status == in_sync(github)


@pytest.mark.parametrize("kube", ["manual"], indirect=True)
def test_namespaces_pending_from_the_profile_controller_wait(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    out = ctx.run(ctx.on.install(), leader({**config, "namespace-wait": 0}))

    assert out.unit_status == ops.WaitingStatus(
        "waiting for the profile controller to create 1 namespace: ml-engineers"
    )
    assert names(kube, PROFILE_API) == [PROFILE]
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == []

    kube.profile_controller.reconcile()
    again = ctx.run(ctx.on.update_status(), out)

    assert again.unit_status == in_sync(github)
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == CONTRIBUTORS


def test_missing_permissions_block_with_the_trust_hint(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.forbid("list", "profiles")

    out = ctx.run(ctx.on.install(), leader(config))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(
        f"missing permissions to list profiles.kubeflow.org: run `juju trust {APP} "
        "--scope=cluster` (the API said: profiles.kubeflow.org is forbidden: "
    )
    assert writes(kube) == []


def test_a_missing_write_permission_blocks_before_anything_is_written(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "automator"},
        "rules": [
            {"apiGroups": [g], "resources": [r], "verbs": ["list", "watch", "create", "patch"]}
            for g, r in (
                ("kubeflow.org", "profiles"),
                ("", "namespaces"),
                ("rbac.authorization.k8s.io", "rolebindings"),
                ("security.istio.io", "authorizationpolicies"),
            )
        ],  # but no bind on the kubeflow-* ClusterRoles
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "automator"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "automator",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "test", "namespace": "test"}],
    }
    kube.enable_rbac(role, binding)  # the fake's token is ServiceAccount test/test

    out = ctx.run(ctx.on.install(), leader(config))

    assert out.unit_status == ops.BlockedStatus(
        "missing permissions (cluster-wide): bind clusterroles.rbac.authorization.k8s.io/"
        "kubeflow-admin, kubeflow-view; nothing was written: "
        f"run `juju trust {APP} --scope=cluster`"
    )
    assert writes(kube) == []
    assert names(kube, PROFILE_API) == []


def test_rejected_credentials_block_with_their_own_fix(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.revoke_token("fake-token")

    out = ctx.run(ctx.on.install(), leader(config, model=testing.Model(name="kubeflow")))

    assert out.unit_status == ops.BlockedStatus(
        "the Kubernetes API rejected the credentials (HTTP 401 Unauthorized) to list "
        "profiles.kubeflow.org: the token is invalid or expired, or belongs to another cluster: "
        "the unit's service-account token was rejected; for a fresh one, "
        f"kubectl -n kubeflow delete pod {APP}-0"
    )


def test_missing_profile_crd_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.uninstall("kubeflow.org", "profiles")

    out = ctx.run(ctx.on.install(), leader(config))

    assert out.unit_status == ops.BlockedStatus(
        "Profile CRD not found: is Kubeflow's profile controller deployed?"
    )


def test_missing_istio_crd_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.uninstall("security.istio.io", "authorizationpolicies")

    out = ctx.run(ctx.on.install(), leader(config))

    assert out.unit_status == ops.BlockedStatus(
        "AuthorizationPolicy CRD not found: is Istio deployed?"
    )


def test_apply_failures_block_with_the_count_and_the_first_failure(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.add_fault(verb="apply", path="/rolebindings/", status=422, message="denied", times=-1)

    out = ctx.run(ctx.on.install(), leader(config))

    assert out.unit_status == ops.BlockedStatus(
        "failed to apply 2 changes: create RoleBinding "
        "ml-engineers/user-alice-example-com-clusterrole-admin: HTTP 422: denied"
    )
    assert contributor_names(kube, POLICY_API, PROFILE) == CONTRIBUTORS


def test_safety_guard_holds_revocations_until_forced(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    config = {**config, "max-revocations": 1}
    synced = ctx.run(ctx.on.install(), leader(config))
    github.commit(
        REPO,
        {"pmr.yaml": b"profiles:\n- name: ml-engineers\n  owner: {kind: User, name: a@b.c}\n"},
    )

    held = ctx.run(ctx.on.update_status(), synced)

    assert held.unit_status == ops.BlockedStatus(
        f"held 2 revocations (limit 1): juju run {APP}/leader sync-now force=true"
    )
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == CONTRIBUTORS

    forced = ctx.run(ctx.on.action("sync-now", params={"force": True}), held)

    assert ctx.action_results is not None
    assert ctx.action_results["deleted"] == 4
    assert forced.unit_status == in_sync(github)
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == []
    assert contributor_names(kube, POLICY_API, PROFILE) == []


def test_dry_run_config_writes_nothing_and_says_so(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    kube.put(profile_object("old-team"))
    kube.clear_requests()

    out = ctx.run(ctx.on.config_changed(), leader({**config, "dry-run": True}))

    assert out.unit_status == ops.ActiveStatus(
        f"dry-run: 1 change planned @ {head(github)[:7]}; "
        "1 stale: old-team, see list-stale-profiles"
    )
    assert writes(kube) == []
    assert names(kube, PROFILE_API) == ["old-team"]


def test_a_hook_that_does_not_sync_keeps_the_last_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    previous = ops.BlockedStatus("held 9 revocations (limit 3): ...")
    state = leader(config, unit_status=previous)

    out = ctx.run(ctx.on.action("list-stale-profiles"), state)

    assert out.unit_status == previous


def test_sync_now_dry_run_keeps_the_last_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    previous = ops.ActiveStatus("3 profiles in sync @ 1234567")
    state = leader(config, unit_status=previous)

    out = ctx.run(ctx.on.action("sync-now", params={"dry-run": True}), state)

    assert out.unit_status == previous
    assert writes(kube) == []


def test_sync_state_is_kept_in_stored_state(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    out = ctx.run(ctx.on.update_status(), leader(config))

    stored = out.get_stored_state("_stored", owner_path="KubeflowProfilesAutomatorCharm")
    assert stored.content["revision"] == head(github)
    assert stored.content["http_cache"].startswith('{"version": 1')


def test_an_unreadable_stored_cache_does_not_stop_the_sync(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    stored = testing.StoredState(
        "_stored",
        owner_path="KubeflowProfilesAutomatorCharm",
        content={"http_cache": "not json", "revision": head(github)},
    )

    out = ctx.run(ctx.on.upgrade_charm(), leader(config, stored_states={stored}))

    assert out.unit_status == in_sync(github)
    assert len(github.requests_matching(r"/contents/")) == 1


def test_a_dry_run_reports_missing_permissions_like_a_real_sync(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.forbid("create", "profiles")

    out = ctx.run(ctx.on.install(), leader({**config, "dry-run": True}))

    assert out.unit_status == ops.BlockedStatus(
        "missing permissions (cluster-wide): create profiles.kubeflow.org; nothing was "
        f"written: run `juju trust {APP} --scope=cluster`"
    )
    assert writes(kube) == []


def test_profile_whose_namespace_is_taken_blocks_until_adoption_is_allowed(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    kube.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROFILE}})

    out = ctx.run(ctx.on.install(), leader(config))

    assert out.unit_status == ops.BlockedStatus(
        f"refused 1 profile whose namespace is taken: {PROFILE}; see sync-now dry-run=true"
    )
    assert names(kube, PROFILE_API) == []

    adopted = ctx.run(ctx.on.config_changed(), leader({**config, "adopt-namespaces": True}))

    assert adopted.unit_status == in_sync(github)
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) == CONTRIBUTORS
