"""The imperative shell's Kubernetes side: observe with a few lists, apply a plan.

Everything here is I/O through lightkube; every decision was made by the planner.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from lightkube import ALL_NS, ApiError, Client
from lightkube.core import generic_client
from lightkube.core.selector import build_selector
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import PatchType

from profiles_automator.sync.kfam import (
    MANAGER_NAME,
    OWNER_AUTHORIZATION_POLICY,
    OWNER_OBJECT_NAMES,
)
from profiles_automator.sync.observe import CompactDecoder, iter_pages
from profiles_automator.sync.planner import Change
from profiles_automator.sync.state import Obj, ObservedState, OwnerPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

Profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
# Generic (dict-backed) classes for the built-in kinds too: the cluster-wide
# lists return tens of thousands of objects, and decoding them into typed
# models costs more than the rest of a no-op sync. The planner wants dicts.
Namespace = create_global_resource("", "v1", "Namespace", "namespaces")
RoleBinding = create_namespaced_resource(
    "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"
)
AuthorizationPolicy = create_namespaced_resource(
    "security.istio.io", "v1beta1", "AuthorizationPolicy", "authorizationpolicies"
)
RESOURCES: dict[str, Any] = {
    "Profile": Profile,
    "Namespace": Namespace,
    "RoleBinding": RoleBinding,
    "AuthorizationPolicy": AuthorizationPolicy,
}
_CRD_HINTS = {
    "Profile": "Profile CRD not found: is Kubeflow's profile controller deployed?",
    "AuthorizationPolicy": "AuthorizationPolicy CRD not found: is Istio deployed?",
}
_PLURALS = {
    "Profile": "profiles.kubeflow.org",
    "Namespace": "namespaces",
    "RoleBinding": "rolebindings.rbac.authorization.k8s.io",
    "AuthorizationPolicy": "authorizationpolicies.security.istio.io",
    "SelfSubjectAccessReview": "selfsubjectaccessreviews.authorization.k8s.io",
}

# lightkube re-exports whichever httpx flavour it was built on; catch that one.
_HTTPX: Any = getattr(generic_client, "httpx")  # noqa: B009 - not in its __all__
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (_HTTPX.TransportError,)
HTTP_ERRORS: tuple[type[BaseException], ...] = (_HTTPX.HTTPError,)
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
_WRITE_RETRYABLE = RETRYABLE_STATUS - {429}  # writes wait out a 429 with the Throttle
# A list is read-only: a conflict means nothing there, and 410 (a continue
# token expired mid-pagination) just means starting the list over.
LIST_RETRYABLE_STATUS = (RETRYABLE_STATUS - {409}) | {410}
LIST_PAGE_SIZE = 1000  # kubectl uses 500; fewer round trips matter at 20,000 objects


class ClusterError(Exception):
    """The cluster cannot be read or written at all; says what went wrong.

    ``missing_permissions`` (a 403) and ``unauthenticated`` (a 401: the credentials
    themselves are not valid) let each front end add its own remedy: the charm names
    ``juju trust`` or a fresh pod token, the CLI the kubeconfig and docs/rbac.yaml.
    """

    def __init__(
        self,
        message: str,
        *,
        missing_permissions: bool = False,
        unauthenticated: bool = False,
        api_said: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.missing_permissions = missing_permissions
        self.unauthenticated = unauthenticated
        self.api_said = api_said

    def __str__(self) -> str:
        return self.with_fix("")

    def with_fix(self, fix: str) -> str:
        """``what went wrong: what to do (the API said: ...)``."""
        said = f" (the API said: {self.api_said})" if self.api_said else ""
        return f"{self.message}{': ' + fix if fix else ''}{said}"


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, ApiError):
        return exc.status.code
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        return exc.status.message or str(exc)
    return str(exc) or type(exc).__name__


def diagnose(kind: str, verb: str, exc: BaseException) -> ClusterError:
    """Turn a failed call into the sentence an admin needs."""
    status = _status(exc)
    if status == 404 and kind in _CRD_HINTS:
        return ClusterError(_CRD_HINTS[kind])
    if status == 401:
        return ClusterError(
            f"the Kubernetes API rejected the credentials (HTTP 401 Unauthorized) to {verb} "
            f"{_PLURALS[kind]}: the token is invalid or expired, or belongs to another cluster",
            unauthenticated=True,
        )
    if status == 403:
        return ClusterError(
            f"missing permissions to {verb} {_PLURALS[kind]}",
            missing_permissions=True,
            api_said=_message(exc),
        )
    if isinstance(exc, TRANSPORT_ERRORS):
        return ClusterError(f"cannot reach the Kubernetes API to {verb} {_PLURALS[kind]}: {exc}")
    return ClusterError(f"cannot {verb} {_PLURALS[kind]} (HTTP {status}): {_message(exc)}")


def _page_fetcher(
    client: Client, kind: str, namespace: str | None, fields: dict[str, Any] | None
) -> Callable[[str | None], bytes]:
    """GET one list page through lightkube's own request path, returning the raw JSON.

    ``client.list`` would decode every object whole (managedFields and all); the
    compact decoder reads only what the planner compares.
    """
    generic = client._client  # lightkube's request builder, auth and connection pool

    def fetch(token: str | None) -> bytes:
        params: dict[str, Any] = {
            "limit": LIST_PAGE_SIZE,
            "continue": token,
            "fieldSelector": build_selector(fields, for_fields=True) if fields else None,
        }
        request = generic.prepare_request(
            "list", res=RESOURCES[kind], namespace=namespace, params=params
        )
        response = generic.send(generic.build_adapter_request(request))
        generic.raise_for_status(response)
        return response.content

    return fetch


def _list(
    client: Client,
    kind: str,
    retry: RetryPolicy | None = None,
    namespace: str | None = None,
    fields: dict[str, Any] | None = None,
) -> list[Obj]:
    """One paginated list, retried whole on a transient error, or a diagnosis."""
    return _list_at_version(client, kind, retry, namespace, fields)[0]


def _list_at_version(
    client: Client,
    kind: str,
    retry: RetryPolicy | None = None,
    namespace: str | None = None,
    fields: dict[str, Any] | None = None,
) -> tuple[list[Obj], str]:
    """``_list`` and the list's resourceVersion, where a watch picks up after it."""

    def list_all() -> tuple[list[Obj], str]:
        objects: list[Obj] = []
        decoder = CompactDecoder(kind)
        for page in iter_pages(_page_fetcher(client, kind, namespace, fields), decoder):
            objects.extend(page)
        return objects, decoder.resource_version

    try:
        return _with_retries(list_all, retry or RetryPolicy(), time.sleep, LIST_RETRYABLE_STATUS)
    except HTTP_ERRORS as exc:
        raise diagnose(kind, "list", exc) from exc


