"""Where the PMR lives: a path in a GitHub repository, or a plain https URL.

`source_from_options` turns the charm/CLI options into one of the two source types and rejects
bad combinations up front with a message that names the option to fix, so an administrator
sees the mistake in `juju status` instead of a confusing HTTP error later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from profiles_automator.sources.url_policy import display_url, url_problem

GITHUB_API_URL = "https://api.github.com"
_GITHUB_WEB_HOSTS = frozenset({"github.com", "www.github.com"})

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REPO = r"[A-Za-z0-9_.-]+"
_OWNER_REPO = re.compile(rf"^({_OWNER})/({_REPO})$")
_SSH_FORM = re.compile(r"^[A-Za-z0-9_.-]+@([A-Za-z0-9.-]+):(.+)$")
_HOST_FORM = re.compile(r"^([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?)/(.+)$")
_BAD_REF_CHARS = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]")
_REPOSITORY_HINT = "org/repo or https://github.com/org/repo"


@dataclass(frozen=True)
class GitHubSource:
    """A file or folder at a branch, tag or commit of a GitHub (or GitHub Enterprise) repo."""

    repository: str
    branch: str = "main"
    path: str = "pmr.yaml"
    api_url: str = GITHUB_API_URL

    def __post_init__(self) -> None:
        if not _valid_owner_repo(self.repository):
            raise ValueError(
                f"`repository` must look like {_REPOSITORY_HINT}, got {self.repository!r}"
            )
        if problem := _ref_problem(self.branch):
            raise ValueError(f"`branch` {problem}")
        if problem := _path_problem(self.path):
            raise ValueError(f"`pmr-path` {problem}")
        if problem := url_problem(self.api_url):
            raise ValueError(f"`github-api-url` {problem}")

    @property
    def owner(self) -> str:
        """The organisation or user that owns the repository."""
        return self.repository.split("/", 1)[0]

    @property
    def name(self) -> str:
        """The repository name without its owner."""
        return self.repository.split("/", 1)[1]

    def describe(self) -> str:
        """Name the source for messages, e.g. ``org/repo@main:pmr.yaml``."""
        where = self.repository
        if self.api_url.rstrip("/") != GITHUB_API_URL:
            where = f"{urlsplit(self.api_url).netloc}/{where}"
        return f"{where}@{self.branch}:{self.path}"


@dataclass(frozen=True)
class URLSource:
    """A single PMR file served at an https URL (any web server, not only GitHub)."""

    url: str

    def __post_init__(self) -> None:
        if problem := url_problem(self.url):
            raise ValueError(f"`pmr-url` {problem}")

    @property
    def name(self) -> str:
        """The file name used in messages: the last segment of the URL path."""
        parts = urlsplit(self.url)
        segments = [s for s in parts.path.split("/") if s]
        return unquote(segments[-1]) if segments else (parts.hostname or self.url)

    def describe(self) -> str:
        """Name the source for messages: the URL without query string or user info."""
        return display_url(self.url)


Source = GitHubSource | URLSource


def source_from_options(
    *,
    repository: str = "",
    branch: str = "main",
    pmr_path: str = "pmr.yaml",
    pmr_url: str = "",
    github_api_url: str = "",
) -> Source:
    """Build the PMR source from configuration options, or explain which option is wrong.

    Accepts `org/repo`, `https://github.com/org/repo[.git]`, `github.com/org/repo`,
    `git@github.com:org/repo.git`, and the same forms on a GitHub Enterprise host (whose API is
    then `https://HOST/api/v3`). `github_api_url` overrides the derived API URL.

    Raises:
        ValueError: naming the option and the fix.
    """
    repository, pmr_url, github_api_url = (
        repository.strip(),
        pmr_url.strip(),
        github_api_url.strip(),
    )
    if repository and pmr_url:
        raise ValueError(
            "set either `repository` (a GitHub repository) or `pmr-url` (a plain https URL), "
            "not both"
        )
    if pmr_url:
        return URLSource(pmr_url)
    if not repository:
        raise ValueError(
            f"set `repository` to the GitHub repository that holds the PMR ({_REPOSITORY_HINT}),"
            " or set `pmr-url` to the https URL of a raw PMR file"
        )
    scheme, host, owner_repo = _parse_repository(repository)
    if github_api_url:
        if problem := url_problem(github_api_url):
            raise ValueError(f"`github-api-url` {problem}")
        api_url = github_api_url.rstrip("/")
    elif host is None or host.lower() in _GITHUB_WEB_HOSTS:
        api_url = GITHUB_API_URL
    else:
        api_url = f"{scheme}://{host}/api/v3"
    return GitHubSource(
        repository=owner_repo,
        branch=branch.strip() or "main",
        path=_normalise_path(pmr_path),
        api_url=api_url,
    )


def _parse_repository(value: str) -> tuple[str, str | None, str]:
    """Split a repository spelling into (scheme, web host or None, "org/repo")."""
    error = ValueError(f"`repository` must look like {_REPOSITORY_HINT}, got {value!r}")
    text = value.rstrip("/")
    scheme, host, rest = "https", None, text
    if "://" in text:
        if problem := url_problem(text):
            raise ValueError(f"`repository` {problem}")
        parts = urlsplit(text)
        if parts.query or parts.fragment:
            raise error
        scheme, host, rest = parts.scheme, parts.netloc, parts.path.strip("/")
    elif (match := _SSH_FORM.match(text)) or (match := _HOST_FORM.match(text)):
        host, rest = match.group(1), match.group(2)
    rest = rest.rstrip("/").removesuffix(".git")
    if not _valid_owner_repo(rest):
        raise error
    return scheme, host, rest


def _valid_owner_repo(value: str) -> bool:
    match = _OWNER_REPO.match(value)
    return match is not None and match.group(2) not in {".", ".."}


def _ref_problem(ref: str) -> str | None:
    if not ref:
        return "must name a branch, tag or commit SHA, got an empty value"
    if _BAD_REF_CHARS.search(ref) or ".." in ref or ref.startswith("/") or ref.endswith("/"):
        return f"must be a branch, tag or commit SHA, got {ref!r}"
    return None


def _path_problem(path: str) -> str | None:
    segments = path.split("/")
    if not path or any(s in {"", ".", ".."} for s in segments):
        return (
            f"must be a file or folder inside the repository, like pmr.yaml or pmr, got {path!r}"
        )
    return None


def _normalise_path(path: str) -> str:
    """Drop leading/trailing slashes and `./` so `/pmr/` and `pmr` mean the same folder."""
    segments = [s for s in path.strip().split("/") if s not in {"", "."}]
    normalised = "/".join(segments)
    if problem := _path_problem(normalised):
        raise ValueError(f"`pmr-path` {problem.replace(repr(normalised), repr(path))}")
    return normalised
