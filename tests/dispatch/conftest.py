"""Fixtures for the packed-charm tests: one staged charm per session, a unit per test.

`unit` is a `JujuUnit` of the staged charm wired to a fresh in-memory Kubernetes API server
(`kube`) and the GitHub imitation (`github`) holding examples/minimal on `main`, with the
smallest working config already set. A test arranges config and secrets on it, runs hooks and
actions, and asserts on the returned `Run` and on the fakes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dispatch.agent import JujuUnit, charm_python, stage_charm, unpack_charm
from tests.fakes.github_api import FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_PMR = (ROOT / "examples" / "minimal" / "pmr.yaml").read_bytes()
REPO = "org/pmr"


@pytest.fixture(scope="session")
def python() -> Path:
    return charm_python()


@pytest.fixture(scope="session")
def staged_charm(tmp_path_factory: pytest.TempPathFactory, python: Path) -> Path:
    """The charm directory, staged once per session (installing the pins takes a while).

    With CHARM_PATH set to a packed .charm (from `charmcraft pack`), that charm is unzipped
    and tested instead of a staging of the working tree.
    """
    target = tmp_path_factory.mktemp("staged-charm")
    if packed := os.environ.get("CHARM_PATH"):
        return unpack_charm(Path(packed), target)
    return stage_charm(target, python)


@pytest.fixture
def kube() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(profile_controller="sync") as api:
        yield api


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.commit(REPO, {"pmr.yaml": MINIMAL_PMR})
        yield fake


@pytest.fixture
def unit(
    staged_charm: Path,
    python: Path,
    tmp_path: Path,
    kube: FakeKubeAPI,
    github: FakeGitHub,
) -> JujuUnit:
    """The leader unit, configured for the fake repository."""
    juju = JujuUnit(
        staged_charm,
        tmp_path / "unit",
        python,
        kubeconfig=kube.write_kubeconfig(tmp_path / "kubeconfig"),
    )
    juju.configure(repository=REPO, github_api_url=github.api_url)
    return juju


def head(github: FakeGitHub, repo: str = REPO) -> str:
    return github.repos[repo].branches["main"]
