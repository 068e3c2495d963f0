"""The charm reading the PMR from a git host: HTTPS with a token secret, SSH with a key secret."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator
from typing import Any

import ops
import pytest
from ops import testing

from charm import GIT_CACHE_DIR, KubeflowProfilesAutomatorCharm
from tests.charm.conftest import MINIMAL_PMR, PROFILE, PROFILE_API, leader, names
from tests.fakes.kube_api import FakeKubeAPI
from tests.servers.git_http import GitHTTPServer
from tests.servers.git_repo import BareRepo
from tests.servers.sshd import SSHServer, generate_key

TOKEN = "glpat-charm-token-0001"
USER = "deploy-bot"


@pytest.fixture
def charm_root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A charm directory that persists between hooks, as a unit's does."""
    root = tmp_path / "charm"
    root.mkdir()
    return root


@pytest.fixture
def git_ctx(charm_root: pathlib.Path) -> testing.Context[KubeflowProfilesAutomatorCharm]:
    return testing.Context(KubeflowProfilesAutomatorCharm, charm_root=charm_root)


@pytest.fixture
def http(tmp_path: pathlib.Path) -> Iterator[GitHTTPServer]:
    (tmp_path / "git").mkdir()
    with GitHTTPServer(tmp_path / "git", users={USER: TOKEN}) as server:
        yield server


@pytest.fixture
def repo(http: GitHTTPServer) -> BareRepo:
    repo = http.repo("platform/access")
    repo.commit({"pmr.yaml": MINIMAL_PMR})
    return repo


def token_secret(**content: str) -> testing.Secret:
    return testing.Secret({"token": TOKEN, "username": USER, **content}, owner=None)


def test_https_git_with_token_and_username_syncs(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, http: GitHTTPServer, repo: BareRepo
):
    secret = token_secret()
    config = {"repository": http.url_of("platform/access"), "token-secret-id": secret.id}

    out = git_ctx.run(git_ctx.on.config_changed(), leader(config, secrets={secret}))

    assert out.unit_status == ops.ActiveStatus(f"1 profile in sync @ {repo.tip()[:7]}")
    assert names(kube, PROFILE_API) == [PROFILE]
    assert {request.user for request in http.requests} == {USER}


def test_unchanged_branch_is_one_ref_lookup_between_hooks(
    git_ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    http: GitHTTPServer,
    repo: BareRepo,
    charm_root: pathlib.Path,
):
    secret = token_secret()
    config = {"repository": http.url_of("platform/access"), "token-secret-id": secret.id}
    first = git_ctx.run(git_ctx.on.update_status(), leader(config, secrets={secret}))
    http.clear()

    second = git_ctx.run(git_ctx.on.update_status(), first)

    assert second.unit_status == first.unit_status
    assert http.commands() == ["ref-advertisement", "ls-refs"]  # no fetch
    assert (charm_root / GIT_CACHE_DIR).is_dir()


def test_force_pushed_branch_is_synced(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, http: GitHTTPServer, repo: BareRepo
):
    secret = token_secret()
    config = {"repository": http.url_of("platform/access"), "token-secret-id": secret.id}
    first = git_ctx.run(git_ctx.on.update_status(), leader(config, secrets={secret}))
    extended = (
        MINIMAL_PMR + b"- name: rewritten-team\n  owner: {kind: User, name: c@example.com}\n"
    )
    rewritten = repo.commit({"pmr.yaml": extended}, parent="")  # not a descendant

    out = git_ctx.run(git_ctx.on.update_status(), first)

    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert f"@ {rewritten[:7]}" in out.unit_status.message
    assert sorted(names(kube, PROFILE_API)) == [PROFILE, "rewritten-team"]


