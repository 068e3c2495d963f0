"""Fixtures for the integration tests against a real Juju controller.

Requirements (the tests skip cleanly when there is no reachable Juju controller):

* a Juju >= 3.6 controller on a Kubernetes cloud where Charmed Kubeflow's profile controller
  (kubeflow-profiles) and Istio are deployed, so the Profile and AuthorizationPolicy CRDs exist;
* the packed charm: CHARM_PATH, or exactly one ``*.charm`` in the working directory;
* PMR_REPOSITORY: a GitHub repository (org/repo) the cluster can reach whose PMR_PATH (default
  examples/minimal/pmr.yaml, i.e. a push of this project) holds the minimal example PMR, at
  PMR_BRANCH (default main); PMR_TOKEN if it is private;
* a kubeconfig for the same cluster (KUBECONFIG or ~/.kube/config) for the checks that read
  the cluster directly; those tests skip without one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from lightkube import ApiError, Client
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_global_resource

APP = "kubeflow-profiles-automator"
PROFILE = "ml-engineers"
STALE = "pmr-it-stale-profile"

if TYPE_CHECKING:
    import jubilant

Profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")


@pytest.fixture(scope="session")
def charm() -> pathlib.Path:
    """The packed charm under test."""
    path = os.environ.get("CHARM_PATH")
    if not path:
        charms = sorted(pathlib.Path().glob("*.charm"))
        if len(charms) != 1:
            pytest.fail(f"set CHARM_PATH or run `charmcraft pack` first (found {charms})")
        path = str(charms[0])
    resolved = pathlib.Path(path).resolve()
    if not resolved.is_file():
        pytest.fail(f"CHARM_PATH {resolved} is not a file")
    return resolved


@pytest.fixture(scope="session")
def pmr_config() -> dict[str, str]:
    """The source options pointing at a GitHub repository that holds the minimal PMR."""
    repository = os.environ.get("PMR_REPOSITORY", "")
    if not repository:
        pytest.skip("set PMR_REPOSITORY=org/repo (a push of this project) to run these tests")
    return {
        "repository": repository,
        "branch": os.environ.get("PMR_BRANCH", "main"),
        "pmr-path": os.environ.get("PMR_PATH", "examples/minimal/pmr.yaml"),
    }


@pytest.fixture(scope="module")
def juju() -> Iterator[jubilant.Juju]:
    """A temporary model, destroyed afterwards unless KEEP_MODELS is set."""
    import jubilant  # imported here: the unit-test run needs no jubilant

    with jubilant.temp_model(keep=bool(os.environ.get("KEEP_MODELS"))) as juju:
        juju.wait_timeout = 15 * 60
        yield juju
        if os.environ.get("PRINT_DEBUG_LOG"):
            print(juju.debug_log(limit=1000))


@pytest.fixture(scope="module")
def kube() -> Iterator[Client]:
    """A client for the cluster, to check the charm's work and arrange stale Profiles.

    Removes what the tests made in the cluster afterwards: the PMR's Profile (and with it,
    through the profile controller, its namespace) and the stale Profile.
    """
    try:
        client = Client(field_manager="pmr-integration-tests")
        client.list(Profile)
    except ConfigError:
        pytest.skip("no kubeconfig for the cluster (set KUBECONFIG)")
    except ApiError as exc:
        if exc.status.code == 404:
            pytest.skip("no Profile CRD: deploy Charmed Kubeflow (kubeflow-profiles) first")
        raise
    yield client
    for name in (PROFILE, STALE):
        with contextlib.suppress(ApiError):
            client.delete(Profile, name)
    client.close()
