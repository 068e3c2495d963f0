"""A fake kube-apiserver served over real HTTP so lightkube's real Client can be tested.

Tests get the real wire protocol (URLs, media types, Status bodies, pagination, server-side
apply) without a cluster; the semantics live in kube_store, the Kubeflow profile-controller
emulation in profile_controller. See FakeKubeAPI for the public surface.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import shutil
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

import msgspec
import yaml
from lightkube import Client, KubeConfig

from tests.fakes.kube_rbac import (
    ANONYMOUS_USER,
    BOOTSTRAP_RBAC,
    KUBEFLOW_CLUSTER_ROLES,
    Attributes,
    RBACAuthorizer,
    UserInfo,
    service_account,
)
from tests.fakes.kube_store import (
    DEFAULT_RESOURCES,
    NOT_FOUND_MESSAGE,
    RBAC_GROUP,
    ApiStatusError,
    JSONDict,
    ResourceType,
    Store,
    clone,
    error_modified,
    error_not_found,
    load_body,
    render_object,
    status_error,
)
from tests.fakes.profile_controller import (
    DEFAULT_DELAY,
    UPSTREAM,
    ControllerSettings,
    ProfileController,
)

__all__ = [
    "DEFAULT_RESOURCES",
    "FakeKubeAPI",
    "Fault",
    "RequestRecord",
    "ResourceType",
    "UserInfo",
    "service_account",
]

DEFAULT_USER = "system:serviceaccount:test:test"
DEFAULT_TOKEN = "fake-token"
AUTHORIZATION_GROUP = "authorization.k8s.io"
ACCESS_REVIEW = "selfsubjectaccessreviews"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
APPLY_TYPE = "application/apply-patch+yaml"
_encode = msgspec.json.encode


@dataclass
class RequestRecord:
    """One HTTP request as the server saw it (status 0 means the connection was dropped)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int
    verb: str
    plural: str = ""
    namespace: str | None = None
    name: str | None = None
    subresource: str = ""
    body: bytes = b""
    user: str = ""

    def data(self) -> Any:
        """Return the decoded request body (JSON or YAML), or None when empty."""
        if not self.body:
            return None
        return load_body(self.body, self.content_type)


@dataclass
class Fault:
    """An injected failure; see FakeKubeAPI.add_fault."""

    method: str | None = None
    path: str | None = None
    verb: str | None = None
    status: int | None = None
    drop: bool = False
    delay: float = 0.0
    times: int = 1
    headers: dict[str, str] | None = None
    message: str | None = None
    every: int = 1
    hits: int = 0
    seen: int = 0

    @property
    def active(self) -> bool:
        """Return whether the fault will still fire."""
        return self.times < 0 or self.hits < self.times

    def matches(self, method: str, path: str, verb: str) -> bool:
        """Return whether a request is targeted by this fault."""
        if self.method is not None and self.method.upper() != method:
            return False
        if self.verb is not None and self.verb != verb:
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class _Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str
    rt: ResourceType | None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    stream: Iterator[bytes] | None = None  # a watch: chunked, one event per line


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _error_response(exc: ApiStatusError, headers: dict[str, str] | None = None) -> _Response:
    return _json_response(exc.code, _encode(exc.status()), headers)


def _verb(method: str, route: _Route | None, content_type: str) -> str:
    named = route is not None and route.name is not None
    if method == "GET":
        return "get" if named else "list"  # a list with watch=true is logged as "watch"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "apply" if content_type == APPLY_TYPE else "patch"
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return method.lower()


