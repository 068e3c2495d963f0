"""Invalid configuration blocks the unit with the option to fix and the command that fixes it."""

from __future__ import annotations

from typing import Any

import ops
import pytest
from ops import testing

from charm_config import CharmConfig
from tests.charm.conftest import APP, REPO, leader, writes
from tests.fakes.github_api import FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI


def test_missing_repository_blocks_with_the_juju_config_hint(
    ctx: testing.Context[Any], kube: FakeKubeAPI
):
    state = leader({})

    out = ctx.run(ctx.on.install(), state)

    assert out.unit_status == ops.BlockedStatus(
        f"Invalid config: set `repository`: juju config {APP} repository=org/repo"
    )
    assert kube.requests == []


def test_repository_and_pmr_url_together_block(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub
):
    state = leader(
        {
            "repository": REPO,
            "pmr-url": f"{github.url}/pmr.yaml",
            "github-api-url": github.api_url,
        }
    )

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == ops.BlockedStatus(
        "Invalid config: set either `repository` or `pmr-url`, not both: "
        f"juju config {APP} --reset pmr-url (or --reset repository)"
    )
    assert github.log == []
    assert kube.requests == []


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        (
            "repository",
            "not a repo",
            "`repository` must look like org/repo or https://github.com/org/repo, "
            f"got 'not a repo': juju config {APP} repository=org/repo",
        ),
        (
            "branch",
            "two words",
            "`branch` must be a branch, tag or commit SHA, got 'two words': "
            f"juju config {APP} branch=main",
        ),
        (
            "max-revocations",
            -1,
            f"`max-revocations` must be 0 or more, got -1: juju config {APP} max-revocations=50",
        ),
        (
            "userid-header",
            "kubeflow userid",
            "`userid-header` must be an HTTP header name (or empty), got 'kubeflow userid': "
            f"juju config {APP} --reset userid-header",
        ),
        (
            "kfp-ui-principal",
            "cluster.local/ns/kubeflow/sa/kfp ui",
            "`kfp-ui-principal` must be an Istio principal (or empty), got "
            f"'cluster.local/ns/kubeflow/sa/kfp ui': juju config {APP} --reset kfp-ui-principal",
        ),
        (
            "istio-ingressgateway-principal",
            "a,b",
            "`istio-ingressgateway-principal` must be an Istio principal (or empty), got 'a,b': "
            f"juju config {APP} --reset istio-ingressgateway-principal",
        ),
        (
            "namespace-wait",
            301,
            "`namespace-wait` must be 0 to 300 seconds, got 301: "
            f"juju config {APP} namespace-wait=30",
        ),
        (
            "additional-principals",
            "cluster.local/ns/a/sa/b, not valid",
            "`additional-principals` must be comma-separated principals, got 'not valid': "
            f"juju config {APP} additional-principals=cluster.local/ns/NAMESPACE/sa/ACCOUNT",
        ),
        (
            "ignored-profiles",
            "demo, Team A",
            "`ignored-profiles` must be comma-separated profile names or globs, got 'Team A': "
            f"juju config {APP} ignored-profiles=kubeflow-user-example-com,team-*",
        ),
        (
            "userid-prefix",
            "a b:",
            "`userid-prefix` must not contain spaces or control characters, got 'a b:': "
            f"juju config {APP} --reset userid-prefix",
        ),
    ],
)
def test_invalid_option_blocks_naming_it(
    ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    config: dict[str, Any],
    option: str,
    value: Any,
    expected: str,
):
    state = leader({**config, option: value})

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == ops.BlockedStatus(f"Invalid config: {expected}")
    assert writes(kube) == []


def test_invalid_config_also_shows_on_non_leaders(ctx: testing.Context[Any], kube: FakeKubeAPI):
    state = testing.State(leader=False, config={"max-revocations": -1})

    out = ctx.run(ctx.on.config_changed(), state)

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "juju config" in out.unit_status.message


def test_config_dataclass_builds_the_engine_settings():
    config = CharmConfig(
        repository=REPO,
        cluster_name=" prod ",
        additional_principals="a/ns/x/sa/y, ,b/ns/z/sa/w",
        ignored_profiles="demo,team-*",
        protected_namespaces="monitoring",
        revoke_stale_access=False,
        max_revocations=7,
    )

    settings = config.sync_settings(force=True)

    assert settings.cluster_name == "prod"
    assert settings.access.additional_principals == ("a/ns/x/sa/y", "b/ns/z/sa/w")
    assert settings.options.ignored_profiles == ("demo", "team-*")
    assert settings.options.revoke_stale_access is False
    assert settings.options.max_revocations == 7
    assert settings.options.force is True
    assert settings.protected_namespaces == ("monitoring",)


def test_config_dataclass_is_frozen():
    config = CharmConfig(repository=REPO)

    with pytest.raises(AttributeError):
        config.repository = "other/repo"  # type: ignore[misc]


def test_a_plain_http_status_url_blocks(ctx: testing.Context[Any], kube: FakeKubeAPI):
    state = leader({"repository": REPO, "status-url": "http://kubeflow.example.com"})

    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == ops.BlockedStatus(
        "Invalid config: `status-url` must use https:// (plain http is refused), got "
        f"'http://kubeflow.example.com': juju config {APP} status-url=https://kubeflow.example.com"
    )


def test_a_github_app_with_a_pmr_url_blocks(ctx: testing.Context[Any], kube: FakeKubeAPI):
    secret = testing.Secret({"app-id": "1", "installation-id": "2", "private-key": "k"})
    options = {"pmr-url": "https://example.com/pmr.yaml", "github-app-secret-id": secret.id}

    out = ctx.run(ctx.on.config_changed(), leader(options, secrets={secret}))

    assert out.unit_status == ops.BlockedStatus(
        "Invalid config: `github-app-secret-id` works only with a GitHub repository in "
        f"`repository`: juju config {APP} --reset github-app-secret-id"
    )
    assert kube.requests == []