def observe(client: Client, retry: RetryPolicy | None = None) -> ObservedState:
    """Four cluster-wide paginated lists, whatever the number of profiles."""
    return ObservedState.from_lists(
        profiles=_list(client, "Profile", retry),
        namespaces=_list(client, "Namespace", retry),
        role_bindings=_list(client, "RoleBinding", retry, namespace=ALL_NS),
        authorization_policies=_list(client, "AuthorizationPolicy", retry, namespace=ALL_NS),
    )


def list_profiles(client: Client, retry: RetryPolicy | None = None) -> list[Obj]:
    """Profiles only (stale listing needs nothing else)."""
    return _list(client, "Profile", retry)


def get_namespace(client: Client, name: str, retry: RetryPolicy | None = None) -> Obj | None:
    """One Namespace, or None when it does not exist (a field-selected list: no `get` needed)."""
    found = _list(client, "Namespace", retry, fields={"metadata.name": name})
    return found[0] if found else None


_OWNER_POLICY_FIELDS: Any = {"metadata.name": OWNER_AUTHORIZATION_POLICY}


def list_owner_policies(
    client: Client, retry: RetryPolicy | None = None
) -> tuple[dict[str, OwnerPolicy], str]:
    """Every namespace's owner policy (one field-selected list) and the list's resourceVersion.

    The resourceVersion is where a watch picks up, so nothing made in between is missed.
    Decoded page by page into compact objects like the other lists: of each policy only
    the spec and the annotations OwnerPolicy reads are kept.
    """
    objs, version = _list_at_version(
        client, "AuthorizationPolicy", retry, namespace=ALL_NS, fields=_OWNER_POLICY_FIELDS
    )
    found = {}
    for obj in objs:
        policy = OwnerPolicy.from_object(obj)
        if policy is not None:
            found[obj["metadata"].get("namespace", "")] = policy
    return found, version


