"""API Priority and Fairness: a sync under 429 pressure backs off and completes."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from lightkube import Client

from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import (
    POLICY,
    PROFILE,
    ROLE_BINDING,
    contributor_names,
    load,
    many_profiles,
    names,
)
from tests.fakes.kube_api import FakeKubeAPI

PROFILES, CONTRIBUTORS = 4, 5
OBJECTS = PROFILES * (1 + 2 * CONTRIBUTORS)


def _successful_writes(api: FakeKubeAPI) -> Counter[tuple[str, str | None, str | None]]:
    return Counter(
        (r.plural, r.namespace, r.name)
        for r in api.requests
        if r.verb == "apply" and 200 <= r.status < 300
    )


def test_a_first_sync_under_429_pressure_writes_each_object_exactly_once(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    # Arrange: every other write is refused until there were as many 429s as objects
    throttled = api.add_fault(
        verb="apply", status=429, headers={"Retry-After": "1"}, times=OBJECTS, every=2
    )

    # Act
    report = sync(client, load(many_profiles(PROFILES, CONTRIBUTORS)), settings)

    # Assert
    assert report.failures == () and report.in_sync
    assert throttled.hits == OBJECTS
    written = _successful_writes(api)
    assert len(written) == OBJECTS and set(written.values()) == {1}
    assert len(names(api, PROFILE)) == PROFILES
    for kind in (ROLE_BINDING, POLICY):
        for team in names(api, PROFILE):
            assert len(contributor_names(api, kind, team)) == CONTRIBUTORS
    assert sync(client, load(many_profiles(PROFILES, CONTRIBUTORS)), settings).changes == ()


def test_throttling_does_not_spend_the_retries_of_other_errors(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    # Arrange: two 500s would exhaust nothing, but combined with 429s they must not add up
    api.add_fault(verb="apply", path="/profiles/", status=429, times=5)
    api.add_fault(verb="apply", path="/profiles/", status=500, times=2)
    one = many_profiles(1, 0)

    # Act
    report = sync(client, load(one), settings)

    # Assert
    assert report.failures == ()
    assert len(names(api, PROFILE)) == 1


def test_a_429_that_never_ends_fails_after_bounded_waits(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    # Arrange
    api.add_fault(verb="apply", path="/profiles/", status=429, times=-1)
    patient = replace(settings, retry=replace(settings.retry, throttled_attempts=3))

    # Act
    report = sync(client, load(many_profiles(1, 0)), patient)

    # Assert
    assert [f.status for f in report.failures] == [429]
    assert api.count("apply", "profiles") == 4  # one try and three throttled retries
