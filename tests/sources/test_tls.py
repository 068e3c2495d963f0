"""HTTPS against a server whose certificate comes from a private CA."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profiles_automator.sources.fetch import Credentials, FetchError, GitHubSource, fetch_pmr
from tests.fakes.github_api import FakeGitHub

trustme: Any = pytest.importorskip("trustme")

PMR = b"profiles: []\n"


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def gh(ca: Any) -> Iterator[FakeGitHub]:
    with FakeGitHub(tls=ca.issue_cert("127.0.0.1", "localhost")) as fake:
        fake.commit("org/repo", {"pmr.yaml": PMR})
        yield fake


def source(gh: FakeGitHub) -> GitHubSource:
    assert gh.api_url.startswith("https://")
    return GitHubSource("org/repo", api_url=gh.api_url)


def test_private_ca_bundle_is_trusted(
    gh: FakeGitHub, ca: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    credentials = Credentials(ca_pem=ca.cert_pem.bytes().decode())
    result = fetch_pmr(source(gh), credentials=credentials)
    assert result.documents[0].content == PMR
    assert list(tmp_path.iterdir()) == []  # the temporary CA file is removed


def test_without_the_ca_the_tls_error_is_explained(gh: FakeGitHub):
    with pytest.raises(FetchError) as caught:
        fetch_pmr(source(gh))
    message = str(caught.value)
    assert message.startswith("could not establish a trusted TLS connection to 127.0.0.1:")
    assert "certificate verification failed" in message
    assert "configure that CA's certificate (PEM) as the CA bundle" in message
    assert len(gh.log) == 0  # not retried, and no request got through


def test_with_the_wrong_ca(gh: FakeGitHub):
    other = trustme.CA().cert_pem.bytes().decode()
    with pytest.raises(FetchError, match="check that the configured CA bundle holds the CA"):
        fetch_pmr(source(gh), credentials=Credentials(ca_pem=other))


def test_ca_bundle_that_is_not_pem(gh: FakeGitHub):
    with pytest.raises(FetchError, match=r"^the CA bundle is not a PEM certificate"):
        fetch_pmr(source(gh), credentials=Credentials(ca_pem="not a certificate"))


def test_credentials_repr_hides_secrets(ca: Any):
    credentials = Credentials(token="ghp_abc", ca_pem=ca.cert_pem.bytes().decode())
    assert repr(credentials) == "Credentials()"
