"""A small imitation of GitLab's commit status API: ``POST /api/v4/projects/:id/statuses/:sha``.

It answers like GitLab does: the project id may be the URL-encoded path (``org%2Faccess``); the
token comes as ``PRIVATE-TOKEN`` or ``Authorization: Bearer``; an unknown token gets 401, a
token without the `api` scope 403 ``insufficient_scope``, a project the token's user cannot see
404 ``Project Not Found``, a user below the Developer role 403, an unknown SHA 404 ``Commit Not
Found``, an invalid state 400; and, as GitLab's state machine does, posting `pending` or
`running` again for the same SHA and name is refused with 400 ``Cannot transition status``.
Statuses are recorded per project.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote

from tests.fakes.loopback import LoopbackServer

DEVELOPER = 30
REPORTER = 20
_STATES = frozenset({"pending", "running", "success", "failed", "canceled", "skipped"})


@dataclass
class GitLabToken:
    """A personal or project access token: its scopes and its user's role per project."""

    scopes: set[str] = field(default_factory=lambda: {"api"})
    roles: dict[str, int] = field(default_factory=dict)  # project path -> access level


@dataclass
class GitLabProject:
    """A project: its commits and the statuses set on them, oldest first."""

    commits: set[str] = field(default_factory=set)
    statuses: list[dict[str, Any]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitLab


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        cast(_Server, self.server).fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Do not write to stderr."""


class FakeGitLab(LoopbackServer):
    """A fake GitLab API on 127.0.0.1; a context manager. `api_url` ends in ``/api/v4``."""

    def __init__(self) -> None:
        self.projects: dict[str, GitLabProject] = {}
        self.tokens: dict[str, GitLabToken] = {}
        self.fail_with: int | None = None  # answer every request with this status
        self._lock = threading.Lock()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self.api_url = f"{self._listen(server)}://127.0.0.1:{self.port}/api/v4"

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        status, body = self._answer(handler, raw)
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, handler: _Handler, raw: bytes) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with, {"message": "injected failure"}
        parts = handler.path.split("?", 1)[0].split("/")
        # ['', 'api', 'v4', 'projects', ID, 'statuses', SHA]
        if len(parts) != 7 or parts[1:4] != ["api", "v4", "projects"] or parts[5] != "statuses":
            return 404, {"error": "404 Not Found"}
        project_path, sha = unquote(parts[4]), unquote(parts[6])
        secret = handler.headers.get("PRIVATE-TOKEN")
        bearer = handler.headers.get("Authorization", "")
        if secret is None and bearer.lower().startswith("bearer "):
            secret = bearer[7:]
        token = self.tokens.get(secret or "")
        if token is None:
            return 401, {"message": "401 Unauthorized"}
        if "api" not in token.scopes:
            return 403, {"error": "insufficient_scope"}
        project = self.projects.get(project_path)
        role = token.roles.get(project_path, 0)
        if project is None or role < REPORTER:
            return 404, {"message": "404 Project Not Found"}
        if role < DEVELOPER:
            return 403, {"message": "403 Forbidden"}
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": "invalid JSON"}
        state, name = data.get("state"), data.get("name") or data.get("context") or "default"
        if state not in _STATES:
            return 400, {"error": "state does not have a valid value"}
        if sha not in project.commits:
            return 404, {"message": "404 Commit Not Found"}
        with self._lock:
            previous = [s for s in project.statuses if s["sha"] == sha and s["name"] == name]
            if previous and previous[-1]["status"] == state and state in {"pending", "running"}:
                event = "enqueue" if state == "pending" else "run"
                return 400, {"message": f"Cannot transition status via :{event} from :{state}"}
            status = {
                "sha": sha,
                "status": state,
                "name": name,
                "description": data.get("description"),
                "target_url": data.get("target_url"),
            }
            project.statuses.append(status)
        return 201, status
