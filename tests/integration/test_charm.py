"""Deploy the charm next to Charmed Kubeflow and check it syncs, lists and deletes Profiles.

Skipped as a whole when there is no reachable Juju controller (see conftest.py for the rest of
what these tests need). The tests run in order and share one model.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from tests.integration.conftest import APP, PROFILE, STALE, Profile


def _controller_problem() -> str | None:
    """Say why no Juju controller can be used, or None if one answers."""
    juju = shutil.which("juju")
    if juju is None:
        return "juju is not on PATH"
    for args in (["controllers"], ["models"]):
        try:
            result = subprocess.run(
                [juju, *args, "--format", "json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`juju {args[0]}` failed: {exc}"
        if result.returncode != 0:
            return f"`juju {args[0]}` failed: {result.stderr.strip()[:200]}"
        if args == ["controllers"] and not json.loads(result.stdout or "{}").get(
            "current-controller"
        ):
            return "no current controller (juju switch CONTROLLER)"
    return None


@pytest.fixture(autouse=True, scope="session")
def _juju_controller() -> None:
    """Skip each test (collected, so `tox -e integration` passes) without a controller."""
    if (problem := _controller_problem()) is not None:
        pytest.skip(f"no reachable Juju controller: {problem}")


if TYPE_CHECKING:
    import jubilant
else:
    jubilant = pytest.importorskip("jubilant")

pytestmark = pytest.mark.integration

UNIT = f"{APP}/0"
AuthorizationPolicy = create_namespaced_resource(
    "security.istio.io", "v1beta1", "AuthorizationPolicy", "authorizationpolicies"
)
CONTRIBUTORS = [
    "user-alice-example-com-clusterrole-admin",
    "user-bob-example-com-clusterrole-view",
]
IN_SYNC = re.compile(r"^1 profile in sync @ [0-9a-f]{7}")


def unit_message(juju: jubilant.Juju, unit: str = UNIT) -> str:
    return juju.status().apps[APP].units[unit].workload_status.message


def wait_until(check: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    """Poll `check()` (the cluster is eventually consistent) until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(5)


def names(objects: Iterable[Any]) -> set[str]:
    return {obj.metadata.name for obj in objects if obj.metadata is not None}


def test_deploy_with_trust_syncs_the_pmr(
    juju: jubilant.Juju, charm: pathlib.Path, pmr_config: dict[str, str]
):
    juju.deploy(charm, APP, trust=True, config=pmr_config)
    if token := os.environ.get("PMR_TOKEN"):
        secret = juju.add_secret("pmr-token", {"token": token})
        juju.grant_secret(secret, APP)
        juju.config(APP, {"token-secret-id": secret})

    juju.wait(
        lambda status: jubilant.all_active(status, APP),
        error=lambda status: jubilant.any_error(status, APP),
    )

    assert IN_SYNC.match(unit_message(juju))


def test_profile_and_contributors_are_in_the_cluster(juju: jubilant.Juju, kube: Client):
    def namespace_ready() -> bool:
        juju.run(UNIT, "sync-now")
        try:
            kube.get(Namespace, PROFILE)
        except ApiError:
            return False
        return set(CONTRIBUTORS) <= names(kube.list(RoleBinding, namespace=PROFILE))

    wait_until(namespace_ready, "the namespace and the contributors' RoleBindings")

    profile = kube.get(Profile, PROFILE)
    assert profile["spec"]["owner"]["name"] == "admin@example.com"
    assert set(CONTRIBUTORS) <= names(kube.list(AuthorizationPolicy, namespace=PROFILE))


def test_sync_now_dry_run_finds_nothing_to_do(juju: jubilant.Juju):
    task = juju.run(UNIT, "sync-now", {"dry-run": True})

    assert task.results["changes"] == "none"
    assert task.results["failures"] == "none"
    assert IN_SYNC.match(unit_message(juju))


def test_stale_profile_is_listed_and_deleted(juju: jubilant.Juju, kube: Client):
    kube.create(
        Profile(
            metadata=ObjectMeta(name=STALE),
            spec={"owner": {"kind": "User", "name": "stale@example.com"}},
        )
    )

    juju.run(UNIT, "sync-now")
    assert unit_message(juju).endswith(f"; 1 stale: {STALE}, see list-stale-profiles")
    listed = juju.run(UNIT, "list-stale-profiles")
    assert listed.results["stale-profiles"] == STALE
    assert listed.results["details"].startswith(f"{STALE} (owner stale@example.com, created ")

    deleted = juju.run(UNIT, "delete-stale-profiles", {"profiles": STALE})

    assert deleted.results["deleted"] == STALE

    def profile_gone() -> bool:
        try:
            kube.get(Profile, STALE)
        except ApiError as exc:
            return exc.status.code == 404
        return False

    wait_until(profile_gone, f"Profile {STALE} to be deleted")


def test_delete_refuses_a_profile_in_the_pmr(juju: jubilant.Juju):
    with pytest.raises(jubilant.TaskError) as caught:
        juju.run(UNIT, "delete-stale-profiles", {"profiles": PROFILE})

    assert caught.value.task.message == f"nothing deleted: {PROFILE}: in the PMR: not stale"


def test_a_second_unit_stands_by(juju: jubilant.Juju):
    juju.add_unit(APP)
    juju.wait(lambda status: jubilant.all_active(status, APP) and len(status.apps[APP].units) == 2)
    units = juju.status().apps[APP].units
    follower = next(name for name, unit in units.items() if not unit.leader)

    assert units[follower].workload_status.message == "standby: the leader syncs"
    with pytest.raises(jubilant.TaskError) as caught:
        juju.run(follower, "sync-now")
    assert caught.value.task.message == (
        f"run this on the leader unit: juju run {APP}/leader sync-now"
    )
