"""The documented permissions (docs/rbac.yaml) are exactly what the engine needs, checked first.

The fake API server authorizes with RBAC from the manifest, the way kube-apiserver does
(create for an apply that creates, bind for a RoleBinding's ClusterRole): with the manifest a
full sync succeeds; without any single one of its permissions, the preflight refuses the step
that needs it and nothing is written.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig

from profiles_automator.sync.cluster import ClusterError
from profiles_automator.sync.engine import (
    SyncReport,
    SyncSettings,
    delete_stale_profiles,
    sync,
)
from profiles_automator.sync.kfam import MANAGER_NAME
from profiles_automator.sync.permissions import Permission
from profiles_automator.sync.planner import PlanOptions
from tests.engine.conftest import (
    NAMESPACE,
    OWNER_OBJECTS,
    POLICY,
    PROFILE,
    ROLE_BINDING,
    contributor_names,
    get,
    load,
    names,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI
from tests.fakes.kube_rbac import breakdown, service_account

ROOT = pathlib.Path(__file__).parents[2]
MANIFEST = list(yaml.safe_load_all((ROOT / "docs" / "rbac.yaml").read_text()))
ROLE = next(d for d in MANIFEST if d["kind"] == "ClusterRole")
TOKEN = "automator-token"
RBAC = "rbac.authorization.k8s.io"

FIRST = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: admin}
      - {name: carol@example.com, role: edit}
      - {name: dave@example.com, role: view}
  - name: team-b
    owner: {kind: User, name: frank@example.com}
    contributors:
      - {name: gina@example.com, role: edit}
"""
# erin owns team-a now, carol is gone, dave is an editor (a new roleRef: delete and create),
# team-b left the PMR (stale: gina loses access).
SECOND = """
profiles:
  - name: team-a
    owner: {kind: User, name: erin@example.com}
    contributors:
      - {name: bob@example.com, role: admin}
      - {name: dave@example.com, role: edit}
"""


def _permissions(role: dict[str, Any]) -> list[Permission]:
    return [
        Permission(
            r["verbs"][0], r["apiGroups"][0], r["resources"][0], *r.get("resourceNames", [])
        )
        for rule in role["rules"]
        for r in breakdown(rule)
    ]


def _role_without(permission: Permission | None) -> dict[str, Any]:
    """The manifest's ClusterRole, split into single permissions, minus one."""
    kept = [p for p in _permissions(ROLE) if p != permission]
    rules = [
        {
            "apiGroups": [p.group],
            "resources": [p.resource],
            "verbs": [p.verb],
            **({"resourceNames": [p.name]} if p.name else {}),
        }
        for p in kept
    ]
    return {**ROLE, "rules": rules}


@pytest.fixture
def rbac_client(api: FakeKubeAPI, tmp_path: pathlib.Path) -> Iterator[Callable[..., Client]]:
    """RBAC on, with docs/rbac.yaml (optionally missing a permission) for its ServiceAccount."""
    clients: list[Client] = []

    def make(without: Permission | None = None) -> Client:
        documents = [_role_without(without) if d is ROLE else d for d in MANIFEST]
        api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}})
        api.enable_rbac(*documents)
        api.add_token(TOKEN, service_account("kubeflow", "kubeflow-profiles-automator"))
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", token=TOKEN)
        client = Client(KubeConfig.from_file(kubeconfig), field_manager=MANAGER_NAME)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _steps(client: Client, settings: SyncSettings) -> list[tuple[str, Callable[[], Any]]]:
    # team-b going stale is half of the managed profiles: past the guard's default limit
    settings = replace(settings, options=PlanOptions(max_stale_fraction=1.0))
    return [
        ("first sync", lambda: sync(client, load(FIRST), settings)),
        ("owner change, removals", lambda: sync(client, load(SECOND), settings)),
        ("stale delete", lambda: delete_stale_profiles(client, load(SECOND), settings, None)),
    ]


