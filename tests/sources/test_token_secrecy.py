"""The token must never show up in an exception, a log record or a repr."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from profiles_automator.sources import http_client
from profiles_automator.sources.fetch import (
    Credentials,
    FetchError,
    GitHubSource,
    MemoryCache,
    URLSource,
    fetch_pmr,
)
from tests.fakes.github_api import FakeGitHub

TOKEN = "ghp_SECRETTOKEN123"
REPO = "org/repo"


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (0.01, 0.02, 0.04))
    monkeypatch.setattr(http_client, "READ_TIMEOUT", 0.2)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens={TOKEN}) as fake:
        fake.create_repo(REPO, private=True)
        fake.commit(REPO, {"pmr.yaml": b"profiles: []\n", "pmr/a.yaml": b"a: 1\n"})
        yield fake


def texts_of(error: BaseException) -> list[str]:
    """Every text an exception can show: str, repr, args, chained ones, the traceback."""
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *map(repr, current.args)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return texts


def test_token_never_leaks(gh: FakeGitHub, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    api = gh.api_url
    good = Credentials(token=TOKEN)

    def github(**options: Any) -> Callable[[], object]:
        credentials = options.pop("credentials", good)
        extra = options.pop("kw", {})
        src = GitHubSource(options.pop("repository", REPO), api_url=api, **options)
        return lambda: fetch_pmr(src, credentials=credentials, **extra)

    def with_fault(fault: dict[str, Any], action: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            gh.faults.clear()
            gh.add_fault(**fault)
            try:
                return action()
            finally:
                gh.faults.clear()

        return run

    with FakeGitHub(hostname="localhost") as elsewhere:
        target = elsewhere.serve_raw("/pmr.yaml", b"p: 1\n", require_token=True)
        raw_ok = gh.serve_raw("/raw/pmr.yaml", b"p: 1\n", require_token=True)
        redirect = gh.add_redirect("/raw/redirect.yaml", target)
        html = gh.serve_raw("/raw/page.yaml", b"<html></html>", content_type="text/html")
        scenarios: list[Callable[[], object]] = [
            github(),
            github(path="pmr", kw={"cache": MemoryCache()}),
            github(repository="org/missing"),
            github(branch="nope"),
            github(path="missing.yaml"),
            github(kw={"max_bytes": 3}),
            github(credentials=Credentials(token=TOKEN + "x")),
            github(credentials=Credentials(token=f"{TOKEN}\n{TOKEN}")),
            github(credentials=Credentials(token=TOKEN, ca_pem="garbage")),
            with_fault({"path_regex": "/commits/", "status": 500}, github()),
            with_fault({"path_regex": "/commits/", "drop": True}, github()),
            with_fault({"path_regex": "/commits/", "delay": 0.5}, github()),
            with_fault(
                {
                    "path_regex": "/commits/",
                    "status": 403,
                    "body": b'{"message": "token %s is not allowed"}' % TOKEN.encode(),
                },
                github(),
            ),
            with_fault(
                {"path_regex": "/commits/", "status": 429, "headers": {"Retry-After": "5"}},
                github(),
            ),
            with_fault(
                {"path_regex": "/contents/", "status": 302, "headers": {"Location": target}},
                github(),
            ),
            with_fault({"path_regex": "/contents/", "status": 200, "body": b"\xff\xfe"}, github()),
            lambda: fetch_pmr(URLSource(raw_ok), credentials=good),
            lambda: fetch_pmr(URLSource(redirect), credentials=good),
            lambda: fetch_pmr(URLSource(html), credentials=good),
            lambda: fetch_pmr(URLSource(gh.url + "/raw/none.yaml"), credentials=good),
            lambda: fetch_pmr(
                URLSource(elsewhere.url + "/pmr.yaml"), credentials=Credentials(token="ghp_x")
            ),
        ]
        texts: list[str] = [repr(good), str(good)]
        failures = 0
        for scenario in scenarios:
            try:
                result = scenario()
            except FetchError as error:
                failures += 1
                texts += texts_of(error)
            else:
                texts.append(repr(result))
        gh.exhaust_rate_limit()
        with pytest.raises(FetchError) as caught:
            github()()
        texts += texts_of(caught.value)

    assert failures >= 15  # most scenarios are failure paths
    assert any(entry.has_auth for entry in gh.log)  # the token was really used
    texts += [caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    leaks = [text for text in texts if TOKEN in text]
    assert not leaks, leaks
    assert caplog.records  # logging did happen
