"""Debian's `git http-backend` behind a small threaded HTTP server with basic auth.

The server runs the CGI the way Apache's documented set-up does (GIT_PROJECT_ROOT,
GIT_HTTP_EXPORT_ALL, REMOTE_USER, the Git-Protocol header as GIT_PROTOCOL), so clients speak
git's real smart HTTP protocol, v0 or v2. With `users`, every request needs basic auth with one
of those (user, password) pairs, like a private repository on a hosted git server. Each request
is logged with the git command it carried, so tests can tell a ref lookup from a fetch.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from tests.fakes.loopback import LoopbackServer, ServerCert
from tests.servers.debian import require_debian_package
from tests.servers.git_repo import BareRepo


@dataclass(frozen=True)
class GitRequest:
    """One request the server answered."""

    method: str
    path: str
    status: int
    user: str | None
    command: str  # "ref-advertisement", "ls-refs", "fetch" (v2) or "upload-pack" (v0)


def git_exec_path() -> Path:
    """Where Debian's git keeps http-backend (`git --exec-path`)."""
    git = require_debian_package("git", "git")
    out = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


class GitHTTPServer(LoopbackServer):
    """Serve the bare repositories under `root` at http://127.0.0.1:PORT/NAME.git."""

    def __init__(
        self,
        root: Path,
        users: Mapping[str, str] | None = None,
        *,
        protocol_v2: bool = True,
        tls: ServerCert | None = None,
        hostname: str = "127.0.0.1",
    ) -> None:
        self.root = root
        self._hostname = hostname
        self.protocol_v2 = protocol_v2
        self.delay = 0.0  # seconds to wait before answering (a slow server)
        self.redirects: dict[str, str] = {}  # path prefix -> URL prefix, answered with a 301
        self.users = dict(users or {})
        self.requests: list[GitRequest] = []
        self._lock = threading.Lock()
        self.backend = str(git_exec_path() / "git-http-backend")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.git = self
        self._scheme = self._listen(server, tls)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"{self._scheme}://{self._hostname}:{self.port}"

    def repo(self, name: str, default_branch: str = "main") -> BareRepo:
        """Create a bare repository served at `url_of(name)`."""
        return BareRepo(self.root / f"{name}.git", default_branch)

    def url_of(self, name: str) -> str:
        """The clone URL of repository `name`."""
        return f"{self.url}/{name}.git"

    def commands(self) -> list[str]:
        """The git commands of the requests so far, in order."""
        with self._lock:
            return [request.command for request in self.requests]

    def clear(self) -> None:
        """Forget the requests logged so far."""
        with self._lock:
            self.requests.clear()

    def _log(self, request: GitRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    git: GitHTTPServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer (a refused pack, a timeout) is not an error."""


class _Handler(BaseHTTPRequestHandler):
    """Authenticate, then hand the request to git http-backend as a CGI."""

    protocol_version = "HTTP/1.1"

    @property
    def git(self) -> GitHTTPServer:
        return cast(_Server, self.server).git

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length) if length else self._read_chunked())

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _user(self) -> tuple[bool, str | None]:
        users = self.git.users
        if not users:
            return True, None
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return False, None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False, None
        return users.get(user) == password, user

    def _serve(self, body: bytes) -> None:
        git = self.git
        time.sleep(git.delay)
        parts = urlsplit(self.path)
        command = _command(parts.path, body)
        for prefix, target in git.redirects.items():
            if self.path.startswith(prefix):
                self._reply(301, {"Location": target + self.path[len(prefix) :]}, b"")
                git._log(GitRequest(self.command, parts.path, 301, None, command))
                return
        allowed, user = self._user()
        if not allowed:
            self._reply(401, {"WWW-Authenticate": 'Basic realm="git"'}, b"denied\n")
            git._log(GitRequest(self.command, parts.path, 401, user, command))
            return
        result = subprocess.run(
            [git.backend],
            input=body,
            env=self._cgi_environment(parts.path, parts.query, len(body), user),
            capture_output=True,
            timeout=60,
        )
        status, headers, payload = _parse_cgi(result.stdout)
        self._reply(status, headers, payload)
        git._log(GitRequest(self.command, parts.path, status, user, command))

    def _cgi_environment(
        self, path: str, query: str, length: int, user: str | None
    ) -> dict[str, str]:
        git = self.git
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(git.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(git.root),
        }
        if user:
            env["REMOTE_USER"] = user
        if (protocol := self.headers.get("Git-Protocol")) and git.protocol_v2:
            env["GIT_PROTOCOL"] = protocol
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        return env

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split a CGI answer into its status, headers and body."""
    head, separator, payload = output.partition(b"\r\n\r\n")
    if not separator:
        head, _, payload = output.partition(b"\n\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, payload


def _command(path: str, body: bytes) -> str:
    if path.endswith("/info/refs"):
        return "ref-advertisement"
    if b"command=ls-refs" in body[:64]:
        return "ls-refs"
    if b"command=fetch" in body[:64]:
        return "fetch"
    return "upload-pack"
