"""A PMR profile never takes over an existing namespace unless the admin opts in."""

from __future__ import annotations

from dataclasses import replace

from lightkube import Client

from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import (
    NAMESPACE,
    PROFILE,
    ROLE_BINDING,
    contributor_names,
    get,
    load,
    names,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

PMR = """\
profiles:
  - name: {name}
    owner: {{kind: User, name: alice@example.com}}
    contributors:
      - {{name: bob@example.com, role: edit}}
"""


def _namespace(name: str, **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}}


def _adopting(settings: SyncSettings) -> SyncSettings:
    return replace(settings, options=replace(settings.options, adopt_namespaces=True))


def test_a_namespace_without_profile_is_refused_and_reported(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api.put(_namespace("data-lake", labels={"team": "data"}))
    api.clear_requests()

    report = sync(client, load(PMR.format(name="data-lake")), settings)

    assert [(r.name, r.reason) for r in report.plan.refused] == [
        ("data-lake", "namespace data-lake exists and no Profile owns it")
    ]
    assert "adopt-namespaces=true" in report.plan.refused[0].fix
    assert report.to_json()["refused"][0]["profile"] == "data-lake"
    assert not report.in_sync
    assert writes(api) == []
    assert "data-lake" not in names(api, PROFILE)


def test_adoption_is_allowed_with_the_option(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api.put(_namespace("data-lake"))

    report = sync(client, load(PMR.format(name="data-lake")), _adopting(settings))

    assert report.plan.refused == ()
    assert report.in_sync
    assert get(api, NAMESPACE, "data-lake")["metadata"]["annotations"]["owner"] == (
        "alice@example.com"
    )
    assert contributor_names(api, ROLE_BINDING, "data-lake") == {
        "user-bob-example-com-clusterrole-edit"
    }


def test_a_namespace_owned_by_another_profile_is_refused(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(PMR.format(name="team-a")), settings)
    other = get(api, PROFILE, "team-a")
    ref = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Profile",
        "name": "team-a",
        "uid": other["metadata"]["uid"],
        "controller": True,
    }
    api.put(_namespace("team-a-copy", ownerReferences=[ref]))
    api.clear_requests()

    report = sync(client, load(PMR.format(name="team-a-copy")), settings)

    assert [(r.name, r.reason) for r in report.plan.refused] == [
        ("team-a-copy", "namespace team-a-copy is owned by Profile team-a")
    ]
    assert [w for w in writes(api) if "team-a-copy" in (w.namespace, w.name)] == []


def test_a_juju_model_namespace_is_never_adopted(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    api.put(_namespace("kubeflow-model", labels={"model.juju.is/name": "kubeflow-model"}))
    api.put(_namespace("cos", labels={"app.kubernetes.io/managed-by": "juju"}))
    api.clear_requests()
    both = load(PMR.format(name="kubeflow-model") + PMR.format(name="cos").split("\n", 1)[1])

    report = sync(client, both, _adopting(settings))

    assert sorted(r.name for r in report.plan.refused) == ["cos", "kubeflow-model"]
    assert all("Juju model" in r.reason for r in report.plan.refused)
    assert writes(api) == []
