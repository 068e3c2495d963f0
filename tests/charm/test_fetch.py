"""Fetching the PMR: failures block before anything is applied; secrets give the credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ops
import pytest
from ops import testing

from tests.charm.conftest import (
    APP,
    MINIMAL_PMR,
    PROFILE,
    PROFILE_API,
    REPO,
    head,
    in_sync,
    leader,
    names,
)
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

trustme: Any = pytest.importorskip("trustme")

PRIVATE_REPO = "org/private-pmr"


@pytest.fixture
def private_repo(github: FakeGitHub) -> str:
    github.create_repo(PRIVATE_REPO, private=True)
    github.commit(PRIVATE_REPO, {"pmr.yaml": MINIMAL_PMR})
    return PRIVATE_REPO


def test_missing_repository_blocks_and_nothing_is_applied(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    state = leader({**config, "repository": "org/missing"})

    out = ctx.run(ctx.on.update_status(), state)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(
        "cannot fetch the PMR: repository org/missing not found at 127.0.0.1:"
    )
    assert "check `repository`" in out.unit_status.message
    assert kube.requests == []


def test_missing_file_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    state = leader({**config, "pmr-path": "nope.yaml"})

    out = ctx.run(ctx.on.update_status(), state)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(
        f"cannot fetch the PMR: 'nope.yaml' not found in {REPO}"
    )
    assert out.unit_status.message.endswith("check `pmr-path`")
    assert kube.requests == []


def test_rejected_token_blocks_without_showing_it(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any]
):
    secret = testing.Secret({"token": "ghp_revoked_token_9999"}, owner=None)
    state = leader({**config, "token-secret-id": secret.id}, secrets={secret})

    out = ctx.run(ctx.on.update_status(), state)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("cannot fetch the PMR: GitHub rejected the token")
    assert "ghp_revoked_token_9999" not in out.unit_status.message
    assert kube.requests == []


def test_unauthenticated_answer_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    github.add_fault(r"/commits/", status=401, body=b'{"message": "Requires authentication"}')

    out = ctx.run(ctx.on.update_status(), leader(config))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "requires authentication (HTTP 401" in out.unit_status.message
    assert "no token was sent" in out.unit_status.message
    assert kube.requests == []


def test_private_repository_with_a_token_secret(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    github: FakeGitHub,
    config: dict[str, Any],
    private_repo: str,
):
    secret = testing.Secret({"token": GOOD_TOKEN}, owner=None)
    state = leader(
        {**config, "repository": private_repo, "token-secret-id": secret.id}, secrets={secret}
    )

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == ops.ActiveStatus(
        f"1 profile in sync @ {head(github, private_repo)[:7]}"
    )
    assert names(kube, PROFILE_API) == [PROFILE]
    assert all(entry.has_auth for entry in github.log)


def test_private_repository_without_a_token_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, config: dict[str, Any], private_repo: str
):
    out = ctx.run(ctx.on.config_changed(), leader({**config, "repository": private_repo}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "no token was sent" in out.unit_status.message
    assert kube.requests == []


def test_rotated_token_is_used_on_secret_changed(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    github: FakeGitHub,
    config: dict[str, Any],
    private_repo: str,
):
    secret = testing.Secret(
        tracked_content={"token": "ghp_old_token_0000"},
        latest_content={"token": GOOD_TOKEN},
        owner=None,
    )
    state = leader(
        {**config, "repository": private_repo, "token-secret-id": secret.id}, secrets={secret}
    )

    out = ctx.run(ctx.on.secret_changed(secret), state)

    assert out.unit_status == ops.ActiveStatus(
        f"1 profile in sync @ {head(github, private_repo)[:7]}"
    )


def test_secret_without_the_token_key_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    secret = testing.Secret({"password": GOOD_TOKEN}, owner=None)
    state = leader({**config, "token-secret-id": secret.id}, secrets={secret})

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == ops.BlockedStatus(
        "the secret in `token-secret-id` has no `token` key: "
        f"juju update-secret {secret.id} token=..."
    )
    assert github.log == []
    assert kube.requests == []


def test_secret_not_granted_blocks_with_the_grant_command(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config: dict[str, Any]
):
    secret = testing.Secret({"token": GOOD_TOKEN}, owner=None)
    state = leader({**config, "token-secret-id": secret.id})  # not in the model's secrets

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == ops.BlockedStatus(
        f"cannot read the secret in `token-secret-id`: juju grant-secret {secret.id} {APP}"
    )
    assert github.log == []
    assert kube.requests == []


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def tls_github(ca: Any) -> Iterator[FakeGitHub]:
    with FakeGitHub(tls=ca.issue_cert("127.0.0.1")) as fake:
        fake.commit(REPO, {"pmr.yaml": MINIMAL_PMR})
        yield fake


def test_private_ca_from_the_ca_secret(
    ctx: testing.Context[Any], kube: FakeKubeAPI, tls_github: FakeGitHub, ca: Any
):
    secret = testing.Secret({"ca-cert": ca.cert_pem.bytes().decode()}, owner=None)
    config = {"repository": REPO, "github-api-url": tls_github.api_url, "ca-secret-id": secret.id}

    out = ctx.run(ctx.on.config_changed(), leader(config, secrets={secret}))

    assert out.unit_status == in_sync(tls_github)


def test_without_the_ca_secret_tls_fails_and_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, tls_github: FakeGitHub
):
    config = {"repository": REPO, "github-api-url": tls_github.api_url}

    out = ctx.run(ctx.on.config_changed(), leader(config))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(
        "cannot fetch the PMR: could not establish a trusted TLS connection"
    )
    assert out.unit_status.message.endswith(
        f"for a private CA, set `ca-secret-id`: juju add-secret pmr-ca ca-cert#file=ca.pem; "
        f"juju grant-secret pmr-ca {APP}; juju config {APP} ca-secret-id=SECRET_ID"
    )
    assert kube.requests == []


def test_a_ca_that_did_not_sign_the_certificate_names_the_secret_to_update(
    ctx: testing.Context[Any], kube: FakeKubeAPI, tls_github: FakeGitHub
):
    other_ca = trustme.CA()
    secret = testing.Secret({"ca-cert": other_ca.cert_pem.bytes().decode()}, owner=None)
    config = {"repository": REPO, "github-api-url": tls_github.api_url, "ca-secret-id": secret.id}

    out = ctx.run(ctx.on.config_changed(), leader(config, secrets={secret}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "certificate verification failed" in out.unit_status.message
    assert out.unit_status.message.endswith(
        f"the CA in `ca-secret-id` did not sign its certificate: "
        f"juju update-secret {secret.id} ca-cert#file=ca.pem"
    )
    assert kube.requests == []


def test_ca_secret_without_the_key_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, tls_github: FakeGitHub
):
    secret = testing.Secret({"ca": "PEM"}, owner=None)
    config = {"repository": REPO, "github-api-url": tls_github.api_url, "ca-secret-id": secret.id}

    out = ctx.run(ctx.on.config_changed(), leader(config, secrets={secret}))

    assert out.unit_status == ops.BlockedStatus(
        f"the secret in `ca-secret-id` has no `ca-cert` key: juju update-secret {secret.id} "
        "ca-cert=..."
    )


def test_pmr_url_source(ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub):
    url = github.serve_raw("/raw/pmr.yaml", MINIMAL_PMR)

    out = ctx.run(ctx.on.config_changed(), leader({"pmr-url": url}))

    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert out.unit_status.message.startswith("1 profile in sync @ ")
    assert names(kube, PROFILE_API) == [PROFILE]


def test_pmr_url_not_found_blocks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub
):
    out = ctx.run(ctx.on.config_changed(), leader({"pmr-url": f"{github.url}/missing.yaml"}))

    assert out.unit_status == ops.BlockedStatus(
        f"cannot fetch the PMR: {github.url}/missing.yaml: not found (HTTP 404): check `pmr-url`"
    )
    assert kube.requests == []