def test_the_documented_role_is_enough_for_a_full_sync(
    api: FakeKubeAPI, rbac_client: Callable[..., Client], settings: SyncSettings
):
    client = rbac_client()
    (_, first_sync), (_, owner_change), (_, stale_delete) = _steps(client, settings)

    first = first_sync()

    assert first.in_sync and first.failures == ()
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        f"user-{u}-example-com-clusterrole-{r}"
        for u, r in (("bob", "admin"), ("carol", "edit"), ("dave", "view"))
    }

    second = owner_change()

    assert second.in_sync and second.failures == ()
    assert get(api, NAMESPACE, "team-a")["metadata"]["annotations"]["owner"] == "erin@example.com"
    assert contributor_names(api, POLICY, "team-a") == {
        "user-bob-example-com-clusterrole-admin",
        "user-dave-example-com-clusterrole-edit",
    }
    assert contributor_names(api, ROLE_BINDING, "team-b") == set()
    owner_binding = get(api, ROLE_BINDING, OWNER_OBJECTS[0], "team-a")
    assert owner_binding["subjects"][0]["name"] == "erin@example.com"

    deleted = stale_delete()

    assert deleted.deleted == ("team-b",) and deleted.failures == ()
    assert names(api, PROFILE) == {"team-a"}


@pytest.mark.parametrize("permission", _permissions(ROLE), ids=str)
def test_without_any_one_permission_the_step_that_needs_it_writes_nothing(
    api: FakeKubeAPI,
    rbac_client: Callable[..., Client],
    settings: SyncSettings,
    permission: Permission,
):
    client = rbac_client(without=permission)

    for step, run in _steps(client, settings):
        api.clear_requests()
        try:
            outcome = run()
        except ClusterError as exc:  # a list the observation needs
            refusal = str(exc)
            break
        refusal = outcome.refusal
        if refusal is not None:
            break
        assert not outcome.failures, f"{step}: {outcome.failures}"
    else:
        pytest.fail(f"no step needed {permission}: the manifest grants more than needed")

    assert writes(api) == [], f"{step} wrote although {permission} is missing"
    if permission.verb == "list":
        assert f"missing permissions to list {permission.qualified_resource}" in refusal
    else:
        assert refusal.startswith("missing permissions (cluster-wide): ")
        assert refusal.endswith("; nothing was written")
        assert (permission.name or f"{permission.verb} ") in refusal


def test_the_refusal_names_every_missing_permission(
    api: FakeKubeAPI, rbac_client: Callable[..., Client], settings: SyncSettings
):
    client = rbac_client(without=Permission("create", RBAC, "rolebindings"))

    report = sync(client, load(FIRST), settings)

    assert isinstance(report, SyncReport)
    assert report.missing_permissions == (Permission("create", RBAC, "rolebindings"),)
    assert report.refusal == (
        "missing permissions (cluster-wide): create rolebindings.rbac.authorization.k8s.io; "
        "nothing was written"
    )
    assert report.to_json()["missing_permissions"] == [
        {
            "verb": "create",
            "group": RBAC,
            "resource": "rolebindings",
            "name": None,
            "namespace": None,
            "check": "kubectl auth can-i create rolebindings.rbac.authorization.k8s.io",
        }
    ]
    assert names(api, PROFILE) == set()


def test_a_dry_run_reports_the_refusal_and_writes_nothing(
    api: FakeKubeAPI, rbac_client: Callable[..., Client], settings: SyncSettings
):
    client = rbac_client(without=Permission("bind", RBAC, "clusterroles", "kubeflow-view"))

    report = sync(client, load(FIRST), settings, dry_run=True)

    assert report.dry_run and report.changes
    assert (
        report.refusal is not None
        and "clusterroles.rbac.authorization.k8s.io/kubeflow-view" in report.refusal
    )
    assert writes(api) == []


def test_a_no_op_sync_costs_no_permission_check(
    api: FakeKubeAPI, rbac_client: Callable[..., Client], settings: SyncSettings
):
    client = rbac_client()
    sync(client, load(FIRST), settings)
    api.clear_requests()

    report = sync(client, load(FIRST), settings)

    assert report.in_sync and report.changes == ()
    assert [r.verb for r in api.requests] == ["list"] * 4


def test_checks_are_deduplicated_and_sent_at_once(
    api: FakeKubeAPI, rbac_client: Callable[..., Client], settings: SyncSettings
):
    client = rbac_client()

    sync(client, load(FIRST), settings)

    reviews = [r for r in api.requests if r.plural == "selfsubjectaccessreviews"]
    first_write = next(i for i, r in enumerate(api.requests) if r.verb == "apply")
    assert len(reviews) == len({str(r.data()["spec"]) for r in reviews})
    assert max(api.requests.index(r) for r in reviews) < first_write
    assert {r.data()["spec"]["resourceAttributes"].get("name") for r in reviews} >= {
        "kubeflow-admin",
        "kubeflow-edit",
        "kubeflow-view",
    }
