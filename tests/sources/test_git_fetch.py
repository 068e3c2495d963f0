"""Reading the PMR from real git servers on loopback: git http-backend (HTTPS-like) and sshd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from profiles_automator.sources import http_client
from profiles_automator.sources.errors import HostKeyError
from profiles_automator.sources.fetch import Credentials, FetchError, GitSource, fetch_pmr
from profiles_automator.sources.git import GitReader
from tests.servers.git_http import GitHTTPServer
from tests.servers.git_repo import BareRepo
from tests.servers.sshd import SSHServer, generate_key

TOKEN = "glpat-test-token-0001"
USER = "oauth2"
PMR = b"profiles: []\n"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def http(tmp_path: Path) -> Iterator[GitHTTPServer]:
    root = tmp_path / "http"
    root.mkdir()
    with GitHTTPServer(root, users={USER: TOKEN}) as server:
        yield server


@pytest.fixture
def repo(http: GitHTTPServer) -> BareRepo:
    return http.repo("org/access")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


GOOD = Credentials(token=TOKEN, username=USER)


def fetch(
    server: GitHTTPServer, cache: Path, credentials: Credentials = GOOD, **options: str
) -> tuple[str, list[tuple[str, bytes]], bool]:
    source = GitSource(server.url_of("org/access"), **options)
    result = fetch_pmr(source, credentials=credentials, git_cache_dir=cache)
    return result.revision, [(d.name, d.content) for d in result.documents], result.unchanged


# --- files, folders, branches, tags and SHAs -------------------------------------------------


def test_reads_a_file_at_the_branch_tip(http: GitHTTPServer, repo: BareRepo, cache: Path):
    sha = repo.commit({"pmr.yaml": PMR, "README.md": b"# access\n"})

    revision, documents, _ = fetch(http, cache)

    assert revision == sha
    assert documents == [("pmr.yaml", PMR)]
    assert all(request.user == USER for request in http.requests)


def test_reads_the_yaml_files_of_a_folder(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit(
        {
            "pmr/b.yml": b"b: 1\n",
            "pmr/a.yaml": b"a: 1\n",
            "pmr/notes.md": b"not yaml\n",
            "pmr/nested/c.yaml": b"c: 1\n",
            "pmr/link.yaml": ("120000", b"a.yaml"),
        }
    )

    _, documents, _ = fetch(http, cache, path="pmr")

    assert documents == [("pmr/a.yaml", b"a: 1\n"), ("pmr/b.yml", b"b: 1\n")]


def test_nested_file_path(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"clusters/prod/pmr.yaml": PMR})

    source = GitSource(http.url_of("org/access"), path="clusters/prod/pmr.yaml")
    result = fetch_pmr(source, credentials=GOOD, git_cache_dir=cache)

    assert [d.name for d in result.documents] == ["clusters/prod/pmr.yaml"]


def test_branch_lightweight_and_annotated_tags(http: GitHTTPServer, repo: BareRepo, cache: Path):
    first = repo.commit({"pmr.yaml": b"v: 1\n"})
    repo.tag("v1", first)
    repo.tag("v1-annotated", first, annotated=True)
    release = repo.commit({"pmr.yaml": b"v: 2\n"}, branch="release/2", parent=first)
    repo.commit({"pmr.yaml": b"v: 3\n"})

    assert fetch(http, cache, branch="v1")[:2] == (first, [("pmr.yaml", b"v: 1\n")])
    assert fetch(http, cache, branch="v1-annotated")[:2] == (first, [("pmr.yaml", b"v: 1\n")])
    assert fetch(http, cache, branch="release/2")[:2] == (release, [("pmr.yaml", b"v: 2\n")])
    assert fetch(http, cache, branch="refs/heads/release/2")[0] == release


def test_a_commit_sha_that_is_no_longer_a_tip(http: GitHTTPServer, repo: BareRepo, cache: Path):
    old = repo.commit({"pmr.yaml": b"v: 1\n"})
    repo.commit({"pmr.yaml": b"v: 2\n"})

    revision, documents, _ = fetch(http, cache, branch=old)

    assert revision == old
    assert documents == [("pmr.yaml", b"v: 1\n")]
    assert "fetch" in http.commands()


def test_an_abbreviated_sha_of_a_tip(http: GitHTTPServer, repo: BareRepo, cache: Path):
    sha = repo.commit({"pmr.yaml": PMR})

    assert fetch(http, cache, branch=sha[:10])[0] == sha


def test_abbreviated_sha_of_an_old_commit_asks_for_the_full_one(
    http: GitHTTPServer, repo: BareRepo, cache: Path
):
    old = repo.commit({"pmr.yaml": b"v: 1\n"})
    repo.commit({"pmr.yaml": b"v: 2\n"})

    with pytest.raises(FetchError, match="full 40-character SHA"):
        fetch(http, cache, branch=old[:10])


def test_a_server_without_protocol_v2_refuses_an_unadvertised_sha(tmp_path: Path, cache: Path):
    (tmp_path / "v0").mkdir()
    with GitHTTPServer(tmp_path / "v0", protocol_v2=False) as server:
        repo = server.repo("org/access")
        old = repo.commit({"pmr.yaml": b"v: 1\n"})
        tip = repo.commit({"pmr.yaml": b"v: 2\n"}, parent="")  # `old` is now unreachable

        assert fetch(server, cache, Credentials(), branch=tip)[0] == tip  # a tip is fine
        with pytest.raises(FetchError) as caught:
            fetch(server, cache, Credentials(), branch=old)

    assert str(caught.value).startswith(f"127.0.0.1/org/access refuses to send commit {old[:12]}")
    assert "set `branch` to a branch or a tag" in str(caught.value)


# --- one ref lookup when nothing changed; force-pushes ---------------------------------------


def test_an_unchanged_branch_costs_one_ref_lookup(
    http: GitHTTPServer, repo: BareRepo, cache: Path
):
    sha = repo.commit({"pmr/a.yaml": b"a: 1\n", "pmr/b.yaml": b"b: 1\n"})
    first = fetch(http, cache, path="pmr")
    http.clear()

    again = fetch(http, cache, path="pmr")

    assert again[:2] == first[:2] == (sha, [("pmr/a.yaml", b"a: 1\n"), ("pmr/b.yaml", b"b: 1\n")])
    # Protocol v2's ref lookup: the capability advertisement and ls-refs; no fetch.
    assert http.commands() == ["ref-advertisement", "ls-refs"]


def test_unchanged_is_reported_against_the_last_revision(
    http: GitHTTPServer, repo: BareRepo, cache: Path
):
    sha = repo.commit({"pmr.yaml": PMR})
    source = GitSource(http.url_of("org/access"))

    result = fetch_pmr(source, credentials=GOOD, git_cache_dir=cache, last_revision=sha)

    assert result.unchanged


def test_a_new_commit_is_fetched_in_the_same_session(
    http: GitHTTPServer, repo: BareRepo, cache: Path
):
    repo.commit({"pmr.yaml": b"v: 1\n"})
    fetch(http, cache)
    new = repo.commit({"pmr.yaml": b"v: 2\n"})
    http.clear()

    revision, documents, _ = fetch(http, cache)

    assert (revision, documents) == (new, [("pmr.yaml", b"v: 2\n")])
    assert http.commands() == ["ref-advertisement", "ls-refs", "fetch"]


def test_a_force_pushed_branch(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"pmr.yaml": b"v: 1\n"})
    repo.commit({"pmr.yaml": b"v: 2\n"})
    fetch(http, cache)
    rewritten = repo.commit({"pmr.yaml": b"v: rewritten\n"}, parent="")  # no common history

    revision, documents, _ = fetch(http, cache)

    assert (revision, documents) == (rewritten, [("pmr.yaml", b"v: rewritten\n")])


def test_without_a_cache_directory_it_still_reads(http: GitHTTPServer, repo: BareRepo):
    sha = repo.commit({"pmr.yaml": PMR})

    result = fetch_pmr(GitSource(http.url_of("org/access")), credentials=GOOD)

    assert result.revision == sha


def test_a_corrupt_cache_is_started_again(http: GitHTTPServer, repo: BareRepo, cache: Path):
    sha = repo.commit({"pmr.yaml": PMR})
    fetch(http, cache)
    for entry in cache.glob("*.git"):
        (entry / "HEAD").unlink()  # no longer a repository

    assert fetch(http, cache)[0] == sha


# --- what is wrong: URL, branch, path, credentials --------------------------------------------


def test_wrong_token(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"pmr.yaml": PMR})

    with pytest.raises(FetchError) as caught:
        fetch(http, cache, Credentials(token="glpat-wrong", username=USER))

    message = str(caught.value)
    assert "rejected the credentials (HTTP 401)" in message
    assert "invalid, expired or revoked" in message and "'oauth2'" in message


def test_default_username_of_an_unknown_host_is_sent(
    http: GitHTTPServer, repo: BareRepo, cache: Path
):
    repo.commit({"pmr.yaml": PMR})

    with pytest.raises(FetchError, match="another user name than 'git'"):
        fetch(http, cache, Credentials(token=TOKEN))
    assert http.requests[-1].user == "git"


def test_no_token_for_a_private_repository(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"pmr.yaml": PMR})

    with pytest.raises(
        FetchError, match=r"requires authentication \(HTTP 401\).*no token was sent"
    ):
        fetch(http, cache, Credentials())


def test_missing_repository(http: GitHTTPServer, cache: Path):
    source = GitSource(http.url_of("org/nothing"))

    with pytest.raises(FetchError) as caught:
        fetch_pmr(source, credentials=GOOD, git_cache_dir=cache)

    assert str(caught.value).startswith(
        "repository org/nothing not found at 127.0.0.1: check `repository`"
    )


def test_missing_branch_names_the_default(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"pmr.yaml": PMR})

    with pytest.raises(FetchError) as caught:
        fetch(http, cache, branch="maine")

    assert str(caught.value) == (
        "branch, tag or commit 'maine' not found in 127.0.0.1/org/access (its default branch is "
        "'main'): check the `branch` option"
    )


def test_empty_repository(http: GitHTTPServer, repo: BareRepo, cache: Path):
    with pytest.raises(FetchError, match=r"repository 127.0.0.1/org/access is empty"):
        fetch(http, cache)


def test_missing_path(http: GitHTTPServer, repo: BareRepo, cache: Path):
    sha = repo.commit({"pmr.yaml": PMR})

    with pytest.raises(FetchError) as caught:
        fetch(http, cache, path="teams")

    assert str(caught.value) == (
        f"'teams' not found in 127.0.0.1/org/access at 'main' (commit {sha[:12]}): "
        "check `pmr-path`"
    )


def test_folder_without_yaml(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"pmr/README.md": b"x\n"})

    with pytest.raises(FetchError, match=r"folder 'pmr' .* contains no .yaml or .yml files"):
        fetch(http, cache, path="pmr")


@pytest.mark.parametrize(("kind", "layout"), [("symbolic link", "link"), ("submodule", "sub")])
def test_path_that_is_neither_file_nor_folder(
    http: GitHTTPServer, repo: BareRepo, cache: Path, kind: str, layout: str
):
    base = repo.commit({"real.yaml": PMR})
    if layout == "link":
        repo.commit({"real.yaml": PMR, "pmr.yaml": ("120000", b"real.yaml")})
    else:
        repo.commit({"real.yaml": PMR}, submodules={"pmr.yaml": base})

    with pytest.raises(FetchError, match=rf"'pmr.yaml' .* is a {kind}, not a YAML file"):
        fetch(http, cache)


def test_file_size_limit_and_document_checks(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit(
        {"big.yaml": b"x" * 2000, "page.yaml": b"<!DOCTYPE html><html>", "bin.yaml": b"\xff"}
    )
    source = GitSource(http.url_of("org/access"), path="big.yaml")

    with pytest.raises(FetchError, match=r"big.yaml is too large: 1.95312 KiB"):
        fetch_pmr(source, credentials=GOOD, git_cache_dir=cache, max_bytes=1000)
    with pytest.raises(FetchError, match=r"page.yaml: got an HTML page, not YAML"):
        fetch(http, cache, path="page.yaml")
    with pytest.raises(FetchError, match=r"bin.yaml is not UTF-8 text"):
        fetch(http, cache, path="bin.yaml")


def test_nothing_listening(cache: Path):
    source = GitSource("http://127.0.0.1:9/org/access.git")

    with pytest.raises(FetchError, match=r"connection to 127.0.0.1:9 refused"):
        fetch_pmr(source, git_cache_dir=cache)


# --- SSH ---------------------------------------------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SSHServer]:
    with SSHServer(tmp_path / "ssh") as server:
        yield server


def ssh_fetch(
    server: SSHServer, cache: Path, credentials: Credentials | None = None, **options: str
) -> tuple[str, list[tuple[str, bytes]]]:
    credentials = credentials or Credentials(
        ssh_key=server.deploy_key, known_hosts=server.known_hosts
    )
    source = GitSource(server.url_of("access"), **options)
    result = fetch_pmr(source, credentials=credentials, git_cache_dir=cache)
    return result.revision, [(d.name, d.content) for d in result.documents]


def test_ssh_reads_file_and_folder_with_one_session_each(sshd: SSHServer, cache: Path):
    repo = sshd.repo("access")
    sha = repo.commit({"pmr.yaml": PMR, "pmr/a.yaml": b"a: 1\n"})

    assert ssh_fetch(sshd, cache) == (sha, [("pmr.yaml", PMR)])
    assert ssh_fetch(sshd, cache, path="pmr") == (sha, [("pmr/a.yaml", b"a: 1\n")])
    assert len(sshd.sessions()) == 2
    assert sshd.sessions()[0].startswith("git-upload-pack ")


def test_ssh_unchanged_branch_is_one_session_without_fetch(sshd: SSHServer, cache: Path):
    repo = sshd.repo("access")
    repo.commit({"pmr.yaml": PMR})
    ssh_fetch(sshd, cache)
    assert sshd.fetches() == 1
    sshd.clear()

    ssh_fetch(sshd, cache)

    assert len(sshd.sessions()) == 1
    assert sshd.fetches() == 0


def test_ssh_force_pushed_branch_and_sha(sshd: SSHServer, cache: Path):
    repo = sshd.repo("access")
    old = repo.commit({"pmr.yaml": b"v: 1\n"})
    ssh_fetch(sshd, cache)
    rewritten = repo.commit({"pmr.yaml": b"v: 2\n"}, parent="")

    assert ssh_fetch(sshd, cache) == (rewritten, [("pmr.yaml", b"v: 2\n")])
    assert ssh_fetch(sshd, cache, branch=old) == (old, [("pmr.yaml", b"v: 1\n")])


def test_ssh_unknown_host_key(sshd: SSHServer, cache: Path, tmp_path: Path):
    sshd.repo("access").commit({"pmr.yaml": PMR})
    _, other_host_key = generate_key(tmp_path / "elsewhere")
    known = "github.com " + " ".join(other_host_key.split()[:2]) + "\n"

    with pytest.raises(HostKeyError) as caught:
        ssh_fetch(sshd, cache, Credentials(ssh_key=sshd.deploy_key, known_hosts=known))

    offered = caught.value.offered
    assert offered.startswith("ssh-ed25519 SHA256:")
    assert str(caught.value).startswith(
        f"the host key of [127.0.0.1]:{sshd.port} is not in the known hosts: it offered {offered}"
    )
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1" in str(caught.value)
    assert sshd.sessions() == []  # nothing was run on the server


def test_ssh_mismatched_host_key(sshd: SSHServer, cache: Path, tmp_path: Path):
    sshd.repo("access").commit({"pmr.yaml": PMR})
    _, impostor = generate_key(tmp_path / "impostor")
    known = f"[127.0.0.1]:{sshd.port} " + " ".join(impostor.split()[:2]) + "\n"

    with pytest.raises(HostKeyError) as caught:
        ssh_fetch(sshd, cache, Credentials(ssh_key=sshd.deploy_key, known_hosts=known))

    assert "does NOT match the known hosts" in str(caught.value)
    assert caught.value.expected and caught.value.expected != caught.value.offered
    assert sshd.sessions() == []


def test_ssh_hashed_known_hosts_line(sshd: SSHServer, cache: Path, tmp_path: Path):
    sha = sshd.repo("access").commit({"pmr.yaml": PMR})
    known_file = tmp_path / "known_hosts"
    known_file.write_text(sshd.known_hosts)
    os.system(f"ssh-keygen -q -H -f {known_file} >/dev/null 2>&1")
    assert known_file.read_text().startswith("|1|")

    credentials = Credentials(ssh_key=sshd.deploy_key, known_hosts=known_file.read_text())

    assert ssh_fetch(sshd, cache, credentials)[0] == sha


def test_ssh_key_not_authorized(sshd: SSHServer, cache: Path, tmp_path: Path):
    sshd.repo("access").commit({"pmr.yaml": PMR})
    stranger, _ = generate_key(tmp_path / "stranger")

    with pytest.raises(FetchError) as caught:
        ssh_fetch(sshd, cache, Credentials(ssh_key=stranger, known_hosts=sshd.known_hosts))

    assert f"127.0.0.1:{sshd.port} refused the SSH key (user '{sshd.user}', key SHA256:" in str(
        caught.value
    )


def test_ssh_missing_repository(sshd: SSHServer, cache: Path):
    source = GitSource(sshd.url_of("nothing"))
    credentials = Credentials(ssh_key=sshd.deploy_key, known_hosts=sshd.known_hosts)

    with pytest.raises(FetchError, match=r"^repository .*nothing not found at 127.0.0.1"):
        fetch_pmr(source, credentials=credentials, git_cache_dir=cache)


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (Credentials(), "is an SSH URL but no SSH key is configured"),
        (Credentials(ssh_key="x"), "no known hosts are configured for 127.0.0.1"),
        (Credentials(ssh_key="ssh-ed25519 AAAA", known_hosts="h k v"), "not a private key"),
    ],
)
def test_ssh_credentials_missing_or_malformed(credentials: Credentials, message: str, cache: Path):
    source = GitSource("ssh://git@127.0.0.1:9/org/access.git")

    with pytest.raises(FetchError, match=message):
        fetch_pmr(source, credentials=credentials, git_cache_dir=cache)


# --- TLS, limits, deadline ---------------------------------------------------------------------


def test_https_with_a_private_ca(tmp_path: Path, cache: Path):
    trustme: Any = pytest.importorskip("trustme")
    ca = trustme.CA()
    (tmp_path / "tls").mkdir()
    with GitHTTPServer(tmp_path / "tls", tls=ca.issue_cert("127.0.0.1")) as server:
        sha = server.repo("org/access").commit({"pmr.yaml": PMR})
        source = GitSource(server.url_of("org/access"))
        assert source.url.startswith("https://")

        trusted = fetch_pmr(
            source,
            credentials=Credentials(ca_pem=ca.cert_pem.bytes().decode()),
            git_cache_dir=cache,
        )
        with pytest.raises(FetchError) as untrusted:
            fetch_pmr(source, git_cache_dir=cache)

    assert trusted.revision == sha
    assert str(untrusted.value).startswith(
        "could not establish a trusted TLS connection to 127.0.0.1:"
    )
    assert "configure that CA's certificate (PEM) as the CA bundle" in str(untrusted.value)


def test_a_commit_larger_than_the_pack_limit_is_refused(
    http: GitHTTPServer, repo: BareRepo, cache: Path
):
    repo.commit({"pmr.yaml": PMR, "data.bin": os.urandom(64 * 1024)})
    reader = GitReader(
        GitSource(http.url_of("org/access")),
        credentials=GOOD,
        cache_dir=cache,
        max_bytes=1024 * 1024,
        deadline_seconds=30,
        max_pack_bytes=16 * 1024,
    )

    with pytest.raises(FetchError, match=r"sent more than .* for one commit"):
        reader.read(None)


def test_a_slow_server_hits_the_read_timeout(
    http: GitHTTPServer, repo: BareRepo, cache: Path, monkeypatch: pytest.MonkeyPatch
):
    repo.commit({"pmr.yaml": PMR})
    monkeypatch.setattr(http_client, "READ_TIMEOUT", 0.2)
    http.delay = 0.6

    with pytest.raises(FetchError, match=r"no answer from 127.0.0.1:\d+ in time"):
        fetch(http, cache)


def test_the_whole_read_has_a_deadline(http: GitHTTPServer, repo: BareRepo, cache: Path):
    repo.commit({"pmr.yaml": PMR})
    http.delay = 0.25  # each of the three requests of a first read
    source = GitSource(http.url_of("org/access"))

    with pytest.raises(FetchError, match=r"gave up after the 0.4 s deadline; the next sync"):
        fetch_pmr(source, credentials=GOOD, git_cache_dir=cache, deadline_seconds=0.4)


def test_a_redirect_on_the_same_host_is_followed(http: GitHTTPServer, repo: BareRepo, cache: Path):
    sha = repo.commit({"pmr.yaml": PMR})
    http.redirects["/org/access/"] = f"{http.url}/org/access.git/"  # like GitLab without .git
    source = GitSource(f"{http.url}/org/access")

    result = fetch_pmr(source, credentials=GOOD, git_cache_dir=cache)

    assert result.revision == sha
    assert any(request.status == 301 for request in http.requests)


def test_the_token_does_not_follow_a_redirect_to_another_host(
    http: GitHTTPServer, tmp_path: Path, cache: Path
):
    (tmp_path / "elsewhere").mkdir()
    with GitHTTPServer(
        tmp_path / "elsewhere", users={USER: TOKEN}, hostname="localhost"
    ) as elsewhere:
        elsewhere.repo("org/access").commit({"pmr.yaml": PMR})
        http.redirects["/org/access.git/"] = elsewhere.url_of("org/access") + "/"

        with pytest.raises(FetchError, match=r"no token was sent"):
            fetch(http, cache)

    assert elsewhere.requests and all(request.user is None for request in elsewhere.requests)


def test_ssh_server_without_protocol_v2_refuses_an_old_sha(tmp_path: Path, cache: Path):
    with SSHServer(tmp_path / "ssh", protocol_v2=False) as sshd:
        repo = sshd.repo("access")
        old = repo.commit({"pmr.yaml": b"v: 1\n"})
        tip = repo.commit({"pmr.yaml": b"v: 2\n"})

        assert ssh_fetch(sshd, cache, branch=tip)[0] == tip
        with pytest.raises(FetchError) as caught:
            ssh_fetch(sshd, cache, branch=old)

    assert f"refuses to send commit {old[:12]}" in str(caught.value)
