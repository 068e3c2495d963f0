"""Hooks through ./dispatch, as a Juju 3.6 agent runs them, against the fakes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dispatch.agent import APP, HOOK_TOOLS, TOOL_NAMES, JujuUnit
from tests.dispatch.conftest import MINIMAL_PMR, REPO, head
from tests.fakes.github_api import GOOD_TOKEN, FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

trustme: Any = pytest.importorskip("trustme")

PROFILE_API = ("kubeflow.org/v1", "Profile")
WRITES = ("create", "update", "apply", "patch", "delete")


def _profiles(kube: FakeKubeAPI) -> list[str]:
    return [obj["metadata"]["name"] for obj in kube.list(*PROFILE_API)]


def _writes(kube: FakeKubeAPI) -> int:
    return sum(kube.count(verb) for verb in WRITES)


def test_install_syncs_the_pmr_and_logs_a_summary(
    unit: JujuUnit, kube: FakeKubeAPI, github: FakeGitHub
):
    run = unit.hook("install")

    assert run.returncode == 0, run.stderr
    assert run.unit_status == ("active", f"1 profile in sync @ {head(github)[:7]}")
    assert _profiles(kube) == ["ml-engineers"]
    assert {call.tool for call in run.calls} <= set(TOOL_NAMES)
    assert any(line.startswith(f"INFO sync @ {head(github)}") for line in run.logs)
    assert not [line for line in run.logs if "HTTP Request" in line]


def test_update_status_after_install_writes_nothing(unit: JujuUnit, kube: FakeKubeAPI):
    assert unit.hook("install").returncode == 0
    writes = _writes(kube)

    run = unit.hook("update-status")

    assert run.returncode == 0, run.stderr
    assert run.unit_status[0] == "active"
    assert _writes(kube) == writes
    assert any("unchanged since the last sync" in line for line in run.logs)


def test_invalid_config_blocks_with_the_fix(unit: JujuUnit, kube: FakeKubeAPI):
    unit.configure(repository="", pmr_url="")

    run = unit.hook("config-changed")

    assert run.returncode == 0, run.stderr
    assert run.unit_status == (
        "blocked",
        f"Invalid config: set `repository`: juju config {APP} repository=org/repo",
    )
    assert kube.requests == []


def test_a_non_leader_stands_by(
    staged_charm: Path, python: Path, tmp_path: Path, kube: FakeKubeAPI, github: FakeGitHub
):
    follower = JujuUnit(
        staged_charm,
        tmp_path / "follower",
        python,
        kubeconfig=kube.write_kubeconfig(tmp_path / "kubeconfig"),
        leader=False,
    )
    follower.configure(repository=REPO, github_api_url=github.api_url)

    run = follower.hook("config-changed")

    assert run.returncode == 0, run.stderr
    assert run.unit_status == ("active", "standby: the leader syncs")
    assert kube.requests == []


def test_a_token_secret_is_read_and_sent(unit: JujuUnit, kube: FakeKubeAPI, github: FakeGitHub):
    github.create_repo("org/private", private=True)
    github.commit("org/private", {"pmr.yaml": MINIMAL_PMR})
    unit.configure(
        repository="org/private", token_secret_id=unit.add_secret({"token": GOOD_TOKEN})
    )

    run = unit.hook("config-changed")

    assert run.returncode == 0, run.stderr
    assert run.unit_status[0] == "active"
    assert _profiles(kube) == ["ml-engineers"]
    assert all(GOOD_TOKEN not in line for line in run.logs)


@pytest.mark.parametrize("granted", [False, None], ids=["not granted", "unknown"])
def test_an_unreadable_secret_blocks_with_the_grant_command(
    unit: JujuUnit, kube: FakeKubeAPI, granted: bool | None
):
    secret = (
        unit.add_secret({"token": GOOD_TOKEN}, granted=False)
        if granted is False
        else "secret:d0es0not0exist0000000"
    )
    unit.configure(token_secret_id=secret)

    run = unit.hook("config-changed")

    assert run.returncode == 0, run.stderr
    assert run.unit_status == (
        "blocked",
        f"cannot read the secret in `token-secret-id`: juju grant-secret {secret} {APP}",
    )
    assert kube.requests == []


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def tls_github(ca: Any) -> Iterator[FakeGitHub]:
    with FakeGitHub(tls=ca.issue_cert("127.0.0.1")) as fake:
        fake.commit(REPO, {"pmr.yaml": MINIMAL_PMR})
        yield fake


def test_a_private_ca_in_ca_secret_id_is_trusted(
    unit: JujuUnit, kube: FakeKubeAPI, tls_github: FakeGitHub, ca: Any
):
    unit.configure(github_api_url=tls_github.api_url)
    blocked = unit.hook("config-changed")
    unit.configure(ca_secret_id=unit.add_secret({"ca-cert": ca.cert_pem.bytes().decode()}))

    run = unit.hook("secret-changed")

    assert blocked.unit_status[0] == "blocked"
    assert (
        "set `ca-secret-id`: juju add-secret pmr-ca ca-cert#file=ca.pem"
        in (blocked.unit_status[1])
    )
    assert run.returncode == 0, run.stderr
    assert run.unit_status == ("active", f"1 profile in sync @ {head(tls_github)[:7]}")


def test_juju_refuses_secret_keys_it_cannot_store(unit: JujuUnit, tmp_path: Path):
    with pytest.raises(ValueError, match=r'key "ca\.crt" not valid'):
        unit.add_secret({"ca.crt": "PEM"})
    secret = unit.add_secret({"ca-cert": "PEM"})
    state = tmp_path / "state.json"
    bare = secret.removeprefix("secret:")
    state.write_text(
        json.dumps({"model_uuid": "u", "secrets": {bare: {"content": {"ca-cert": "PEM"}}}})
    )

    def secret_get(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(HOOK_TOOLS), str(state), str(tmp_path / "log")]
        return subprocess.run(
            [*command, "secret-get", *args], capture_output=True, text=True, check=False
        )

    assert secret_get(secret, "ca.crt").returncode == 2
    assert secret_get(secret, "ca.crt").stderr == 'ERROR key "ca.crt" not valid\n'
    assert secret_get(secret, "ca-cert").stdout == '"PEM"\n'
    assert secret_get("secret:nope").stderr == 'ERROR secret "nope" not found\n'
