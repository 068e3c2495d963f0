"""Where the PMR lives: a path in a GitHub repository, in any git repository, or at a URL.

`source_from_options` turns the charm/CLI options into one of the three source types and rejects
bad combinations up front with a message that names the option to fix, so an administrator
sees the mistake in `juju status` instead of a confusing HTTP error later.

GitHub (github.com, and GitHub Enterprise hosts named `github.*` or `ghe.*`, or any host when
`github-api-url` is set) is read through its REST API; every other host, and SSH URLs when an
SSH key is configured, through the git protocol (`GitSource`).
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
_GIT_URL_HINT = (
    "org/repo, a git clone URL like https://gitlab.example.com/org/repo.git, "
    "or an SSH URL like git@gitlab.example.com:org/repo.git"
)
# First labels of host names that say "this is GitHub Enterprise" (github.example.com).
_GITHUB_ENTERPRISE_LABELS = frozenset({"github", "ghe"})
_SCP_FORM = re.compile(r"^(?:([A-Za-z0-9_.+-]+)@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?!//)(.+)$")
_AZURE_HOSTS = ("dev.azure.com", "ssh.dev.azure.com", "vs-ssh.visualstudio.com")
GIT_HOST_KINDS = ("github", "gitlab", "bitbucket", "azure-devops", "gitea", "git")


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


@dataclass(frozen=True)
class GitSource:
    """A file or folder at a branch, tag or commit of a repository on any git host.

    `url` is the clone URL as configured: ``https://HOST/PATH`` or an SSH URL
    (``ssh://[USER@]HOST[:PORT]/PATH`` or scp-like ``[USER@]HOST:PATH``). It is read over the
    git protocol, not through a host's API. The properties name the host and project for
    messages and for reporting back to the host (`host_kind`, `web_url`, `project_path`,
    `api_url`).
    """

    url: str
    branch: str = "main"
    path: str = "pmr.yaml"

    def __post_init__(self) -> None:
        _split_git_url(self.url)  # raises ValueError naming `repository`
        if problem := _ref_problem(self.branch):
            raise ValueError(f"`branch` {problem}")
        if problem := _path_problem(self.path):
            raise ValueError(f"`pmr-path` {problem}")

    @property
    def transport(self) -> str:
        """``https`` (``http`` on loopback, for tests) or ``ssh``."""
        return _split_git_url(self.url).scheme

    @property
    def host(self) -> str:
        """The server's host name (no port, no user)."""
        return _split_git_url(self.url).host

    @property
    def port(self) -> int | None:
        """The port given in the URL, if any."""
        return _split_git_url(self.url).port

    @property
    def ssh_user(self) -> str:
        """The SSH login (``git`` unless the URL names one); empty for HTTPS."""
        parts = _split_git_url(self.url)
        return (parts.user or "git") if parts.scheme == "ssh" else ""

    @property
    def remote_path(self) -> str:
        """The repository path sent to the server (as git sends it for this URL form)."""
        return _split_git_url(self.url).path

    @property
    def host_kind(self) -> str:
        """Which product serves the repository, from its host name: one of GIT_HOST_KINDS.

        ``git`` means unknown (any git server); a self-hosted GitLab under a neutral name like
        git.example.com is ``git`` too.
        """
        return _host_kind(self.host)

    @property
    def project_path(self) -> str:
        """The project as its host names it, e.g. ``group/sub/repo`` (no ``.git``).

        Azure DevOps: ``org/project/_git/repo`` for both the HTTPS and the SSH form.
        """
        path = self.remote_path.strip("/").removeprefix("~/").removesuffix(".git")
        if self.host_kind == "azure-devops" and self.transport == "ssh":
            segments = path.split("/")
            if len(segments) == 4 and segments[0] == "v3":
                return f"{segments[1]}/{segments[2]}/_git/{segments[3]}"
        return path

    @property
    def web_url(self) -> str:
        """The project's web page, e.g. ``https://gitlab.example.com/group/repo``."""
        parts = _split_git_url(self.url)
        host = parts.host
        if self.host_kind == "azure-devops":
            host = "dev.azure.com"
        scheme = parts.scheme if parts.scheme in ("http", "https") else "https"
        port = f":{parts.port}" if parts.port and parts.scheme != "ssh" else ""
        return f"{scheme}://{host}{port}/{self.project_path}"

    @property
    def api_url(self) -> str | None:
        """The host's REST API base when the host kind is known, else None."""
        base = self.web_url.removesuffix("/" + self.project_path)
        return {
            "github": GITHUB_API_URL if self.host in _GITHUB_WEB_HOSTS else f"{base}/api/v3",
            "gitlab": f"{base}/api/v4",
            "gitea": f"{base}/api/v1",
            "bitbucket": "https://api.bitbucket.org/2.0" if self.host == "bitbucket.org" else None,
            "azure-devops": base,
        }.get(self.host_kind)

    def describe(self) -> str:
        """Name the source for messages, e.g. ``gitlab.example.com/org/repo@main:pmr.yaml``."""
        return f"{self.host}/{self.project_path}@{self.branch}:{self.path}"


Source = GitHubSource | GitSource | URLSource


def source_from_options(
    *,
    repository: str = "",
    branch: str = "main",
    pmr_path: str = "pmr.yaml",
    pmr_url: str = "",
    github_api_url: str = "",
    ssh_key: bool = False,
) -> Source:
    """Build the PMR source from configuration options, or explain which option is wrong.

    Accepts `org/repo`, `https://github.com/org/repo[.git]`, `github.com/org/repo`,
    `git@github.com:org/repo.git`, and the same forms on a GitHub Enterprise host (whose API is
    then `https://HOST/api/v3`); `github_api_url` overrides the derived API URL. Any other
    host's clone URL (HTTPS or SSH) gives a `GitSource`. `ssh_key` says whether an SSH key is
    configured: an SSH URL on GitHub is then read over SSH (a deploy key) instead of the API.

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
    branch, path = branch.strip() or "main", _normalise_path(pmr_path)
    if git_url := _git_url(repository, github_api_url=bool(github_api_url), ssh_key=ssh_key):
        return GitSource(git_url, branch, path)
    scheme, host, owner_repo = _parse_repository(repository)
    if github_api_url:
        if problem := url_problem(github_api_url):
            raise ValueError(f"`github-api-url` {problem}")
        api_url = github_api_url.rstrip("/")
    elif host is None or host.lower() in _GITHUB_WEB_HOSTS:
        api_url = GITHUB_API_URL
    else:
        api_url = f"{scheme}://{host}/api/v3"
    return GitHubSource(repository=owner_repo, branch=branch, path=path, api_url=api_url)


@dataclass(frozen=True)
class _GitURLParts:
    scheme: str
    user: str | None
    host: str
    port: int | None
    path: str


def _git_url(value: str, *, github_api_url: bool, ssh_key: bool) -> str | None:
    """Return the clone URL when `value` is read over git, or None when GitHub's API reads it."""
    text = value.rstrip("/")
    if _OWNER_REPO.match(text.removesuffix(".git")):
        return None  # org/repo on github.com
    if "://" not in text and not _SCP_FORM.match(text):
        if not _HOST_FORM.match(text):
            return None  # not a URL at all: _parse_repository explains
        text = f"https://{text}"
    if "://" in text and urlsplit(text).scheme not in ("ssh", "git+ssh", "ssh+git"):
        if problem := url_problem(text):
            raise ValueError(f"`repository` {problem}")
        if (urlsplit(text).hostname or "") in _GITHUB_WEB_HOSTS:
            return None  # github.com: the REST API (which explains a malformed URL)
    parts = _split_git_url(text)
    over_ssh = parts.scheme == "ssh" and ssh_key
    if (github_api_url or _is_github_host(parts.host)) and not over_ssh:
        is_owner_repo = _valid_owner_repo(parts.path.strip("/").removesuffix(".git"))
        if github_api_url or is_owner_repo or parts.host.lower() in _GITHUB_WEB_HOSTS:
            return None  # the REST API (it explains a malformed owner/repo)
    return text


def _is_github_host(host: str) -> bool:
    host = host.lower()
    return host in _GITHUB_WEB_HOSTS or host.split(".", 1)[0] in _GITHUB_ENTERPRISE_LABELS


def _split_git_url(url: str) -> _GitURLParts:
    """Split a clone URL; raise ValueError naming `repository` when it is not one."""
    error = ValueError(f"`repository` must look like {_GIT_URL_HINT}, got {url!r}")
    if "://" not in url:
        match = _SCP_FORM.match(url)
        if not match or match.group(3).startswith("-"):
            raise error
        user, host, path = match.groups()
        return _checked(_GitURLParts("ssh", user, host.strip("[]"), None, path), error)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise error from None
    scheme = "ssh" if parts.scheme in ("ssh", "git+ssh", "ssh+git") else parts.scheme
    if scheme not in ("ssh", "https", "http") or not host or parts.query or parts.fragment:
        raise error
    if scheme != "ssh" and (parts.username is not None or parts.password is not None):
        raise ValueError(
            "`repository` must not contain a user name or password: configure the token instead"
        )
    if parts.password is not None:
        raise ValueError("`repository` must not contain a password: configure an SSH key instead")
    return _checked(_GitURLParts(scheme, parts.username, host, port, unquote(parts.path)), error)


def _checked(parts: _GitURLParts, error: ValueError) -> _GitURLParts:
    path = parts.path.rstrip("/")
    segments = [s for s in path.removeprefix("~/").split("/") if s]
    if not segments or any(s in {".", ".."} or _BAD_REF_CHARS.search(s) for s in segments):
        raise error
    if parts.host.startswith("-") or "'" in path:
        raise error
    return _GitURLParts(parts.scheme, parts.user, parts.host.lower(), parts.port, path)


def _host_kind(host: str) -> str:
    host = host.lower()
    labels = host.split(".")
    if _is_github_host(host):
        return "github"
    if host == "gitlab.com" or any(label.startswith("gitlab") for label in labels):
        return "gitlab"
    if host == "bitbucket.org" or any("bitbucket" in label for label in labels):
        return "bitbucket"
    if host in _AZURE_HOSTS or host.endswith(".visualstudio.com"):
        return "azure-devops"
    if host in ("gitea.com", "codeberg.org") or any(
        label.startswith(("gitea", "forgejo")) for label in labels
    ):
        return "gitea"
    return "git"


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
