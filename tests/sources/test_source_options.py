"""Parsing the charm/CLI options into a PMR source."""

from __future__ import annotations

import pytest

from profiles_automator.sources.fetch import GitHubSource, URLSource, source_from_options

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
