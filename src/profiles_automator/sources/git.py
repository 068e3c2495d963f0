"""Read the PMR from any git server (GitLab, Bitbucket, Azure DevOps, Gitea...) at one commit.

dulwich speaks git's smart protocol over HTTPS (token as the basic-auth password) or SSH
(paramiko, see `sources.ssh`). A bare repository in a cache directory is kept between runs:

* every run makes one ref lookup (ls-remote-like: `info/refs`, plus `ls-refs` in protocol v2;
  one `git-upload-pack` session over SSH) and resolves `branch` to a commit;
* when that commit is already in the cache nothing more is sent; otherwise the commit alone is
  fetched shallow (depth 1) in the same session, whether or not it descends from the last one
  (a force-push just works);
* the file or folder is then read from the cached commit, through the same per-file checks as
  the other sources.

A commit SHA in `branch` is asked for directly (``want <sha>``). Servers that speak protocol v2
(git >= 2.18 by default, GitHub, GitLab) or allow `uploadpack.allowReachableSHA1InWant` serve
any commit; others only serve advertised tips, and the error then says to name a branch or a
tag instead. An abbreviated SHA works when it is the tip of a branch or tag, or already cached.

Errors say which of the URL, branch, path, credentials or host key is wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
import ssl
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin

import certifi
import dulwich
import paramiko
import urllib3
from dulwich.client import HTTPUnauthorized, SSHGitClient, Urllib3HttpGitClient
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import Blob, Commit, ShaFile, Tag, Tree
from dulwich.repo import Repo
from urllib3.util import parse_url

from profiles_automator.sources import http_client
from profiles_automator.sources.document import check_document, looks_like_html, too_large_error
from profiles_automator.sources.errors import FetchError, UntrustedTLSError, exception_chain
from profiles_automator.sources.http_client import Credentials
from profiles_automator.sources.source import GitSource
from profiles_automator.sources.ssh import (
    HostKeyError,
    ParamikoSSHVendor,
    SSHTimeouts,
    fingerprint,
    load_private_key,
    parse_known_hosts,
)
from profiles_automator.sources.url_policy import display_url, origin, url_problem

logger = logging.getLogger(__name__)

# The user name sent with the token over HTTPS when the secret has no `username`: what each
# host documents for token access (docs/charm.md, "Git hosts", cites each one).
DEFAULT_TOKEN_USERNAMES: Mapping[str, str] = {
    "github": "x-access-token",
    "gitlab": "oauth2",
    "bitbucket": "x-token-auth",
    "azure-devops": "pat",
    "gitea": "oauth2",
    "git": "git",
}
# The most a depth-1 fetch may download: the whole tree of one commit of the PMR repository.
MAX_PACK_BYTES = 64 * 1024 * 1024
CACHE_REF = b"refs/heads/pmr-cache"
YAML_SUFFIXES = (".yaml", ".yml")
_REF_PREFIXES = [b"HEAD", b"refs/heads/", b"refs/tags/"]
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,63}$")
_SPLIT_HINT = "split the PMR into several files in a folder and point `pmr-path` at it"
_GITLINK = 0o160000
_USER_AGENT = f"git/dulwich-{'.'.join(map(str, dulwich.__version__))} " + (http_client.USER_AGENT)


@dataclass(frozen=True)
class GitSnapshot:
    """The PMR files at one commit: (repository path, bytes) pairs sorted by path."""

    sha: str
    files: tuple[tuple[str, bytes], ...]
    unchanged: bool
    fetched: bool


class GitReader:
    """Read one `GitSource` into (and from) the bare repository cached under `cache_dir`."""

    def __init__(
        self,
        source: GitSource,
        *,
        credentials: Credentials,
        cache_dir: Path,
        max_bytes: int,
        deadline_seconds: float,
        max_pack_bytes: int = MAX_PACK_BYTES,
    ) -> None:
        self._source = source
        self._credentials = credentials
        self._cache_dir = Path(cache_dir)
        self._max_bytes = max_bytes
        self._max_pack_bytes = max_pack_bytes
        self._deadline_seconds = deadline_seconds
        self._deadline_at = time.monotonic() + deadline_seconds
        self._where = f"{source.host}/{source.project_path}"
        self._token = (credentials.token or "").strip() or None
        if self._token is not None and not all(33 <= ord(c) < 127 for c in self._token):
            raise FetchError(
                "the token contains spaces, line breaks or non-ASCII characters; "
                "set it again, copying only the token itself"
            )
        self._username = (credentials.username or "").strip() or DEFAULT_TOKEN_USERNAMES.get(
            source.host_kind, "git"
        )

    # --- the read --------------------------------------------------------------------------

    def read(self, last_revision: str | None) -> GitSnapshot:
        """Resolve `branch` with one ref lookup, fetch its commit if new, read the PMR files."""
        with self._repository() as repo:
            sha, fetched = self._update(repo)
            files = self._files_at(repo, sha)
        return GitSnapshot(sha, files, unchanged=sha == last_revision, fetched=fetched)

    @contextlib.contextmanager
    def _repository(self) -> Iterator[Repo]:
        """The cached bare repository for this URL, locked against a concurrent run."""
        self._cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = cache_key(self._source)
        path = self._cache_dir / f"{key}.git"
        with open(self._cache_dir / f"{key}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            repo = self._open_or_init(path)
            try:
                yield repo
            finally:
                repo.close()

    @staticmethod
    def _open_or_init(path: Path) -> Repo:
        if path.is_dir():
            try:
                return Repo(str(path))
            except (NotGitRepository, OSError, ValueError, KeyError) as exc:
                logger.warning("git cache %s is unusable (%s); starting it again", path, exc)
                shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o700)
        return Repo.init_bare(str(path))

    def _update(self, repo: Repo) -> tuple[str, bool]:
        """Look the refs up and, in the same session, fetch the commit if it is not cached."""
        resolved: dict[str, str] = {}

        def determine_wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
            sha = self._resolve({k: v for k, v in refs.items() if v is not None}, repo)
            resolved["sha"] = sha
            return [] if _commit_of(repo, sha) is not None else [sha.encode("ascii")]

        spool = _PackSpool(self._max_pack_bytes, self._check_deadline, self._where)
        client, path = self._client()
        try:
            result = client.fetch_pack(
                path,
                determine_wants,
                repo.get_graph_walker(),
                spool.write,
                depth=1,
                ref_prefix=_REF_PREFIXES,
            )
            fetched = spool.size > 0
            if fetched:
                spool.rewind()
                repo.object_store.add_thin_pack(spool.read, None)  # type: ignore[arg-type]
                repo.update_shallow(result.new_shallow, result.new_unshallow)
        except FetchError:
            raise
        except Exception as exc:  # dulwich, paramiko, urllib3 and socket errors
            raise self._explain(exc, resolved.get("sha")) from None
        finally:
            spool.close()
        sha = resolved.get("sha")
        if sha is None:
            raise FetchError(
                f"{self._where} advertised no refs at all: is `repository` the clone URL?"
            )
        commit = _commit_of(repo, sha)
        if commit is None:
            raise FetchError(
                f"{self._where} did not send commit {sha[:12]} of {self._source.branch!r}; "
                "the next sync will try again"
            )
        # Moving the cache's own ref (force: the branch may have been rewritten) keeps the
        # commit as a `have` for the next fetch.
        repo.refs[cast(Any, CACHE_REF)] = commit.id
        logger.debug(
            "%s: %r is %s (%s)",
            self._where,
            self._source.branch,
            sha[:12],
            "fetched" if fetched else "cached",
        )
        return commit.id.decode("ascii"), fetched

    def _resolve(self, refs: Mapping[bytes, bytes], repo: Repo) -> str:
        """The object `branch` names: a branch, a tag, HEAD, or a (possibly short) SHA."""
        ref = self._source.branch
        name = ref.encode("utf-8")
        candidates = [name] if name.startswith(b"refs/") else []
        candidates += [b"refs/heads/" + name, b"refs/tags/" + name]
        if ref == "HEAD":
            candidates.append(b"HEAD")
        for candidate in candidates:
            if candidate in refs:
                return refs[candidate].decode("ascii")
        lowered = ref.lower()
        if _SHA.match(lowered):
            return lowered
        if _SHORT_SHA.match(lowered):
            tips = {sha.decode("ascii") for sha in refs.values()}
            matches = {sha for sha in tips if sha.startswith(lowered)}
            if len(matches) == 1:
                return matches.pop()
            cached = _cached_commit_with_prefix(repo, lowered)
            if cached is not None:
                return cached
            raise FetchError(
                f"{ref!r} looks like an abbreviated commit SHA, but no branch or tag of "
                f"{self._where} points to it and git servers cannot look up abbreviated SHAs: "
                "set `branch` to the full 40-character SHA, or to a branch or tag"
            )
        if not refs:
            raise FetchError(
                f"repository {self._where} is empty (it has no branches): commit the PMR to it "
                "first"
            )
        branches = sorted(
            k.removeprefix(b"refs/heads/").decode("utf-8", "replace")
            for k in refs
            if k.startswith(b"refs/heads/")
        )
        head = refs.get(b"HEAD")
        default = next(
            (b for b in branches if refs.get(b"refs/heads/" + b.encode("utf-8")) == head), None
        )
        hint = f" (its default branch is {default!r})" if default else ""
        if not default and branches:
            hint = f" (its branches include {', '.join(map(repr, branches[:5]))})"
        raise FetchError(
            f"branch, tag or commit {ref!r} not found in {self._where}{hint}: check the "
            "`branch` option"
        )

    # --- reading the files -----------------------------------------------------------------

    def _files_at(self, repo: Repo, sha: str) -> tuple[tuple[str, bytes], ...]:
        commit = _commit_of(repo, sha)
        assert commit is not None
        path = self._source.path
        at = f"in {self._where} at {self._source.branch!r} (commit {sha[:12]})"
        try:
            mode, object_id = _lookup(repo, commit.tree, path)
        except KeyError:
            raise FetchError(f"{path!r} not found {at}: check `pmr-path`") from None
        if stat.S_ISDIR(mode):
            tree = _object(repo, object_id)
            assert isinstance(tree, Tree)
            names = sorted(
                entry.path.decode("utf-8", "replace")
                for entry in tree.iteritems()
                if stat.S_ISREG(entry.mode)
                and entry.path.decode("utf-8", "replace").lower().endswith(YAML_SUFFIXES)
            )
            if not names:
                raise FetchError(
                    f"folder {path!r} {at} contains no .yaml or .yml files: add the PMR files "
                    "there, or point `pmr-path` at a file"
                )
            return tuple(
                (f"{path}/{name}", self._blob(repo, tree, name, f"{path}/{name}"))
                for name in names
            )
        if stat.S_ISREG(mode):
            return ((path, self._read_blob(repo, object_id, path)),)
        kind = "symbolic link" if stat.S_ISLNK(mode) else "submodule"
        if mode == _GITLINK:
            kind = "submodule"
        raise FetchError(
            f"{path!r} {at} is a {kind}, not a YAML file or a folder: check `pmr-path`"
        )

    def _blob(self, repo: Repo, tree: Tree, name: str, path: str) -> bytes:
        _, object_id = tree[name.encode("utf-8")]
        return self._read_blob(repo, object_id, path)

    def _read_blob(self, repo: Repo, object_id: bytes, path: str) -> bytes:
        blob = _object(repo, object_id)
        assert isinstance(blob, Blob)
        body = blob.as_raw_string()
        if len(body) > self._max_bytes:
            raise too_large_error(path, self._max_bytes, len(body), _SPLIT_HINT)
        check_document(path, body, max_bytes=self._max_bytes, too_large_hint=_SPLIT_HINT)
        return body

    # --- transports ------------------------------------------------------------------------

    def _client(self) -> tuple[Any, str]:
        source = self._source
        if source.transport == "ssh":
            if not self._credentials.ssh_key:
                raise FetchError(
                    f"{source.url} is an SSH URL but no SSH key is configured: configure a "
                    "deploy key that can read the repository (and the host's known hosts)"
                )
            if not (self._credentials.known_hosts or "").strip():
                raise FetchError(
                    f"no known hosts are configured for {source.host}: add the server's host "
                    f"key lines (ssh-keyscan {source.host}, checked against its published "
                    "fingerprints); host keys are always verified"
                )
            key = load_private_key(self._credentials.ssh_key)
            self._key_fingerprint = fingerprint(key)
            vendor = ParamikoSSHVendor(
                key=key,
                known_hosts=parse_known_hosts(self._credentials.known_hosts or ""),
                timeouts=lambda: SSHTimeouts(*self._timeouts()),
                check=self._check_deadline,
            )
            client = SSHGitClient(
                source.host, port=source.port, username=source.ssh_user, vendor=vendor
            )
            return client, source.remote_path
        if problem := url_problem(source.url):
            raise FetchError(f"`repository` {problem}")
        client = _HTTPGitClient(
            source.url,
            token=self._token,
            username=self._username,
            pool_manager=self._pool_manager(),
            deadline=self._check_deadline,
            timeouts=self._timeouts,
        )
        client.reader = self
        return client, ""

    def _pool_manager(self) -> urllib3.PoolManager:
        connect, read = self._timeouts()
        ca_file = self._ca_file()
        return urllib3.PoolManager(
            num_pools=2,
            headers={"User-Agent": _USER_AGENT},
            timeout=urllib3.Timeout(connect=connect, read=read),
            retries=urllib3.Retry(
                total=http_client.MAX_ATTEMPTS,
                connect=http_client.MAX_ATTEMPTS - 1,
                read=0,
                other=0,  # TLS and protocol errors are not retried
                status=http_client.MAX_ATTEMPTS - 1,
                status_forcelist=(502, 503, 504),
                allowed_methods=None,
                backoff_factor=http_client.BACKOFF_SECONDS[0],
                redirect=http_client.MAX_REDIRECTS,
                raise_on_status=False,
            ),
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file,
        )

    def _ca_file(self) -> str:
        ca_pem = (self._credentials.ca_pem or "").strip()
        if not ca_pem:
            return certifi.where()
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise FetchError(
                "the CA bundle is not a PEM certificate: it must contain "
                "'-----BEGIN CERTIFICATE-----' blocks"
            )
        self._ca_dir = tempfile.TemporaryDirectory(prefix="pmr-ca-")
        path = os.path.join(self._ca_dir.name, "ca.pem")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(ca_pem + "\n")
        return path

    def _timeouts(self) -> tuple[float, float]:
        self._check_deadline()
        remaining = self._deadline_at - time.monotonic()
        return (
            min(http_client.CONNECT_TIMEOUT, remaining),
            min(http_client.READ_TIMEOUT, remaining),
        )

    def _check_deadline(self) -> None:
        if time.monotonic() >= self._deadline_at:
            raise self._deadline_error()

    def _deadline_error(self) -> FetchError:
        return FetchError(
            f"timed out reading {self._where}: gave up after the "
            f"{self._deadline_seconds:g} s deadline; the next sync will try again"
        )

    # --- errors ----------------------------------------------------------------------------

    def _explain(self, exc: BaseException, sha: str | None) -> FetchError:
        """Turn a transport or protocol failure into what the administrator must change."""
        causes = list(exception_chain(exc))
        for cause in causes:
            if isinstance(cause, FetchError):
                return cause
        if (transport := self._explain_transport(causes)) is not None:
            return transport
        source = self._source
        host = source.host if not source.port else f"{source.host}:{source.port}"
        if sha and _unadvertised(exc):
            return FetchError(
                f"{self._where} refuses to send commit {sha[:12]}: the server only serves the "
                "tips of branches and tags (it speaks neither protocol v2 nor allows "
                "uploadpack.allowReachableSHA1InWant); set `branch` to a branch or a tag at "
                "that commit"
            )
        if isinstance(exc, HangupException | GitProtocolError):
            text = _remote_text(exc)
            if re.search(
                r"not found|does not exist|not appear to be a git repository", text, re.I
            ):
                return FetchError(self._not_found())
            if re.search(r"denied|permission|not authori[sz]ed|access", text, re.I):
                return FetchError(
                    f"{host} refused access to {source.project_path}: {text[:200]}; give the "
                    "deploy key read access to the repository"
                )
            detail = f": {text[:200]}" if text else ""
            return FetchError(
                f"{host} ended the git session while reading {source.project_path}{detail}; "
                "check `repository`"
            )
        return FetchError(
            f"reading {self._where} failed: {type(exc).__name__}: {_first_line(exc)[:200]}"
        )

    def _explain_transport(self, causes: list[BaseException]) -> FetchError | None:
        """TLS, SSH authentication, connection and name resolution failures, if one is it."""
        source = self._source
        host = source.host if not source.port else f"{source.host}:{source.port}"
        verify = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
        if verify is not None:
            advice = (
                "check that the configured CA bundle holds the CA that signed its certificate"
                if self._credentials.ca_pem
                else "if the server uses a certificate from a private CA, configure that "
                "CA's certificate (PEM) as the CA bundle"
            )
            problem = (
                f"could not establish a trusted TLS connection to {host}: certificate "
                f"verification failed ({verify.verify_message})"
            )
            return UntrustedTLSError(
                f"{problem}; {advice}", problem, ca_configured=bool(self._credentials.ca_pem)
            )
        if any(isinstance(c, paramiko.AuthenticationException) for c in causes):
            return FetchError(
                f"{host} refused the SSH key (user {source.ssh_user!r}, key "
                f"{getattr(self, '_key_fingerprint', 'unknown')}): add the deploy key's public "
                f"key to {source.project_path} with read access, or check the user name in "
                "`repository`"
            )
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return FetchError(
                f"connection to {host} refused: check the host and port in `repository`; "
                "the next sync will try again"
            )
        if any(
            isinstance(c, socket.gaierror) or "NameResolutionError" in type(c).__name__
            for c in causes
        ):
            return FetchError(f"could not resolve the host name {source.host}: check `repository`")
        if any(
            isinstance(c, TimeoutError | socket.timeout) or "timed out" in str(c).lower()
            for c in causes
        ):
            if time.monotonic() >= self._deadline_at - 0.05:
                return self._deadline_error()
            return FetchError(
                f"no answer from {host} in time while reading {source.project_path}; the next "
                "sync will try again"
            )
        if any(isinstance(c, paramiko.SSHException) for c in causes):
            return FetchError(f"SSH connection to {host} failed: {_first_line(causes[0])}")
        return None

    def _not_found(self) -> str:
        where = f"repository {self._source.project_path} not found at {self._source.host}"
        if self._source.transport == "ssh":
            return (
                f"{where}: check `repository` (some hosts answer so when the deploy key may "
                "not read it)"
            )
        if self._token:
            return (
                f"{where}: check `repository`; if it is private, the configured token cannot "
                "see it (hosts answer 404, not 403, for repositories a token may not read)"
            )
        return (
            f"{where}: check `repository`; if it is private, note that no token was sent: "
            "configure a token that can read it"
        )

    def http_status_error(
        self, status: int, url: str, body: bytes, content_type: str, *, token_sent: bool
    ) -> FetchError:
        """Explain an HTTP answer other than 200 from the git server (or a redirect target)."""
        host = parse_url(url).netloc or self._source.host
        # A token configured but not sent: a redirect led to another host, where it never goes.
        withheld = (
            " (the configured host redirected there, and the token is only sent to the "
            "configured host: use the URL the server redirects to)"
            if self._token and not token_sent
            else ""
        )
        if status == 401:
            if token_sent:
                return FetchError(
                    f"{host} rejected the credentials (HTTP 401) for {self._source.project_path}:"
                    f" the token is invalid, expired or revoked, or it needs another user name "
                    f"than {self._username!r} (set `username` in the token secret); configure a "
                    "valid token that can read the repository"
                )
            return FetchError(
                f"{host} requires authentication (HTTP 401) for {self._source.project_path}, "
                f"and no token was sent{withheld or ': configure a token that can read it'}"
            )
        if status == 403:
            if token_sent:
                return FetchError(
                    f"the token cannot read {self._source.project_path} (HTTP 403 from {host}):"
                    " give it read access to the repository (GitLab: read_repository scope; "
                    "Azure DevOps: Code (Read); Bitbucket: repository read)"
                )
            return FetchError(
                f"{host} refused access to {self._source.project_path} (HTTP 403) and no token "
                f"was sent{withheld or ': configure a token that can read it'}"
            )
        if status == 404:
            return FetchError(self._not_found())
        if status == 429:
            return FetchError(
                f"rate limit exceeded at {host} (HTTP 429); the next sync will try again"
            )
        if looks_like_html(body, content_type):
            return FetchError(
                f"got an HTML page (HTTP {status}) from {host} instead of a git server's "
                "answer: is `repository` the repository's clone URL?"
            )
        return FetchError(
            f"unexpected answer from {host} (HTTP {status}) while reading "
            f"{self._source.project_path}; the next sync will try again"
        )

    def close(self) -> None:
        """Remove the temporary CA file, if any."""
        ca_dir = getattr(self, "_ca_dir", None)
        if ca_dir is not None:
            ca_dir.cleanup()


def cache_key(source: GitSource) -> str:
    """The name of the source's bare repository in a cache directory (one per clone URL)."""
    return hashlib.sha256(source.url.encode("utf-8")).hexdigest()[:24]


