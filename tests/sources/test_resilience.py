"""Retries, timeouts, the deadline and rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from profiles_automator.sources import http_client
from profiles_automator.sources.fetch import (
    Credentials,
    FetchError,
    GitHubSource,
    RateLimitedError,
    fetch_pmr,
)
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub

REPO = "org/repo"
PMR = b"profiles: []\n"


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (0.01, 0.02, 0.04))
    monkeypatch.setattr(http_client, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setattr(http_client, "READ_TIMEOUT", 0.3)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.commit(REPO, {"pmr.yaml": PMR})
        yield fake


def source(gh: FakeGitHub) -> GitHubSource:
    return GitHubSource(REPO, api_url=gh.api_url)


def test_server_errors_are_retried(gh: FakeGitHub):
    gh.add_fault(r"/commits/", status=502, times=2)
    assert fetch_pmr(source(gh)).documents[0].content == PMR
    assert [e.status for e in gh.requests_matching("/commits/")] == [502, 502, 200]


def test_persistent_server_errors_give_up_after_three_attempts(gh: FakeGitHub):
    gh.add_fault(r"/contents/", status=503)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh))
    assert time.monotonic() - started < 2
    assert len(gh.requests_matching("/contents/")) == 3
    message = str(caught.value)
    assert message.startswith("gave up reading 'pmr.yaml' from org/repo at commit ")
    assert "after 3 attempts: 127.0.0.1:" in message
    assert "answered HTTP 503" in message


def test_dropped_connection_is_retried(gh: FakeGitHub):
    gh.add_fault(r"/contents/", drop=True, times=1)
    assert fetch_pmr(source(gh)).documents[0].content == PMR
    assert len(gh.requests_matching("/contents/")) == 2


def test_connection_dropped_every_time(gh: FakeGitHub):
    gh.add_fault(r"/commits/", drop=True)
    with pytest.raises(FetchError, match=r"after 3 attempts: the connection to .* was dropped"):
        fetch_pmr(source(gh))


def test_slow_answer_is_retried(gh: FakeGitHub):
    gh.add_fault(r"/contents/", delay=0.6, times=1)
    assert fetch_pmr(source(gh)).documents[0].content == PMR


def test_answer_slower_than_the_read_timeout_every_time(gh: FakeGitHub):
    gh.add_fault(r"/commits/", delay=0.6)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh))
    assert time.monotonic() - started < 2
    assert "resolving 'main' in org/repo" in str(caught.value)
    assert "no answer from 127.0.0.1:" in str(caught.value)
    assert "within 0.3 s (read timeout)" in str(caught.value)


def test_overall_deadline(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(http_client, "READ_TIMEOUT", 5.0)
    gh.add_fault(r"/contents/", delay=2.0)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh), deadline_seconds=0.5)
    assert time.monotonic() - started < 1.5
    message = str(caught.value)
    assert message.startswith("timed out reading 'pmr.yaml' from org/repo at commit ")
    assert "gave up after the 0.5 s deadline" in message


def test_backoff_does_not_overrun_the_deadline(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (5.0,))
    gh.add_fault(r"/commits/", status=500)
    started = time.monotonic()
    with pytest.raises(
        FetchError, match=r"^timed out resolving 'main' .*\(127\.0\.0\.1:\d+ answered HTTP 500"
    ):
        fetch_pmr(source(gh), deadline_seconds=1.0)
    assert time.monotonic() - started < 0.9


def test_exhausted_rate_limit(gh: FakeGitHub):
    gh.exhaust_rate_limit(reset_in=600)
    with pytest.raises(RateLimitedError) as caught:
        fetch_pmr(source(gh))
    error = caught.value
    assert error.reset_at is not None
    expected = datetime.fromtimestamp(gh.rate_reset, tz=UTC)
    assert error.reset_at == expected
    assert f"it resets at {expected:%Y-%m-%d %H:%M:%S} UTC (in 10 min)" in str(error)
    assert "HTTP 403" in str(error)
    assert "no token was sent" in str(error)
    assert len(gh.log) == 1  # never retried


def test_429_with_retry_after(gh: FakeGitHub):
    gh.add_fault(r"/commits/", status=429, headers={"Retry-After": "120"})
    before = datetime.now(UTC)
    with pytest.raises(RateLimitedError) as caught:
        fetch_pmr(source(gh), credentials=Credentials(token=GOOD_TOKEN))
    reset_at = caught.value.reset_at
    assert reset_at is not None
    assert timedelta(seconds=118) <= reset_at - before <= timedelta(seconds=122)
    assert "(HTTP 429)" in str(caught.value)
    assert "a token was sent" in str(caught.value)
    assert len(gh.log) == 1


def test_secondary_rate_limit_403_without_headers(gh: FakeGitHub):
    gh.add_fault(
        r"/contents/",
        status=403,
        body=b'{"message": "You have exceeded a secondary rate limit."}',
    )
    with pytest.raises(RateLimitedError, match="did not say when") as caught:
        fetch_pmr(source(gh))
    assert caught.value.reset_at is None


def test_unreachable_server_is_reported():
    with FakeGitHub() as gone:
        url = gone.api_url
    with pytest.raises(
        FetchError, match=r"after 3 attempts: connection to 127\.0\.0\.1:\d+ refus"
    ):
        fetch_pmr(GitHubSource(REPO, api_url=url))
