"""GitHub App credentials against the GitHub imitation: JWT, installation tokens, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from profiles_automator.sources import http_client
from profiles_automator.sources.fetch import Credentials, FetchError, GitHubSource, fetch_pmr
from profiles_automator.sources.github_app import (
    GitHubApp,
    InstallationToken,
    installation_token,
)
from tests.fakes.github_api import FakeGitHub, FakeInstallation

REPO = "org/access"
PMR = b"profiles:\n  - name: team-a\n"
APP_ID = "123456"
INSTALLATION = "987"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(autouse=True)
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "BACKOFF_SECONDS", (0.01, 0.02, 0.04))


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(REPO, private=True)
        fake.commit(REPO, {"pmr.yaml": PMR})
        fake.add_app(APP_ID, KEY.public_key(), {INSTALLATION: FakeInstallation("org")})
        yield fake


def app(key: rsa.RSAPrivateKey = KEY, *, installation: str = INSTALLATION) -> GitHubApp:
    return GitHubApp(APP_ID, installation, _pem(key))


def source(gh: FakeGitHub, repository: str = REPO) -> GitHubSource:
    return GitHubSource(repository=repository, api_url=gh.api_url)


def test_jwt_claims_follow_githubs_rules():
    before = int(time.time())

    token = app().jwt()

    claims = jwt.decode(token, KEY.public_key(), algorithms=["RS256"])
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims["iss"] == APP_ID and isinstance(claims["iss"], str)
    assert before - 61 <= claims["iat"] <= int(time.time()) - 59
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["exp"] <= int(time.time()) + 600


def test_installation_token_reads_a_private_repository(gh: FakeGitHub):
    token = installation_token(app(), source(gh))

    result = fetch_pmr(source(gh), credentials=Credentials(token=token.token))

    assert result.documents[0].content == PMR
    assert token.token.startswith("ghs_")
    assert timedelta(minutes=59) < token.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    (request,) = gh.requests_matching(r"/access_tokens")
    assert (request.method, request.status) == ("POST", 201)
    assert request.route == f"/app/installations/{INSTALLATION}/access_tokens"
    assert "ghs_" not in repr(token)


def test_the_token_sees_only_the_pmr_repository(gh: FakeGitHub):
    gh.create_repo("org/other", private=True)
    gh.commit("org/other", {"pmr.yaml": PMR})
    token = installation_token(app(), source(gh))

    with pytest.raises(FetchError, match="repository org/other not found"):
        fetch_pmr(source(gh, "org/other"), credentials=Credentials(token=token.token))


def test_a_cached_token_is_reused_until_shortly_before_expiry(gh: FakeGitHub):
    first = installation_token(app(), source(gh))

    again = installation_token(app(), source(gh), cached=first)
    nearly_expired = InstallationToken(
        first.token, datetime.now(UTC) + timedelta(minutes=4), first.scope
    )
    refreshed = installation_token(app(), source(gh), cached=nearly_expired)

    assert again == first
    assert refreshed.token != first.token
    assert len(gh.requests_matching(r"/access_tokens")) == 2


def test_a_token_for_another_repository_is_not_reused(gh: FakeGitHub):
    gh.commit("org/second", {"pmr.yaml": PMR})
    first = installation_token(app(), source(gh))

    second = installation_token(app(), source(gh, "org/second"), cached=first)

    assert second.token != first.token and second.scope != first.scope


def test_an_expired_installation_token_is_refused(gh: FakeGitHub):
    gh.installation_token_lifetime = 0.5
    token = installation_token(app(), source(gh))
    time.sleep(0.6)

    with pytest.raises(FetchError, match="GitHub rejected the token"):
        fetch_pmr(source(gh), credentials=Credentials(token=token.token))


def test_the_secret_content_round_trips_without_showing_the_token(gh: FakeGitHub):
    token = installation_token(app(), source(gh))

    content = token.to_content()

    assert InstallationToken.from_content(content) == token
    assert InstallationToken.from_content({"token": "x"}) is None
    assert all(key.islower() for key in content)


def test_a_key_of_another_app_gets_401_naming_the_key_and_the_clock(gh: FakeGitHub):
    with pytest.raises(FetchError) as caught:
        installation_token(app(OTHER_KEY), source(gh))

    message = str(caught.value)
    assert message.startswith("GitHub rejected the GitHub App's JWT (HTTP 401")
    assert "`private-key`" in message and "clock" in message
    assert "BEGIN" not in message


def test_an_expired_jwt_gets_401(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch):
    stale_app = app()
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)  # a clock far in the past
    stale_jwt = stale_app.jwt()
    monkeypatch.undo()
    monkeypatch.setattr(GitHubApp, "jwt", lambda self, now=None: stale_jwt)

    with pytest.raises(FetchError, match=r"HTTP 401: 'Expiration time' claim"):
        installation_token(stale_app, source(gh))


def test_a_suspended_installation_gets_403(gh: FakeGitHub):
    gh.apps[APP_ID].installations[INSTALLATION].suspended = True

    with pytest.raises(FetchError, match="installation may be suspended"):
        installation_token(app(), source(gh))


def test_a_wrong_installation_id_gets_404_naming_it(gh: FakeGitHub):
    with pytest.raises(FetchError) as caught:
        installation_token(app(installation="555"), source(gh))

    assert "installation 555 of GitHub App 123456 not found" in str(caught.value)
    assert "`installation-id`" in str(caught.value)


def test_a_repository_outside_the_installation_gets_422_naming_it(gh: FakeGitHub):
    gh.apps[APP_ID].installations[INSTALLATION].repositories = {"something-else"}

    with pytest.raises(FetchError, match=f"cannot read {REPO}.*Repository access"):
        installation_token(app(), source(gh))


@pytest.mark.parametrize(
    ("app_id", "installation", "key", "problem"),
    [
        ("my-app", INSTALLATION, _pem(KEY), "`app-id` must be a number"),
        (APP_ID, "", _pem(KEY), "`installation-id` must be a number"),
        (APP_ID, INSTALLATION, "not a key", "`private-key` is not a PEM private key"),
        (APP_ID, INSTALLATION, _pem(ec.generate_private_key(ec.SECP256R1())), "RSA"),
    ],
)
def test_bad_app_settings_name_the_key_to_fix(app_id, installation, key, problem):
    with pytest.raises(ValueError, match=problem):
        GitHubApp(app_id, installation, key)


def test_github_enterprise_uses_its_api_base():
    with FakeGitHub(api_prefix="/api/v3") as ghe:
        ghe.create_repo(REPO, private=True)
        ghe.commit(REPO, {"pmr.yaml": PMR})
        ghe.add_app(APP_ID, KEY.public_key(), {INSTALLATION: FakeInstallation("org")})
        enterprise = GitHubSource(repository=REPO, api_url=ghe.api_url)

        token = installation_token(app(), enterprise)
        result = fetch_pmr(enterprise, credentials=Credentials(token=token.token))

        assert result.documents[0].content == PMR
        (request,) = ghe.requests_matching(r"/access_tokens")
        assert request.route == f"/api/v3/app/installations/{INSTALLATION}/access_tokens"
