"""No token, SSH private key or secret content in any message, log record or repr (git hosts)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from profiles_automator.sources.fetch import Credentials, FetchError, GitSource, fetch_pmr
from tests.servers.git_http import GitHTTPServer
from tests.servers.sshd import SSHServer, generate_key
from tests.sources.test_token_secrecy import texts_of

TOKEN = "glpat-SECRETTOKEN-4242"
USER = "deploy-bot"


def key_lines(private_key: str) -> list[str]:
    """The secret body lines of a private key file (not its BEGIN/END markers)."""
    return [line for line in private_key.splitlines() if line and "-----" not in line]


def test_git_credentials_never_leak(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    caplog.set_level(logging.DEBUG)
    (tmp_path / "http").mkdir()
    stranger, _ = generate_key(tmp_path / "stranger")
    _, impostor = generate_key(tmp_path / "impostor")
    cache = tmp_path / "cache"
    texts: list[str] = []
    failures = 0

    with (
        GitHTTPServer(tmp_path / "http", users={USER: TOKEN}) as http,
        SSHServer(tmp_path / "ssh") as sshd,
    ):
        http.repo("org/access").commit({"pmr.yaml": b"p: 1\n", "pmr/a.yaml": b"a: 1\n"})
        sshd.repo("access").commit({"pmr.yaml": b"p: 1\n"})
        good_http = Credentials(token=TOKEN, username=USER)
        good_ssh = Credentials(ssh_key=sshd.deploy_key, known_hosts=sshd.known_hosts)
        wrong_host = f"[127.0.0.1]:{sshd.port} " + " ".join(impostor.split()[:2])

        def over_http(credentials: Credentials, **options: str) -> Callable[[], object]:
            repo = options.pop("repo", "org/access")
            source = GitSource(http.url_of(repo), **options)
            return lambda: fetch_pmr(source, credentials=credentials, git_cache_dir=cache)

        def over_ssh(credentials: Credentials, **options: str) -> Callable[[], object]:
            repo = options.pop("repo", "access")
            source = GitSource(sshd.url_of(repo), **options)
            return lambda: fetch_pmr(source, credentials=credentials, git_cache_dir=cache)

        scenarios = [
            over_http(good_http),
            over_http(good_http, path="pmr"),
            over_http(good_http),  # unchanged
            over_http(Credentials(token=TOKEN, username="someone-else")),
            over_http(Credentials(token=TOKEN + "x", username=USER)),
            over_http(Credentials(token=f"{TOKEN}\n{TOKEN}")),
            over_http(good_http, repo="org/missing"),
            over_http(good_http, branch="nope"),
            over_http(good_http, path="missing.yaml"),
            over_ssh(good_ssh),
            over_ssh(good_ssh),  # unchanged
            over_ssh(good_ssh, repo="missing"),
            over_ssh(good_ssh, branch="nope"),
            over_ssh(Credentials(ssh_key=stranger, known_hosts=sshd.known_hosts)),
            over_ssh(Credentials(ssh_key=sshd.deploy_key, known_hosts=wrong_host)),
            over_ssh(Credentials(ssh_key=sshd.deploy_key, known_hosts="example.com " + impostor)),
            over_ssh(Credentials(ssh_key=sshd.deploy_key[:200], known_hosts=sshd.known_hosts)),
        ]
        for scenario in scenarios:
            try:
                result = scenario()
            except FetchError as error:
                failures += 1
                texts += texts_of(error)
            else:
                texts.append(repr(result))

    assert failures >= 11
    assert any(request.user == USER and request.status == 200 for request in http.requests)
    texts += [repr(good_http), str(good_ssh), repr(good_ssh), caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    secrets = [TOKEN, *key_lines(sshd.deploy_key), *key_lines(stranger)]
    leaks = [(secret, text) for text in texts for secret in secrets if secret in text]
    assert not leaks, leaks[:3]
    assert caplog.records
