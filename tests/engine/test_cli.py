"""The ``pmr`` command end to end against the fake API server: exit codes and output."""

from __future__ import annotations

import json
import pathlib
import textwrap

import pytest

from profiles_automator.cli import main
from tests.engine.conftest import (
    NAMESPACE,
    PROFILE,
    ROLE_BINDING,
    contributor_names,
    get,
    many_profiles,
    names,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

TWO_TEAMS = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: edit}
      - {name: carol@example.com, role: view}
  - name: team-b
    owner: {kind: User, name: dave@example.com}
"""
TEAM_A_ONLY = TWO_TEAMS.split("  - name: team-b")[0]
CHANGE_KEYS = {"action", "kind", "namespace", "name", "reason"}


@pytest.fixture
def pmr_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "pmr.yaml"
    path.write_text(textwrap.dedent(TWO_TEAMS))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_sync_plan(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    cluster = ("--kubeconfig", str(kubeconfig))

    code, out, _ = run(capsys, "plan", str(pmr_file), *cluster)

    assert code == 2
    assert "+ create Profile team-a" in out
    assert "+ create Profile team-b" in out
    assert writes(api) == []

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster)

    assert code == 0
    assert names(api, PROFILE) == {"team-a", "team-b"}
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        "user-bob-example-com-clusterrole-edit",
        "user-carol-example-com-clusterrole-view",
    }
    assert "+ create RoleBinding team-a/user-bob-example-com-clusterrole-edit" in out
    api.clear_requests()

    code, out, _ = run(capsys, "plan", str(pmr_file), *cluster)

    assert code == 0
    assert "+ " not in out
    assert writes(api) == []


def test_json_output_has_the_documented_keys(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    cluster = ("--kubeconfig", str(kubeconfig), "--output", "json")

    code, out, _ = run(capsys, "plan", str(pmr_file), *cluster)

    plan = json.loads(out)
    assert code == 2
    assert {"changes", "stale_profiles", "pending", "held", "failures"} <= set(plan)
    assert plan["dry_run"] is True
    assert plan["pending"] == ["team-a"]  # team-b has no contributors to wait for
    assert [set(c) for c in plan["changes"]] == [CHANGE_KEYS, CHANGE_KEYS]
    assert {
        "action": "create",
        "kind": "Profile",
        "namespace": None,
        "name": "team-a",
        "reason": "not in the cluster",
    } in plan["changes"]

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster)

    synced = json.loads(out)
    assert code == 0
    assert synced["dry_run"] is False
    assert synced["failures"] == [] and synced["held"] == [] and synced["pending"] == []
    assert synced["counts"]["created"] == 6


def test_sync_with_failures_exits_1_and_shows_status(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    api.add_fault(verb="apply", path="/rolebindings/user-bob", status=500, times=-1)

    code, out, _ = run(
        capsys, "sync", str(pmr_file), "--kubeconfig", str(kubeconfig), "--output", "json"
    )

    assert code == 1
    failures = json.loads(out)["failures"]
    assert [(f["kind"], f["name"], f["status"]) for f in failures] == [
        ("RoleBinding", "user-bob-example-com-clusterrole-edit", 500)
    ]
    assert failures[0]["message"]


def test_stale_list_and_delete(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    cluster = ("--kubeconfig", str(kubeconfig))
    assert run(capsys, "sync", str(pmr_file), *cluster)[0] == 0
    pmr_file.write_text(textwrap.dedent(TEAM_A_ONLY))
    created = get(api, PROFILE, "team-b")["metadata"]["creationTimestamp"]

    code, out, _ = run(capsys, "stale", str(pmr_file), *cluster)

    assert code == 0
    assert out.splitlines() == [f"team-b (owner dave@example.com, created {created})"]

    code, out, _ = run(capsys, "stale", str(pmr_file), *cluster, "--output", "json")

    assert json.loads(out) == [{"name": "team-b", "owner": "dave@example.com", "created": created}]

    api.clear_requests()
    code, _, err = run(capsys, "stale", str(pmr_file), *cluster, "--delete", "team-b")

    assert code == 2
    assert "--yes" in err
    assert writes(api) == []
    assert get(api, PROFILE, "team-b")

    code, out, _ = run(capsys, "stale", str(pmr_file), *cluster, "--delete", "team-b", "--yes")

    assert code == 0
    assert "deleted Profile team-b" in out
    assert names(api, PROFILE) == {"team-a"}
    assert api.get(*NAMESPACE, "team-b") is None

    api.clear_requests()
    code, _, err = run(capsys, "stale", str(pmr_file), *cluster, "--delete", "team-a", "--yes")

    assert code == 1
    assert "refused team-a: in the PMR: not stale" in err
    assert writes(api) == []
    assert get(api, PROFILE, "team-a")


def test_held_sync_exits_3_until_forced(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    pmr_file = tmp_path / "pmr.yaml"
    pmr_file.write_text(many_profiles(1, 2))
    cluster = ("--kubeconfig", str(kubeconfig), "--max-revocations", "1")
    assert run(capsys, "sync", str(pmr_file), *cluster)[0] == 0
    pmr_file.write_text(many_profiles(1, 0))
    api.clear_requests()

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster)

    assert code == 3
    assert "held 2 revocations (limit 1)" in out  # 2 people, 4 objects
    assert writes(api) == []

    code, _, _ = run(capsys, "plan", str(pmr_file), *cluster)

    assert code == 2  # held deletions are still work to do

    code, _, _ = run(capsys, "sync", str(pmr_file), *cluster, "--force")

    assert code == 0
    assert contributor_names(api, ROLE_BINDING, "team-00") == set()


def test_invalid_pmr_exits_1_and_touches_nothing(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    pmr_file = tmp_path / "pmr.yaml"
    pmr_file.write_text(TWO_TEAMS.replace("role: view", "role: owner"))

    for command in ("plan", "sync"):
        code, _, err = run(capsys, command, str(pmr_file), "--kubeconfig", str(kubeconfig))

        assert code == 1
        assert "PMR is invalid: nothing was changed" in err
    assert api.requests == []


def test_unusable_cluster_exits_1_with_the_reason(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    api.uninstall("kubeflow.org", "profiles")

    code, _, err = run(capsys, "sync", str(pmr_file), "--kubeconfig", str(kubeconfig))

    assert code == 1
    assert "error: Profile CRD not found: is Kubeflow's profile controller deployed?" in err
    assert writes(api) == []


def test_stale_delete_prints_json_when_asked(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    cluster = ("--kubeconfig", str(kubeconfig), "--output", "json")
    assert run(capsys, "sync", str(pmr_file), *cluster)[0] == 0
    pmr_file.write_text(textwrap.dedent(TEAM_A_ONLY))

    code, out, _ = run(
        capsys, "stale", str(pmr_file), *cluster, "--delete", "team-b,team-a", "--yes"
    )

    assert code == 1  # team-a was refused
    assert json.loads(out) == {
        "deleted": ["team-b"],
        "refused": {"team-a": "in the PMR: not stale"},
        "failures": [],
    }
    assert names(api, PROFILE) == {"team-a"}


def test_refused_profile_is_reported_and_sync_exits_1(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})
    cluster = ("--kubeconfig", str(kubeconfig))

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster)

    assert code == 1
    assert "Refused profile team-b: namespace team-b exists and no Profile owns it" in out
    assert names(api, PROFILE) == {"team-a"}

    code, _, _ = run(capsys, "sync", str(pmr_file), *cluster, "--adopt-namespaces")

    assert code == 0
    assert names(api, PROFILE) == {"team-a", "team-b"}


def test_plan_as_markdown_for_a_job_summary(
    api: FakeKubeAPI,
    kubeconfig: pathlib.Path,
    pmr_file: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
):
    cluster = ("--kubeconfig", str(kubeconfig))

    code, out, _ = run(capsys, "plan", str(pmr_file), *cluster, "--output", "markdown")

    assert code == 2
    assert out.startswith(f"### Plan for {pmr_file}:\n\n**Plan: ")
    assert "| Action | Kind | Namespace | Name | Reason |" in out
    assert "| create | Profile |  | team-a |" in out
    assert "**Pending** (the profile controller has not created the namespace yet" in out
    assert writes(api) == []

    run(capsys, "sync", str(pmr_file), *cluster)
    code, out, _ = run(capsys, "plan", str(pmr_file), *cluster, "--output", "markdown")

    assert code == 0
    assert "**Plan: nothing to do, the cluster matches the PMR.**" in out