def prune_cache(cache_dir: Path, keep: GitSource) -> None:
    """Remove the cached repositories of other URLs (a charm reads one repository at a time)."""
    key = cache_key(keep)
    for entry in Path(cache_dir).glob("*"):
        if entry.name.split(".", 1)[0] == key:
            continue
        if entry.suffix == ".git" and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.suffix == ".lock":
            entry.unlink(missing_ok=True)


class _HTTPGitClient(Urllib3HttpGitClient):
    """dulwich's HTTP client with our rules: token on its origin only, clear HTTP errors."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        username: str,
        pool_manager: urllib3.PoolManager,
        deadline: Callable[[], None],
        timeouts: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self._origin_url = url
        self._deadline = deadline
        self._timeouts = timeouts
        self._token_origin = origin(url)
        self.reader: GitReader | None = None
        super().__init__(
            url,
            pool_manager=pool_manager,
            username=username if token else None,
            password=token,
        )

    def _http_request(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        data: Any = None,
        raise_for_status: bool = True,
    ) -> tuple[Any, Callable[[int], bytes]]:
        self._deadline()
        if self._timeouts is not None:  # each request gets what is left of the deadline
            connect, read_timeout = self._timeouts()
            self._timeout = urllib3.Timeout(connect=connect, read=read_timeout)  # type: ignore[assignment]
        resp, read = super()._http_request(url, headers, data, raise_for_status=False)
        final = urljoin(url, resp.geturl() or url)
        if final != url and (problem := url_problem(final)):
            resp.close()
            raise FetchError(
                f"refusing to follow the redirect from {display_url(url)}: the target {problem}"
            )
        if resp.status != 200:
            body = read(64 * 1024) if resp.status >= 400 else b""
            resp.close()
            assert self.reader is not None
            raise self.reader.http_status_error(
                resp.status,
                final,
                body,
                resp.headers.get("Content-Type", ""),
                token_sent=self._password is not None and origin(final) == self._token_origin,
            )
        content_type = resp.headers.get("Content-Type") or ""
        if "/info/refs" in url and not content_type.startswith("application/x-git-"):
            head = read(4096)
            resp.close()
            if looks_like_html(head, content_type):
                raise FetchError(
                    f"got an HTML page from {display_url(self._origin_url)} instead of a git "
                    "server's answer: is `repository` the repository's clone URL (often "
                    "ending in .git)?"
                )
            raise FetchError(
                f"{display_url(self._origin_url)} does not speak git's smart HTTP protocol "
                f"(Content-Type {content_type or 'none'}): is `repository` the clone URL?"
            )

        def checked_read(amount: int) -> bytes:
            self._deadline()
            return read(amount)

        return resp, checked_read


class _PackSpool:
    """Collect the pack the server sends, refusing it past a size limit or the deadline."""

    def __init__(self, limit: int, deadline: Callable[[], None], where: str) -> None:
        # Closed by close(), after the pack has been added to the repository.
        self._file = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)  # noqa: SIM115
        self._limit = limit
        self._deadline = deadline
        self._where = where
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._limit:
            raise FetchError(
                f"{self._where} sent more than {self._limit // (1024 * 1024)} MiB for one "
                "commit (a depth-1 fetch downloads the whole tree): keep the PMR in a smaller "
                "repository"
            )
        self._deadline()
        self._file.write(data)
        return len(data)

    def rewind(self) -> None:
        self._file.seek(0)

    def read(self, amount: int = -1) -> bytes:
        return self._file.read(amount)

    def close(self) -> None:
        self._file.close()


def _commit_of(repo: Repo, sha: str) -> Commit | None:
    """The commit `sha` names (peeling tags) if it and its tree are cached, else None."""
    try:
        obj = _object(repo, sha.encode("ascii"))
        for _ in range(10):
            if not isinstance(obj, Tag):
                break
            obj = _object(repo, obj.object[1])
        if isinstance(obj, Commit) and obj.tree in repo.object_store:
            return obj
    except (KeyError, ValueError):
        return None
    return None


def _object(repo: Repo, object_id: bytes) -> ShaFile:
    """An object of the cached repository by its hex id (KeyError when missing)."""
    return repo.object_store[cast(Any, object_id)]


def _cached_commit_with_prefix(repo: Repo, prefix: str) -> str | None:
    """A cached commit whose SHA starts with `prefix`, if exactly one is cached."""
    try:
        head = repo.refs[cast(Any, CACHE_REF)].decode("ascii")
    except KeyError:
        return None
    return head if head.startswith(prefix) else None


def _lookup(repo: Repo, tree_id: bytes, path: str) -> tuple[int, bytes]:
    """Walk `path` from the root tree: (mode, object id), or KeyError."""
    mode, object_id = stat.S_IFDIR, tree_id
    for segment in path.split("/"):
        if not stat.S_ISDIR(mode):
            raise KeyError(path)
        tree = _object(repo, object_id)
        if not isinstance(tree, Tree):
            raise KeyError(path)
        mode, object_id = tree[segment.encode("utf-8")]
    return mode, object_id


def _remote_text(exc: BaseException) -> str:
    """What the server said (stderr lines of a hang-up, or the protocol error's text)."""
    lines: Sequence[Any] = getattr(exc, "stderr_lines", None) or []
    text = " ".join(
        line.decode("utf-8", "replace").strip() if isinstance(line, bytes) else str(line)
        for line in lines
    )
    return (text or str(exc)).replace("\n", " ").strip()


def _unadvertised(exc: BaseException) -> bool:
    text = " ".join(_remote_text(c) for c in exception_chain(exc)).lower()
    return "not our ref" in text or "unadvertised" in text or "no such remote ref" in text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


__all__ = [
    "DEFAULT_TOKEN_USERNAMES",
    "MAX_PACK_BYTES",
    "GitReader",
    "GitSnapshot",
    "HTTPUnauthorized",
    "HostKeyError",
    "cache_key",
    "prune_cache",
]
