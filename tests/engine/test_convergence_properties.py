"""Convergence over real HTTP: random PMRs against random clusters, through the real engine.

The planner's properties are checked at scale against a pure simulator in tests/core; this
runs fewer examples through lightkube, server-side apply and the profile-controller emulation,
so a gap between the simulator and the API cannot hide a convergence bug.
"""

from __future__ import annotations

import pathlib
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightkube import Client, KubeConfig

from profiles_automator.sync.engine import SyncSettings, sync
from profiles_automator.sync.kfam import MANAGER_NAME
from profiles_automator.sync.planner import PlanOptions
from tests.engine.conftest import FAST_RETRY, WRITE_VERBS, dashboard_binding, dashboard_policy
from tests.fakes.kube_api import FakeKubeAPI
from tests.fakes.profile_controller import CHARMED_AMBIENT, CHARMED_SIDECAR, UPSTREAM
from tests.pmr_builders import pmr, profile

NAMES = ["team-a", "team-b", "team-c"]
USERS = ["alice@example.com", "bob@example.com", "carol@example.com"]
OWNERS = ["owner@example.com", "boss@example.com"]
ROLES = ["admin", "edit", "view"]
QUOTAS = [None, {"cpu": "1"}, {"cpu": "2", "memory": "4Gi"}, {"cpu": "0.5", "memory": "1024Mi"}]
CONTROLLERS = [UPSTREAM, CHARMED_SIDECAR, CHARMED_AMBIENT]

profiles = st.builds(
    profile,
    name=st.sampled_from(NAMES),
    owner=st.sampled_from(OWNERS),
    contributors=st.dictionaries(st.sampled_from(USERS), st.sampled_from(ROLES), max_size=3),
    hard=st.sampled_from(QUOTAS),
)
pmrs = st.lists(profiles, max_size=3, unique_by=lambda p: p.name)
existing_profiles = st.dictionaries(
    st.sampled_from(NAMES), st.tuples(st.sampled_from(OWNERS), st.sampled_from(QUOTAS)), max_size=3
)
hand_made = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(USERS), st.sampled_from(ROLES)), max_size=4
)
SETTINGS = SyncSettings(options=PlanOptions(force=True), retry=FAST_RETRY)
foreign = st.lists(st.sampled_from([*NAMES, "other"]), unique=True, max_size=2)


def _arrange(api: FakeKubeAPI, existing: dict, grants: list) -> None:
    for name, (owner, hard) in existing.items():
        spec = {"owner": {"kind": "User", "name": owner}}
        if hard:
            spec["resourceQuotaSpec"] = {"hard": hard}
        api.put(
            {
                "apiVersion": "kubeflow.org/v1",
                "kind": "Profile",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    api.profile_controller.reconcile()
    for namespace, user, role in grants:
        if api.get("v1", "Namespace", namespace) is not None:
            api.put(dashboard_binding(namespace, user, role))
            api.put(dashboard_policy(namespace, user, role))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pmr_profiles=pmrs,
    existing=existing_profiles,
    grants=hand_made,
    controller=st.sampled_from(CONTROLLERS),
    namespaces=foreign,
)
def test_second_sync_writes_nothing(pmr_profiles, existing, grants, controller, namespaces):
    with (
        FakeKubeAPI(profile_controller="sync", controller_settings=controller) as api,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name in namespaces:  # made by someone else: refused, never touched
            api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        _arrange(api, existing, grants)
        kubeconfig = api.write_kubeconfig(pathlib.Path(tmp) / "kubeconfig")
        client = Client(KubeConfig.from_file(kubeconfig), field_manager=MANAGER_NAME)

        first = sync(client, pmr(*pmr_profiles), SETTINGS)
        api.clear_requests()
        second = sync(client, pmr(*pmr_profiles), SETTINGS)

        assert first.failures == ()
        assert second.plan.changes == (), [str(c) for c in second.plan.changes]
        foreign_names = set(namespaces) - set(existing)
        assert {r.name for r in second.plan.refused} == foreign_names & {
            p.name for p in pmr_profiles
        }
        for namespace in foreign_names:
            assert not [r for r in first.applied if namespace in (r.namespace, r.name)]
        assert [r for r in api.requests if r.verb in WRITE_VERBS] == []
        assert set(second.plan.stale_profiles) == set(existing) - {p.name for p in pmr_profiles}
