"""A local HTTP(S) server imitating the parts of the GitHub REST API the fetcher uses.

It keeps repositories as in-memory commit snapshots and answers like api.github.com does for
the endpoints the fetcher calls: the repository, a commit (SHA media type or JSON) and the
contents API (raw media type or JSON, with folder listings), with strong ETags and 304s,
rate-limit headers, token checks (private repositories answer 404 to callers that may not see
them, a bad token gets 401 everywhere), fault injection and a request log. It also serves
arbitrary files under chosen paths (for URL sources) and redirects (to check that tokens do
not follow a redirect to another host). With `tls=` (a `trustme` leaf certificate) it speaks
HTTPS.

GitHub Apps (`add_app`): ``POST /app/installations/{id}/access_tokens`` verifies the JWT's RS256
signature with the App's public key and its `iat`/`exp`/`iss` claims the way GitHub does (exp at
most 10 minutes ahead, iat not in the future), and issues `ghs_` tokens that expire and are then
refused. Commit statuses: ``POST /repos/{owner}/{repo}/statuses/{sha}`` checks the token's
right to write statuses, validates the body like GitHub (state, 140-character description) and
records each status on the repository (`FakeRepo.statuses`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from tests.fakes.loopback import LoopbackServer, ServerCert

GOOD_TOKEN = "ghp_fake_good_token_0001"
_API_ROUTE = re.compile(r"^/repos/([^/]+)/([^/]+)(/.*)?$")
_TOKEN_ROUTE = re.compile(r"^/app/installations/([^/]+)/access_tokens$")
_STATUS_ROUTE = re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([^/]+)$")
_STATUS_STATES = frozenset({"error", "failure", "pending", "success"})


@dataclass
class FakeRepo:
    """One repository: named refs pointing at commit snapshots ({path: bytes})."""

    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    private: bool = False
    default_branch: str = "main"
    readers: set[str] | None = None  # tokens that may see it if private; None: any valid token
    statuses: list[dict[str, Any]] = field(default_factory=list)  # commit statuses, oldest first

    def resolve(self, ref: str) -> str | None:
        """Resolve a branch, tag, full SHA or unique SHA prefix (>= 7 chars) to a commit."""
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.tags:
            return self.tags[ref]
        if ref in self.commits:
            return ref
        if len(ref) >= 7:
            matches = [sha for sha in self.commits if sha.startswith(ref.lower())]
            if len(matches) == 1:
                return matches[0]
        return None


@dataclass
class FakeInstallation:
    """A GitHub App's installation on an account: which repositories, which permissions."""

    account: str
    repositories: set[str] | None = None  # repository names ("repo"); None: all of them
    permissions: dict[str, str] = field(
        default_factory=lambda: {"contents": "read", "metadata": "read", "statuses": "write"}
    )
    suspended: bool = False


@dataclass
class FakeApp:
    """A GitHub App: its ID, the public half of its key, and its installations by ID."""

    app_id: str
    public_key: Any
    installations: dict[str, FakeInstallation] = field(default_factory=dict)


@dataclass
class IssuedToken:
    """An installation token the fake issued: when it expires and what it may do."""

    expires_at: float
    repositories: set[str]  # "owner/repo" names
    permissions: dict[str, str]


@dataclass
class Fault:
    """An injected misbehaviour for requests whose path (with query) matches `pattern`."""

    pattern: re.Pattern[str]
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    drop: bool = False
    delay: float = 0.0
    times: int | None = None  # None: forever
    hits: int = 0
    action: Callable[[], object] | None = None  # run when the fault triggers

    def active(self) -> bool:
        """Whether the fault still applies."""
        return self.times is None or self.hits < self.times


@dataclass
class LoggedRequest:
    """One request as the server saw it (header names lower-cased) and the status it got."""

    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None

    @property
    def has_auth(self) -> bool:
        """Whether an Authorization header was present."""
        return "authorization" in self.headers

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]


