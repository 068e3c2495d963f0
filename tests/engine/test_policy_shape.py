"""Contributor policies follow the profile controller: Charmed Kubeflow, sidecar and ambient.

The fake's profile controller is configured as Charmed Kubeflow's kubeflow-profiles charm
configures the real one; the engine runs with its default (empty) access options and must
write, in each namespace, exactly what KFAM would: the owner policy's principals, user-id
header, prefix and targetRefs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from lightkube import Client

from profiles_automator.sync.engine import SyncSettings, sync
from profiles_automator.sync.kfam import AccessPolicyOptions
from tests.engine.conftest import POLICY, ROLE_BINDING, contributor_names, get, load, writes
from tests.fakes.kube_api import FakeKubeAPI
from tests.fakes.profile_controller import CHARMED_AMBIENT, CHARMED_SIDECAR

TEAMS = """\
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: edit}
      - {name: carol@example.com, role: view}
  - name: team-b
    owner: {kind: User, name: dave@example.com}
    contributors:
      - {name: bob@example.com, role: admin}
"""
NAMESPACES = ("team-a", "team-b")
WAYPOINT_REF = [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "waypoint"}]
SIDECAR = pytest.param({"controller_settings": CHARMED_SIDECAR}, id="charmed-sidecar")
AMBIENT = pytest.param({"controller_settings": CHARMED_AMBIENT}, id="charmed-ambient")
ASYNC_AMBIENT = pytest.param(
    {
        "controller_settings": CHARMED_AMBIENT,
        "profile_controller": "async",
        "controller_delay": 0.3,
    },
    id="charmed-ambient-async",
)


def _shape(policy: dict[str, Any], user: str) -> tuple[Any, ...]:
    """principals, header key, prefix and targetRefs of a policy whose first rule names user."""
    rule = policy["spec"]["rules"][0]
    value = rule["when"][0]["values"][0]
    assert value.endswith(user)
    return (
        rule["from"][0]["source"]["principals"],
        rule["when"][0]["key"],
        value[: len(value) - len(user)],
        policy["spec"].get("targetRefs"),
    )


def _assert_policies_copy_the_owner_policy(api: FakeKubeAPI) -> None:
    for namespace in NAMESPACES:
        owner = get(api, POLICY, "ns-owner-access-istio", namespace)
        expected = _shape(owner, owner["metadata"]["annotations"]["user"])
        names = contributor_names(api, POLICY, namespace)
        assert names
        for name in names:
            policy = get(api, POLICY, name, namespace)
            assert _shape(policy, policy["metadata"]["annotations"]["user"]) == expected
            assert policy["spec"]["rules"][1:] == []  # KFAM's single rule, nothing of the owner's


@pytest.mark.parametrize("api", [SIDECAR, AMBIENT, ASYNC_AMBIENT], indirect=True)
def test_default_config_writes_what_kfam_would_and_a_second_sync_writes_nothing(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    report = sync(client, load(TEAMS), settings)

    assert report.in_sync
    _assert_policies_copy_the_owner_policy(api)
    policy = get(api, POLICY, "user-bob-example-com-clusterrole-edit", "team-a")
    principals = policy["spec"]["rules"][0]["from"][0]["source"]["principals"]
    assert principals == [
        CHARMED_AMBIENT.ingress_gateway_principal
        if api.profile_controller.settings.ambient
        else CHARMED_SIDECAR.ingress_gateway_principal,
        "cluster.local/ns/kubeflow/sa/kfp-ui",
    ]
    expected_refs = WAYPOINT_REF if api.profile_controller.settings.ambient else None
    assert policy["spec"].get("targetRefs") == expected_refs

    api.clear_requests()
    again = sync(client, load(TEAMS), settings)

    assert again.changes == ()
    assert writes(api) == []


@pytest.mark.parametrize("api", [SIDECAR], indirect=True)
def test_switching_sidecar_and_ambient_updates_every_policy_in_one_sync(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(TEAMS), settings)

    for target, mode in ((CHARMED_AMBIENT, "ambient mode"), (CHARMED_SIDECAR, "sidecar mode")):
        api.profile_controller.configure(target)  # the charm's service-mesh-mode changed
        report = sync(client, load(TEAMS), settings)

        assert report.failures == ()
        updated = [c for c in report.applied if c.kind == "AuthorizationPolicy"]
        assert len(updated) == 3
        assert all(c.action == "update" and mode in c.reason for c in updated)
        _assert_policies_copy_the_owner_policy(api)
        api.clear_requests()
        assert sync(client, load(TEAMS), settings).changes == ()
        assert writes(api) == []


@pytest.mark.parametrize("api", [SIDECAR], indirect=True)
def test_overrides_replace_the_owner_policy_values_they_name(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    extra = "cluster.local/ns/monitoring/sa/probe"
    access = AccessPolicyOptions(
        kfp_ui_principal="cluster.local/ns/pipelines/sa/ui",
        additional_principals=(extra,),
        userid_prefix="oidc:",
    )

    sync(client, load(TEAMS), replace(settings, access=access))

    policy = get(api, POLICY, "user-bob-example-com-clusterrole-edit", "team-a")
    rule = policy["spec"]["rules"][0]
    assert rule["from"][0]["source"]["principals"] == [
        CHARMED_SIDECAR.ingress_gateway_principal,  # followed
        "cluster.local/ns/pipelines/sa/ui",  # overridden
        extra,
    ]
    assert rule["when"] == [
        {"key": "request.headers[kubeflow-userid]", "values": ["oidc:bob@example.com"]}
    ]


@pytest.mark.parametrize("api", ["manual"], indirect=True)
def test_a_namespace_without_owner_policy_gets_bindings_but_waits_for_policies(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    settings = replace(settings, namespace_wait=0.0)
    sync(client, load(TEAMS), settings)
    api.profile_controller.reconcile()
    sync(client, load(TEAMS), settings)
    api.profile_controller.mode = "off"  # it would put the owner policy straight back
    api.remove(*POLICY, "ns-owner-access-istio", "team-a")
    bob = "user-bob-example-com-clusterrole-edit"
    api.remove(*ROLE_BINDING, bob, "team-a")
    api.remove(*POLICY, bob, "team-a")

    report = sync(client, load(TEAMS), settings)

    assert report.pending == ("team-a",)
    assert [(c.action, c.kind, c.name) for c in report.applied] == [("create", "RoleBinding", bob)]
    assert contributor_names(api, POLICY, "team-a") == {"user-carol-example-com-clusterrole-view"}