class WatchExpiredError(Exception):
    """The watch's resourceVersion was compacted away (410): list again, then watch."""


def watch_owner_policies(
    client: Client, resource_version: str, timeout: float
) -> Iterator[tuple[str, Obj]]:
    """One watch on owner policies from ``resource_version``, ended after ``timeout`` seconds.

    lightkube's own watch re-opens the stream forever; a sync needs a watch that
    ends, so this one request goes through lightkube's request builder and is read
    here, one JSON event per line. BOOKMARKs are yielded too (they move the version on).
    """
    generic: Any = getattr(client, "_client")  # noqa: B009 - lightkube's request builder
    request = generic.prepare_request(
        "list",
        res=AuthorizationPolicy,
        namespace=ALL_NS,
        watch=True,
        params={
            "fieldSelector": f"metadata.name={OWNER_AUTHORIZATION_POLICY}",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, math.ceil(timeout))),
        },
    )
    limits = _HTTPX.Timeout(10.0, read=timeout + 10.0)
    http = generic._client.build_request(
        request.method, request.url, params=request.params, timeout=limits
    )
    response = generic.send(http, stream=True)
    try:
        if response.status_code == 410:
            raise WatchExpiredError(f"HTTP 410 for resourceVersion {resource_version}")
        if response.status_code >= 400:
            response.read()
            generic.raise_for_status(response)  # an ApiError, like every other call
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise WatchExpiredError(obj.get("message", "too old resource version"))
                raise ClusterError(f"watching owner policies failed: {obj.get('message')}")
            yield kind, obj
    finally:
        response.close()


@dataclass(frozen=True)
class Failure:
    """A change that did not go through, with what the API said."""

    change: Change
    status: int | None
    message: str

    def __str__(self) -> str:
        code = f"HTTP {self.status}" if self.status else "no response"
        return f"{self.change.action} {self.change.ident}: {code}: {self.message}"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries so one hook never runs for long.

    A 429 (API Priority and Fairness asking us to slow down) is not an error: writes
    wait for its Retry-After, up to ``max_retry_after`` seconds, and are retried up
    to ``throttled_attempts`` times without spending ``attempts``.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    throttled_attempts: int = 30
    max_retry_after: float = 30.0

    def delay(self, attempt: int, exc: BaseException) -> float:
        """Exponential backoff, honouring a server's Retry-After when it is short."""
        retry_after = _retry_after(exc)
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return min(self.base_delay * 2**attempt, self.max_delay)

    def throttle_delay(self, exc: BaseException) -> float:
        """How long a 429 asks every writer to pause (1 s when it does not say)."""
        retry_after = _retry_after(exc)
        return min(1.0 if retry_after is None else retry_after, self.max_retry_after)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response else None
    return float(value) if value and value.isdigit() else None


