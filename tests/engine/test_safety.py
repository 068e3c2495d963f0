"""What the engine must never touch, and the guard against an emptied or truncated PMR."""

from __future__ import annotations

from dataclasses import replace

from lightkube import Client

from profiles_automator.sync.engine import SyncSettings, sync
from profiles_automator.sync.planner import PlanOptions
from tests.engine.conftest import (
    FAST_RETRY,
    OBSERVED,
    POLICY,
    PROFILE,
    RBAC,
    ROLE_BINDING,
    contributor_names,
    dashboard_binding,
    dashboard_policy,
    list_calls,
    load,
    many_profiles,
    put_all,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

PMR_V1 = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    contributors:
      - {name: bob@example.com, role: edit}
"""
PMR_V2 = PMR_V1 + "      - {name: carol@example.com, role: view}\n"


def _namespace(name: str, owner: str | None = None) -> dict:
    meta: dict = {"name": name}
    if owner:
        meta["annotations"] = {"owner": owner}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _plain_binding(namespace: str, name: str, annotations: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "ci", "namespace": namespace}],
    }


def _versions(api: FakeKubeAPI, namespaces: list[str]) -> dict:
    seen = {}
    for namespace in namespaces:
        for kind in (ROLE_BINDING, POLICY):
            for obj in api.list(*kind, namespace):
                meta = obj["metadata"]
                seen[(kind[1], namespace, meta["name"])] = meta["resourceVersion"]
    return seen


def test_objects_outside_pmr_profiles_are_never_touched(api: FakeKubeAPI, client: Client):
    settings = SyncSettings(protected_namespaces=("platform-*",), retry=FAST_RETRY)
    put_all(
        api,
        [
            _namespace("kubeflow"),
            dashboard_binding("kubeflow", "mallory@example.com", "admin"),
            dashboard_policy("kubeflow", "mallory@example.com", "admin"),
            _namespace("team-x", owner="zed@example.com"),  # a namespace, but no Profile
            dashboard_binding("team-x", "mallory@example.com", "edit"),
            dashboard_policy("team-x", "mallory@example.com", "edit"),
            {
                "apiVersion": "kubeflow.org/v1",
                "kind": "Profile",
                "metadata": {"name": "platform-tools"},
                "spec": {"owner": {"kind": "User", "name": "ops@example.com"}},
            },
        ],
    )
    put_all(
        api,
        [
            dashboard_binding("platform-tools", "mallory@example.com", "view"),
            dashboard_policy("platform-tools", "mallory@example.com", "view"),
        ],
    )
    untouched = ["kubeflow", "team-x", "platform-tools"]
    before = _versions(api, untouched)

    sync(client, load(PMR_V1), settings)
    put_all(
        api,
        [
            _plain_binding("team-a", "ci-deployer"),
            _plain_binding("team-a", "odd-role", {"user": "mallory@example.com", "role": "owner"}),
        ],
    )
    in_team_a = {
        k: v
        for k, v in _versions(api, ["team-a"]).items()
        if not k[2].startswith("user-")  # ours to change; everything else is not
    }
    report = sync(client, load(PMR_V2), settings)

    assert report.failures == ()
    assert "platform-tools" not in report.plan.stale_profiles
    assert _versions(api, untouched) == before
    after = _versions(api, ["team-a"])
    assert {k: after.get(k) for k in in_team_a} == in_team_a
    assert {"default-editor", "default-viewer", "ci-deployer", "odd-role"} <= {
        k[2] for k in in_team_a
    }
    for record in writes(api):
        assert record.namespace in (None, "team-a"), record
        if record.namespace is None:
            assert (record.plural, record.name) == ("profiles", "team-a"), record


def test_guard_holds_mass_revocation_until_forced(api: FakeKubeAPI, client: Client):
    settings = SyncSettings(retry=FAST_RETRY)
    sync(client, load(many_profiles(2, 26)), settings)
    emptied = load(many_profiles(2, 0))
    api.clear_requests()

    held = sync(client, emptied, settings)

    assert writes(api) == []
    assert held.changes == ()
    assert len(held.plan.held) == 104  # 52 people lose access: a binding and a policy each
    assert {(c.action, c.kind) for c in held.plan.held} == {
        ("delete", "RoleBinding"),
        ("delete", "AuthorizationPolicy"),
    }
    assert held.plan.hold_reason == "held 52 revocations (limit 50)"
    assert not held.in_sync
    assert len(contributor_names(api, ROLE_BINDING, "team-00")) == 26

    forced = sync(client, emptied, replace(settings, options=PlanOptions(force=True)))

    assert forced.failures == ()
    assert forced.counts()["deleted"] == 104
    for namespace in ("team-00", "team-01"):
        for kind in (ROLE_BINDING, POLICY):
            assert contributor_names(api, kind, namespace) == set()
    api.clear_requests()
    assert sync(client, emptied, settings).plan.is_empty
    assert list_calls(api) == OBSERVED


def test_guard_holds_revocations_when_most_profiles_vanish(api: FakeKubeAPI, client: Client):
    settings = SyncSettings(retry=FAST_RETRY)
    sync(client, load(many_profiles(5, 1)), settings)
    api.clear_requests()

    report = sync(client, load(many_profiles(2, 1)), settings)

    assert report.plan.stale_profiles == ("team-02", "team-03", "team-04")
    assert report.plan.hold_reason == "3 of 5 managed profiles would become stale (limit 20%)"
    assert len(report.plan.held) == 6
    assert writes(api) == []
    assert len(api.list(*PROFILE)) == 5
    for namespace in ("team-02", "team-03", "team-04"):
        assert contributor_names(api, ROLE_BINDING, namespace) == {
            "user-user0-example-com-clusterrole-edit"
        }
