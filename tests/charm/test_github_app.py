"""github-app-secret-id: the charm reads the PMR (and reports) with a GitHub App's token."""

from __future__ import annotations

import json
from typing import Any

import ops
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from ops import testing

from charm import APP_TOKEN_LABEL
from tests.charm.conftest import MINIMAL_PMR, leader
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub, FakeInstallation
from tests.fakes.kube_api import FakeKubeAPI

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PRIVATE = "org/private-pmr"


def app_secret(**overrides: str) -> testing.Secret:
    content = {"app-id": "42", "installation-id": "7", "private-key": PEM, **overrides}
    return testing.Secret(content, owner=None)


@pytest.fixture
def installed(github: FakeGitHub) -> FakeGitHub:
    github.create_repo(PRIVATE, private=True)
    github.commit(PRIVATE, {"pmr.yaml": MINIMAL_PMR})
    github.add_app("42", KEY.public_key(), {"7": FakeInstallation("org")})
    return github


def app_state(config: dict[str, Any], secret: testing.Secret, **extra: Any) -> testing.State:
    options = {**config, "repository": PRIVATE, "github-app-secret-id": secret.id, **extra}
    return leader(options, secrets={secret})


def test_the_app_token_reads_a_private_repository_and_is_kept_between_hooks(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    secret = app_secret()

    first = ctx.run(ctx.on.install(), app_state(config, secret, **{"report-status": True}))
    second = ctx.run(ctx.on.update_status(), first)

    assert isinstance(second.unit_status, ops.ActiveStatus)
    assert second.unit_status.message.startswith("1 profile in sync @ ")
    assert len(installed.requests_matching(r"/access_tokens")) == 1
    kept = second.get_secret(label=APP_TOKEN_LABEL)
    assert kept.owner == "unit"
    token = kept.latest_content["token"]
    assert token.startswith("ghs_")
    stored = second.get_stored_state("_stored", owner_path="KubeflowProfilesAutomatorCharm")
    assert token not in json.dumps(stored.content)
    reads = installed.requests_matching(r"/repos/org/private-pmr/commits/")
    assert {r.headers["authorization"] for r in reads} == {f"Bearer {token}"}
    assert [s["state"] for s in installed.statuses(PRIVATE)] == ["success"]


def test_a_token_near_its_expiry_is_replaced(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    installed.installation_token_lifetime = 240  # inside the 5-minute refresh margin
    first = ctx.run(ctx.on.install(), app_state(config, app_secret()))

    second = ctx.run(ctx.on.update_status(), first)

    assert len(installed.requests_matching(r"/access_tokens")) == 2
    old = first.get_secret(label=APP_TOKEN_LABEL).latest_content["token"]
    new = second.get_secret(label=APP_TOKEN_LABEL).latest_content["token"]
    assert old != new
    assert isinstance(second.unit_status, ops.ActiveStatus)


def test_a_revoked_token_is_forgotten_and_the_next_sync_gets_a_new_one(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    first = ctx.run(ctx.on.install(), app_state(config, app_secret()))
    installed.issued.clear()  # the App's tokens were revoked

    blocked = ctx.run(ctx.on.update_status(), first)
    recovered = ctx.run(ctx.on.update_status(), blocked)

    assert isinstance(blocked.unit_status, ops.BlockedStatus)
    assert "GitHub rejected the token" in blocked.unit_status.message
    assert isinstance(recovered.unit_status, ops.ActiveStatus)
    assert len(installed.requests_matching(r"/access_tokens")) == 2


def test_a_wrong_installation_blocks_naming_the_key(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    out = ctx.run(ctx.on.install(), app_state(config, app_secret(**{"installation-id": "8"})))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(
        "cannot fetch the PMR: installation 8 of GitHub App 42 not found"
    )
    assert "`installation-id`" in out.unit_status.message
    assert kube.requests == []


def test_a_missing_key_in_the_secret_blocks_naming_it(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    secret = testing.Secret({"app-id": "42", "installation-id": "7"}, owner=None)

    out = ctx.run(ctx.on.install(), app_state(config, secret))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "has no `private-key` key" in out.unit_status.message
    assert "BEGIN" not in out.unit_status.message


def test_a_token_and_an_app_together_are_a_config_error(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    token = testing.Secret({"token": GOOD_TOKEN}, owner=None)
    secret = app_secret()
    options = {**config, "github-app-secret-id": secret.id, "token-secret-id": token.id}

    out = ctx.run(ctx.on.config_changed(), leader(options, secrets={secret, token}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "set either `token-secret-id` or `github-app-secret-id`, not both" in (
        out.unit_status.message
    )


def test_an_app_without_the_statuses_permission_still_syncs(
    ctx: testing.Context[Any], kube: FakeKubeAPI, installed: FakeGitHub, config: dict[str, Any]
):
    installed.apps["42"].installations["7"].permissions = {"contents": "read"}

    out = ctx.run(
        ctx.on.action("sync-now"), app_state(config, app_secret(), **{"report-status": True})
    )

    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert ctx.action_results is not None
    assert "HTTP 403: Resource not accessible by integration" in str(
        ctx.action_results["commit-status"]
    )
    assert installed.statuses(PRIVATE) == []
