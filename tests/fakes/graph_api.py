"""A local HTTPS imitation of Entra ID's token endpoint and Microsoft Graph's group members.

What `msal` and `identity/entra.py` call, answered the way Microsoft's services answer:

- `GET /{tenant}/v2.0/.well-known/openid-configuration`: msal's tenant (OIDC) discovery, made
  when the application is built (instance discovery is skipped for a non-Microsoft host, so
  it is not served: a client that asked would fail).
- `POST /{tenant}/oauth2/v2.0/token`: client credentials (`grant_type`, `client_id`,
  `client_secret`, `scope` ending in `/.default`), errors as `{"error", "error_description"}`
  with AADSTS codes.
- `GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.user`: nested groups flattened
  (cycles allowed), only user objects (the cast drops devices, service principals, contacts),
  `$select`, `$top` (at most 999, and the server may return fewer: `max_page`), `$count`
  with `@odata.count`, `@odata.nextLink` with an opaque `$skiptoken`. The cast needs
  `$count=true` and `ConsistencyLevel: eventual` (else 400 Request_UnsupportedQuery). Errors
  are `{"error": {"code", "message", "innerError"}}`: 401 InvalidAuthenticationToken (no,
  unknown or expired token), 403 Authorization_RequestDenied (no GroupMember.Read.All),
  404 Request_ResourceNotFound.

Faults (429/503 with Retry-After, delays) and a request log are for tests and the bench.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.loopback import LoopbackServer, ServerCert

TENANT = "0c2b5d3e-1f4a-4b6c-9d8e-7f6a5b4c3d2e"
CLIENT_ID = "5a1c0b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
CLIENT_SECRET = "fake~graph~client~secret~0001"
MAX_TOP = 999
_MEMBERS = re.compile(r"^/v1\.0/groups/([^/]+)/transitiveMembers/microsoft\.graph\.user$")
_DISCOVERY = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")


@dataclass
class DirectoryObject:
    """A user, group, device or service principal in the fake tenant."""

    id: str
    odata_type: str  # "user", "group", "device", "servicePrincipal", "orgContact"
    mail: str | None = None
    user_principal_name: str | None = None
    account_enabled: bool = True
    members: list[str] = field(default_factory=list)  # groups only: object ids


@dataclass
class Fault:
    """Answer requests whose path matches `pattern` with `status` (`times` times)."""

    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    times: int | None = 1
    hits: int = 0


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it (without the Authorization value)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    authorized: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGraph

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client giving up at its deadline is expected."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        try:
            cast(_Server, self.server).fake._handle(self, method)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Do not write to stderr."""


