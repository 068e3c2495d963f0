"""The sync's result on the synced commit: a commit status per cluster, like Flux and Argo CD.

`status_of_sync` and `status_of_problem` (pure) turn an outcome into a state and a description
of at most 140 characters; `reporter_for` picks the host's statuses API (GitHub and GitHub
Enterprise ``POST /repos/{owner}/{repo}/statuses/{sha}``, GitLab
``POST /projects/:id/statuses/:sha``); `report` sends one and returns a one-line problem
instead of raising, because reporting must never block or fail a sync.

Permissions: GitHub classic token `repo:status`, fine-grained token or GitHub App "Commit
statuses: Read and write"; GitLab a token with the `api` scope and at least the Developer role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote, urlsplit

from profiles_automator.pmr.problems import PMRInvalidError
from profiles_automator.sources.errors import FetchError
from profiles_automator.sources.http_client import Credentials, HTTPClient, Reply
from profiles_automator.sources.source import GitHubSource, GitSource
from profiles_automator.sync.engine import SyncReport

CONTEXT_PREFIX = "kubeflow-profiles-automator"
MAX_DESCRIPTION = 140
DEADLINE_SECONDS = 10.0
State = Literal["success", "pending", "failure"]

_GITLAB_STATES = {"success": "success", "pending": "pending", "failure": "failed"}


@dataclass(frozen=True)
class CommitStatus:
    """One status for one commit, as the hosts take it."""

    sha: str
    state: State
    description: str
    context: str
    target_url: str | None = None

    @property
    def key(self) -> str:
        """What identifies the outcome: reporting it again would tell nobody anything new."""
        return f"{self.sha} {self.context} {self.state} {self.description}"


def context_for(cluster_name: str | None, model_name: str) -> str:
    """``kubeflow-profiles-automator/<cluster-name, else the model name>``."""
    return f"{CONTEXT_PREFIX}/{(cluster_name or '').strip() or model_name}"


def fit(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """`text` on one line, cut with an ellipsis to at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def status_of_sync(report: SyncReport, *, profiles: int, app: str) -> tuple[State, str]:
    """A finished sync: failure for failed changes, pending while held or waiting, else success.

    `app` is the Juju application name, for the command that confirms held revocations.
    """
    if report.failures:
        count = len(report.failures)
        return "failure", fit(
            f"{count} change{'s' * (count != 1)} failed; first: {report.failures[0]}"
        )
    if report.plan.held:
        return "pending", fit(
            f"{report.plan.hold_reason}; confirm: juju run {app}/leader sync-now force=true"
        )
    if report.pending:
        count = len(report.pending)
        names = ", ".join(report.pending[:3]) + (", ..." if count > 3 else "")
        return "pending", fit(
            f"waiting for {count} namespace{'s' * (count != 1)} ({names}); "
            f"finish: juju run {app}/leader sync-now"
        )
    return "success", fit(f"{profiles} profile{'s' * (profiles != 1)} in sync")


def status_of_problem(problem: str, invalid: PMRInvalidError | None = None) -> tuple[State, str]:
    """A sync that stopped after reading the commit: the first PMR error (file:line), or why."""
    if invalid is not None:
        first = invalid.first
        where = f"{first.location.file}:{first.location.line}"
        path = f" {first.path}:" if first.path else ""
        more = len(invalid.errors) - 1
        suffix = f" (+{more} more)" if more else ""
        return "failure", fit(f"invalid PMR: {where}:{path} {first.message}{suffix}")
    return "failure", fit(f"not applied: {problem}")


class Reporter(Protocol):
    """Sets commit statuses on one repository of one host."""

    def describe(self) -> str:
        """The repository, for messages."""
        ...

    def report(self, status: CommitStatus) -> None:
        """Set `status`; raise StatusReportError with a one-line, actionable message."""
        ...


class StatusReportError(Exception):
    """The status could not be set; `str()` says what to fix."""


def reporter_for(source: object, credentials: Credentials) -> Reporter | None:
    """The reporter for `source`'s host, or None when it has no statuses API we speak.

    A git source is reported to GitLab when its host is one (`GitSource.host_kind`, from the
    host name: a GitLab under a neutral name such as git.example.com is not recognised).
    """
    if isinstance(source, GitHubSource):
        return GitHubStatuses(source.api_url, source.repository, credentials)
    if isinstance(source, GitSource) and source.api_url is not None:
        if source.host_kind == "gitlab":
            return GitLabStatuses(source.api_url, source.project_path, credentials)
        if source.host_kind == "github":
            return GitHubStatuses(source.api_url, source.project_path, credentials)
    return None


