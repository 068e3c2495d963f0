"""Fetching the PMR from the (fake) GitHub REST API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from profiles_automator.sources import github, http_client
from profiles_automator.sources.fetch import (
    Credentials,
    DirectoryCache,
    FetchError,
    GitHubSource,
    MemoryCache,
    PMRDocument,
    fetch_pmr,
    source_from_options,
)
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub

REPO = "org/repo"
PMR = b"profiles:\n  - name: team-a\n"


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (0.01, 0.02, 0.04))
    monkeypatch.setattr(http_client, "CONNECT_TIMEOUT", 2.0)
    monkeypatch.setattr(http_client, "READ_TIMEOUT", 2.0)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def source(gh: FakeGitHub, **options: str) -> GitHubSource:
    options.setdefault("repository", REPO)
    return GitHubSource(api_url=gh.api_url, **options)


def test_file_is_read_at_the_resolved_sha(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr.yaml": PMR})
    result = fetch_pmr(source(gh))
    assert result.documents == (PMRDocument("pmr.yaml", PMR),)
    assert (result.revision, result.unchanged) == (sha, False)
    resolve, read = gh.log
    assert resolve.path == "/repos/org/repo/commits/main"
    assert resolve.headers["accept"] == "application/vnd.github.sha"
    assert read.path == f"/repos/org/repo/contents/pmr.yaml?ref={sha}"
    assert read.headers["accept"] == "application/vnd.github.raw+json"
    for entry in gh.log:
        assert entry.headers["user-agent"] == "kubeflow-profiles-automator"
        assert entry.headers["x-github-api-version"] == "2022-11-28"
        assert not entry.has_auth


def test_folder_yaml_files_are_read_sorted_and_not_recursively(gh: FakeGitHub):
    sha = gh.commit(
        REPO,
        {
            "pmr/b.yaml": b"b: 1\n",
            "pmr/a.yml": b"a: 1\n",
            "pmr/README.md": b"# not a PMR\n",
            "pmr/nested/c.yaml": b"c: 1\n",
            "elsewhere.yaml": b"x: 1\n",
        },
    )
    result = fetch_pmr(source(gh, path="pmr"))
    assert result.documents == (
        PMRDocument("pmr/a.yml", b"a: 1\n"),
        PMRDocument("pmr/b.yaml", b"b: 1\n"),
    )
    assert result.revision == sha
    contents = gh.requests_matching("/contents/")
    assert [entry.route for entry in contents] == [
        "/repos/org/repo/contents/pmr",
        "/repos/org/repo/contents/pmr/a.yml",
        "/repos/org/repo/contents/pmr/b.yaml",
    ]
    assert all(entry.path.endswith(f"?ref={sha}") for entry in contents)


def test_a_push_during_the_fetch_does_not_mix_revisions(gh: FakeGitHub):
    first = gh.commit(REPO, {"pmr/a.yaml": b"a: old\n", "pmr/b.yaml": b"b: old\n"})
    push = lambda: gh.commit(REPO, {"pmr/b.yaml": b"b: new\n"})  # noqa: E731
    gh.add_fault(r"/contents/pmr/b\.yaml", action=push, times=1)
    result = fetch_pmr(source(gh, path="pmr"))
    assert result.revision == first
    assert [d.content for d in result.documents] == [b"a: old\n", b"b: old\n"]
    assert gh.repos[REPO].branches["main"] != first


def test_tag_and_sha_refs(gh: FakeGitHub):
    first = gh.commit(REPO, {"pmr.yaml": b"v: 1\n"})
    gh.tag(REPO, "v1.0", first)
    second = gh.commit(REPO, {"pmr.yaml": b"v: 2\n"})
    tagged = fetch_pmr(source(gh, branch="v1.0"))
    assert (tagged.revision, tagged.documents[0].content) == (first, b"v: 1\n")
    by_sha = fetch_pmr(source(gh, branch=first))
    assert (by_sha.revision, by_sha.documents[0].content) == (first, b"v: 1\n")
    by_short_sha = fetch_pmr(source(gh, branch=second[:7]))
    assert (by_short_sha.revision, by_short_sha.documents[0].content) == (second, b"v: 2\n")


def test_branch_with_a_slash(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr.yaml": PMR}, branch="release/2024")
    assert fetch_pmr(source(gh, branch="release/2024")).revision == sha
    assert gh.log[0].path == "/repos/org/repo/commits/release%2F2024"


@pytest.mark.parametrize("path", ["pmr.yaml", "pmr"])
def test_unchanged_revision_is_served_from_the_cache(gh: FakeGitHub, path: str):
    gh.commit(REPO, {"pmr.yaml": PMR, "pmr/a.yaml": b"a: 1\n", "pmr/b.yml": b"b: 1\n"})
    cache = MemoryCache()
    first = fetch_pmr(source(gh, path=path), cache=cache)
    gh.clear_log()
    again = fetch_pmr(source(gh, path=path), cache=cache, last_revision=first.revision)
    assert again.unchanged
    assert (again.revision, again.documents) == (first.revision, first.documents)
    (only,) = gh.log
    assert only.route == "/repos/org/repo/commits/main"
    assert "if-none-match" in only.headers
    assert only.status == 304


def test_unchanged_revision_without_a_cache_downloads_again(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr.yaml": PMR})
    result = fetch_pmr(source(gh), last_revision=sha)
    assert result.unchanged
    assert result.documents == (PMRDocument("pmr.yaml", PMR),)
    assert len(gh.requests_matching("/contents/")) == 1


def test_a_new_commit_is_not_unchanged(gh: FakeGitHub):
    cache = MemoryCache()
    old = fetch_pmr(source(gh), cache=cache) if gh.commit(REPO, {"pmr.yaml": PMR}) else None
    assert old is not None
    new_sha = gh.commit(REPO, {"pmr.yaml": b"profiles: []\n"})
    result = fetch_pmr(source(gh), cache=cache, last_revision=old.revision)
    assert (result.revision, result.unchanged) == (new_sha, False)
    assert result.documents[0].content == b"profiles: []\n"


@pytest.mark.parametrize("kind", ["memory", "directory"])
def test_second_fetch_revalidates_with_etags_and_downloads_nothing(
    gh: FakeGitHub, kind: str, tmp_path: Path
):
    gh.commit(REPO, {"pmr/a.yaml": b"a: 1\n", "pmr/b.yaml": b"b: 1\n"})
    cache = MemoryCache() if kind == "memory" else DirectoryCache(tmp_path)
    first = fetch_pmr(source(gh, path="pmr"), cache=cache)
    gh.clear_log()
    remaining = gh.rate_remaining
    second = fetch_pmr(source(gh, path="pmr"), cache=cache)
    assert second.documents == first.documents
    assert len(gh.log) == 4
    assert all(entry.status == 304 and "if-none-match" in entry.headers for entry in gh.log)
    assert gh.rate_remaining == remaining  # 304s are free


def test_private_repo_with_token(gh: FakeGitHub):
    gh.create_repo(REPO, private=True)
    gh.commit(REPO, {"pmr.yaml": PMR})
    result = fetch_pmr(source(gh), credentials=Credentials(token=GOOD_TOKEN + "\n"))
    assert result.documents == (PMRDocument("pmr.yaml", PMR),)
    assert all(e.headers.get("authorization") == f"Bearer {GOOD_TOKEN}" for e in gh.log)


def test_private_repo_without_token_looks_missing(gh: FakeGitHub):
    gh.create_repo(REPO, private=True)
    gh.commit(REPO, {"pmr.yaml": PMR})
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh))
    message = str(caught.value)
    assert message.startswith("repository org/repo not found at 127.0.0.1:")
    assert "check `repository`" in message
    assert "no token was sent" in message


def test_wrong_token(gh: FakeGitHub):
    gh.commit(REPO, {"pmr.yaml": PMR})
    with pytest.raises(FetchError, match=r"GitHub rejected the token \(HTTP 401: Bad cred"):
        fetch_pmr(source(gh), credentials=Credentials(token="ghp_wrong"))


def test_token_that_cannot_see_the_private_repo(gh: FakeGitHub):
    gh.create_repo(REPO, private=True).readers = {"someone-else"}
    gh.commit(REPO, {"pmr.yaml": PMR})
    with pytest.raises(FetchError, match="the configured token cannot see it"):
        fetch_pmr(source(gh), credentials=Credentials(token=GOOD_TOKEN))


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (GOOD_TOKEN, r"^the token cannot read org/repo \(HTTP 403: Resource not accessible"),
        (None, r"^the token is missing: .* no token was sent"),
    ],
)
def test_forbidden(gh: FakeGitHub, token: str | None, expected: str):
    gh.commit(REPO, {"pmr.yaml": PMR})
    gh.add_fault(
        r"/commits/",
        status=403,
        body=b'{"message": "Resource not accessible by personal access token"}',
    )
    with pytest.raises(FetchError, match=expected):
        fetch_pmr(source(gh), credentials=Credentials(token=token))


def test_missing_repository(gh: FakeGitHub):
    gh.commit(REPO, {"pmr.yaml": PMR})
    with pytest.raises(FetchError, match=r"^repository org/other not found"):
        fetch_pmr(source(gh, repository="org/other"))


def test_missing_branch(gh: FakeGitHub):
    gh.commit(REPO, {"pmr.yaml": PMR})
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh, branch="nope"))
    assert str(caught.value) == (
        "branch, tag or commit 'nope' not found in org/repo (its default branch is 'main'): "
        "check the `branch` option"
    )
    assert gh.log[-1].route == "/repos/org/repo"


def test_missing_path(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr.yaml": PMR})
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh, path="teams/pmr.yaml"))
    assert str(caught.value) == (
        f"'teams/pmr.yaml' not found in org/repo at 'main' (commit {sha[:12]}): check `pmr-path`"
    )


def test_empty_repository(gh: FakeGitHub):
    gh.create_repo(REPO)
    with pytest.raises(FetchError, match=r"^repository org/repo is empty .*commit the PMR"):
        fetch_pmr(source(gh))


def test_folder_without_yaml_files(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr/README.md": b"nothing\n", "pmr/sub/a.yaml": b"a: 1\n"})
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh, path="pmr"))
    assert str(caught.value).startswith(
        f"folder 'pmr' in org/repo at commit {sha[:12]} contains no .yaml or .yml files"
    )


def test_file_over_the_size_limit(gh: FakeGitHub):
    gh.commit(REPO, {"pmr/a.yaml": b"a: 1\n", "pmr/big.yaml": b"#" * 5000})
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh, path="pmr"), max_bytes=4096)
    assert str(caught.value).startswith(
        "pmr/big.yaml is too large: 4.88281 KiB (5000 bytes), the limit is 4 KiB (4096 bytes)"
    )


def test_single_file_over_the_size_limit(gh: FakeGitHub):
    gh.commit(REPO, {"pmr.yaml": b"#" * 5000})
    with pytest.raises(FetchError, match=r"^pmr\.yaml is too large: .*limit is 4 KiB"):
        fetch_pmr(source(gh), max_bytes=4096)


def test_non_utf8_file(gh: FakeGitHub):
    gh.commit(
        REPO, {"pmr/a.yaml": b"a: 1\n", "pmr/latin1.yaml": "name: Zo\xeb\n".encode("latin-1")}
    )
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh, path="pmr"))
    assert str(caught.value) == (
        "pmr/latin1.yaml is not UTF-8 text (byte 0xeb at offset 8): save it with UTF-8 encoding"
    )


def test_html_instead_of_the_api(gh: FakeGitHub):
    gh.commit(REPO, {"pmr.yaml": PMR})
    gh.add_fault(
        r"/commits/",
        status=200,
        headers={"Content-Type": "text/html"},
        body=b"<!DOCTYPE html><html><body>Sign in</body></html>",
    )
    with pytest.raises(FetchError, match=r"got an HTML page .*`github-api-url`"):
        fetch_pmr(source(gh))


def test_commit_json_form_is_understood(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr.yaml": PMR})
    gh.add_fault(r"/commits/", status=200, body=b'{"sha": "%s"}' % sha.encode())
    assert fetch_pmr(source(gh)).revision == sha


def test_enterprise_api_reads_a_repository_url():
    # A host not named github.* or ghe.* is read over git unless `github-api-url` says it is
    # GitHub Enterprise (names that say so derive it: see test_source_options).
    with FakeGitHub(api_prefix="/api/v3") as ghe:
        sha = ghe.commit(REPO, {"pmr.yaml": PMR})
        configured = source_from_options(
            repository=f"{ghe.url}/org/repo.git", github_api_url=f"{ghe.url}/api/v3"
        )
        assert isinstance(configured, GitHubSource)
        assert configured.api_url == f"{ghe.url}/api/v3"
        assert fetch_pmr(configured).revision == sha
        assert ghe.log[0].route == "/api/v3/repos/org/repo/commits/main"


def test_a_submodule_path_is_explained(gh: FakeGitHub):
    sha = gh.commit(REPO, {"pmr.yaml": PMR})
    gh.add_fault(
        r"/contents/",
        status=200,
        body=b'{"type": "submodule", "name": "pmr.yaml", "path": "pmr.yaml", "sha": "%s"}'
        % sha.encode(),
    )
    with pytest.raises(FetchError, match=r"'pmr\.yaml' in org/repo is a submodule, not a YAML"):
        fetch_pmr(source(gh))


def test_file_larger_than_any_listing_names_the_file_limit(
    gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(github, "API_ANSWER_LIMIT", 8192)
    gh.commit(REPO, {"pmr.yaml": b"#" * 10000})
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh), max_bytes=4096)
    assert str(caught.value).startswith(
        "pmr.yaml is too large: 9.76562 KiB (10000 bytes), the limit is 4 KiB (4096 bytes)"
    )
