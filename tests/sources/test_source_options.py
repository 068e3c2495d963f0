"""Parsing the charm/CLI options into a PMR source."""

from __future__ import annotations

import pytest

from profiles_automator.sources.fetch import (
    GitHubSource,
    GitSource,
    URLSource,
    source_from_options,
)

PUBLIC_API = "https://api.github.com"


@pytest.mark.parametrize(
    "spelling",
    [
        "org/repo",
        " org/repo ",
        "org/repo/",
        "org/repo.git",
        "https://github.com/org/repo",
        "https://github.com/org/repo/",
        "https://github.com/org/repo.git",
        "https://github.com/org/repo.git/",
        "https://www.github.com/org/repo",
        "github.com/org/repo",
        "git@github.com:org/repo.git",
    ],
)
def test_repository_spellings_on_github_com(spelling: str):
    source = source_from_options(repository=spelling)
    assert source == GitHubSource("org/repo", "main", "pmr.yaml", PUBLIC_API)


@pytest.mark.parametrize(
    ("spelling", "api_url"),
    [
        ("https://ghe.example.com/org/repo", "https://ghe.example.com/api/v3"),
        ("https://ghe.example.com/org/repo.git/", "https://ghe.example.com/api/v3"),
        ("https://ghe.example.com:8443/org/repo", "https://ghe.example.com:8443/api/v3"),
        ("ghe.example.com/org/repo", "https://ghe.example.com/api/v3"),
        ("git@ghe.example.com:org/repo.git", "https://ghe.example.com/api/v3"),
    ],
)
def test_enterprise_host_derives_api_url(spelling: str, api_url: str):
    source = source_from_options(repository=spelling)
    assert isinstance(source, GitHubSource)
    assert (source.repository, source.api_url) == ("org/repo", api_url)


def test_github_api_url_overrides_the_derived_one():
    source = source_from_options(
        repository="https://ghe.example.com/org/repo",
        github_api_url="https://api.ghe.example.com/ ",
    )
    assert isinstance(source, GitHubSource)
    assert source.api_url == "https://api.ghe.example.com"


def test_branch_and_path_are_normalised():
    source = source_from_options(repository="org/repo", branch=" release/1.0 ", pmr_path="/pmr/")
    assert source == GitHubSource("org/repo", "release/1.0", "pmr", PUBLIC_API)
    empty_branch = source_from_options(repository="org/repo", branch="")
    assert isinstance(empty_branch, GitHubSource) and empty_branch.branch == "main"
    dotted = source_from_options(repository="org/repo", pmr_path="./a//b.yaml")
    assert isinstance(dotted, GitHubSource) and dotted.path == "a/b.yaml"


def test_repository_and_url_are_mutually_exclusive():
    with pytest.raises(ValueError, match=r"set either `repository` .* or `pmr-url` .*not both"):
        source_from_options(repository="org/repo", pmr_url="https://example.com/pmr.yaml")


def test_neither_repository_nor_url():
    with pytest.raises(ValueError, match=r"^set `repository` .* or set `pmr-url`"):
        source_from_options()


@pytest.mark.parametrize(
    "spelling",
    [
        "x",
        "org",
        "org/repo/extra",
        "https://github.com/org",
        "https://github.com/org/repo/tree/main/pmr",
        "https://github.com/org/repo?tab=readme",
        "org/..",
        "-org/repo",
    ],
)
def test_malformed_repository_names_the_option_and_the_value(spelling: str):
    expected = "`repository` must look like org/repo or https://github.com/org/repo, got "
    with pytest.raises(ValueError) as caught:
        source_from_options(repository=spelling)
    assert str(caught.value) == expected + repr(spelling)


@pytest.mark.parametrize(
    "spelling",
    ["http://github.com/org/repo", "ftp://github.com/org/repo", "https://user:pw@ghe.com/o/r"],
)
def test_repository_urls_must_be_https_without_credentials(spelling: str):
    with pytest.raises(ValueError, match=r"^`repository` must") as caught:
        source_from_options(repository=spelling)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("value", ["a b", "x..y", "ref:name", "/main", "main/", "a\nb"])
def test_bad_branch(value: str):
    with pytest.raises(ValueError, match=r"^`branch` must be a branch, tag or commit SHA"):
        source_from_options(repository="org/repo", branch=value)


@pytest.mark.parametrize("value", ["", "/", "../pmr.yaml", "pmr/../../etc"])
def test_bad_path(value: str):
    with pytest.raises(ValueError, match=r"^`pmr-path` must be a file or folder inside"):
        source_from_options(repository="org/repo", pmr_path=value)


def test_bad_github_api_url():
    with pytest.raises(ValueError, match=r"^`github-api-url` must use https://"):
        source_from_options(repository="org/repo", github_api_url="http://ghe.example.com/api")


