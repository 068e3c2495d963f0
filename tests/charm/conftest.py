"""Fixtures for the charm tests: a fake Kubernetes API, a fake GitHub, an ops.testing Context.

The charm runs unmodified: lightkube finds the fake API server through KUBECONFIG, and the
fetcher reaches the fake GitHub through the `github-api-url` option. Nothing of our own is
mocked; tests arrange state in the fakes and assert on the output State and on the fakes.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import ops
import pytest
from ops import testing

from charm import KubeflowProfilesAutomatorCharm
from tests.fakes.github_api import FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI
from tests.graph_fixtures import *  # noqa: F403 - the graph and graph_ca fixtures

ROOT = pathlib.Path(__file__).parents[2]
MINIMAL_PMR = (ROOT / "examples" / "minimal" / "pmr.yaml").read_bytes()
REPO = "org/pmr"
APP = "kubeflow-profiles-automator"
PROFILE = "ml-engineers"
OWNER = "admin@example.com"

PROFILE_API = ("kubeflow.org/v1", "Profile")
ROLE_BINDING_API = ("rbac.authorization.k8s.io/v1", "RoleBinding")
POLICY_API = ("security.istio.io/v1beta1", "AuthorizationPolicy")
WRITE_VERBS = ("create", "update", "apply", "patch", "delete", "deletecollection")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure a proxy from the environment never intercepts the fakes on 127.0.0.1."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def kube(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKubeAPI]:
    """The fake Kubernetes API, reachable by the charm through KUBECONFIG.

    The profile controller mode defaults to "sync"; parametrize indirectly to change it:
    ``@pytest.mark.parametrize("kube", ["manual"], indirect=True)``.
    """
    api = FakeKubeAPI(profile_controller=getattr(request, "param", "sync")).start()
    try:
        monkeypatch.setenv("KUBECONFIG", str(api.write_kubeconfig(tmp_path / "kubeconfig")))
        yield api
    finally:
        api.stop()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """The fake GitHub API, with REPO holding examples/minimal/pmr.yaml on `main`."""
    with FakeGitHub() as fake:
        fake.commit(REPO, {"pmr.yaml": MINIMAL_PMR})
        yield fake


@pytest.fixture
def ctx() -> testing.Context[KubeflowProfilesAutomatorCharm]:
    """The charm's Context; metadata, config and actions come from the project's YAML files."""
    return testing.Context(KubeflowProfilesAutomatorCharm)


@pytest.fixture
def config(github: FakeGitHub) -> dict[str, str | int | float | bool]:
    """The smallest working config: the fake repository."""
    return {"repository": REPO, "github-api-url": github.api_url}


def leader(config: dict[str, Any], **kwargs: Any) -> testing.State:
    """A leader unit's state with `config`."""
    return testing.State(leader=True, config=config, **kwargs)


def head(github: FakeGitHub, repo: str = REPO, branch: str = "main") -> str:
    """The commit SHA `branch` points to."""
    return github.repos[repo].branches[branch]


def in_sync(github: FakeGitHub, profiles: int = 1) -> ops.ActiveStatus:
    """The Active status of a clean sync of the current commit."""
    noun = "profile" if profiles == 1 else "profiles"
    return ops.ActiveStatus(f"{profiles} {noun} in sync @ {head(github)[:7]}")


def writes(kube: FakeKubeAPI) -> list[str]:
    """The write requests the fake API received, as ``VERB plural/name`` strings.

    A SelfSubjectAccessReview is POSTed but stores nothing, so it is not a write.
    """
    return [
        f"{r.verb} {r.plural}/{r.name}"
        for r in kube.requests
        if r.verb in WRITE_VERBS and r.plural != "selfsubjectaccessreviews"
    ]


def names(kube: FakeKubeAPI, api: tuple[str, str], namespace: str | None = None) -> list[str]:
    """Names of the objects of one kind in the fake cluster."""
    return [obj["metadata"]["name"] for obj in kube.list(*api, namespace=namespace)]


def contributor_names(kube: FakeKubeAPI, api: tuple[str, str], namespace: str) -> list[str]:
    """Names of the contributor objects (KFAM-annotated, not the owner's) in a namespace."""
    return [
        obj["metadata"]["name"]
        for obj in kube.list(*api, namespace=namespace)
        if obj["metadata"].get("name") not in ("namespaceAdmin", "ns-owner-access-istio")
        and "user" in (obj["metadata"].get("annotations") or {})
    ]


def profile_object(name: str, owner: str = OWNER) -> dict[str, Any]:
    """A Profile as someone other than the charm would have created it."""
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Profile",
        "metadata": {"name": name},
        "spec": {"owner": {"kind": "User", "name": owner}},
    }
