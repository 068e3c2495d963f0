"""Every action in actions.yaml through ./dispatch, with Juju's parameter defaults."""

from __future__ import annotations

import yaml

from tests.dispatch.agent import APP, ROOT, JujuUnit
from tests.dispatch.conftest import REPO, head
from tests.fakes.github_api import FakeGitHub
from tests.fakes.kube_api import FakeKubeAPI

PROFILE_API = ("kubeflow.org/v1", "Profile")


def _stale_profile(kube: FakeKubeAPI, name: str = "old-team") -> None:
    kube.put(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": name},
            "spec": {"owner": {"kind": "User", "name": "lead@example.com"}},
        }
    )
    kube.profile_controller.reconcile()


def _profiles(kube: FakeKubeAPI) -> list[str]:
    return sorted(obj["metadata"]["name"] for obj in kube.list(*PROFILE_API))


def test_every_action_is_covered():
    actions = set(yaml.safe_load((ROOT / "actions.yaml").read_text()))

    assert actions == {
        "sync-now",
        "list-stale-profiles",
        "delete-stale-profiles",
        "show-groups",
    }


def test_sync_now_reports_the_changes(unit: JujuUnit, kube: FakeKubeAPI, github: FakeGitHub):
    run = unit.action("sync-now")

    assert run.returncode == 0, run.stderr
    assert run.action_failure is None
    results = run.action_results
    assert results["revision"] == head(github)
    assert (results["created"], results["held"], results["dry-run"]) == ("5", "0", "false")
    assert results["failures"] == "none"
    assert "Profile ml-engineers" in results["changes"]
    assert run.unit_status == ("active", f"1 profile in sync @ {head(github)[:7]}")


def test_sync_now_dry_run_writes_nothing(unit: JujuUnit, kube: FakeKubeAPI):
    run = unit.action("sync-now", dry_run=True)

    assert run.returncode == 0, run.stderr
    assert run.action_results["dry-run"] == "true"
    # Only the Profile is planned: its contributors wait for the namespace a real sync makes.
    assert (run.action_results["created"], run.action_results["pending"]) == ("1", "1")
    assert _profiles(kube) == []


def test_list_and_delete_stale_profiles(unit: JujuUnit, kube: FakeKubeAPI):
    _stale_profile(kube)

    listed = unit.action("list-stale-profiles")
    planned = unit.action("delete-stale-profiles", profiles="old-team", dry_run=True)
    refused = unit.action("delete-stale-profiles", profiles="ml-engineers")
    deleted = unit.action("delete-stale-profiles", profiles="all")

    assert listed.returncode == 0, listed.stderr
    assert listed.action_results["stale-profiles"] == "old-team"
    assert planned.action_results == {"deleted": "old-team", "refused": "none", "dry-run": "true"}
    assert refused.action_failure is not None
    assert refused.action_failure.startswith("nothing deleted: ml-engineers: ")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.action_failure is None
    assert deleted.action_results["deleted"] == "old-team"
    assert "old-team" not in _profiles(kube)


def test_actions_on_a_non_leader_fail_with_the_command(unit: JujuUnit):
    unit.state["leader"] = False

    run = unit.action("sync-now")

    assert run.returncode == 0, run.stderr
    assert run.action_failure == f"run this on the leader unit: juju run {APP}/leader sync-now"


GROUPS_PMR = b"""
groups:
  ml-team: {members: [alice@example.com, bob@example.com]}
profiles:
- name: ml-engineers
  owner: {kind: User, name: admin@example.com}
  contributors:
  - {group: ml-team, role: edit}
"""


def test_show_groups_lists_a_group_and_its_members(unit: JujuUnit, github: FakeGitHub):
    github.commit(REPO, {"pmr.yaml": GROUPS_PMR})

    run = unit.action("show-groups", group="ml-team")
    unknown = unit.action("show-groups", group="nobody")

    assert run.returncode == 0, run.stderr
    assert run.action_failure is None
    assert run.action_results["revision"] == head(github)
    assert "ml-team" in run.action_results["groups"]
    members = run.action_results["members"].splitlines()
    assert [line.split()[0] for line in members] == ["alice@example.com", "bob@example.com"]
    assert unknown.action_failure == "no group 'nobody' in the PMR; groups: ml-team"
