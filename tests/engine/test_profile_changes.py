"""Profiles follow the PMR: owner, quota and plugins, whoever set the fields first."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import Client
from lightkube.generic_resource import create_global_resource
from lightkube.types import PatchType

from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import (
    MANAGED,
    NAMESPACE,
    OBSERVED,
    POLICY,
    PROFILE,
    RBAC,
    RESOURCE_QUOTA,
    ROLE_BINDING,
    contributor_names,
    get,
    list_calls,
    load,
    write_index,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

Profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")

TEAM = """
profiles:
  - name: team-a
    owner: {{kind: User, name: {owner}}}
    resources:
      hard: {hard}
    contributors:
      - {{name: bob@example.com, role: edit}}
{extra}
"""


EDITED_HARD = {"memory": "8Gi", "requests.nvidia.com/gpu": "2"}


def team(owner: str = "alice@example.com", hard: str = "{cpu: 2}", extra: str = "") -> str:
    return TEAM.format(owner=owner, hard=hard, extra=extra)


def owner_policy_user(api: FakeKubeAPI) -> list[str]:
    policy = get(api, POLICY, "ns-owner-access-istio", "team-a")
    return policy["spec"]["rules"][0]["when"][0]["values"]


def test_owner_change_reowns_namespace_and_owner_objects(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(team()), settings)
    old_binding_uid = get(api, ROLE_BINDING, "namespaceAdmin", "team-a")["metadata"]["uid"]
    handover = team(
        owner="dave@example.com", extra="      - {name: alice@example.com, role: edit}"
    )
    api.clear_requests()

    report = sync(client, load(handover), settings)

    assert report.failures == ()
    assert get(api, PROFILE, "team-a")["spec"]["owner"] == {
        "kind": "User",
        "name": "dave@example.com",
        "apiGroup": RBAC,
    }
    namespace = get(api, NAMESPACE, "team-a")
    assert namespace["metadata"]["annotations"]["owner"] == "dave@example.com"
    admin = get(api, ROLE_BINDING, "namespaceAdmin", "team-a")
    assert admin["metadata"]["uid"] != old_binding_uid  # recreated by the controller
    assert admin["subjects"] == [{"kind": "User", "name": "dave@example.com", "apiGroup": RBAC}]
    assert admin["metadata"]["annotations"] == {"user": "dave@example.com", "role": "admin"}
    assert owner_policy_user(api) == ["dave@example.com"]
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        "user-alice-example-com-clusterrole-edit",  # the former owner keeps edit access
        "user-bob-example-com-clusterrole-edit",
    }
    # the namespace says the new owner before the controller is asked to rebuild
    assert write_index(api, "apply", "namespaces", "team-a") < write_index(
        api, "delete", "rolebindings", "namespaceAdmin"
    )
    assert write_index(api, "apply", "profiles", "team-a") < write_index(
        api, "delete", "authorizationpolicies", "ns-owner-access-istio"
    )
    api.clear_requests()

    again = sync(client, load(handover), settings)

    assert again.changes == ()
    assert writes(api) == []
    assert list_calls(api) == OBSERVED


def test_owner_change_to_a_service_account(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(team()), settings)
    robot = """
    profiles:
      - name: team-a
        owner: {kind: ServiceAccount, name: pipeline-runner, namespace: ci}
        contributors:
          - {name: bob@example.com, role: edit}
    """

    report = sync(client, load(robot), settings)

    assert report.failures == ()
    subject = {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "ci"}
    assert get(api, PROFILE, "team-a")["spec"]["owner"] == subject
    assert get(api, NAMESPACE, "team-a")["metadata"]["annotations"]["owner"] == "pipeline-runner"
    assert get(api, ROLE_BINDING, "namespaceAdmin", "team-a")["subjects"] == [subject]
    api.clear_requests()
    assert sync(client, load(robot), settings).changes == ()
    assert writes(api) == []


def _put_profile_by_hand(api: FakeKubeAPI, client: Client, settings: SyncSettings) -> None:
    """Someone else made the Profile first, with a quota the PMR later drops a key of."""
    api.put(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": "team-a"},
            "spec": {
                "owner": {"kind": "User", "name": "alice@example.com", "apiGroup": RBAC},
                "resourceQuotaSpec": {
                    "hard": {"cpu": "1", "memory": "8Gi", "requests.nvidia.com/gpu": "2"}
                },
            },
        }
    )


def _patch_by_other_manager(api: FakeKubeAPI, client: Client, settings: SyncSettings) -> None:
    """We made the Profile; then a person edited its quota with kubectl (a merge patch)."""
    sync(client, load(team(hard="{cpu: 1, memory: 4Gi}")), settings)
    with api.client() as someone:
        someone.patch(
            Profile,
            "team-a",
            {"spec": {"resourceQuotaSpec": {"hard": EDITED_HARD}}},
            patch_type=PatchType.MERGE,
            field_manager="kubectl-edit",
        )


@pytest.mark.parametrize("arrange", [_put_profile_by_hand, _patch_by_other_manager])
def test_quota_change_and_removed_keys(
    api: FakeKubeAPI, client: Client, settings: SyncSettings, arrange: Any
):
    arrange(api, client, settings)
    assert set(get(api, PROFILE, "team-a")["spec"]["resourceQuotaSpec"]["hard"]) == {
        "cpu",
        "memory",
        "requests.nvidia.com/gpu",
    }

    report = sync(client, load(team(hard="{cpu: 2}")), settings)

    assert report.failures == ()
    profile = get(api, PROFILE, "team-a")
    assert profile["spec"]["resourceQuotaSpec"] == {"hard": {"cpu": "2"}}
    assert profile["metadata"]["labels"] == MANAGED
    quota = get(api, RESOURCE_QUOTA, "kf-resource-quota", "team-a")
    assert quota["spec"] == {"hard": {"cpu": "2"}}  # the controller followed
    api.clear_requests()
    assert sync(client, load(team(hard="{cpu: 2}")), settings).changes == ()
    assert writes(api) == []


def test_quota_removed_entirely(api: FakeKubeAPI, client: Client, settings: SyncSettings):
    sync(client, load(team(hard="{cpu: 2, memory: 1Gi}")), settings)
    no_quota = """
    profiles:
      - name: team-a
        owner: {kind: User, name: alice@example.com}
        contributors:
          - {name: bob@example.com, role: edit}
    """

    sync(client, load(no_quota), settings)

    assert not get(api, PROFILE, "team-a")["spec"]["resourceQuotaSpec"].get("hard")
    assert api.get(*RESOURCE_QUOTA, "kf-resource-quota", "team-a") is None
    api.clear_requests()
    assert sync(client, load(no_quota), settings).changes == ()


def test_plugins_change(api: FakeKubeAPI, client: Client, settings: SyncSettings):
    gcp = """
    profiles:
      - name: team-a
        owner: {kind: User, name: alice@example.com}
        plugins:
          - kind: WorkloadIdentity
            spec: {gcpServiceAccount: team-a@p.iam.gserviceaccount.com}
    """
    aws = """
    profiles:
      - name: team-a
        owner: {kind: User, name: alice@example.com}
        plugins:
          - kind: AwsIamForServiceAccount
            spec: {awsIamRole: "arn:aws:iam::123456789012:role/team-a", annotateOnly: true}
    """
    sync(client, load(gcp), settings)

    report = sync(client, load(aws), settings)

    assert [(c.action, c.kind, c.reason) for c in report.changes] == [
        ("update", "Profile", "plugins differ")
    ]
    assert get(api, PROFILE, "team-a")["spec"]["plugins"] == [
        {
            "kind": "AwsIamForServiceAccount",
            "spec": {"awsIamRole": "arn:aws:iam::123456789012:role/team-a", "annotateOnly": True},
        }
    ]
    api.clear_requests()
    assert sync(client, load(aws), settings).changes == ()
    assert writes(api) == []
