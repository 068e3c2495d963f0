"""report-status: the sync's result set on the synced commit, once per changed outcome."""

from __future__ import annotations

from typing import Any

import ops
import pytest
from ops import testing

from tests.charm.conftest import APP, REPO, head, in_sync, leader
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

TOKEN_SECRET = testing.Secret({"token": GOOD_TOKEN}, owner=None)
MODEL = testing.Model(name="kubeflow")
CONTEXT = "kubeflow-profiles-automator/kubeflow"


@pytest.fixture
def reporting(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "report-status": True, "token-secret-id": TOKEN_SECRET.id}


def state(config: dict[str, Any]) -> testing.State:
    return leader(config, secrets={TOKEN_SECRET}, model=MODEL)


def shown(github: FakeGitHub) -> list[tuple[str, str, str]]:
    return [(s["sha"], s["state"], s["description"]) for s in github.statuses(REPO)]


@pytest.mark.parametrize("kube", ["manual"], indirect=True)
def test_pending_then_success_one_status_per_changed_outcome(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    sha = head(github)

    waiting = ctx.run(ctx.on.install(), state({**reporting, "namespace-wait": 0}))
    still_waiting = ctx.run(ctx.on.update_status(), waiting)
    kube.profile_controller.reconcile()
    synced = ctx.run(ctx.on.update_status(), still_waiting)
    ctx.run(ctx.on.update_status(), synced)

    assert synced.unit_status == in_sync(github)
    assert shown(github) == [
        (
            sha,
            "pending",
            f"waiting for 1 namespace (ml-engineers); finish: juju run {APP}/leader sync-now",
        ),
        (sha, "success", "1 profile in sync"),
    ]
    assert {s["context"] for s in github.statuses(REPO)} == {CONTEXT}
    (request,) = github.requests_matching(r"/statuses/")[:1]
    assert request.headers["authorization"] == f"Bearer {GOOD_TOKEN}"


def test_a_new_commit_gets_its_own_status_with_the_cluster_name_and_link(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    config = {**reporting, "cluster-name": "prod", "status-url": "https://kubeflow.example.com"}
    first = ctx.run(ctx.on.install(), state(config))
    pmr = github.repos[REPO].commits[head(github)]["pmr.yaml"]
    new_sha = github.commit(REPO, {"pmr.yaml": pmr + b"\n"})

    ctx.run(ctx.on.update_status(), first)

    statuses = github.statuses(REPO)
    assert [(s["sha"], s["state"]) for s in statuses][-1] == (new_sha, "success")
    assert {s["context"] for s in statuses} == {"kubeflow-profiles-automator/prod"}
    assert {s["target_url"] for s in statuses} == {"https://kubeflow.example.com"}


def test_an_invalid_pmr_fails_the_commit_with_the_first_error(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    sha = github.commit(REPO, {"pmr.yaml": b"profiles:\n- name: x\n  owner: {kind: Usr}\n"})

    out = ctx.run(ctx.on.update_status(), state(reporting))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    ((got_sha, got_state, description),) = shown(github)
    assert (got_sha, got_state) == (sha, "failure")
    assert description.startswith("invalid PMR: pmr.yaml:3: profiles[0].owner")
    assert len(description) <= 140


def test_failed_changes_fail_the_commit(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    kube.add_fault(verb="apply", path="/rolebindings/", status=422, message="denied", times=-1)

    ctx.run(ctx.on.install(), state(reporting))

    ((_, got_state, description),) = shown(github)
    assert got_state == "failure"
    assert description.startswith("2 changes failed; first: create RoleBinding ml-engineers/")
    assert len(description) <= 140


def test_held_revocations_are_pending_with_the_confirming_command(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    synced = ctx.run(ctx.on.install(), state({**reporting, "max-revocations": 1}))
    github.commit(
        REPO,
        {"pmr.yaml": b"profiles:\n- name: ml-engineers\n  owner: {kind: User, name: a@b.c}\n"},
    )

    ctx.run(ctx.on.update_status(), synced)

    assert shown(github)[-1][1:] == (
        "pending",
        f"held 2 revocations (limit 1); confirm: juju run {APP}/leader sync-now force=true",
    )


def test_a_failing_status_endpoint_does_not_fail_the_sync(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    github.add_fault(r"/statuses/", status=403, body=b'{"message": "Resource not accessible"}')

    out = ctx.run(ctx.on.action("sync-now"), state(reporting))

    assert out.unit_status == in_sync(github)
    assert ctx.action_results is not None
    result = str(ctx.action_results["commit-status"])
    host = github.api_url.removeprefix("http://")
    assert result.startswith(
        f"failed: could not set the commit status on {host}/{REPO}: the token may not set "
        "statuses (HTTP 403: Resource not accessible)"
    )
    assert "Commit statuses: Read and write" in result
    warnings = [log for log in ctx.juju_log if log.level == "WARNING"]
    assert len(warnings) == 1
    assert GOOD_TOKEN not in result


def test_an_unchanged_outcome_reports_nothing_and_says_so(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    first = ctx.run(ctx.on.install(), state(reporting))

    ctx.run(ctx.on.action("sync-now"), first)

    assert ctx.action_results is not None
    assert ctx.action_results["commit-status"] == (
        f"unchanged: success already reported on {head(github)[:7]}"
    )
    assert len(github.statuses(REPO)) == 1


def test_off_by_default(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    ctx.run(
        ctx.on.install(),
        leader({**config, "token-secret-id": TOKEN_SECRET.id}, secrets={TOKEN_SECRET}),
    )

    assert github.statuses(REPO) == []
    assert github.requests_matching(r"/statuses/") == []


def test_a_dry_run_reports_nothing(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, reporting: dict[str, Any]
):
    ctx.run(ctx.on.install(), state({**reporting, "dry-run": True}))

    assert github.requests_matching(r"/statuses/") == []