def _with_delete_options(query: dict[str, str], body: bytes) -> dict[str, str]:
    """Fold a DeleteOptions body (propagationPolicy, dryRun) into the query parameters."""
    if not body:
        return query
    try:
        options = json.loads(body)
    except ValueError:
        return query
    if not isinstance(options, dict):
        return query
    merged = dict(query)
    if isinstance(options.get("propagationPolicy"), str):
        merged.setdefault("propagationPolicy", options["propagationPolicy"])
    if options.get("dryRun") == ["All"]:
        merged.setdefault("dryRun", "All")
    return merged


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, api: FakeKubeAPI) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up (tests drop connections on purpose)."""

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def _fake(self) -> _Server:
        server = self.server
        assert isinstance(server, _Server)
        return server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._fake.connections_lock:
            self._fake.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self._fake.connections_lock:
                self._fake.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        resp = self._fake.api._handle(
            self.command,
            self.path,
            self.headers.get("Content-Type", ""),
            body,
            self.headers.get("Authorization", ""),
        )
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            phrase = HTTPStatus(resp.status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {resp.status} {phrase}"]
        headers = {"Cache-Control": "no-cache, private", **resp.headers}
        if resp.stream is not None:
            self._stream(lines, headers, resp.stream)
            return
        headers["Content-Length"] = str(len(resp.body))
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + resp.body)

    def _stream(self, lines: list[str], headers: dict[str, str], events: Iterator[bytes]) -> None:
        """A watch response: chunked transfer, flushed per event, until it ends or we stop."""
        headers["Transfer-Encoding"] = "chunked"
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        self.close_connection = True
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            self.wfile.flush()
            for line in events:
                if self._fake.api.stopping.is_set():
                    break
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away: the watch ends with it
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()


class FakeKubeAPI:
    """In-memory kube-apiserver on 127.0.0.1 for lightkube-based tests.

    Use as a context manager (or start/stop). Arrange and assert through put/get/list/remove,
    which bypass HTTP and are not logged; every HTTP request is recorded in `requests`.

    Authentication is by bearer token (`tokens`; an unknown one answers 401, no token at all
    is system:anonymous). Authorization allows everything until `enable_rbac()`, after which
    it follows the RBAC objects in the store like kube-apiserver does; `forbid()` denies on
    top of either.

    The profile controller reconciles asynchronously (`controller_delay` seconds after a
    write) unless told otherwise; `controller_settings` picks its principals and mesh mode.
    """

    def __init__(
        self,
        *,
        profile_controller: str = "async",
        controller_delay: float = DEFAULT_DELAY,
        controller_settings: ControllerSettings = UPSTREAM,
        page_size_cap: int | None = None,
        user: str = DEFAULT_USER,
    ) -> None:
        self.store = Store()
        self.profile_controller = ProfileController(
            self.store,
            mode=profile_controller,
            delay=controller_delay,
            settings=controller_settings,
        )
        self.page_size_cap = page_size_cap
        self.user = user
        default = service_account(*user.split(":")[2:4]) if user.count(":") == 3 else None
        self.tokens: dict[str, UserInfo] = {DEFAULT_TOKEN: default or UserInfo(user)}
        self.rbac: RBACAuthorizer | None = None
        self.url = ""
        self.requests: list[RequestRecord] = []
        self._faults: list[Fault] = []
        self._forbidden: set[tuple[str, str]] = set()
        self._meta_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: pathlib.Path | None = None
        self._clients: list[Client] = []
        self.stopping = threading.Event()
        for ns in DEFAULT_NAMESPACES:
            self.store.put_raw({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubeAPI:
        """Start serving on a random port; returns self for chaining."""
        if self._server is not None:
            return self
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-kube-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server, close open connections and clients, remove temp files."""
        self.stopping.set()
        with self.store.changed:
            self.store.closed = True
            self.store.changed.notify_all()  # wake open watches so they end
        self.profile_controller.stop()
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def write_kubeconfig(
        self, path: str | pathlib.Path, *, token: str = DEFAULT_TOKEN
    ) -> pathlib.Path:
        """Write a kubeconfig (one cluster/context/user with `token`) pointing at this server."""
        if not self.url:
            raise RuntimeError("start() the fake API before writing a kubeconfig")
        target = pathlib.Path(path)
        if target.is_dir():
            target = target / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            # plain HTTP; skipping TLS verification spares loading the CA bundle per client
            "clusters": [
                {"name": "fake", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}
            ],
            "users": [{"name": "fake", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": "default"},
                }
            ],
            "current-context": "fake",
            "preferences": {},
        }
        target.write_text(yaml.safe_dump(config))
        return target

    def client(self, *, token: str = DEFAULT_TOKEN) -> Client:
        """Return a real lightkube Client for this server (closed again by stop())."""
        if self._tmpdir is None:
            self._tmpdir = pathlib.Path(tempfile.mkdtemp(prefix="fake-kube-"))
        path = self.write_kubeconfig(
            self._tmpdir / f"kubeconfig-{len(self._clients)}", token=token
        )
        client = Client(KubeConfig.from_file(path), field_manager=None, trust_env=False)
        self._clients.append(client)
        return client

    # ------------------------------------------------------------------ authentication, RBAC

    def add_token(self, token: str, user: UserInfo) -> None:
        """Let `token` authenticate as `user` (see service_account())."""
        with self._meta_lock:
            self.tokens[token] = user

    def revoke_token(self, token: str) -> None:
        """Make `token` invalid: requests with it answer 401 Unauthorized."""
        with self._meta_lock:
            self.tokens.pop(token, None)

    def enable_rbac(self, *objects: JSONDict) -> None:
        """Authorize by RBAC from now on, from the Roles and bindings in the store.

        Stores kube-apiserver's bootstrap roles, Kubeflow's kubeflow-admin/edit/view
        ClusterRoles and then `objects` (e.g. the documents of docs/rbac.yaml).
        """
        with self.store.lock:
            for obj in (*BOOTSTRAP_RBAC, *KUBEFLOW_CLUSTER_ROLES):
                if self.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) is None:
                    self.store.put_raw(obj)
            for obj in objects:
                self.store.put_raw(obj)
            self.rbac = RBACAuthorizer(self.store)

    # ------------------------------------------------------------------ direct store access

    def put(self, obj: JSONDict) -> JSONDict:
        """Create or overwrite an object without HTTP, validation or logging.

        Fills uid/resourceVersion/creationTimestamp; the profile controller still reacts
        in "sync" mode, like it would to any write in a real cluster.
        """
        with self.store.lock:
            rt, version = self.store.resolve(str(obj.get("apiVersion")), str(obj.get("kind")))
            stored = self.store.put_raw(obj)
            self.profile_controller.flush()
            return clone(render_object(rt, version, stored))

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> JSONDict | None:
        """Return a copy of a stored object (served at api_version) or None."""
        rt, version = self.store.resolve(api_version, kind)
        obj = self.store.get_obj(rt, namespace if rt.namespaced else None, name)
        return clone(render_object(rt, version, obj)) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[JSONDict]:
        """Return copies of stored objects, sorted by namespace then name."""
        rt, version = self.store.resolve(api_version, kind)
        objs = self.store.list_objs(rt, namespace if rt.namespaced else None)
        return [clone(render_object(rt, version, o)) for o in objs]

    def remove(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete an object without HTTP (no-op when absent); cascades like a real delete."""
        with self.store.lock:
            rt, _ = self.store.resolve(api_version, kind)
            self.store.remove_raw(rt, namespace if rt.namespaced else None, name)
            self.profile_controller.flush()

    def install(self, resource: ResourceType) -> None:
        """Serve one more resource type (or bring back an uninstalled CRD)."""
        self.store.install(resource)

    def uninstall(self, group: str, plural: str) -> None:
        """Simulate a missing CRD: its objects go and all its URLs answer 404."""
        with self.store.lock:
            self.store.uninstall(group, plural)
            self.profile_controller.flush()

    def expire_continue_tokens(self) -> None:
        """Make pending LIST continue tokens answer 410 Expired (etcd compaction)."""
        self.store.expire_snapshots()

    # ------------------------------------------------------------------ request log, faults

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._meta_lock:
            self.requests.clear()

    def count(self, verb: str | None = None, plural: str | None = None) -> int:
        """Count logged requests by verb and/or plural ("list" counts each page)."""
        with self._meta_lock:
            return sum(
                1
                for r in self.requests
                if (verb is None or r.verb == verb) and (plural is None or r.plural == plural)
            )

    def add_fault(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        verb: str | None = None,
        status: int | None = None,
        drop: bool = False,
        delay: float = 0.0,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        every: int = 1,
    ) -> Fault:
        """Inject a failure for matching requests (path is a regex searched in the URL path).

        status answers with a real-looking Status; drop closes the socket without a response;
        delay sleeps first. times=-1 keeps the fault forever; faults fire in insertion order.
        every=N fires on every Nth matching request only (sustained pressure, e.g. 429s).
        """
        fault = Fault(method, path, verb, status, drop, delay, times, headers, message, every)
        with self._meta_lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._meta_lock:
            self._faults.clear()

    def forbid(self, verb: str, plural: str) -> None:
        """Answer 403 for verb on a resource ("apply" is RBAC "patch"; "*" is a wildcard)."""
        with self._meta_lock:
            self._forbidden.add(("patch" if verb == "apply" else verb, plural))

    def unforbid(self, verb: str, plural: str) -> None:
        """Undo forbid()."""
        with self._meta_lock:
            self._forbidden.discard(("patch" if verb == "apply" else verb, plural))

    def _take_fault(self, method: str, path: str, verb: str) -> Fault | None:
        with self._meta_lock:
            for fault in self._faults:
                if fault.active and fault.matches(method, path, verb):
                    fault.seen += 1
                    if (fault.seen - 1) % max(1, fault.every):
                        continue
                    fault.hits += 1
                    return fault
        return None

    def _log(self, record: RequestRecord) -> None:
        with self._meta_lock:
            self.requests.append(record)

    # ------------------------------------------------------------------ HTTP handling

    def _route(self, path: str) -> _Route | None:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if not rest:
            return None
        if len(rest) >= 3 and rest[0] == "namespaces":
            rt = self.store.lookup(group, version, rest[2])
            if (rt is not None and rt.namespaced) or (rt is None and rest[2] != "status"):
                if len(rest) > 5:
                    return None
                name = rest[3] if len(rest) > 3 else None
                sub = rest[4] if len(rest) > 4 else ""
                return _Route(group, version, rest[2], rest[1], name, sub, rt)
        if len(rest) > 3:
            return None
        rt = self.store.lookup(group, version, rest[0])
        if rt is not None and rt.namespaced and len(rest) > 1:
            rt = None  # a namespaced kind addressed without a namespace does not exist
        name = rest[1] if len(rest) > 1 else None
        return _Route(group, version, rest[0], None, name, rest[2] if len(rest) > 2 else "", rt)

    def _handle(
        self, method: str, raw_path: str, content_type: str, body: bytes, authorization: str = ""
    ) -> _Response:
        path, _, qs = raw_path.partition("?")
        query = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        ctype = content_type.split(";")[0].strip().lower()
        route = self._route(path)
        verb = _verb(method, route, ctype)
        if verb == "list" and query.get("watch") in ("true", "1"):
            verb = "watch"
        record = RequestRecord(method, path, query, ctype, 0, verb, body=body)
        if route is not None:
            record.plural, record.namespace = route.plural, route.namespace
            record.name, record.subresource = route.name, route.subresource
        user = self._authenticate(authorization)
        if user is None:
            resp = _json_response(401, _encode(UNAUTHORIZED_STATUS))
        else:
            record.user = user.name
            fault = self._take_fault(method, path, verb)
            resp = self._faulted(fault, route, verb, user) if fault is not None else None
            if resp is None:
                resp = self._serve_locked(route, method, verb, query, ctype, body, user)
        record.status = 0 if resp.drop else resp.status
        self._log(record)
        return resp

    def _authenticate(self, authorization: str) -> UserInfo | None:
        """The bearer token's user; anonymous without one; None (401) for an unknown one."""
        scheme, _, token = authorization.partition(" ")
        if not authorization:
            return ANONYMOUS_USER
        with self._meta_lock:
            return self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None

    def _faulted(
        self, fault: Fault, route: _Route | None, verb: str, user: UserInfo
    ) -> _Response | None:
        if fault.delay > 0:
            time.sleep(fault.delay)
        if fault.drop:
            return _Response(0, drop=True)
        if fault.status is None:
            return None
        headers = dict(fault.headers or {})
        exc = self._fault_error(fault.status, fault.message, route, verb, user)
        retry_after = headers.get("Retry-After")
        if retry_after is not None and retry_after.isdigit():
            exc.details["retryAfterSeconds"] = int(retry_after)
        return _error_response(exc, headers)

    def _fault_error(
        self, code: int, message: str | None, route: _Route | None, verb: str, user: UserInfo
    ) -> ApiStatusError:
        rt = route.rt if route is not None else None
        if message is None and rt is not None and route is not None and route.name is not None:
            if code == 404:
                return error_not_found(rt, route.name)
            if code == 409:
                return error_modified(rt, route.name)
        if code == 403 and message is None and route is not None:
            return _forbidden_error(route, "patch" if verb == "apply" else verb, user.name)
        return status_error(code, message)

    def _serve_locked(
        self,
        route: _Route | None,
        method: str,
        verb: str,
        query: dict[str, str],
        ctype: str,
        body: bytes,
        user: UserInfo,
    ) -> _Response:
        with self.store.lock:
            try:
                resp = self._dispatch(route, method, verb, query, ctype, body, user)
            except ApiStatusError as exc:
                resp = _error_response(exc)
            except Exception as exc:  # a bug in the fake: surface it as a 500 with the trace
                trace = traceback.format_exc(limit=5)
                resp = _error_response(status_error(500, f"fake kube API error: {exc!r}\n{trace}"))
            self.profile_controller.flush()
        return resp

    def _dispatch(
        self,
        route: _Route | None,
        method: str,
        verb: str,
        query: dict[str, str],
        ctype: str,
        body: bytes,
        user: UserInfo,
    ) -> _Response:
        # Authorization comes first, as in kube-apiserver's filter chain: a caller without
        # permission gets 403 even for a resource that is not served.
        if route is not None:
            self._authorize(route, _rbac_verb(verb, query), user)
        if _is_access_review(route):
            if method != "POST":
                raise status_error(405)
            return self._access_review(load_body(body, ctype), user)
        if route is None or route.rt is None:
            raise ApiStatusError(404, "NotFound", NOT_FOUND_MESSAGE, {})
        rt = route.rt
        if route.subresource and not (route.subresource == "status" and rt.status_subresource):
            raise ApiStatusError(404, "NotFound", NOT_FOUND_MESSAGE, {})
        self._check_shape(route, rt, method)
        if verb == "watch":
            verb, query = "list", {**query, "watch": "true"}
        if verb in ("get", "list", "delete", "deletecollection"):
            return self._read_or_delete(route, rt, verb, _with_delete_options(query, body))
        if rt.key in BINDING_TYPES:
            self._confirm_no_escalation(route, rt, verb, load_body(body, ctype), user)
        if verb == "apply" and not route.subresource:
            self._authorize_create_on_apply(route, rt, user)
        return self._write(route, rt, verb, query, ctype, body)

    @staticmethod
    def _check_shape(route: _Route, rt: ResourceType, method: str) -> None:
        not_allowed = status_error(405)
        if route.subresource and method not in ("GET", "PUT", "PATCH"):
            raise not_allowed
        named_only = method in ("PUT", "PATCH")
        if (named_only and route.name is None) or (method == "POST" and route.name is not None):
            raise not_allowed
        cluster_wide = rt.namespaced and route.namespace is None
        if cluster_wide and method != "GET":
            raise not_allowed

    def _read_or_delete(
        self, route: _Route, rt: ResourceType, verb: str, query: dict[str, str]
    ) -> _Response:
        store, version = self.store, route.version
        if verb == "get":
            obj = store.get_obj(rt, route.namespace, route.name or "")
            if obj is None:
                raise error_not_found(rt, route.name or "")
            return _json_response(200, _encode(render_object(rt, version, obj)))
        if verb == "list":
            if query.get("watch") in ("true", "1"):
                stream = store.watch(rt, version, route.namespace, query)
                return _Response(200, headers={"Content-Type": "application/json"}, stream=stream)
            data = store.list_bytes(rt, version, route.namespace, query, self.page_size_cap)
            return _json_response(200, data)
        if verb == "delete":
            obj = store.delete(
                rt,
                route.namespace,
                route.name or "",
                propagation=query.get("propagationPolicy"),
                dry_run=query.get("dryRun") == "All",
            )
            return _json_response(200, _encode(render_object(rt, version, obj)))
        return _json_response(200, store.delete_collection(rt, version, route.namespace, query))

    def _write(
        self,
        route: _Route,
        rt: ResourceType,
        verb: str,
        query: dict[str, str],
        ctype: str,
        body: bytes,
    ) -> _Response:
        store, version, ns, name = self.store, route.version, route.namespace, route.name or ""
        manager = query.get("fieldManager") or "unknown"
        dry_run = query.get("dryRun") == "All"
        code = 200
        if verb == "create":
            obj = store.create(
                rt, version, ns, load_body(body, ctype), manager=manager, dry_run=dry_run
            )
            code = 201
        elif verb == "update":
            obj = store.replace(
                rt,
                version,
                ns,
                name,
                load_body(body, ctype),
                manager=manager,
                subresource=route.subresource,
                dry_run=dry_run,
            )
        elif verb == "apply":
            if not query.get("fieldManager"):
                raise status_error(400, "PATCH /apply requires fieldManager to be set")
            obj, created = store.apply(
                rt,
                version,
                ns,
                name,
                load_body(body, ctype),
                manager=manager,
                force=query.get("force") == "true",
                subresource=route.subresource,
                dry_run=dry_run,
            )
            code = 201 if created else 200
        else:
            obj = store.patch(
                rt,
                version,
                ns,
                name,
                ctype,
                body,
                manager=manager,
                subresource=route.subresource,
                dry_run=dry_run,
            )
        return _json_response(code, _encode(render_object(rt, version, obj)))

    def _decide(self, attrs: Attributes) -> tuple[bool, str]:
        """forbid() first, then RBAC when enabled (else everything is allowed)."""
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        with self._meta_lock:
            forbidden = set(self._forbidden)
        if any((v, r) in forbidden for v in (attrs.verb, "*") for r in (resource, "*")):
            return False, ""
        if self.rbac is None:
            return True, ""
        return self.rbac.authorize(attrs)

    def _authorize(self, route: _Route, verb: str, user: UserInfo) -> None:
        attrs = Attributes(
            user,
            verb,
            route.group,
            route.plural,
            route.subresource,
            route.namespace or "",
            route.name or "",
        )
        allowed, reason = self._decide(attrs)
        if not allowed:
            raise _forbidden_error(route, verb, user.name, reason)

    def _authorize_create_on_apply(self, route: _Route, rt: ResourceType, user: UserInfo) -> None:
        """Server-side apply that creates is also authorized as `create` (patch.go)."""
        if self.store.get_obj(rt, route.namespace, route.name or "") is not None:
            return
        attrs = Attributes(
            user, "create", rt.group, rt.plural, "", route.namespace or "", route.name or ""
        )
        allowed, reason = self._decide(attrs)
        if not allowed:
            message = f'{rt.group_resource} "{route.name}" is forbidden: {reason}'
            raise ApiStatusError(403, "Forbidden", message, rt.details(route.name))

    def _confirm_no_escalation(
        self, route: _Route, rt: ResourceType, verb: str, data: Any, user: UserInfo
    ) -> None:
        """Writing a binding needs `bind` on its role, or every permission in it."""
        if self.rbac is None or not isinstance(data, dict):
            return
        meta = data.get("metadata")
        name = route.name or str((meta if isinstance(meta, dict) else {}).get("name") or "")
        old = self.store.get_obj(rt, route.namespace, name) if name else None
        role_ref = (old or {}).get("roleRef") if verb == "patch" else data.get("roleRef")
        if not isinstance(role_ref, dict):
            return  # validation rejects it
        try:
            error = self.rbac.escalation_error(user, route.namespace or "", role_ref)
        except KeyError:
            roles = self.store.type_for(
                RBAC_GROUP, "clusterroles" if role_ref.get("kind") == "ClusterRole" else "roles"
            )
            assert roles is not None
            raise error_not_found(roles, str(role_ref.get("name"))) from None
        if error is not None:
            message = f'{rt.group_resource} "{name}" is forbidden: {error}'
            raise ApiStatusError(403, "Forbidden", message, rt.details(name))

    def _access_review(self, review: Any, user: UserInfo) -> _Response:
        """SelfSubjectAccessReview: the caller's own permission, from the same rules."""
        spec = review.get("spec") if isinstance(review, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        attributes = spec.get("resourceAttributes")
        if not isinstance(attributes, dict) or spec.get("nonResourceAttributes") is not None:
            raise ApiStatusError(
                422,
                "Invalid",
                f'SelfSubjectAccessReview.{AUTHORIZATION_GROUP} "" is invalid: '
                f'spec.resourceAttributes: Invalid value: "null": {_ONE_OF_ATTRIBUTES}',
                {
                    "group": AUTHORIZATION_GROUP,
                    "kind": "SelfSubjectAccessReview",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": f'Invalid value: "null": {_ONE_OF_ATTRIBUTES}',
                            "field": "spec.resourceAttributes",
                        }
                    ],
                },
            )
        attrs = Attributes(
            user,
            str(attributes.get("verb") or ""),
            str(attributes.get("group") or ""),
            str(attributes.get("resource") or ""),
            str(attributes.get("subresource") or ""),
            str(attributes.get("namespace") or ""),
            str(attributes.get("name") or ""),
        )
        allowed, reason = self._decide(attrs)
        status: JSONDict = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        answer = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": f"{AUTHORIZATION_GROUP}/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        return _json_response(201, _encode(answer))