class FakeGraph(LoopbackServer):
    """login.microsoftonline.com and graph.microsoft.com in one local server."""

    def __init__(
        self,
        *,
        tls: ServerCert,
        tenant: str = TENANT,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        max_page: int = MAX_TOP,
        token_lifetime: int = 3599,
    ) -> None:
        self.tenant = tenant
        self.clients = {client_id: client_secret}
        self.max_page = max_page
        self.token_lifetime = token_lifetime
        self.granted = {"GroupMember.Read.All"}
        self.members_delay = 0.0  # seconds before answering a members page (a slow tenant)
        self.objects: dict[str, DirectoryObject] = {}
        self.faults: list[Fault] = []
        self.log: list[LoggedRequest] = []
        self._tokens: dict[str, float] = {}  # token -> expiry (time.time())
        self._cursors: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self.url = f"{self._listen(server, tls)}://127.0.0.1:{self.port}"

    # --- the tenant ------------------------------------------------------------------------

    def add_user(self, mail: str | None, *, upn: str | None = None, enabled: bool = True) -> str:
        """A user; returns its object id."""
        oid = str(uuid.uuid4())
        name = upn or (mail.upper() if mail else f"user-{oid[:8]}@tenant.onmicrosoft.com")
        self.objects[oid] = DirectoryObject(oid, "user", mail, name, enabled)
        return oid

    def add_object(self, odata_type: str) -> str:
        """A device, service principal or contact: members Graph's user cast leaves out."""
        oid = str(uuid.uuid4())
        self.objects[oid] = DirectoryObject(oid, odata_type)
        return oid

    def add_group(self, members: Iterable[str] = (), oid: str | None = None) -> str:
        """A security group with the given member object ids; returns its id."""
        oid = oid or str(uuid.uuid4())
        self.objects[oid] = DirectoryObject(oid, "group", members=list(members))
        return oid

    def expire_tokens(self) -> None:
        """Every issued token is now expired (msal still holds it in its cache)."""
        with self._lock:
            for token in self._tokens:
                self._tokens[token] = 0.0

    def add_fault(
        self,
        path_regex: str,
        status: int,
        *,
        retry_after: float | None = None,
        times: int | None = 1,
        code: str = "TooManyRequests",
    ) -> Fault:
        """Answer matching requests with `status` (Graph's error body), `times` times."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        body = {"error": {"code": code, "message": "Please retry again later."}}
        fault = Fault(re.compile(path_regex), status, headers, body, times)
        self.faults.append(fault)
        return fault

    def requests_to(self, path_regex: str) -> list[LoggedRequest]:
        """Logged requests whose path matches."""
        pattern = re.compile(path_regex)
        return [r for r in self.log if pattern.search(r.path)]

    # --- serving ---------------------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        token = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            authorized = self._tokens.get(token, 0.0) > time.time()
            self.log.append(
                LoggedRequest(
                    method,
                    parts.path,
                    query,
                    {k: v for k, v in handler.headers.items() if k.lower() != "authorization"},
                    authorized,
                )
            )
            for fault in self.faults:
                if fault.pattern.search(parts.path) and (
                    fault.times is None or fault.hits < fault.times
                ):
                    fault.hits += 1
                    self._send(handler, fault.status, fault.body or {}, fault.headers)
                    return
        if method == "GET" and (match := _DISCOVERY.match(parts.path)):
            self._discovery(handler, match.group(1))
        elif method == "POST" and (match := _TOKEN.match(parts.path)):
            self._token(handler, match.group(1), parse_qs(body.decode()))
        elif method == "GET" and (match := _MEMBERS.match(parts.path)):
            time.sleep(self.members_delay)
            self._members(handler, match.group(1), query, authorized, bool(token))
        else:
            self._graph_error(handler, 400, "BadRequest", f"Unsupported request {parts.path}")

    def _discovery(self, handler: _Handler, tenant: str) -> None:
        if tenant != self.tenant:
            self._send(
                handler,
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
            )
            return
        base = f"{self.url}/{tenant}"
        self._send(
            handler,
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
            },
        )

    def _token(self, handler: _Handler, tenant: str, form: dict[str, list[str]]) -> None:
        def one(key: str) -> str:
            return (form.get(key) or [""])[0]

        client_id = one("client_id")
        if tenant != self.tenant:
            self._token_error(handler, 400, "invalid_request", "90002", "Tenant not found.")
        elif one("grant_type") != "client_credentials":
            self._token_error(handler, 400, "unsupported_grant_type", "70003", "Bad grant.")
        elif client_id not in self.clients:
            self._token_error(
                handler,
                400,
                "unauthorized_client",
                "700016",
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        elif one("client_secret") != self.clients[client_id]:
            self._token_error(
                handler, 401, "invalid_client", "7000215", "Invalid client secret provided."
            )
        elif not one("scope").endswith("/.default"):
            self._token_error(
                handler,
                400,
                "invalid_scope",
                "1002012",
                "The provided value for scope is not valid.",
            )
        else:
            token = "eyJ0eXAi." + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()
            with self._lock:
                self._tokens[token] = time.time() + self.token_lifetime
            self._send(
                handler,
                200,
                {
                    "token_type": "Bearer",
                    "expires_in": self.token_lifetime,
                    "ext_expires_in": self.token_lifetime,
                    "access_token": token,
                },
            )

    def _token_error(
        self, handler: _Handler, status: int, error: str, code: str, description: str
    ) -> None:
        self._send(
            handler,
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {description}",
                "error_codes": [int(code)],
                "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
            },
        )

    def _members(
        self,
        handler: _Handler,
        group_id: str,
        query: dict[str, list[str]],
        authorized: bool,
        had_token: bool,
    ) -> None:
        if not authorized:
            message = (
                "Access token has expired or is not yet valid."
                if had_token
                else "Access token is empty."
            )
            self._graph_error(handler, 401, "InvalidAuthenticationToken", message)
            return
        if "GroupMember.Read.All" not in self.granted:
            self._graph_error(
                handler,
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
            return
        group = self.objects.get(group_id)
        if group is None or group.odata_type != "group":
            self._graph_error(
                handler,
                404,
                "Request_ResourceNotFound",
                f"Resource '{group_id}' does not exist or one of its queried "
                "reference-property objects are not present.",
            )
            return
        if (query.get("$count") or [""])[0] != "true" or (
            handler.headers.get("ConsistencyLevel") or ""
        ).lower() != "eventual":
            self._graph_error(
                handler,
                400,
                "Request_UnsupportedQuery",
                "The specified filter to the reference property query is currently not "
                "supported: add $count=true and the header ConsistencyLevel: eventual.",
            )
            return
        try:
            top = int((query.get("$top") or [str(100)])[0])
        except ValueError:
            top = 0
        if not 1 <= top <= MAX_TOP:
            self._graph_error(
                handler, 400, "Request_BadRequest", f"Invalid page size specified: '{top}'."
            )
            return
        users = self._transitive_users(group_id)
        start = 0
        skiptoken = (query.get("$skiptoken") or [None])[0]
        if skiptoken is not None:
            cursor = self._cursors.get(skiptoken)
            if cursor is None or cursor[0] != group_id:
                self._graph_error(handler, 400, "Directory_ExpiredPageToken", "Bad skiptoken.")
                return
            start = cursor[1]
        page = users[start : start + min(top, self.max_page)]
        fields = (query.get("$select") or ["id"])[0].split(",")
        body: dict[str, Any] = {
            "@odata.context": f"{self.url}/v1.0/$metadata#users({','.join(fields)})",
            "@odata.count": len(users),
            "value": [self._select(u, fields) for u in page],
        }
        end = start + len(page)
        if end < len(users):
            token = secrets.token_urlsafe(12)
            self._cursors[token] = (group_id, end)
            rest = {k: v[0] for k, v in query.items() if k != "$skiptoken"}
            rest["$skiptoken"] = token
            body["@odata.nextLink"] = f"{self.url}{urlsplit(handler.path).path}?{urlencode(rest)}"
        self._send(handler, 200, body)

    def _transitive_users(self, group_id: str) -> list[DirectoryObject]:
        seen: set[str] = set()
        users: dict[str, DirectoryObject] = {}
        stack = [group_id]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            for member_id in self.objects[current].members:
                member = self.objects.get(member_id)
                if member is None:
                    continue
                if member.odata_type == "group":
                    stack.append(member_id)
                elif member.odata_type == "user":
                    users[member_id] = member
        return [users[k] for k in sorted(users)]

    @staticmethod
    def _select(user: DirectoryObject, fields: list[str]) -> dict[str, Any]:
        values = {
            "id": user.id,
            "mail": user.mail,
            "userPrincipalName": user.user_principal_name,
            "accountEnabled": user.account_enabled,
        }
        return {f: values.get(f) for f in fields}

    def _graph_error(self, handler: _Handler, status: int, code: str, message: str) -> None:
        inner = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": str(uuid.uuid4()),
            "client-request-id": str(uuid.uuid4()),
        }
        self._send(
            handler, status, {"error": {"code": code, "message": message, "innerError": inner}}
        )

    @staticmethod
    def _send(
        handler: _Handler, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