@dataclass
class RawFile:
    """A file served verbatim under a path (for URL sources)."""

    body: bytes
    content_type: str
    etag: bool = True
    chunked: bool = False
    require_token: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up mid-answer is what some tests are about."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_GET(self) -> None:
        try:
            cast(_Server, self.server).fake._handle(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Do not write to stderr."""


class FakeGitHub(LoopbackServer):
    """A fake api.github.com on 127.0.0.1 (see the module docstring); a context manager."""

    def __init__(
        self,
        *,
        tls: ServerCert | None = None,
        hostname: str = "127.0.0.1",
        tokens: Iterable[str] = (GOOD_TOKEN,),
        rate_limit: int = 5000,
        api_prefix: str = "",
    ) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens = set(tokens)
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.rate_reset = int(time.time()) + 3600
        self.api_prefix = api_prefix.rstrip("/")
        self.raw_files: dict[str, RawFile] = {}
        self.redirects: dict[str, tuple[int, str]] = {}
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self.apps: dict[str, FakeApp] = {}
        self.issued: dict[str, IssuedToken] = {}
        self.installation_token_lifetime = 3600.0
        self._lock = threading.Lock()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        scheme = self._listen(server, tls)
        self.url = f"{scheme}://{hostname}:{self.port}"
        self.api_url = self.url + self.api_prefix

    # --- state helpers -------------------------------------------------------------------

    def create_repo(
        self, name: str, *, private: bool = False, default_branch: str = "main"
    ) -> FakeRepo:
        """Create (or return) a repository named "org/repo"."""
        if name not in self.repos:
            self.repos[name] = FakeRepo(private=private, default_branch=default_branch)
        return self.repos[name]

    def commit(self, repo: str, files: Mapping[str, bytes | None], branch: str = "main") -> str:
        """Commit on top of `branch` (None deletes a file); return the new commit SHA."""
        state = self.create_repo(repo)
        parent = state.branches.get(branch)
        tree = dict(state.commits[parent]) if parent else {}
        for path, content in files.items():
            if content is None:
                tree.pop(path, None)
            else:
                tree[path] = content
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update((parent or "").encode())
        digest.update(str(time.monotonic_ns()).encode())
        for path in sorted(tree):
            digest.update(path.encode() + b"\0" + tree[path] + b"\0")
        sha = digest.hexdigest()
        state.commits[sha] = tree
        state.branches[branch] = sha
        return sha

    def add_app(
        self, app_id: str, public_key: Any, installations: Mapping[str, FakeInstallation]
    ) -> FakeApp:
        """Register a GitHub App (`public_key`: a `cryptography` RSA public key)."""
        app = FakeApp(app_id, public_key, dict(installations))
        self.apps[app_id] = app
        return app

    def statuses(self, repo: str) -> list[dict[str, Any]]:
        """The commit statuses set on `repo`, oldest first."""
        return list(self.repos[repo].statuses)

    def tag(self, repo: str, name: str, sha: str) -> None:
        """Point tag `name` at commit `sha`."""
        self.repos[repo].tags[name] = sha

    def add_fault(
        self,
        path_regex: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        drop: bool = False,
        delay: float = 0.0,
        times: int | None = None,
        action: Callable[[], object] | None = None,
    ) -> Fault:
        """Misbehave for matching requests: delay, then drop the connection or answer `status`.

        With only `delay` (or only `action`), the normal answer follows. `action` runs when
        the fault triggers, before the answer (e.g. a push racing a fetch). `times` bounds
        how many requests are affected (None: all).
        """
        fault = Fault(
            re.compile(path_regex),
            status,
            dict(headers or {}),
            body,
            drop,
            delay,
            times,
            action=action,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def serve_raw(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/yaml; charset=utf-8",
        etag: bool = True,
        chunked: bool = False,
        require_token: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve `body` at `path` (chunked: without Content-Length); return its URL."""
        self.raw_files[path] = RawFile(
            body, content_type, etag, chunked, require_token, dict(headers or {})
        )
        return self.url + path

    def add_redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer requests for `path` with a redirect to `location`; return the path's URL."""
        self.redirects[path] = (status, location)
        return self.url + path

    def exhaust_rate_limit(self, reset_in: int = 600) -> None:
        """Make the next API requests fail like an exhausted primary rate limit."""
        self.rate_remaining = 0
        self.rate_reset = int(time.time()) + reset_in

    def requests_matching(self, path_regex: str) -> list[LoggedRequest]:
        """The logged requests whose path (with query) matches `path_regex`."""
        pattern = re.compile(path_regex)
        with self._lock:
            return [entry for entry in self.log if pattern.search(entry.path)]

    def clear_log(self) -> None:
        """Forget the requests seen so far."""
        with self._lock:
            self.log.clear()

    # --- request handling ----------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        entry = LoggedRequest(
            handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}
        )
        length = int(handler.headers.get("Content-Length") or 0)
        payload = handler.rfile.read(length) if length else b""
        with self._lock:
            self.log.append(entry)
            fault = next(
                (f for f in self.faults if f.active() and f.pattern.search(entry.path)), None
            )
            if fault is not None:
                fault.hits += 1
        if fault is not None:
            if fault.action is not None:
                fault.action()
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                entry.status = 0
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.status is not None:
                headers = {"Content-Type": "application/json; charset=utf-8", **fault.headers}
                self._send(handler, entry, fault.status, fault.body, headers)
                return
        route = entry.route
        if entry.method == "POST" and route.startswith(self.api_prefix + "/"):
            self._serve_post(handler, entry, route[len(self.api_prefix) :], payload)
        elif entry.method == "POST":
            self._json(handler, entry, 404, {"message": "Not Found"}, api=False)
        elif route in self.redirects:
            status, location = self.redirects[route]
            self._send(handler, entry, status, b"", {"Location": location})
        elif route in self.raw_files:
            self._serve_raw_file(handler, entry, self.raw_files[route])
        elif route.startswith(self.api_prefix + "/repos/"):
            self._serve_api(handler, entry, route[len(self.api_prefix) :])
        else:
            self._json(handler, entry, 404, {"message": "Not Found"}, api=False)

    def _token(self, entry: LoggedRequest) -> tuple[bool, str | None]:
        """Return (acceptable, token): a present but unknown or expired token is not."""
        value = entry.headers.get("authorization")
        if value is None:
            return True, None
        scheme, _, token = value.partition(" ")
        if scheme.lower() not in {"bearer", "token"}:
            return False, None
        issued = self.issued.get(token)
        if issued is not None:
            return issued.expires_at > time.time(), token
        return token in self.tokens, token if token in self.tokens else None

    # --- writes: installation tokens and commit statuses ---------------------------------

    def _serve_post(
        self, handler: _Handler, entry: LoggedRequest, route: str, payload: bytes
    ) -> None:
        try:
            data = json.loads(payload or b"{}")
        except ValueError:
            self._json(handler, entry, 400, {"message": "Problems parsing JSON"})
            return
        if not isinstance(data, dict):
            self._json(handler, entry, 400, {"message": "Problems parsing JSON"})
        elif match := _TOKEN_ROUTE.match(route):
            self._issue_token(handler, entry, unquote(match.group(1)), data)
        elif match := _STATUS_ROUTE.match(route):
            name = f"{unquote(match.group(1))}/{unquote(match.group(2))}"
            self._create_status(handler, entry, name, unquote(match.group(3)), data)
        else:
            self._json(handler, entry, 404, {"message": "Not Found"})

    def _issue_token(
        self, handler: _Handler, entry: LoggedRequest, installation_id: str, data: dict[str, Any]
    ) -> None:
        app, problem = self._verify_app_jwt(entry)
        if app is None:
            self._json(handler, entry, 401, {"message": problem})
            return
        installation = app.installations.get(installation_id)
        if installation is None:
            self._json(handler, entry, 404, {"message": "Not Found"})
            return
        if installation.suspended:
            self._json(handler, entry, 403, {"message": "This installation has been suspended"})
            return
        wanted = data.get("repositories")
        owned = {name for name in self.repos if name.split("/", 1)[0] == installation.account}
        if installation.repositories is not None:
            owned &= {f"{installation.account}/{repo}" for repo in installation.repositories}
        scope = owned
        if wanted is not None:
            names = [repo for repo in wanted or [] if isinstance(repo, str)]
            asked = {f"{installation.account}/{repo}" for repo in names}
            if not isinstance(wanted, list) or not asked <= owned:
                self._json(
                    handler,
                    entry,
                    422,
                    {
                        "message": "There is at least one repository that does not exist or is "
                        "not accessible to the parent installation."
                    },
                )
                return
            scope = asked
        token = "ghs_" + secrets.token_hex(18)
        expires = time.time() + self.installation_token_lifetime
        with self._lock:
            self.issued[token] = IssuedToken(expires, scope, dict(installation.permissions))
        body = {
            "token": token,
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            "permissions": installation.permissions,
            "repository_selection": "selected" if wanted or installation.repositories else "all",
        }
        self._json(handler, entry, 201, body)

    def _verify_app_jwt(self, entry: LoggedRequest) -> tuple[FakeApp | None, str]:
        """The App whose key signed a valid JWT, or None and GitHub's message for a 401."""
        scheme, _, token = entry.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None, "A JSON web token could not be decoded"
        app = self.apps.get(str(claims.get("iss")))
        if app is None:
            return None, "Integration not found"
        try:
            jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_exp": False},
            )
        except jwt.PyJWTError:
            return None, "A JSON web token could not be decoded"
        now = time.time()
        if not isinstance(claims["exp"], int) or claims["exp"] <= now:
            return None, (
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires"
            )
        if claims["exp"] > now + 600:
            return None, "'Expiration time' claim ('exp') is too far in the future"
        if not isinstance(claims["iat"], int) or claims["iat"] > now:
            return None, (
                "'Issued at' claim ('iat') must be an Integer representing the time that the "
                "assertion was issued"
            )
        return app, ""

    def _create_status(
        self,
        handler: _Handler,
        entry: LoggedRequest,
        name: str,
        sha: str,
        data: dict[str, Any],
    ) -> None:
        acceptable, token = self._token(entry)
        if not acceptable:
            self._json(handler, entry, 401, {"message": "Bad credentials"})
            return
        repo = self.repos.get(name)
        if repo is None or not self._may_see(repo, token, name):
            self._json(handler, entry, 404, {"message": "Not Found"})
            return
        if token is None:
            self._json(handler, entry, 401, {"message": "Requires authentication"})
            return
        issued = self.issued.get(token)
        if issued is not None and issued.permissions.get("statuses") != "write":
            self._json(handler, entry, 403, {"message": "Resource not accessible by integration"})
            return
        state, description = data.get("state"), data.get("description")
        if state not in _STATUS_STATES:
            self._json(handler, entry, 422, {"message": "Validation Failed"})
            return
        if isinstance(description, str) and len(description) > 140:
            self._json(
                handler,
                entry,
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"message": "description is too long (maximum is 140 characters)"}],
                },
            )
            return
        if sha not in repo.commits:
            self._json(handler, entry, 422, {"message": f"No commit found for SHA: {sha}"})
            return
        status = {
            "sha": sha,
            "state": state,
            "description": description,
            "context": data.get("context") or "default",
            "target_url": data.get("target_url"),
        }
        with self._lock:
            repo.statuses.append(status)
        self._json(handler, entry, 201, status)

    def _serve_raw_file(self, handler: _Handler, entry: LoggedRequest, raw: RawFile) -> None:
        acceptable, token = self._token(entry)
        if not acceptable or (raw.require_token and token is None):
            self._send(handler, entry, 401, b"unauthorised", {"Content-Type": "text/plain"})
            return
        headers = {"Content-Type": raw.content_type, **raw.headers}
        if raw.etag:
            etag = _etag(raw.content_type, raw.body)
            headers["ETag"] = etag
            if _matches(entry.headers.get("if-none-match"), etag):
                self._send(handler, entry, 304, b"", headers)
                return
        self._send(handler, entry, 200, raw.body, headers, chunked=raw.chunked)

    def _serve_api(self, handler: _Handler, entry: LoggedRequest, route: str) -> None:
        acceptable, token = self._token(entry)
        if not acceptable:
            self._json(handler, entry, 401, {"message": "Bad credentials"})
            return
        if self.rate_remaining <= 0:
            self._json(
                handler,
                entry,
                403,
                {"message": "API rate limit exceeded for 127.0.0.1."},
            )
            return
        match = _API_ROUTE.match(route)
        name = f"{unquote(match.group(1))}/{unquote(match.group(2))}" if match else ""
        repo = self.repos.get(name)
        if match is None or repo is None or not self._may_see(repo, token, name):
            self._json(handler, entry, 404, {"message": "Not Found"})
            return
        rest = match.group(3) or ""
        accept = entry.headers.get("accept", "")
        query = parse_qs(urlsplit(entry.path).query)
        if rest in {"", "/"}:
            body = {
                "full_name": name,
                "private": repo.private,
                "default_branch": repo.default_branch,
            }
            self._json(handler, entry, 200, body)
        elif rest.startswith("/commits/"):
            self._serve_commit(handler, entry, repo, unquote(rest[len("/commits/") :]), accept)
        elif rest == "/contents" or rest.startswith("/contents/"):
            ref = query.get("ref", [repo.default_branch])[0]
            path = unquote(rest[len("/contents") :]).strip("/")
            self._serve_contents(handler, entry, repo, path, ref, accept)
        else:
            self._json(handler, entry, 404, {"message": "Not Found"})

    def _may_see(self, repo: FakeRepo, token: str | None, name: str) -> bool:
        issued = self.issued.get(token or "")
        if issued is not None:
            # An installation token sees exactly its installation's repositories.
            return name in issued.repositories
        if not repo.private:
            return True
        return token is not None and (repo.readers is None or token in repo.readers)

    def _serve_commit(
        self, handler: _Handler, entry: LoggedRequest, repo: FakeRepo, ref: str, accept: str
    ) -> None:
        if not repo.commits:
            self._json(handler, entry, 409, {"message": "Git Repository is empty."})
            return
        sha = repo.resolve(ref)
        if sha is None:
            self._json(handler, entry, 422, {"message": f"No commit found for SHA: {ref}"})
        elif "application/vnd.github.sha" in accept:
            self._api_answer(
                handler, entry, 200, sha.encode(), "application/vnd.github.sha; charset=utf-8"
            )
        else:
            self._json(handler, entry, 200, {"sha": sha, "commit": {"message": "a commit"}})

    def _serve_contents(
        self,
        handler: _Handler,
        entry: LoggedRequest,
        repo: FakeRepo,
        path: str,
        ref: str,
        accept: str,
    ) -> None:
        sha = repo.resolve(ref)
        if sha is None:
            self._json(handler, entry, 404, {"message": f"No commit found for the ref {ref}"})
            return
        tree = repo.commits[sha]
        if path in tree:
            content = tree[path]
            if "raw" in accept:
                media = "application/vnd.github.raw+json; charset=utf-8"
                self._api_answer(handler, entry, 200, content, media)
                return
            encoded = base64.encodebytes(content).decode("ascii")
            self._json(
                handler,
                entry,
                200,
                {**_item(path, "file", content), "encoding": "base64", "content": encoded},
            )
            return
        prefix = f"{path}/" if path else ""
        children: dict[str, dict[str, Any]] = {}
        for file_path, content in tree.items():
            if not file_path.startswith(prefix):
                continue
            head, _, tail = file_path[len(prefix) :].partition("/")
            child = prefix + head
            children[head] = _item(child, "dir", b"") if tail else _item(child, "file", content)
        if not children:
            self._json(handler, entry, 404, {"message": "Not Found"})
            return
        listing = [children[name] for name in sorted(children)]
        if "object" in accept:
            self._json(handler, entry, 200, {**_item(path, "dir", b""), "entries": listing})
        else:
            self._json(handler, entry, 200, listing)

    def _json(
        self, handler: _Handler, entry: LoggedRequest, status: int, data: Any, *, api: bool = True
    ) -> None:
        body = json.dumps(data).encode()
        if api:
            self._api_answer(handler, entry, status, body, "application/json; charset=utf-8")
        else:
            self._send(handler, entry, status, body, {"Content-Type": "application/json"})

    def _api_answer(
        self, handler: _Handler, entry: LoggedRequest, status: int, body: bytes, media: str
    ) -> None:
        """Answer with ETag, 304 on a matching If-None-Match, and rate-limit accounting."""
        headers = {"Content-Type": media}
        etag = _etag(media, body)
        if status == 200:
            headers["ETag"] = etag
        not_modified = status == 200 and _matches(entry.headers.get("if-none-match"), etag)
        with self._lock:
            if not not_modified and self.rate_remaining > 0:
                self.rate_remaining -= 1
            headers.update(
                {
                    "X-RateLimit-Limit": str(self.rate_limit),
                    "X-RateLimit-Remaining": str(self.rate_remaining),
                    "X-RateLimit-Reset": str(self.rate_reset),
                    "X-RateLimit-Used": str(self.rate_limit - self.rate_remaining),
                    "X-RateLimit-Resource": "core",
                }
            )
        self._send(
            handler, entry, 304 if not_modified else status, b"" if not_modified else body, headers
        )

    def _send(
        self,
        handler: _Handler,
        entry: LoggedRequest,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        *,
        chunked: bool = False,
    ) -> None:
        entry.status = status
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if status == 304:
            handler.end_headers()
            return
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            for start in range(0, len(body), 16 * 1024):
                piece = body[start : start + 16 * 1024]
                handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            handler.wfile.write(b"0\r\n\r\n")
        else:
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        handler.wfile.flush()


def _item(path: str, kind: str, content: bytes) -> dict[str, Any]:
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False)
    return {
        "type": kind,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": blob.hexdigest(),
        "size": len(content),
    }


def _etag(media: str, body: bytes) -> str:
    return '"' + hashlib.sha256(media.encode() + b"\0" + body).hexdigest()[:40] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates or "*" in candidates