class Throttle:
    """Concurrency shared by one apply's workers: halved on a 429, regained step by step.

    Every worker also waits out the latest Retry-After before its next request, so a
    throttled API server sees the whole client back off, not one worker at a time.
    """

    def __init__(self, limit: int, sleep: Callable[[float], None], clock: Callable[[], float]):
        self.ceiling = self.limit = max(1, limit)
        self._sleep, self._clock = sleep, clock
        self._active = 0
        self._streak = 0
        self._not_before = 0.0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the current ``limit`` slots for a request."""
        with self._cond:
            while self._active >= self.limit:
                self._cond.wait()
            self._active += 1
            wait = self._not_before - self._clock()
        try:
            if wait > 0:
                self._sleep(wait)
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def throttled(self, pause: float) -> None:
        """A 429: halve the concurrency and make everyone wait ``pause`` seconds."""
        with self._cond:
            self.limit = max(1, self.limit // 2)
            self._streak = 0
            self._not_before = max(self._not_before, self._clock() + pause)

    def succeeded(self) -> None:
        """Additive increase: one more slot after a limit's worth of successes in a row."""
        with self._cond:
            self._streak += 1
            if self.limit < self.ceiling and self._streak >= self.limit:
                self.limit += 1
                self._streak = 0
                self._cond.notify_all()


def _with_retries(
    call: Callable[[], T],
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    statuses: frozenset[int] = RETRYABLE_STATUS,
) -> T:
    """Run ``call``, retrying dropped connections and the given statuses with backoff.

    The last error is raised unchanged once the attempts are spent or it is not transient.
    """
    for attempt in range(retry.attempts - 1):
        try:
            return call()
        except HTTP_ERRORS as exc:
            if not (isinstance(exc, TRANSPORT_ERRORS) or _status(exc) in statuses):
                raise
            log.info("retrying after %s", _message(exc))
            sleep(retry.delay(attempt, exc))
    return call()


def _delete(client: Client, change: Change) -> None:
    try:
        client.delete(RESOURCES[change.kind], change.name, namespace=change.namespace)
    except ApiError as exc:
        if exc.status.code != 404:  # already gone is what we wanted
            raise


def _apply(client: Client, change: Change) -> None:
    resource = RESOURCES[change.kind]
    if change.remove_paths:
        ops = [{"op": "remove", "path": p} for p in change.remove_paths]
        try:
            client.patch(
                resource,
                change.name,
                ops,
                namespace=change.namespace,
                patch_type=PatchType.JSON,
                field_manager=MANAGER_NAME,
            )
        except ApiError as exc:
            if exc.status.code not in (404, 422):  # field or object already gone
                raise
    client.patch(
        resource,
        change.name,
        change.body,
        namespace=change.namespace,
        patch_type=PatchType.APPLY,
        field_manager=MANAGER_NAME,
        force=True,
    )


def execute(client: Client, change: Change) -> None:
    """One change, as the API needs it: SSA for writes, delete+create for replaces."""
    if change.action in ("delete", "replace"):
        _delete(client, change)
    if change.action != "delete":
        _apply(client, change)


def _attempt(
    client: Client,
    change: Change,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    throttle: Throttle,
) -> Failure | None:
    throttled = 0
    while True:
        with throttle.slot():
            try:
                _with_retries(lambda: execute(client, change), retry, sleep, _WRITE_RETRYABLE)
            except HTTP_ERRORS as exc:
                if _status(exc) == 429 and throttled < retry.throttled_attempts:
                    throttled += 1
                    log.info("throttled (429) on %s; backing off", change.ident)
                    throttle.throttled(retry.throttle_delay(exc))
                    continue
                log.warning("failed: %s: %s", change, _message(exc))
                return Failure(change, _status(exc), _message(exc))
        throttle.succeeded()
        return None


@dataclass(frozen=True)
class ApplyResult:
    """What went through and what did not."""

    applied: tuple[Change, ...]
    failures: tuple[Failure, ...]


