"""Hundreds of objects: lists paginate, and a no-op run is still only four lists."""

from __future__ import annotations

from lightkube import Client

from profiles_automator.sync.cluster import LIST_PAGE_SIZE, list_owner_policies
from profiles_automator.sync.engine import SyncSettings, sync
from profiles_automator.sync.kfam import OWNER_AUTHORIZATION_POLICY
from profiles_automator.sync.state import OwnerPolicy
from tests.engine.conftest import (
    OBSERVED,
    POLICY,
    ROLE_BINDING,
    list_calls,
    list_pages,
    load,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

PROFILES, CONTRIBUTORS = 130, 8  # more objects per kind than one list page


def _big_pmr() -> str:
    lines = ["profiles:"]
    for i in range(PROFILES):
        lines += [
            f"  - name: team-{i:03d}",
            f"    owner: {{kind: User, name: owner{i}@example.com}}",
            "    contributors:",
        ]
        lines += [
            f"      - {{name: user{j}@example.com, role: {('view', 'edit')[j % 2]}}}"
            for j in range(CONTRIBUTORS)
        ]
    return "\n".join(lines) + "\n"


def test_large_cluster_paginates_and_noop_is_only_lists(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    pmr = load(_big_pmr())
    first = sync(client, pmr, settings)
    assert first.failures == ()
    assert first.counts()["created"] == PROFILES * (1 + 2 * CONTRIBUTORS)
    assert len(api.list(*ROLE_BINDING)) > LIST_PAGE_SIZE
    assert len(api.list(*POLICY)) > LIST_PAGE_SIZE
    api.clear_requests()

    report = sync(client, pmr, settings)

    assert report.changes == ()
    assert report.in_sync
    assert writes(api) == []
    assert list_calls(api) == OBSERVED
    assert list_pages(api, "rolebindings") == 2
    assert list_pages(api, "authorizationpolicies") == 2
    assert api.count("list") == len(api.requests)
    assert {r.query.get("limit") for r in api.requests} == {str(LIST_PAGE_SIZE)}


def test_owner_policies_are_listed_page_by_page_with_the_lists_version(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    # Arrange: more policies than a page, of which one owner policy per namespace
    sync(client, load(_big_pmr()), settings)
    full = {
        obj["metadata"]["namespace"]: OwnerPolicy.from_object(obj)
        for obj in api.list(*POLICY)
        if obj["metadata"]["name"] == OWNER_AUTHORIZATION_POLICY
    }
    api.clear_requests()

    # Act
    owners, version = list_owner_policies(client, settings.retry)

    # Assert: what the full objects say, for every namespace, in one field-selected list
    assert len(owners) == PROFILES
    assert owners == full
    assert owners["team-007"].owner == "owner7@example.com"
    assert version == str(api.store.resource_version)
    assert list_calls(api) == ["authorizationpolicies"]
    assert {r.query.get("fieldSelector") for r in api.requests} == {
        f"metadata.name={OWNER_AUTHORIZATION_POLICY}"
    }
