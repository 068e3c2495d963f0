"""Fetching a single PMR file from a plain URL, and where the token may go."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from profiles_automator.sources import http_client
from profiles_automator.sources.fetch import (
    Credentials,
    FetchError,
    GitHubSource,
    MemoryCache,
    PMRDocument,
    URLSource,
    fetch_pmr,
)
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub

PMR = b"profiles:\n  - name: team-a\n"


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (0.01, 0.02, 0.04))
    monkeypatch.setattr(http_client, "READ_TIMEOUT", 2.0)


@pytest.fixture
def server() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def other_host() -> Iterator[FakeGitHub]:
    """A second server reached as "localhost": another host than 127.0.0.1 for requests."""
    with FakeGitHub(hostname="localhost") as fake:
        yield fake


def test_file_with_etag(server: FakeGitHub):
    url = server.serve_raw("/files/pmr.yaml", PMR)
    result = fetch_pmr(URLSource(url))
    assert result.documents == (PMRDocument("pmr.yaml", PMR),)
    assert result.revision.startswith('"') and result.revision.endswith('"')  # strong ETag
    assert not result.unchanged


def test_revision_is_the_etag_and_304_reuses_the_cache(server: FakeGitHub):
    url = server.serve_raw("/files/pmr.yaml", PMR)
    cache = MemoryCache()
    first = fetch_pmr(URLSource(url), cache=cache)
    second = fetch_pmr(URLSource(url), cache=cache, last_revision=first.revision)
    assert second.unchanged
    assert second.documents == first.documents
    assert [entry.status for entry in server.log] == [200, 304]
    assert server.log[1].headers["if-none-match"] == first.revision


def test_revision_without_etag_is_a_body_hash(server: FakeGitHub):
    url = server.serve_raw("/pmr.yaml", PMR, etag=False)
    result = fetch_pmr(URLSource(url), last_revision=hashlib.sha256(PMR).hexdigest()[:12])
    assert result.revision == hashlib.sha256(PMR).hexdigest()[:12]
    assert result.unchanged


def test_token_is_sent_only_when_given(server: FakeGitHub):
    url = server.serve_raw("/pmr.yaml", PMR, require_token=True)
    fetch_pmr(URLSource(url), credentials=Credentials(token=GOOD_TOKEN))
    assert server.log[0].headers["authorization"] == f"Bearer {GOOD_TOKEN}"
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(url))
    assert not server.log[1].has_auth
    assert str(caught.value) == (
        f"{url}: the server refused access (HTTP 401); no token was sent: "
        "configure a token if the file is private"
    )


def test_redirect_to_another_host_does_not_carry_the_token(
    server: FakeGitHub, other_host: FakeGitHub
):
    target = other_host.serve_raw("/elsewhere/pmr.yaml", PMR)
    start = server.add_redirect("/pmr.yaml", target)
    result = fetch_pmr(URLSource(start), credentials=Credentials(token=GOOD_TOKEN))
    assert result.documents == (PMRDocument("pmr.yaml", PMR),)
    assert server.log[0].has_auth
    assert other_host.log[0].route == "/elsewhere/pmr.yaml"
    assert not other_host.log[0].has_auth


def test_redirect_within_the_host_keeps_the_token(server: FakeGitHub):
    target = server.serve_raw("/new/pmr.yaml", PMR, require_token=True)
    start = server.add_redirect("/old/pmr.yaml", target, status=301)
    fetch_pmr(URLSource(start), credentials=Credentials(token=GOOD_TOKEN))
    assert [entry.has_auth for entry in server.log] == [True, True]


def test_github_api_redirect_to_another_host_does_not_carry_the_token(
    server: FakeGitHub, other_host: FakeGitHub
):
    sha = server.commit("org/repo", {"pmr.yaml": b"x: 1\n"})
    target = other_host.serve_raw("/blob/pmr.yaml", PMR)
    server.add_fault(r"/contents/", status=302, headers={"Location": target})
    result = fetch_pmr(
        GitHubSource("org/repo", api_url=server.api_url),
        credentials=Credentials(token=GOOD_TOKEN),
    )
    assert (result.revision, result.documents[0].content) == (sha, PMR)
    assert all(entry.has_auth for entry in server.log)
    assert not other_host.log[0].has_auth


def test_redirect_to_plain_http_is_refused(server: FakeGitHub):
    start = server.add_redirect("/pmr.yaml", "http://example.com/pmr.yaml?sig=1")
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(start), credentials=Credentials(token=GOOD_TOKEN))
    assert str(caught.value) == (
        f"refusing to follow the redirect from {start} while downloading {start}: the target "
        "must use https:// (plain http is refused), got 'http://example.com/pmr.yaml'"
    )


def test_redirect_loop(server: FakeGitHub):
    start = server.add_redirect("/a", server.url + "/a")
    with pytest.raises(FetchError, match=r"^too many redirects \(more than 5\)"):
        fetch_pmr(URLSource(start))
    assert len(server.log) == 6


def test_content_length_over_the_limit_is_refused_before_reading(server: FakeGitHub):
    url = server.serve_raw("/pmr.yaml", b"#" * 2048)
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(url), max_bytes=1024)
    assert str(caught.value) == (
        "pmr.yaml is too large: 2 KiB (2048 bytes), the limit is 1 KiB (1024 bytes)"
    )


def test_streamed_body_over_the_limit_is_refused(server: FakeGitHub):
    url = server.serve_raw("/pmr.yaml", b"#" * (512 * 1024), chunked=True)
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(url), max_bytes=1024)
    assert str(caught.value) == (
        "pmr.yaml is too large: more than 1 KiB (1024 bytes), the limit is 1 KiB (1024 bytes)"
    )


def test_body_exactly_at_the_limit_is_accepted(server: FakeGitHub):
    url = server.serve_raw("/pmr.yaml", b"#" * 1024, chunked=True)
    assert len(fetch_pmr(URLSource(url), max_bytes=1024).documents[0].content) == 1024


def test_non_utf8(server: FakeGitHub):
    url = server.serve_raw("/dir/pmr.yaml", b"a: \xff\xfe\n")
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(url))
    assert str(caught.value).startswith("pmr.yaml is not UTF-8 text (byte 0xff at offset 3)")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", b"profiles: []\n"),
        ("text/plain", b"\n  <!DOCTYPE html>\n<html><body>GitHub</body></html>"),
        ("application/octet-stream", b"<HTML><HEAD></HEAD></HTML>"),
    ],
)
def test_html_page_instead_of_yaml(server: FakeGitHub, content_type: str, body: bytes):
    url = server.serve_raw("/org/repo/blob/main/pmr.yaml", body, content_type=content_type)
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(url))
    assert str(caught.value) == (
        "pmr.yaml: got an HTML page, not YAML: is the URL a raw file URL?"
    )


def test_html_is_not_cached(server: FakeGitHub):
    url = server.serve_raw("/pmr.yaml", b"<html></html>", content_type="text/html")
    cache = MemoryCache()
    with pytest.raises(FetchError):
        fetch_pmr(URLSource(url), cache=cache)
    assert cache.get(url) is None


def test_not_found(server: FakeGitHub):
    url = server.url + "/missing.yaml"
    with pytest.raises(FetchError) as caught:
        fetch_pmr(URLSource(url))
    assert str(caught.value) == f"{url}: not found (HTTP 404): check `pmr-url`"
