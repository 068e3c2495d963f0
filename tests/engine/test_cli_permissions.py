"""``pmr`` with credentials that lack a permission or are not valid: exit 1, nothing written."""

from __future__ import annotations

import json
import pathlib
import textwrap

import pytest

from profiles_automator.cli import main
from tests.engine.conftest import PROFILE, names, writes
from tests.fakes.kube_api import FakeKubeAPI

TEAM = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: edit}
"""
REFUSAL = (
    "missing permissions (cluster-wide): bind clusterroles.rbac.authorization.k8s.io/"
    "kubeflow-edit; nothing was written"
)


@pytest.fixture
def pmr_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "pmr.yaml"
    path.write_text(textwrap.dedent(TEAM))
    return path


@pytest.fixture
def cluster(kubeconfig: pathlib.Path) -> tuple[str, str]:
    return ("--kubeconfig", str(kubeconfig))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sync_without_a_permission_exits_1_and_says_which(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.forbid("bind", "clusterroles")

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster)

    assert code == 1
    assert f"Permissions: refused: {REFUSAL}: grant them" in out
    assert "kubectl apply -f docs/rbac.yaml" in out
    assert "Applied: nothing." in out
    assert writes(api) == []


def test_sync_json_lists_the_missing_permissions(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.forbid("bind", "clusterroles")

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster, "--output", "json")

    document = json.loads(out)
    assert code == 1
    assert document["refusal"] == REFUSAL
    assert [p["name"] for p in document["missing_permissions"]] == ["kubeflow-edit"]
    assert document["counts"]["created"] == 0
    assert names(api, PROFILE) == set()


def test_dry_run_reports_the_refusal_a_real_run_would_meet(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.forbid("bind", "clusterroles")

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster, "--dry-run")

    assert code == 1
    assert f"Permissions: a sync would be refused: {REFUSAL}" in out
    assert "+ create Profile team-a" in out
    assert writes(api) == []


def test_plan_does_not_check_write_permissions(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    for verb in ("create", "patch", "delete", "bind"):
        api.forbid(verb, "*")  # read-only credentials, as in a PMR repository's CI

    code, out, _ = run(capsys, "plan", str(pmr_file), *cluster)

    assert code == 2
    assert "Permissions" not in out
    assert api.count("create", "selfsubjectaccessreviews") == 0


def test_rejected_credentials_are_reported_as_such(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.revoke_token("fake-token")

    code, _, err = run(capsys, "sync", str(pmr_file), *cluster)

    assert code == 1
    assert err.startswith(
        "error: the Kubernetes API rejected the credentials (HTTP 401 Unauthorized) to list "
        "profiles.kubeflow.org: the token is invalid or expired, or belongs to another cluster: "
        "check --kubeconfig and --context"
    )
    assert "missing permissions" not in err


def test_a_missing_list_permission_names_the_manifest(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.forbid("list", "namespaces")

    code, _, err = run(capsys, "plan", str(pmr_file), *cluster)

    assert code == 1
    assert err.startswith(
        "error: missing permissions to list namespaces: grant them to the identity in your "
        "kubeconfig, e.g. `kubectl apply -f docs/rbac.yaml` for a ServiceAccount (the API said: "
    )


def test_stale_delete_without_the_permission_deletes_nothing(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.put(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": "old"},
            "spec": {"owner": {"kind": "User", "name": "x@example.com"}},
        }
    )
    api.forbid("delete", "profiles")

    code, _, err = run(capsys, "stale", str(pmr_file), *cluster, "--delete", "old", "--yes")

    assert code == 1
    assert "error: missing permissions (cluster-wide): delete profiles.kubeflow.org" in err
    assert "old" in names(api, PROFILE)


def test_a_dry_run_as_markdown_reports_the_refusal(
    api: FakeKubeAPI, pmr_file: pathlib.Path, cluster: tuple[str, str], capsys
):
    api.forbid("bind", "clusterroles")
    markdown = ("--dry-run", "--output", "markdown")

    code, out, _ = run(capsys, "sync", str(pmr_file), *cluster, *markdown)

    assert code == 1
    assert f"**Permissions:** a sync would be refused: {REFUSAL}: grant them" in out
    assert "| create | Profile |  | team-a |" in out
