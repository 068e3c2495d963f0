"""Commit statuses: the state and description per outcome (pure), and the hosts' answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.problems import PMRInvalidError
from profiles_automator.report.commit_status import (
    MAX_DESCRIPTION,
    CommitStatus,
    GitHubStatuses,
    GitLabStatuses,
    context_for,
    fit,
    report,
    reporter_for,
    status_of_problem,
    status_of_sync,
)
from profiles_automator.sources import http_client
from profiles_automator.sources.fetch import Credentials, GitHubSource, GitSource, URLSource
from profiles_automator.sync.cluster import Failure
from profiles_automator.sync.engine import SyncReport
from profiles_automator.sync.planner import Change, Plan
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub
from tests.fakes.gitlab_api import DEVELOPER, REPORTER, FakeGitLab, GitLabProject, GitLabToken

SHA = "a" * 40
PROJECT = "group/sub/access"
GITLAB_TOKEN = "glpat-good"
CHANGE = Change("create", "RoleBinding", "user-bob", "grant bob", namespace="team-a")


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (0.01, 0.02, 0.04))


def status(state: str = "success", description: str = "1 profile in sync") -> CommitStatus:
    return CommitStatus(SHA, state, description, "kubeflow-profiles-automator/prod")  # type: ignore[arg-type]


# --- the state and description per outcome ------------------------------------------------


def test_in_sync_is_success():
    assert status_of_sync(SyncReport(Plan()), profiles=3, app="kpa") == (
        "success",
        "3 profiles in sync",
    )


def test_pending_namespaces_say_which_and_how_to_finish():
    names = tuple(f"team-{n}" for n in range(5))

    state, description = status_of_sync(SyncReport(Plan(), pending=names), profiles=5, app="kpa")

    assert state == "pending"
    assert description == (
        "waiting for 5 namespaces (team-0, team-1, team-2, ...); finish: juju run kpa/leader "
        "sync-now"
    )


def test_held_revocations_say_how_to_confirm():
    plan = Plan(held=(CHANGE,), hold_reason="held 60 revocations (limit 50)")

    assert status_of_sync(SyncReport(plan), profiles=1, app="kpa") == (
        "pending",
        "held 60 revocations (limit 50); confirm: juju run kpa/leader sync-now force=true",
    )


def test_failed_changes_are_a_failure_with_the_first():
    failures = (Failure(CHANGE, 403, "forbidden"), Failure(CHANGE, 500, "boom"))

    state, description = status_of_sync(
        SyncReport(Plan(), failures=failures), profiles=1, app="kpa"
    )

    assert state == "failure"
    assert description == (
        "2 changes failed; first: create RoleBinding team-a/user-bob: HTTP 403: forbidden"
    )


def test_an_invalid_pmr_is_a_failure_at_file_and_line():
    with pytest.raises(PMRInvalidError) as caught:
        load_pmr([Document("pmr/ml.yaml", b"profiles:\n- {name: a, owner: {kind: Usr}}\n")])

    state, description = status_of_problem(str(caught.value), caught.value)

    assert state == "failure"
    assert description.startswith("invalid PMR: pmr/ml.yaml:2: profiles[0].owner")


def test_a_stop_after_the_commit_was_read_says_why():
    assert status_of_problem("missing permissions to list profiles") == (
        "failure",
        "not applied: missing permissions to list profiles",
    )


@given(st.text(max_size=400))
def test_descriptions_fit_on_one_line_of_140_characters(text: str):
    fitted = fit(text)

    assert len(fitted) <= MAX_DESCRIPTION
    assert "\n" not in fitted


def test_the_context_is_the_cluster_name_else_the_model():
    assert context_for("prod", "kubeflow") == "kubeflow-profiles-automator/prod"
    assert context_for("  ", "kubeflow") == "kubeflow-profiles-automator/kubeflow"


def test_sources_without_statuses_get_no_reporter():
    assert reporter_for(URLSource("https://example.com/pmr.yaml"), Credentials()) is None


# --- GitHub -------------------------------------------------------------------------------


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def test_github_records_the_status(gh: FakeGitHub):
    sha = gh.commit("org/access", {"pmr.yaml": b"profiles: []\n"})
    source = GitHubSource(repository="org/access", api_url=gh.api_url)
    reporter = reporter_for(source, Credentials(token=GOOD_TOKEN))
    assert reporter is not None

    problem = report(
        reporter, CommitStatus(sha, "success", "1 profile in sync", "ctx", "https://x")
    )

    assert problem is None
    assert gh.statuses("org/access") == [
        {
            "sha": sha,
            "state": "success",
            "description": "1 profile in sync",
            "context": "ctx",
            "target_url": "https://x",
        }
    ]


def test_github_without_a_token_says_to_configure_one(gh: FakeGitHub):
    sha = gh.commit("org/access", {"pmr.yaml": b"profiles: []\n"})
    reporter = GitHubStatuses(gh.api_url, "org/access", Credentials())

    problem = report(reporter, CommitStatus(sha, "success", "ok", "ctx"))

    assert problem is not None and "no token is configured (HTTP 401" in problem
    assert gh.statuses("org/access") == []


def test_github_rejects_a_description_over_140_characters(gh: FakeGitHub):
    sha = gh.commit("org/access", {"pmr.yaml": b"profiles: []\n"})
    reporter = GitHubStatuses(gh.api_url, "org/access", Credentials(token=GOOD_TOKEN))

    problem = report(reporter, CommitStatus(sha, "success", "x" * 141, "ctx"))

    assert problem is not None and "HTTP 422" in problem


# --- GitLab -------------------------------------------------------------------------------


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with FakeGitLab() as fake:
        fake.projects[PROJECT] = GitLabProject(commits={SHA})
        fake.tokens[GITLAB_TOKEN] = GitLabToken(roles={PROJECT: DEVELOPER})
        yield fake


def gitlab_reporter(gitlab: FakeGitLab, token: str | None = GITLAB_TOKEN) -> GitLabStatuses:
    return GitLabStatuses(gitlab.api_url, PROJECT, Credentials(token=token))


@pytest.mark.parametrize(
    ("state", "gitlab_state"), [("success", "success"), ("failure", "failed")]
)
def test_gitlab_records_the_status_by_project_path(
    gitlab: FakeGitLab, state: str, gitlab_state: str
):
    problem = report(gitlab_reporter(gitlab), status(state))

    assert problem is None
    assert gitlab.projects[PROJECT].statuses == [
        {
            "sha": SHA,
            "status": gitlab_state,
            "name": "kubeflow-profiles-automator/prod",
            "description": "1 profile in sync",
            "target_url": None,
        }
    ]


def test_gitlab_keeps_a_pending_status_pending(gitlab: FakeGitLab):
    report(gitlab_reporter(gitlab), status("pending", "waiting for 1 namespace"))

    problem = report(gitlab_reporter(gitlab), status("pending", "held 60 revocations"))

    assert problem is None
    assert [s["status"] for s in gitlab.projects[PROJECT].statuses] == ["pending"]


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (lambda g: g.tokens.clear(), "the token was rejected (HTTP 401"),
        (lambda g: g.tokens[GITLAB_TOKEN].scopes.clear(), "api scope and at least the Developer"),
        (lambda g: g.tokens[GITLAB_TOKEN].roles.update({PROJECT: REPORTER}), "HTTP 403: 403 F"),
        (lambda g: g.tokens[GITLAB_TOKEN].roles.clear(), "(HTTP 404: 404 Project Not Found)"),
    ],
)
def test_gitlab_refusals_say_what_the_token_needs(gitlab: FakeGitLab, arrange, expected: str):
    arrange(gitlab)

    problem = report(gitlab_reporter(gitlab), status())

    assert problem is not None and expected in problem
    assert problem.startswith("could not set the commit status on 127.0.0.1:")
    assert GITLAB_TOKEN not in problem


def test_a_gitlab_outage_is_a_problem_not_an_exception(gitlab: FakeGitLab):
    gitlab.fail_with = 503

    problem = report(gitlab_reporter(gitlab), status())

    assert problem is not None and "gave up setting the commit status after 3 attempts" in problem


def test_a_gitlab_repository_reports_to_its_api_by_project_path():
    source = GitSource("https://gitlab.example.com/group/sub/access.git")

    reporter = reporter_for(source, Credentials(token=GITLAB_TOKEN))

    assert isinstance(reporter, GitLabStatuses)
    assert reporter.describe() == "gitlab.example.com/group/sub/access"
    assert reporter_for(GitSource("https://git.example.com/org/access.git"), Credentials()) is None