def report(reporter: Reporter, status: CommitStatus) -> str | None:
    """Set `status`; return None, or the problem as one line (never raises for the host)."""
    try:
        reporter.report(status)
    except StatusReportError as exc:
        return fit(f"could not set the commit status on {reporter.describe()}: {exc}", 400)
    return None


class GitHubStatuses:
    """GitHub and GitHub Enterprise: ``POST {api}/repos/{owner}/{repo}/statuses/{sha}``."""

    def __init__(self, api_url: str, repository: str, credentials: Credentials) -> None:
        self._api = api_url.rstrip("/")
        self._repository = repository
        self._credentials = credentials

    def describe(self) -> str:
        """``org/repo`` (with the host for GitHub Enterprise)."""
        host = urlsplit(self._api).netloc
        return self._repository if host == "api.github.com" else f"{host}/{self._repository}"

    def report(self, status: CommitStatus) -> None:
        """Set the status; explain 401/403/404/422 in terms of the token's permissions."""
        owner, name = self._repository.split("/", 1)
        url = (
            f"{self._api}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/statuses/"
            f"{quote(status.sha, safe='')}"
        )
        payload: dict[str, object] = {
            "state": status.state,
            "description": status.description,
            "context": status.context,
        }
        if status.target_url:
            payload["target_url"] = status.target_url
        reply = _post(url, payload, self._credentials, "application/vnd.github+json")
        if reply.status == 201:
            return
        detail = _detail(reply)
        if not self._credentials.token:
            raise StatusReportError(f"no token is configured ({detail}); " + _GITHUB_PERMISSION)
        if reply.status == 401:
            raise StatusReportError(f"the token was rejected ({detail}): it is invalid or expired")
        if reply.status in (403, 404):
            raise StatusReportError(
                f"the token may not set statuses ({detail}); {_GITHUB_PERMISSION}"
            )
        raise StatusReportError(f"unexpected answer ({detail})")


_GITHUB_PERMISSION = (
    "give the token or GitHub App the Commit statuses: Read and write permission "
    "(classic token: repo:status)"
)


class GitLabStatuses:
    """GitLab: ``POST {api}/projects/:id/statuses/:sha`` (the project id is its encoded path)."""

    def __init__(self, api_url: str, project_path: str, credentials: Credentials) -> None:
        self._api = api_url.rstrip("/")
        self._project = project_path
        self._credentials = credentials

    def describe(self) -> str:
        """``host/group/project``."""
        return f"{urlsplit(self._api).netloc}/{self._project}"

    def report(self, status: CommitStatus) -> None:
        """Set the status; a state GitLab already holds for this name is not an error."""
        url = (
            f"{self._api}/projects/{quote(self._project, safe='')}/statuses/"
            f"{quote(status.sha, safe='')}"
        )
        payload: dict[str, object] = {
            "state": _GITLAB_STATES[status.state],
            "name": status.context,
            "description": status.description,
        }
        if status.target_url:
            payload["target_url"] = status.target_url
        reply = _post(url, payload, self._credentials, "application/json")
        if reply.status == 201:
            return
        detail = _detail(reply)
        if reply.status == 400 and b"Cannot transition status" in reply.body:
            return  # GitLab keeps a pending status pending: the state shown is already right
        permission = "use a token with the api scope and at least the Developer role"
        if not self._credentials.token:
            raise StatusReportError(f"no token is configured ({detail}); {permission}")
        if reply.status == 401:
            raise StatusReportError(f"the token was rejected ({detail}): it is invalid or expired")
        if reply.status in (403, 404):
            raise StatusReportError(f"the token may not set statuses ({detail}); {permission}")
        raise StatusReportError(f"unexpected answer ({detail})")


def _post(url: str, payload: dict[str, object], credentials: Credentials, accept: str) -> Reply:
    try:
        with HTTPClient(
            credentials=credentials, auth_url=url, deadline_seconds=DEADLINE_SECONDS
        ) as client:
            return client.post(
                url, what="setting the commit status", payload=payload, accept=accept
            )
    except FetchError as exc:
        raise StatusReportError(str(exc)) from None


def _detail(reply: Reply) -> str:
    try:
        data = json.loads(reply.body)
    except ValueError:
        data = None
    message = ""
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or "")
    return f"HTTP {reply.status}" + (f": {message[:160]}" if message else "")
