"""A first sync, a no-op sync, a dry run and KFAM names, all through the real HTTP client."""

from __future__ import annotations

from collections import Counter

from lightkube import Client

from profiles_automator.pmr.kfam_names import binding_name
from profiles_automator.sync.engine import SyncSettings, sync
from tests.engine.conftest import (
    GATEWAY,
    KFP_UI,
    MANAGED,
    NAMESPACE,
    OBSERVED,
    POLICY,
    PROFILE,
    RBAC,
    ROLE_BINDING,
    contributor_names,
    essence,
    get,
    list_calls,
    load,
    names,
    writes,
)
from tests.fakes.kube_api import FakeKubeAPI

TWO_TEAMS = """
profiles:
  - name: team-a
    owner: {kind: User, name: alice@example.com}
    resources:
      hard: {cpu: 2, memory: 4Gi, requests.nvidia.com/gpu: 1}
    contributors:
      - {name: bob@example.com, role: edit}
      - {name: carol@example.com, role: view}
  - name: team-b
    owner: {kind: User, name: dave@example.com}
    plugins:
      - kind: WorkloadIdentity
        spec: {gcpServiceAccount: team-b@project.iam.gserviceaccount.com}
    contributors:
      - {name: bob@example.com, role: admin}
"""
GRANTS = [
    ("team-a", "bob@example.com", "edit"),
    ("team-a", "carol@example.com", "view"),
    ("team-b", "bob@example.com", "admin"),
]


def expected_binding(namespace: str, user: str, role: str) -> dict:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": binding_name(user, role),
            "namespace": namespace,
            "labels": MANAGED,
            "annotations": {"user": user, "role": role},
        },
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": f"kubeflow-{role}"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}],
    }


def expected_policy(namespace: str, user: str, role: str) -> dict:
    return {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "AuthorizationPolicy",
        "metadata": {
            "name": binding_name(user, role),
            "namespace": namespace,
            "labels": MANAGED,
            "annotations": {"user": user, "role": role},
        },
        "spec": {
            "rules": [
                {
                    "from": [{"source": {"principals": [GATEWAY, KFP_UI]}}],
                    "when": [{"key": "request.headers[kubeflow-userid]", "values": [user]}],
                }
            ]
        },
    }