def apply_changes(
    client: Client,
    changes: Sequence[Change],
    *,
    workers: int = 8,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ApplyResult:
    """Apply phase by phase; within a phase concurrently, each change isolated.

    Concurrency adapts to the API server: see Throttle and RetryPolicy.
    """
    retry = retry or RetryPolicy()
    applied: list[Change] = []
    failures: list[Failure] = []
    phases = sorted({c.phase for c in changes})
    throttle = Throttle(workers, sleep, clock)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for phase in phases:
            batch = [c for c in changes if c.phase == phase]
            batch, skipped = _hold_after_failures(batch, failures)
            failures.extend(skipped)
            outcomes = _bounded_map(
                pool, lambda c: (c, _attempt(client, c, retry, sleep, throttle)), batch, workers
            )
            for change, failure in outcomes:
                if failure is None:
                    applied.append(change)
                else:
                    failures.append(failure)
    return ApplyResult(tuple(applied), tuple(failures))


_QUEUED_PER_WORKER = 64


def _bounded_map(
    pool: ThreadPoolExecutor, call: Callable[[Any], T], items: Iterable[Any], workers: int
) -> Iterator[T]:
    """``pool.map`` (results in order) with at most ``_QUEUED_PER_WORKER`` calls per worker.

    ``pool.map`` submits a whole phase at once: at 10,000 profiles 200,000 futures,
    each with its lock and condition, held until the phase ends. The window is wide
    enough that one slow call at its head does not leave the workers idle.
    """
    window = _QUEUED_PER_WORKER * max(1, workers)
    queued: collections.deque[Future[T]] = collections.deque()
    try:
        for item in items:
            queued.append(pool.submit(call, item))
            if len(queued) >= window:
                yield queued.popleft().result()
        while queued:
            yield queued.popleft().result()
    finally:
        for future in queued:
            future.cancel()


def _resets_owner(change: Change) -> bool:
    """Deleting the owner's namespaceAdmin or ns-owner-access-istio (an owner change)."""
    return (
        change.action == "delete"
        and change.kind in ("RoleBinding", "AuthorizationPolicy")
        and change.name in OWNER_OBJECT_NAMES
    )


def _hold_after_failures(
    batch: list[Change], failures: list[Failure]
) -> tuple[list[Change], list[Failure]]:
    """Keep what a failure earlier in the run makes unsafe for later phases.

    Grants go first so a role change never leaves a gap: no revocation in a namespace
    where a grant failed. The owner's objects are deleted only for the profile
    controller to recreate them for the new owner: not when anything for that profile
    (its namespace annotation, the Profile, a grant) failed, or the old owner would be
    left with no access at all.
    """
    failed_grants = {
        f.change.namespace
        for f in failures
        if f.change.namespace and not f.change.removes_contributor_object
    }
    failed_profiles = failed_grants | {
        f.change.name for f in failures if f.change.kind in ("Namespace", "Profile")
    }
    held: list[Failure] = []
    kept: list[Change] = []
    for change in batch:
        if _resets_owner(change) and change.namespace in failed_profiles:
            held.append(Failure(change, None, _OWNER_KEPT))
        elif change.removes_contributor_object and change.namespace in failed_grants:
            held.append(Failure(change, None, _NOT_REVOKED))
        else:
            kept.append(change)
    return kept, held


_NOT_REVOKED = "not revoked: a grant in this namespace failed; the next run retries both"
_OWNER_KEPT = (
    "not reset: a change for this profile failed, so the current owner keeps access; "
    "the next run retries"
)


def delete_profiles(
    client: Client, names: Iterable[str], *, workers: int = 8, retry: RetryPolicy | None = None
) -> ApplyResult:
    """Delete Profile objects (Kubeflow then deletes their namespaces and data)."""
    changes = [Change("delete", "Profile", n, "stale profile deleted by an admin") for n in names]
    return apply_changes(client, changes, workers=workers, retry=retry)
