"""The sync-now, list-stale-profiles and delete-stale-profiles actions."""

from __future__ import annotations

from typing import Any

import ops
import pytest
from ops import testing

from tests.charm.conftest import (
    APP,
    OWNER,
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
from tests.fakes.github_api import FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

ACTIONS = ["sync-now", "list-stale-profiles", "delete-stale-profiles"]
PARAMS: dict[str, dict[str, Any]] = {"delete-stale-profiles": {"profiles": "all"}}


def run_action(
    ctx: testing.Context[Any], name: str, state: testing.State, **params: Any
) -> tuple[testing.State, dict[str, Any]]:
    out = ctx.run(ctx.on.action(name, params=params), state)
    assert ctx.action_results is not None
    return out, ctx.action_results


def run_failing_action(
    ctx: testing.Context[Any], name: str, state: testing.State, **params: Any
) -> testing.ActionFailed:
    with pytest.raises(testing.ActionFailed) as caught:
        ctx.run(ctx.on.action(name, params=params), state)
    return caught.value


def state_after(failure: testing.ActionFailed) -> testing.State:
    assert isinstance(failure.state, testing.State)
    return failure.state


def created(obj: dict[str, Any]) -> str:
    return obj["metadata"]["creationTimestamp"]


# --- every action --------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_run_only_on_the_leader(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    github: FakeGitHub,
    config: dict[str, Any],
    action: str,
):
    state = testing.State(leader=False, config=config)

    failure = run_failing_action(ctx, action, state, **PARAMS.get(action, {}))

    assert failure.message == f"run this on the leader unit: juju run {APP}/leader {action}"
    assert kube.requests == []
    assert github.log == []


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_fail_on_invalid_config(ctx: testing.Context[Any], kube: FakeKubeAPI, action: str):
    failure = run_failing_action(ctx, action, leader({}), **PARAMS.get(action, {}))

    assert failure.message == (
        f"invalid config: set `repository`: juju config {APP} repository=org/repo"
    )
    assert kube.requests == []


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_fail_when_the_pmr_is_invalid(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    github: FakeGitHub,
    config: dict[str, Any],
    action: str,
):
    github.commit(REPO, {"pmr.yaml": b"profiles:\n- name: kubeflow\n  owner: {kind: User}\n"})

    failure = run_failing_action(ctx, action, leader(config), **PARAMS.get(action, {}))

    assert failure.message.startswith(f"invalid PMR @ {head(github)[:7]}: pmr.yaml:")
    assert kube.requests == []


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_fail_when_the_pmr_cannot_be_fetched(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any], action: str
):
    state = leader({**config, "branch": "gone"})

    failure = run_failing_action(ctx, action, state, **PARAMS.get(action, {}))

    assert failure.message.startswith(
        f"cannot fetch the PMR: branch, tag or commit 'gone' not found in {REPO}"
    )
    assert kube.requests == []


@pytest.mark.parametrize("action", ["list-stale-profiles", "delete-stale-profiles"])
def test_actions_fail_without_permissions(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any], action: str
):
    kube.forbid("list", "profiles")

    failure = run_failing_action(ctx, action, leader(config), **PARAMS.get(action, {}))

    assert failure.message.startswith("missing permissions to list profiles.kubeflow.org")
    assert f"juju trust {APP} --scope=cluster" in failure.message


# --- sync-now ------------------------------------------------------------------------------