def test_first_sync_creates_profiles_and_kfam_objects(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    report = sync(client, load(TWO_TEAMS), settings)

    assert report.failures == ()
    assert report.pending == ()
    assert essence(get(api, PROFILE, "team-a")) == {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Profile",
        "metadata": {"name": "team-a", "labels": MANAGED},
        "spec": {
            "owner": {"kind": "User", "name": "alice@example.com", "apiGroup": RBAC},
            "resourceQuotaSpec": {
                "hard": {"cpu": "2", "memory": "4Gi", "requests.nvidia.com/gpu": "1"}
            },
            "plugins": [],
        },
    }
    assert get(api, PROFILE, "team-b")["spec"]["plugins"] == [
        {
            "kind": "WorkloadIdentity",
            "spec": {"gcpServiceAccount": "team-b@project.iam.gserviceaccount.com"},
        }
    ]
    for namespace, user, role in GRANTS:
        name = binding_name(user, role)
        assert essence(get(api, ROLE_BINDING, name, namespace)) == expected_binding(
            namespace, user, role
        )
        assert essence(get(api, POLICY, name, namespace)) == expected_policy(namespace, user, role)
    assert contributor_names(api, ROLE_BINDING, "team-a") == {
        "user-bob-example-com-clusterrole-edit",
        "user-carol-example-com-clusterrole-view",
    }
    assert contributor_names(api, POLICY, "team-b") == {"user-bob-example-com-clusterrole-admin"}
    # the profile controller did its part for the owner
    admin = get(api, ROLE_BINDING, "namespaceAdmin", "team-a")
    assert admin["subjects"] == [{"kind": "User", "name": "alice@example.com", "apiGroup": RBAC}]


def test_first_sync_makes_few_lists_and_one_write_per_object(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    report = sync(client, load(TWO_TEAMS), settings)

    lists = list_calls(api)
    assert lists[:4] == OBSERVED
    assert lists[4:] in ([], ["authorizationpolicies"])  # one look at new owner policies
    written = Counter((r.plural, r.namespace, r.name) for r in writes(api))
    expected = {("profiles", None, "team-a"), ("profiles", None, "team-b")}
    for namespace, user, role in GRANTS:
        expected |= {
            ("rolebindings", namespace, binding_name(user, role)),
            ("authorizationpolicies", namespace, binding_name(user, role)),
        }
    assert set(written) == expected
    assert set(written.values()) == {1}
    assert all(200 <= r.status < 300 for r in writes(api))
    # the preflight: one access review per distinct permission, whatever the number of objects
    # (create and patch of each of three kinds; bind kubeflow-admin, -edit and -view; watch
    # authorizationpolicies, for the owner policies of the namespaces being set up)
    reviews = api.count("create", "selfsubjectaccessreviews")
    assert reviews == 10
    assert len(api.requests) == api.count("list") + len(writes(api)) + reviews  # nothing else
    assert report.counts() == {"created": 8, "updated": 0, "deleted": 0, "replaced": 0}


def test_second_sync_only_lists(api: FakeKubeAPI, client: Client, settings: SyncSettings):
    pmr = load(TWO_TEAMS)
    sync(client, pmr, settings)
    api.clear_requests()

    report = sync(client, pmr, settings)

    assert list_calls(api) == OBSERVED
    assert len(api.requests) == 4
    assert writes(api) == []
    assert report.changes == ()
    assert report.in_sync


def test_a_profile_for_another_cluster_is_not_created(api: FakeKubeAPI, client: Client):
    pmr = load(
        """
        profiles:
          - name: here
            owner: {kind: User, name: alice@example.com}
            clusters: [prod]
          - name: elsewhere
            owner: {kind: User, name: alice@example.com}
            clusters: [staging]
          - name: everywhere
            owner: {kind: User, name: alice@example.com}
        """
    )

    sync(client, pmr, SyncSettings(cluster_name="prod"))

    assert names(api, PROFILE) == {"here", "everywhere"}


def test_dry_run_writes_nothing_and_counts_the_plan(api: FakeKubeAPI, client: Client):
    settings = SyncSettings()
    fresh = sync(client, load(TWO_TEAMS), settings, dry_run=True)

    assert writes(api) == []
    assert names(api, PROFILE) == set()
    assert fresh.dry_run
    assert fresh.counts() == {"created": 2, "updated": 0, "deleted": 0, "replaced": 0}
    assert fresh.pending == ("team-a", "team-b")  # no namespaces yet: contributors wait

    sync(client, load(TWO_TEAMS), settings)
    changed = load(
        TWO_TEAMS.replace("carol@example.com, role: view", "erin@example.com, role: edit")
    )
    before = api.list(*ROLE_BINDING, "team-a")
    api.clear_requests()

    report = sync(client, changed, settings, dry_run=True, revision="abc123")

    assert writes(api) == []
    assert list_calls(api) == OBSERVED
    assert api.list(*ROLE_BINDING, "team-a") == before
    assert report.counts() == {"created": 2, "updated": 0, "deleted": 2, "replaced": 0}
    assert report.applied == ()
    assert report.to_json()["revision"] == "abc123"
    assert {(c.action, c.kind, c.name) for c in report.changes} == {
        ("create", "RoleBinding", "user-erin-example-com-clusterrole-edit"),
        ("create", "AuthorizationPolicy", "user-erin-example-com-clusterrole-edit"),
        ("delete", "RoleBinding", "user-carol-example-com-clusterrole-view"),
        ("delete", "AuthorizationPolicy", "user-carol-example-com-clusterrole-view"),
    }


def test_kfam_names_of_unusual_users_are_valid_on_the_server(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    long_user = "a" * 226 + "@x.io"
    users = {
        "Jane.Doe+kubeflow@Example.COM": "user-jane-doe-kubeflow-example-com-clusterrole-edit",
        "_svc.bot@example.com": "user-svc-bot-example-com-clusterrole-edit",
        "o.brien_@example.com": "user-o-brien-example-com-clusterrole-edit",
        "zoë@example.com": "user-zo-example-com-clusterrole-edit",
        long_user: f"user-{'a' * 226}-x-io-clusterrole-edit",
    }
    entries = "\n".join(f"      - {{name: '{u}', role: edit}}" for u in users)
    pmr = load(
        f"""
profiles:
  - name: odd-names
    owner: {{kind: User, name: alice@example.com}}
    contributors:
{entries}
"""
    )

    report = sync(client, pmr, settings)

    assert report.failures == ()
    assert len(users[long_user]) == 253
    assert {binding_name(u, "edit") for u in users} == set(users.values())
    assert contributor_names(api, ROLE_BINDING, "odd-names") == set(users.values())
    assert contributor_names(api, POLICY, "odd-names") == set(users.values())
    for user, name in users.items():
        stored = get(api, ROLE_BINDING, name, "odd-names")
        assert stored["metadata"]["annotations"] == {"user": user, "role": "edit"}
        assert stored["subjects"][0]["name"] == user
        policy = get(api, POLICY, name, "odd-names")
        assert policy["spec"]["rules"][0]["when"][0]["values"] == [user]
    api.clear_requests()
    assert sync(client, pmr, settings).changes == ()
    assert writes(api) == []


def test_namespaces_are_made_by_the_profile_controller_not_the_engine(
    api: FakeKubeAPI, client: Client, settings: SyncSettings
):
    sync(client, load(TWO_TEAMS), settings)

    assert {"team-a", "team-b"} <= names(api, NAMESPACE)
    assert not any(r.plural == "namespaces" for r in writes(api))
    assert get(api, NAMESPACE, "team-a")["metadata"]["annotations"] == {
        "owner": "alice@example.com"
    }
