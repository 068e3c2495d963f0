"""New namespaces are granted in the run that created their Profiles, through one watch."""

from __future__ import annotations

from dataclasses import replace

import pytest
from lightkube import Client

from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import (
    OBSERVED,
    POLICY,
    ROLE_BINDING,
    contributor_names,
    list_calls,
    load,
    many_profiles,
)
from tests.fakes.kube_api import FakeKubeAPI

SLOW = {"profile_controller": "async", "controller_delay": 1.0}


@pytest.mark.parametrize("api", [SLOW], indirect=True)
def test_hundred_profiles_first_sync_leaves_nothing_pending(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    report = sync(client, load(many_profiles(100, 2)), settings)

    assert report.pending == ()
    assert report.failures == ()
    assert report.in_sync
    for i in range(100):
        assert len(contributor_names(api, ROLE_BINDING, f"team-{i:02d}")) == 2
        assert len(contributor_names(api, POLICY, f"team-{i:02d}")) == 2
    assert list_calls(api) == [*OBSERVED, "authorizationpolicies"]  # no polling
    assert api.count("watch") == 1


@pytest.mark.parametrize(
    "api", [{"profile_controller": "async", "controller_delay": 2.0}], indirect=True
)
def test_what_the_budget_does_not_cover_is_finished_by_the_next_run(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    settings = replace(settings, namespace_wait=0.3)

    first = sync(client, load(many_profiles(2, 1)), settings)

    assert first.pending == ("team-00", "team-01")
    assert contributor_names(api, ROLE_BINDING, "team-00") == set()
    api.profile_controller.delay = 0.0
    api.profile_controller.reconcile()
    second = sync(client, load(many_profiles(2, 1)), settings)
    assert second.pending == ()
    assert second.counts()["created"] == 4


@pytest.mark.parametrize(
    "api", [{"profile_controller": "async", "controller_delay": 0.5}], indirect=True
)
def test_an_expired_watch_is_restarted_from_a_fresh_list(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api.add_fault(verb="watch", status=410, times=1, message="too old resource version: 1 (5)")

    report = sync(client, load(many_profiles(3, 1)), settings)

    assert report.pending == ()
    assert api.count("watch") == 2
    assert list_calls(api) == [*OBSERVED, "authorizationpolicies", "authorizationpolicies"]