def test_pmr_url_gives_a_url_source():
    source = source_from_options(pmr_url=" https://example.com/files/pmr.yaml?token=x ")
    assert source == URLSource("https://example.com/files/pmr.yaml?token=x")
    assert isinstance(source, URLSource)
    assert source.name == "pmr.yaml"
    assert source.describe() == "https://example.com/files/pmr.yaml"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/pmr.yaml", "must use https://"),
        ("file:///etc/passwd", "must be an https:// URL"),
        ("https://user:secret@example.com/pmr.yaml", "must not contain a user name or password"),
        ("pmr.yaml", "must be an https:// URL"),
    ],
)
def test_pmr_url_must_be_https(url: str, message: str):
    with pytest.raises(ValueError, match=rf"^`pmr-url` {message}") as caught:
        source_from_options(pmr_url=url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/pmr.yaml", "http://localhost/pmr.yaml"])
def test_plain_http_is_allowed_for_loopback_only(url: str):
    assert isinstance(source_from_options(pmr_url=url), URLSource)


def test_describe():
    assert GitHubSource("org/repo").describe() == "org/repo@main:pmr.yaml"
    enterprise = source_from_options(repository="https://ghe.example.com/org/repo", branch="v1")
    assert enterprise.describe() == "ghe.example.com/org/repo@v1:pmr.yaml"
    assert URLSource("https://example.com/a/b.yaml?x=1#f").describe() == (
        "https://example.com/a/b.yaml"
    )


def test_url_source_refuses_embedded_credentials():
    with pytest.raises(ValueError, match="user name or password"):
        URLSource("https://u:p@example.com/a/b.yaml")


def test_url_source_name_falls_back_to_host():
    assert URLSource("https://example.com/").name == "example.com"
    assert URLSource("https://example.com/dir/my%20pmr.yaml").name == "my pmr.yaml"


# --- any other git host ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "kind", "project", "web", "api"),
    [
        (
            "https://gitlab.example.com/group/sub/access.git",
            "gitlab",
            "group/sub/access",
            "https://gitlab.example.com/group/sub/access",
            "https://gitlab.example.com/api/v4",
        ),
        (
            "git@gitlab.com:group/access.git",
            "gitlab",
            "group/access",
            "https://gitlab.com/group/access",
            "https://gitlab.com/api/v4",
        ),
        (
            "https://bitbucket.org/workspace/access.git",
            "bitbucket",
            "workspace/access",
            "https://bitbucket.org/workspace/access",
            "https://api.bitbucket.org/2.0",
        ),
        (
            "https://dev.azure.com/org/project/_git/access",
            "azure-devops",
            "org/project/_git/access",
            "https://dev.azure.com/org/project/_git/access",
            "https://dev.azure.com",
        ),
        (
            "git@ssh.dev.azure.com:v3/org/project/access",
            "azure-devops",
            "org/project/_git/access",
            "https://dev.azure.com/org/project/_git/access",
            "https://dev.azure.com",
        ),
        (
            "https://codeberg.org/org/access.git",
            "gitea",
            "org/access",
            "https://codeberg.org/org/access",
            "https://codeberg.org/api/v1",
        ),
        (
            "ssh://git@git.example.com:2222/srv/access.git",
            "git",
            "srv/access",
            "https://git.example.com/srv/access",
            None,
        ),
        (
            "git.example.com/org/access",
            "git",
            "org/access",
            "https://git.example.com/org/access",
            None,
        ),
    ],
)
def test_other_hosts_give_a_git_source(
    spelling: str, kind: str, project: str, web: str, api: str | None
):
    source = source_from_options(repository=spelling, ssh_key=True)

    assert isinstance(source, GitSource)
    assert (source.host_kind, source.project_path, source.web_url, source.api_url) == (
        kind,
        project,
        web,
        api,
    )


def test_ssh_url_parts():
    scp = source_from_options(repository="deploy@gitea.example.com:org/access.git", ssh_key=True)
    url = source_from_options(repository="ssh://git@git.example.com:2222/srv/access.git")

    assert isinstance(scp, GitSource) and isinstance(url, GitSource)
    assert (scp.transport, scp.ssh_user, scp.host, scp.port, scp.remote_path) == (
        "ssh",
        "deploy",
        "gitea.example.com",
        None,
        "org/access.git",
    )
    assert (url.ssh_user, url.port, url.remote_path) == ("git", 2222, "/srv/access.git")
    assert url.describe() == "git.example.com/srv/access@main:pmr.yaml"


def test_ssh_on_github_uses_ssh_only_with_a_key():
    with_key = source_from_options(repository="git@github.com:org/repo.git", ssh_key=True)
    without = source_from_options(repository="git@github.com:org/repo.git")

    assert isinstance(with_key, GitSource) and with_key.host_kind == "github"
    assert with_key.api_url == PUBLIC_API
    assert isinstance(without, GitHubSource)


def test_enterprise_names_keep_the_api_unless_the_path_is_not_owner_repo():
    deep = source_from_options(repository="https://github.example.com/a/b/c.git")

    assert isinstance(deep, GitSource)
    assert isinstance(
        source_from_options(repository="https://github.example.com/a/b"), GitHubSource
    )


def test_github_api_url_makes_any_host_github():
    source = source_from_options(
        repository="https://code.example.com/org/repo.git",
        github_api_url="https://code.example.com/api/v3",
    )

    assert isinstance(source, GitHubSource)


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        (
            "https://user:s3cr3t@gitlab.example.com/g/r.git",
            "must not contain a user name or password",
        ),
        ("ssh://git:pw@gitlab.example.com/g/r.git", "must not contain a password"),
        ("http://gitlab.example.com/g/r.git", "must use https://"),
        ("git@gitlab.example.com:-oProxyCommand=x", "must look like org/repo, a git clone URL"),
        ("https://gitlab.example.com/g/../r.git", "must look like org/repo, a git clone URL"),
        ("https://gitlab.example.com/", "must look like org/repo, a git clone URL"),
    ],
)
def test_bad_git_urls_name_the_option(spelling: str, message: str):
    with pytest.raises(ValueError, match=rf"^`repository` {message}") as caught:
        source_from_options(repository=spelling)
    assert "s3cr3t" not in str(caught.value) and ":pw" not in str(caught.value)


def test_git_source_validates_branch_and_path():
    with pytest.raises(ValueError, match=r"^`branch`"):
        GitSource("https://gitlab.example.com/g/r.git", branch="a..b")
    with pytest.raises(ValueError, match=r"^`pmr-path`"):
        GitSource("https://gitlab.example.com/g/r.git", path="../x")
