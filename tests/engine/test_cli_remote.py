"""`pmr plan|sync --repository ...`: the CLI reads the PMR the way the charm does."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from profiles_automator.cli import main
from tests.engine.conftest import PROFILE, names
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub, FakeInstallation
from tests.fakes.kube_api import FakeKubeAPI
from tests.servers.git_http import GitHTTPServer
from tests.servers.sshd import SSHServer

REPO = "org/access"
PMR = b"""\
profiles:
- name: team-a
  owner: {kind: User, name: alice@example.com}
  contributors:
  - {name: bob@example.com, role: edit}
"""


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(REPO, private=True)
        fake.commit(REPO, {"access/pmr.yaml": PMR})
        yield fake


def _remote(github: FakeGitHub, kubeconfig: pathlib.Path) -> list[str]:
    return [
        "--repository",
        REPO,
        "--pmr-path",
        "access",
        "--github-api-url",
        github.api_url,
        "--kubeconfig",
        str(kubeconfig),
    ]


def test_plan_then_sync_from_a_private_repository(
    api: FakeKubeAPI,
    github: FakeGitHub,
    kubeconfig: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("GITHUB_TOKEN", GOOD_TOKEN)

    planned = main(["plan", *_remote(github, kubeconfig)])
    synced = main(["sync", *_remote(github, kubeconfig)])
    again = main(["plan", *_remote(github, kubeconfig)])

    out = capsys.readouterr().out
    assert (planned, synced, again) == (2, 0, 0)
    assert f"/{REPO}@main:access @ " in out  # source and the commit it was read at
    assert names(api, PROFILE) == {"team-a"}
    assert GOOD_TOKEN not in out


def test_token_from_a_file(
    api: FakeKubeAPI,
    github: FakeGitHub,
    kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(GOOD_TOKEN + "\n")

    code = main(["sync", *_remote(github, kubeconfig), "--token-file", str(token_file)])

    assert code == 0
    assert names(api, PROFILE) == {"team-a"}


def test_fetch_failure_changes_nothing_and_exits_1(
    api: FakeKubeAPI,
    github: FakeGitHub,
    kubeconfig: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    api.clear_requests()

    code = main(["sync", *_remote(github, kubeconfig)])

    assert code == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert api.requests == []


def test_local_paths_and_a_repository_together_are_a_usage_error(
    github: FakeGitHub, kubeconfig: pathlib.Path, capsys: pytest.CaptureFixture[str]
):
    code = main(["plan", "examples/minimal", *_remote(github, kubeconfig)])

    assert code == 2
    assert "not both" in capsys.readouterr().err


def test_sync_from_a_git_host_over_https_with_a_cache_dir(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    (tmp_path / "git").mkdir()
    token_file = tmp_path / "token"
    token_file.write_text("glpat-cli-0001\n")
    with GitHTTPServer(tmp_path / "git", users={"bot": "glpat-cli-0001"}) as http:
        sha = http.repo("platform/access").commit({"access/pmr.yaml": PMR})
        options = [
            *("--repository", http.url_of("platform/access"), "--pmr-path", "access"),
            *("--token-file", str(token_file), "--token-username", "bot"),
            *("--cache-dir", str(tmp_path / "cache"), "--kubeconfig", str(kubeconfig)),
        ]

        synced = main(["sync", *options])
        http.clear()
        planned = main(["plan", *options])

        assert http.commands() == ["ref-advertisement", "ls-refs"]  # cached: no fetch
    out = capsys.readouterr().out
    assert (synced, planned) == (0, 0)
    assert f"127.0.0.1/platform/access@main:access @ {sha[:12]}" in out
    assert names(api, PROFILE) == {"team-a"}
    assert list((tmp_path / "cache" / "git").glob("*.git"))


def test_validate_from_a_git_host_over_ssh(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
):
    with SSHServer(tmp_path / "ssh") as sshd:
        sshd.repo("access").commit({"pmr.yaml": PMR})
        (tmp_path / "deploy-key").write_text(sshd.deploy_key)
        (tmp_path / "known_hosts").write_text(sshd.known_hosts)
        options = ["--repository", sshd.url_of("access"), "--ssh-key-file"]

        valid = main(
            [
                "validate",
                *options,
                str(tmp_path / "deploy-key"),
                "--known-hosts-file",
                str(tmp_path / "known_hosts"),
            ]
        )
        no_key = main(["validate", "--repository", sshd.url_of("access")])

    err = capsys.readouterr().err
    assert valid == 0
    assert "PMR is valid: 1 profile" in err
    assert no_key == 1
    assert "is an SSH URL but no SSH key is configured" in err


def test_validate_with_a_github_app(
    github: FakeGitHub,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    github.add_app("42", key.public_key(), {"7": FakeInstallation("org")})
    app = ["--github-app-id", "42", "--github-app-installation-id", "7"]
    source = ["--repository", REPO, "--pmr-path", "access", "--github-api-url", github.api_url]

    code = main(["validate", *source, *app, "--github-app-key-file", str(key_file)])
    missing = main(["validate", *source, *app])

    assert code == 0
    assert "PMR is valid: 1 profile" in capsys.readouterr().err
    assert len(github.requests_matching(r"/access_tokens")) == 1
    assert missing == 2
