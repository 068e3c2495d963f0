"""Resource quotas: the profile controller writes them back canonically; that is no drift."""

from __future__ import annotations

from lightkube import Client

from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import PROFILE, get, load, writes
from tests.fakes.kube_api import FakeKubeAPI

QUOTA = """\
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    resources:
      hard: {cpu: 0.5, memory: 1.5Gi, requests.memory: 1024Mi, pods: 1000, limits.cpu: "2"}
"""


def test_non_canonical_quantities_converge_and_are_written_as_the_user_wrote_them(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(QUOTA), settings)
    sent = [r.data() for r in writes(api) if r.plural == "profiles"]
    stored = get(api, PROFILE, "team-a")
    generation = stored["metadata"]["generation"]

    api.clear_requests()
    again = sync(client, load(QUOTA), settings)

    assert sent[0]["spec"]["resourceQuotaSpec"]["hard"] == {
        "cpu": "0.5",
        "memory": "1.5Gi",
        "requests.memory": "1024Mi",
        "pods": "1000",
        "limits.cpu": "2",
    }
    # the profile controller re-serialized them through Go's resource.Quantity
    assert stored["spec"]["resourceQuotaSpec"]["hard"] == {
        "cpu": "500m",
        "memory": "1536Mi",
        "requests.memory": "1Gi",
        "pods": "1k",
        "limits.cpu": "2",
    }
    assert again.changes == ()
    assert writes(api) == []
    assert get(api, PROFILE, "team-a")["metadata"]["generation"] == generation


def test_a_changed_quantity_is_still_an_update(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(QUOTA), settings)

    report = sync(client, load(QUOTA.replace("cpu: 0.5", "cpu: 0.75")), settings)

    assert [(c.action, c.kind, c.reason) for c in report.applied] == [
        ("update", "Profile", "resource quota differs")
    ]
    assert get(api, PROFILE, "team-a")["spec"]["resourceQuotaSpec"]["hard"]["cpu"] == "750m"
