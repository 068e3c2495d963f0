"""Fixtures and helpers for the end-to-end engine tests.

The engine talks to the fake Kubernetes API server over real HTTP through a
lightkube Client built exactly as production builds it. Nothing of our own is
mocked: tests arrange the fake's store, run the engine and assert on the
stored objects and on the fake's request log.
"""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.model import PMR
from profiles_automator.sync.cluster import RetryPolicy
from profiles_automator.sync.engine import SyncSettings
from profiles_automator.sync.kfam import MANAGER_NAME
from tests.fakes.kube_api import FakeKubeAPI, RequestRecord
from tests.graph_fixtures import *  # noqa: F403 - the graph and graph_ca fixtures

RBAC = "rbac.authorization.k8s.io"
PROFILE = ("kubeflow.org/v1", "Profile")
NAMESPACE = ("v1", "Namespace")
ROLE_BINDING = (f"{RBAC}/v1", "RoleBinding")
POLICY = ("security.istio.io/v1beta1", "AuthorizationPolicy")
RESOURCE_QUOTA = ("v1", "ResourceQuota")

MANAGED = {"app.kubernetes.io/managed-by": "kubeflow-profiles-automator"}
GATEWAY = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
KFP_UI = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
OWNER_OBJECTS = ("namespaceAdmin", "ns-owner-access-istio")
OBSERVED = ["profiles", "namespaces", "rolebindings", "authorizationpolicies"]
WRITE_VERBS = frozenset({"create", "update", "apply", "patch", "delete", "deletecollection"})
REVIEWS = frozenset({"selfsubjectaccessreviews"})
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=0.05)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must never intercept the fake on 127.0.0.1."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[FakeKubeAPI]:
    """The fake API server, its profile controller synchronous unless a test asks otherwise.

    Parametrize indirectly with a mode (``"manual"``) or with FakeKubeAPI keyword
    arguments (``{"profile_controller": "async", "controller_delay": 1.0}``).
    """
    param = getattr(request, "param", "sync")
    options: dict[str, Any] = (
        dict(param) if isinstance(param, dict) else {"profile_controller": param}
    )
    options.setdefault("profile_controller", "sync")
    with FakeKubeAPI(**options) as fake:
        yield fake


@pytest.fixture
def kubeconfig(api: FakeKubeAPI, tmp_path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig file pointing at the fake."""
    return api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def client(kubeconfig: pathlib.Path) -> Iterator[Client]:
    """The engine's client, built like production builds it."""
    kube = Client(KubeConfig.from_file(kubeconfig), field_manager=MANAGER_NAME)
    yield kube
    kube.close()


@pytest.fixture
def settings() -> SyncSettings:
    """Default settings with retries fast enough for fault tests."""
    return SyncSettings(retry=FAST_RETRY)


# ---------------------------------------------------------------------------- PMR helpers


def load(text: str) -> PMR:
    """A PMR from inline YAML, through the real loader."""
    return load_pmr([Document("pmr.yaml", textwrap.dedent(text).encode())]).pmr


def many_profiles(count: int, contributors: int, *, role: str = "edit") -> str:
    """PMR text with ``count`` profiles ``team-NN`` of ``contributors`` users each."""
    lines = ["profiles:"]
    for i in range(count):
        lines += [
            f"  - name: team-{i:02d}",
            f"    owner: {{kind: User, name: owner{i}@example.com}}",
            "    contributors:" if contributors else "    contributors: []",
        ]
        lines += [
            f"      - {{name: user{j}@example.com, role: {role}}}" for j in range(contributors)
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- cluster helpers


def name_of(obj: dict[str, Any]) -> str:
    """metadata.name."""
    return obj["metadata"]["name"]


def names(api: FakeKubeAPI, kind: tuple[str, str], namespace: str | None = None) -> set[str]:
    """Names of the stored objects of one kind (in one namespace)."""
    return {name_of(o) for o in api.list(*kind, namespace)}


def contributor_names(api: FakeKubeAPI, kind: tuple[str, str], namespace: str) -> set[str]:
    """Names of KFAM contributor objects (``user`` annotation, not the owner's objects)."""
    return {
        name_of(o)
        for o in api.list(*kind, namespace)
        if name_of(o) not in OWNER_OBJECTS and "user" in (o["metadata"].get("annotations") or {})
    }


def get(api: FakeKubeAPI, kind: tuple[str, str], name: str, namespace: str | None = None) -> Any:
    """A stored object, failing the test when it is missing."""
    obj = api.get(*kind, name, namespace)
    assert obj is not None, f"{kind[1]} {namespace}/{name} is missing"
    return obj


def writes(api: FakeKubeAPI) -> list[RequestRecord]:
    """Every logged request that changes something (a POSTed access review stores nothing)."""
    return [r for r in api.requests if r.verb in WRITE_VERBS and r.plural not in REVIEWS]


def list_calls(api: FakeKubeAPI) -> list[str]:
    """The plural of each LIST call, its continuation pages not counted again."""
    return [r.plural for r in api.requests if r.verb == "list" and "continue" not in r.query]


def list_pages(api: FakeKubeAPI, plural: str) -> int:
    """How many LIST pages of one resource were requested."""
    return sum(1 for r in api.requests if r.verb == "list" and r.plural == plural)


def write_index(api: FakeKubeAPI, verb: str, plural: str, name: str) -> int:
    """Position in the request log of the first successful write of one object."""
    for index, record in enumerate(api.requests):
        if (record.verb, record.plural, record.name) == (verb, plural, name) and (
            200 <= record.status < 300
        ):
            return index
    raise AssertionError(f"no successful {verb} of {plural}/{name} in the request log")


def dashboard_binding(namespace: str, user: str, role: str) -> dict[str, Any]:
    """A contributor RoleBinding as KFAM (the dashboard) makes it: no managed-by label."""
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": dashboard_name(user, role),
            "namespace": namespace,
            "annotations": {"user": user, "role": role},
        },
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"kubeflow-{role}"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}],
    }


def dashboard_policy(namespace: str, user: str, role: str) -> dict[str, Any]:
    """A contributor AuthorizationPolicy as KFAM (the dashboard) makes it."""
    return {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "AuthorizationPolicy",
        "metadata": {
            "name": dashboard_name(user, role),
            "namespace": namespace,
            "annotations": {"user": user, "role": role},
        },
        "spec": {
            "rules": [
                {
                    "from": [{"source": {"principals": [GATEWAY, KFP_UI]}}],
                    "when": [{"key": "request.headers[kubeflow-userid]", "values": [user]}],
                }
            ]
        },
    }


def dashboard_name(user: str, role: str) -> str:
    """KFAM's name for simple ``name@domain.tld`` users (written out independently)."""
    return "user-" + user.replace("@", "-").replace(".", "-").lower() + f"-clusterrole-{role}"


def put_all(api: FakeKubeAPI, objects: Iterable[dict[str, Any]]) -> None:
    """Arrange objects directly in the store (not logged)."""
    for obj in objects:
        api.put(obj)


def essence(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what the server fills in (uid, versions, managedFields, status)."""
    meta = obj["metadata"]
    kept = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return {**body, "metadata": kept}