def test_wrong_token_blocks_without_showing_it(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, http: GitHTTPServer, repo: BareRepo
):
    secret = testing.Secret({"token": "glpat-wrong-0002", "username": USER}, owner=None)
    config = {"repository": http.url_of("platform/access"), "token-secret-id": secret.id}

    out = git_ctx.run(git_ctx.on.update_status(), leader(config, secrets={secret}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("cannot fetch the PMR: 127.0.0.1:")
    assert "rejected the credentials (HTTP 401)" in out.unit_status.message
    assert "glpat-wrong-0002" not in out.unit_status.message
    assert kube.requests == []


def test_ssh_url_without_a_key_secret_is_a_config_error(ctx: testing.Context[Any]):
    config = {"repository": "git@gitlab.example.com:platform/access.git"}

    out = ctx.run(ctx.on.config_changed(), leader(config))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "`repository` is an SSH URL: set `ssh-key-secret-id`" in out.unit_status.message
    assert "juju config kubeflow-profiles-automator ssh-key-secret-id=" in out.unit_status.message


@pytest.fixture
def sshd(tmp_path: pathlib.Path) -> Iterator[SSHServer]:
    with SSHServer(tmp_path / "ssh") as server:
        server.repo("access").commit({"pmr.yaml": MINIMAL_PMR})
        yield server


def test_ssh_with_a_deploy_key_syncs(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, sshd: SSHServer
):
    secret = testing.Secret(
        {"ssh-key": sshd.deploy_key, "known-hosts": sshd.known_hosts}, owner=None
    )
    config = {"repository": sshd.url_of("access"), "ssh-key-secret-id": secret.id}

    out = git_ctx.run(git_ctx.on.config_changed(), leader(config, secrets={secret}))

    assert isinstance(out.unit_status, ops.ActiveStatus), out.unit_status
    assert names(kube, PROFILE_API) == [PROFILE]


def test_unknown_host_key_blocks_naming_the_host_and_the_fix(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, sshd: SSHServer, tmp_path: pathlib.Path
):
    _, elsewhere = generate_key(tmp_path / "elsewhere")
    secret = testing.Secret(
        {"ssh-key": sshd.deploy_key, "known-hosts": "gitlab.example.com " + elsewhere},
        owner=None,
    )
    config = {"repository": sshd.url_of("access"), "ssh-key-secret-id": secret.id}

    out = git_ctx.run(git_ctx.on.config_changed(), leader(config, secrets={secret}))

    assert isinstance(out.unit_status, ops.BlockedStatus)
    message = out.unit_status.message
    assert message.startswith(
        f"cannot fetch the PMR: the host key of [127.0.0.1]:{sshd.port} is not in the known "
        "hosts: it offered ssh-ed25519 SHA256:"
    )
    assert message.endswith(f"juju update-secret {secret.id} known-hosts#file=known_hosts")
    assert "PRIVATE KEY" not in message
    assert kube.requests == []


def test_ssh_secret_without_known_hosts_blocks(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, sshd: SSHServer
):
    secret = testing.Secret({"ssh-key": sshd.deploy_key}, owner=None)
    config = {"repository": sshd.url_of("access"), "ssh-key-secret-id": secret.id}

    out = git_ctx.run(git_ctx.on.config_changed(), leader(config, secrets={secret}))

    assert out.unit_status == ops.BlockedStatus(
        "the secret in `ssh-key-secret-id` has no `known-hosts` key: "
        f"juju update-secret {secret.id} known-hosts#file=known_hosts"
    )


def test_sync_now_results_never_hold_the_key(
    git_ctx: testing.Context[Any], kube: FakeKubeAPI, sshd: SSHServer
):
    secret = testing.Secret(
        {"ssh-key": sshd.deploy_key, "known-hosts": sshd.known_hosts}, owner=None
    )
    config = {"repository": sshd.url_of("access"), "ssh-key-secret-id": secret.id}

    git_ctx.run(git_ctx.on.action("sync-now"), leader(config, secrets={secret}))

    results = git_ctx.action_results or {}
    assert results["revision"]
    body = sshd.deploy_key.split("\n")[1]
    assert all(body not in str(value) for value in results.values())


def test_only_the_configured_repository_is_kept_in_the_cache(
    git_ctx: testing.Context[Any],
    kube: FakeKubeAPI,
    http: GitHTTPServer,
    repo: BareRepo,
    charm_root: pathlib.Path,
):
    http.repo("platform/other").commit({"pmr.yaml": MINIMAL_PMR})
    secret = token_secret()
    first = leader(
        {"repository": http.url_of("platform/access"), "token-secret-id": secret.id},
        secrets={secret},
    )
    out = git_ctx.run(git_ctx.on.config_changed(), first)
    moved = dataclasses.replace(
        out, config={"repository": http.url_of("platform/other"), "token-secret-id": secret.id}
    )

    out = git_ctx.run(git_ctx.on.config_changed(), moved)

    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert len(list((charm_root / GIT_CACHE_DIR).glob("*.git"))) == 1