# Exactly kube-apiserver's body for a bearer token it does not accept.
UNAUTHORIZED_STATUS = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
BINDING_TYPES = frozenset({(RBAC_GROUP, "rolebindings"), (RBAC_GROUP, "clusterrolebindings")})
_ONE_OF_ATTRIBUTES = "exactly one of nonResourceAttributes or resourceAttributes must be specified"


def _is_access_review(route: _Route | None) -> bool:
    return (
        route is not None
        and (route.group, route.version, route.plural)
        == (AUTHORIZATION_GROUP, "v1", ACCESS_REVIEW)
        and route.namespace is None
        and route.name is None
    )


def _rbac_verb(verb: str, query: dict[str, str]) -> str:
    """The verb RBAC sees: apply is a PATCH; a list with watch=true is `watch`."""
    if verb == "apply":
        return "patch"
    if verb == "list" and query.get("watch") in ("true", "1"):
        return "watch"
    return verb


def _forbidden_error(route: _Route, verb: str, user: str, reason: str = "") -> ApiStatusError:
    """The authorization filter's 403 (responsewriters.Forbidden), worded like the real one."""
    resource = f"{route.plural}/{route.subresource}" if route.subresource else route.plural
    group_resource = f"{route.plural}.{route.group}" if route.group else route.plural
    subject = f'{group_resource} "{route.name}"' if route.name else group_resource
    scope = f'in the namespace "{route.namespace}"' if route.namespace else "at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource '
        f'"{resource}" in API group "{route.group}" {scope}'
    )
    if reason:
        message += f": {reason}"
    details: JSONDict = {"name": route.name} if route.name else {}
    if route.group:
        details["group"] = route.group
    details["kind"] = route.plural
    return ApiStatusError(403, "Forbidden", message, details)
