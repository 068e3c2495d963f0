"""A large first sync through ./dispatch stays quiet in the Juju log."""

from __future__ import annotations

from tests.dispatch.agent import JujuUnit
from tests.dispatch.conftest import REPO, head
from tests.fakes.github_api import FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

PROFILES, CONTRIBUTORS = 100, 10
MAX_LOG_CALLS = 50


def _pmr() -> bytes:
    lines = ["profiles:"]
    for i in range(PROFILES):
        lines += [
            f"- name: team-{i:03d}",
            f"  owner: {{kind: User, name: owner{i}@example.com}}",
            "  contributors:",
        ]
        lines += [
            f"  - {{name: user{j}@example.com, role: {('view', 'edit')[j % 2]}}}"
            for j in range(CONTRIBUTORS)
        ]
    return ("\n".join(lines) + "\n").encode()


def test_a_100_by_10_first_sync_makes_few_juju_log_calls(
    unit: JujuUnit, kube: FakeKubeAPI, github: FakeGitHub
):
    github.commit(REPO, {"pmr.yaml": _pmr()})

    run = unit.hook("install")

    assert run.returncode == 0, run.stderr
    assert run.unit_status == ("active", f"{PROFILES} profiles in sync @ {head(github)[:7]}")
    assert len(kube.list("kubeflow.org/v1", "Profile")) == PROFILES
    assert kube.count("apply") + kube.count("patch") >= PROFILES * (1 + 2 * CONTRIBUTORS)
    assert len(run.tool_calls("juju-log")) <= MAX_LOG_CALLS, "\n".join(run.logs)
