"""Profiles the PMR no longer names: reported, access revoked, deleted only when asked."""

from __future__ import annotations

import pytest
from lightkube import Client

from profiles_automator.sync.engine import (
    StaleProfile,
    SyncSettings,
    delete_stale_profiles,
    stale_profiles,
    sync,
)
from profiles_automator.sync.planner import PlanOptions
from tests.engine.conftest import (
    FAST_RETRY,
    NAMESPACE,
    OWNER_OBJECTS,
    POLICY,
    PROFILE,
    ROLE_BINDING,
    contributor_names,
    get,
    load,
    many_profiles,
    names,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

FIVE = many_profiles(5, 2)
WITHOUT_TEAM_04 = many_profiles(4, 2)
KINDS = (ROLE_BINDING, POLICY)


@pytest.fixture
def settings() -> SyncSettings:
    """Legacy profiles are outside the PMR's remit."""
    return SyncSettings(options=PlanOptions(ignored_profiles=("legacy-*",)), retry=FAST_RETRY)


@pytest.fixture
def synced(api: FakeKubeAPI, client: Client, settings: SyncSettings) -> FakeKubeAPI:
    sync(client, load(FIVE), settings)
    api.put(
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": "legacy-1"},
            "spec": {"owner": {"kind": "User", "name": "old@example.com"}},
        }
    )
    api.clear_requests()
    return api


def test_profile_removed_from_pmr_is_stale_and_loses_contributors(
    synced: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api = synced

    report = sync(client, load(WITHOUT_TEAM_04), settings)

    assert report.plan.stale_profiles == ("team-04",)
    assert report.plan.held == ()
    assert report.failures == ()
    for kind in KINDS:
        assert contributor_names(api, kind, "team-04") == set()
        assert contributor_names(api, kind, "team-03") == {
            "user-user0-example-com-clusterrole-edit",
            "user-user1-example-com-clusterrole-edit",
        }
    assert get(api, PROFILE, "team-04")
    assert get(api, NAMESPACE, "team-04")
    assert get(api, ROLE_BINDING, OWNER_OBJECTS[0], "team-04")
    assert get(api, POLICY, OWNER_OBJECTS[1], "team-04")
    assert {(r.verb, r.namespace) for r in writes(api)} == {("delete", "team-04")}
    assert len(writes(api)) == 4
    assert get(api, PROFILE, "legacy-1")  # ignored: neither stale nor touched


def test_stale_profiles_lists_owner_and_creation_time(
    synced: FakeKubeAPI, client: Client, settings: SyncSettings
):
    created = get(synced, PROFILE, "team-04")["metadata"]["creationTimestamp"]

    stale = stale_profiles(client, load(WITHOUT_TEAM_04), settings)

    assert stale == [StaleProfile("team-04", "owner4@example.com", created)]
    assert str(stale[0]) == f"team-04 (owner owner4@example.com, created {created})"
    assert writes(synced) == []


def test_delete_stale_profile_and_refuse_the_rest(
    synced: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api = synced

    outcome = delete_stale_profiles(
        client, load(WITHOUT_TEAM_04), settings, ["team-04", "team-00", "legacy-1", "nope"]
    )

    assert outcome.deleted == ("team-04",)
    assert outcome.failures == ()
    assert outcome.refused == {
        "team-00": "in the PMR: not stale",
        "legacy-1": "ignored or protected: never deleted by this charm",
        "nope": "no such Profile in the cluster",
    }
    assert names(api, PROFILE) == {"team-00", "team-01", "team-02", "team-03", "legacy-1"}
    assert api.get(*NAMESPACE, "team-04") is None  # Kubeflow deletes the namespace with it
    assert [(r.verb, r.plural, r.name) for r in writes(api)] == [("delete", "profiles", "team-04")]


def test_a_juju_model_namespace_is_never_deleted_with_its_stale_profile(
    synced: FakeKubeAPI, client: Client, settings: SyncSettings
):
    namespace = get(synced, NAMESPACE, "team-04")
    namespace["metadata"].setdefault("labels", {})["model.juju.is/name"] = "team-04"
    synced.put(namespace)
    synced.clear_requests()

    outcome = delete_stale_profiles(client, load(WITHOUT_TEAM_04), settings, None)

    assert outcome.deleted == ()
    assert "belongs to a Juju model" in outcome.refused["team-04"]
    assert writes(synced) == []
    assert get(synced, PROFILE, "team-04")


def test_delete_stale_dry_run_and_protected_names(
    synced: FakeKubeAPI, client: Client, settings: SyncSettings
):
    outcome = delete_stale_profiles(
        client, load(WITHOUT_TEAM_04), settings, ["team-04", "kubeflow"], dry_run=True
    )

    assert outcome.dry_run
    assert outcome.deleted == ("team-04",)
    assert outcome.refused == {"kubeflow": "ignored or protected: never deleted by this charm"}
    assert writes(synced) == []
    assert get(synced, PROFILE, "team-04")


def test_stale_access_kept_when_revocation_is_off(
    synced: FakeKubeAPI, client: Client, settings: SyncSettings
):
    keep = SyncSettings(options=PlanOptions(revoke_stale_access=False), retry=FAST_RETRY)

    report = sync(client, load(WITHOUT_TEAM_04), keep)

    assert report.plan.stale_profiles == ("legacy-1", "team-04")
    assert report.changes == ()
    assert writes(synced) == []
    assert len(contributor_names(synced, ROLE_BINDING, "team-04")) == 2