def test_sync_now_applies_and_reports(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    kube.put(profile_object("old-team"))

    out, results = run_action(ctx, "sync-now", leader(config))

    assert results == {
        "revision": head(github),
        "created": 5,
        "updated": 0,
        "deleted": 0,
        "replaced": 0,
        "held": 0,
        "refused": 0,
        "pending": 0,
        "stale": 1,
        "changes": "\n".join(
            [
                "create Profile ml-engineers: not in the cluster",
                "create AuthorizationPolicy ml-engineers/user-alice-example-com-clusterrole-admin:"
                " grant alice@example.com admin",
                "create AuthorizationPolicy ml-engineers/user-bob-example-com-clusterrole-view:"
                " grant bob@example.com view",
                "create RoleBinding ml-engineers/user-alice-example-com-clusterrole-admin:"
                " grant alice@example.com admin",
                "create RoleBinding ml-engineers/user-bob-example-com-clusterrole-view:"
                " grant bob@example.com view",
            ]
        ),
        "failures": "none",
        "dry-run": "false",
        "groups": "none",
        "unknown-groups": "none",
        "commit-status": "off (report-status=false)",
    }
    assert names(kube, PROFILE_API) == [PROFILE, "old-team"]
    assert out.unit_status == ops.ActiveStatus(
        f"1 profile in sync @ {head(github)[:7]}; 1 stale: old-team, see list-stale-profiles"
    )


def test_sync_now_dry_run_plans_and_writes_nothing(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    _, results = run_action(ctx, "sync-now", leader(config), **{"dry-run": True})

    assert results["dry-run"] == "true"
    assert results["created"] == 1  # contributors wait for the namespace
    assert results["pending"] == 1
    assert results["changes"] == "create Profile ml-engineers: not in the cluster"
    assert writes(kube) == []


def test_sync_now_lists_at_most_50_changes(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    profiles = "".join(
        f"- name: team-{i:02d}\n  owner: {{kind: User, name: {OWNER}}}\n" for i in range(60)
    )
    github.commit(REPO, {"pmr.yaml": f"profiles:\n{profiles}".encode()})

    out, results = run_action(ctx, "sync-now", leader(config))

    lines = results["changes"].splitlines()
    assert results["created"] == 60
    assert len(lines) == 51
    assert lines[-1] == "... and 10 more"
    assert out.unit_status == in_sync(github, profiles=60)


def test_sync_now_with_apply_failures_fails_with_the_list(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.add_fault(verb="apply", path="/rolebindings/", status=422, message="denied", times=-1)

    with pytest.raises(testing.ActionFailed) as caught:
        ctx.run(ctx.on.action("sync-now"), leader(config))

    assert caught.value.message == "2 changes failed: see `failures`"
    assert ctx.action_results is not None
    assert ctx.action_results["failures"].splitlines() == [
        "create RoleBinding ml-engineers/user-alice-example-com-clusterrole-admin: "
        "HTTP 422: denied",
        "create RoleBinding ml-engineers/user-bob-example-com-clusterrole-view: HTTP 422: denied",
    ]
    assert isinstance(state_after(caught.value).unit_status, ops.BlockedStatus)


def test_sync_now_reports_held_revocations(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    config = {**config, "max-revocations": 0}
    synced = ctx.run(ctx.on.install(), leader(config))
    github.commit(
        REPO,
        {
            "pmr.yaml": b"profiles:\n- name: ml-engineers\n"
            b"  owner: {kind: User, name: admin@example.com}\n"
            b'  resources: {hard: {limits.cpu: "1"}}\n'
            b"  contributors:\n  - {name: alice@example.com, role: admin}\n"
        },
    )

    out, results = run_action(ctx, "sync-now", synced)

    assert results["held"] == 2
    assert results["deleted"] == 0
    assert results["changes"].splitlines() == [
        "held: delete AuthorizationPolicy ml-engineers/user-bob-example-com-clusterrole-view: "
        "bob@example.com is not a contributor of ml-engineers in the PMR",
        "held: delete RoleBinding ml-engineers/user-bob-example-com-clusterrole-view: "
        "bob@example.com is not a contributor of ml-engineers in the PMR",
    ]
    assert out.unit_status == ops.BlockedStatus(
        f"held 1 revocation (limit 0): juju run {APP}/leader sync-now force=true"
    )


def test_sync_now_failure_updates_the_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.uninstall("kubeflow.org", "profiles")

    failure = run_failing_action(ctx, "sync-now", leader(config))

    message = "Profile CRD not found: is Kubeflow's profile controller deployed?"
    assert failure.message == message
    assert state_after(failure).unit_status == ops.BlockedStatus(message)


def test_sync_now_shares_the_fetch_cache_with_update_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    synced, _ = run_action(ctx, "sync-now", leader(config))
    github.clear_log()

    ctx.run(ctx.on.update_status(), synced)

    assert github.requests_matching(r"/contents/") == []


# --- list-stale-profiles -------------------------------------------------------------------


def test_list_stale_profiles(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    old = kube.put(profile_object("old-team", owner="olga@example.com"))
    older = kube.put(profile_object("older-team", owner="otto@example.com"))
    kube.put(profile_object("kubeflow-user-example-com"))
    state = leader({**config, "ignored-profiles": "kubeflow-user-*"})

    _, results = run_action(ctx, "list-stale-profiles", state)

    assert results == {
        "stale-profiles": "old-team,older-team",
        "details": "\n".join(
            [
                f"old-team (owner olga@example.com, created {created(old)})",
                f"older-team (owner otto@example.com, created {created(older)})",
            ]
        ),
    }
    assert writes(kube) == []


def test_list_stale_profiles_when_there_are_none(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    _, results = run_action(ctx, "list-stale-profiles", leader(config))

    assert results == {"stale-profiles": "", "details": "none"}


# --- delete-stale-profiles -----------------------------------------------------------------


@pytest.fixture
def stale(kube: FakeKubeAPI, ctx: testing.Context[Any], config: dict[str, Any]) -> None:
    """The PMR is synced, and two stale Profiles and an ignored one exist."""
    ctx.run(ctx.on.install(), leader(config))
    for name in ("old-a", "old-b", "kubeflow-user-example-com"):
        kube.put(profile_object(name))
    kube.clear_requests()


def delete_config(config: dict[str, Any]) -> testing.State:
    return leader({**config, "ignored-profiles": "kubeflow-user-example-com"})


@pytest.mark.usefixtures("stale")
def test_delete_named_stale_profiles(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    _, results = run_action(ctx, "delete-stale-profiles", delete_config(config), profiles="old-a")

    assert results == {"deleted": "old-a", "refused": "none", "dry-run": "false"}
    assert names(kube, PROFILE_API) == ["kubeflow-user-example-com", PROFILE, "old-b"]
    assert writes(kube) == ["delete profiles/old-a"]


@pytest.mark.usefixtures("stale")
def test_delete_all_stale_profiles(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    _, results = run_action(ctx, "delete-stale-profiles", delete_config(config), profiles="all")

    assert results["deleted"] == "old-a,old-b"
    assert names(kube, PROFILE_API) == ["kubeflow-user-example-com", PROFILE]
    assert contributor_names(kube, ROLE_BINDING_API, PROFILE) != []


@pytest.mark.usefixtures("stale")
def test_delete_refuses_what_is_not_stale(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    profiles = "old-b, ml-engineers,kubeflow-user-example-com,kubeflow,ghost"

    _, results = run_action(ctx, "delete-stale-profiles", delete_config(config), profiles=profiles)

    assert results["deleted"] == "old-b"
    assert results["refused"].splitlines() == [
        "ml-engineers: in the PMR: not stale",
        "kubeflow-user-example-com: ignored or protected: never deleted by this charm",
        "kubeflow: ignored or protected: never deleted by this charm",
        "ghost: no such Profile in the cluster",
    ]
    assert writes(kube) == ["delete profiles/old-b"]


@pytest.mark.usefixtures("stale")
def test_delete_fails_when_nothing_matches(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    failure = run_failing_action(
        ctx, "delete-stale-profiles", delete_config(config), profiles="ml-engineers,ghost"
    )

    assert failure.message == (
        "nothing deleted: ml-engineers: in the PMR: not stale; "
        "ghost: no such Profile in the cluster"
    )
    assert writes(kube) == []


def test_delete_all_fails_when_there_are_no_stale_profiles(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    failure = run_failing_action(ctx, "delete-stale-profiles", leader(config), profiles="all")

    assert failure.message == "nothing to delete: there are no stale profiles"
    assert writes(kube) == []


def test_delete_needs_profile_names(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    failure = run_failing_action(ctx, "delete-stale-profiles", leader(config), profiles=" , ")

    assert failure.message == "name the profiles to delete: profiles=a,b (or profiles=all)"
    assert kube.requests == []


@pytest.mark.usefixtures("stale")
def test_delete_dry_run_deletes_nothing(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    _, results = run_action(
        ctx, "delete-stale-profiles", delete_config(config), profiles="all", **{"dry-run": True}
    )

    assert results == {"deleted": "old-a,old-b", "refused": "none", "dry-run": "true"}
    assert writes(kube) == []


@pytest.mark.usefixtures("stale")
def test_delete_reports_api_failures(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.add_fault(verb="delete", path="/profiles/old-a$", status=403, times=-1)

    failure = run_failing_action(
        ctx, "delete-stale-profiles", delete_config(config), profiles="old-a"
    )

    assert failure.message.startswith("could not delete 1 profile: delete Profile old-a: HTTP 403")
    assert "old-a" in names(kube, PROFILE_API)


@pytest.mark.usefixtures("stale")
def test_delete_without_the_permission_is_refused_before_deleting(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    kube.forbid("delete", "profiles")

    failure = run_failing_action(
        ctx, "delete-stale-profiles", delete_config(config), profiles="old-a"
    )

    assert failure.message == (
        "missing permissions (cluster-wide): delete profiles.kubeflow.org; nothing was "
        f"written: run `juju trust {APP} --scope=cluster`"
    )
    assert "old-a" in names(kube, PROFILE_API)
    assert writes(kube) == []


@pytest.mark.usefixtures("stale")
def test_delete_does_not_change_the_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    previous = ops.ActiveStatus("1 profile in sync @ 1234567; 2 stale: old-a, old-b, see ...")
    state = leader({**config, "ignored-profiles": "kubeflow-user-*"}, unit_status=previous)

    out, _ = run_action(ctx, "delete-stale-profiles", state, profiles="old-a")

    assert out.unit_status == previous
