"""Properties of plan(): for any PMR and any starting cluster, apply converges and stays put.

Hypothesis draws PMRs and messy clusters (hand-made KFAM bindings, drifted
objects, stale profiles, foreign namespaces, missing namespaces); the
in-memory simulator applies each plan the way the API would.
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles_automator.sync.kfam import (
    MANAGED_BY_LABEL,
    MANAGER_NAME,
    OWNER_OBJECT_NAMES,
    PolicyShape,
    kfam_identity,
    profile_object,
)
from profiles_automator.sync.planner import PHASE_OWNER_RESET, Change, PlanOptions, plan
from profiles_automator.sync.state import DesiredState
from tests.cluster_sim import SimCluster
from tests.pmr_builders import desired, kfam_binding, kfam_policy, profile

PROFILE_NAMES = ["team-a", "team-b", "team-c", "team-d"]
NAMESPACES = [*PROFILE_NAMES, "kubeflow", "other"]
USERS = ["alice@example.com", "bob@example.com", "carol@example.com", "Dan.Lee@example.org"]
OWNERS = ["owner@example.com", "boss@example.com"]
ROLES = ["admin", "edit", "view"]
QUOTAS = [
    None,
    {"cpu": "1"},
    {"cpu": "2", "memory": "4Gi"},
    {"cpu": "0.5", "memory": "1024Mi", "pods": "1000"},  # the controller writes 500m, 1Gi, 1k
]
JUJU_MODEL = {"model.juju.is/name": "kubeflow"}
JUJU_MANAGED = {"app.kubernetes.io/managed-by": "juju"}

contributors = st.dictionaries(st.sampled_from(USERS), st.sampled_from(ROLES), max_size=4)
profiles = st.builds(
    profile,
    name=st.sampled_from(PROFILE_NAMES),
    owner=st.sampled_from(OWNERS),
    contributors=contributors,
    hard=st.sampled_from(QUOTAS),
)
pmrs = st.lists(profiles, max_size=4, unique_by=lambda p: p.name)


CHARMED = ("cluster.local/ns/kubeflow/sa/istio-ingressgateway-workload-service-account",)
WAYPOINT = ((("group", "gateway.networking.k8s.io"), ("kind", "Gateway"), ("name", "waypoint")),)
SHAPES = [
    PolicyShape(),
    PolicyShape(principals=(*CHARMED, "cluster.local/ns/kubeflow/sa/kfp-ui")),
    PolicyShape(
        principals=("cluster.local/ns/kubeflow/sa/istio-ingress-k8s-istio",), target_refs=WAYPOINT
    ),
    PolicyShape(userid_header="x-auth-user", userid_prefix="oidc:"),
]


@st.composite
def clusters(draw: st.DrawFn) -> SimCluster:
    """A cluster in any state a real one could be in before the first sync."""
    cluster = SimCluster(shape=draw(st.sampled_from(SHAPES)))
    for name in draw(st.lists(st.sampled_from(PROFILE_NAMES), unique=True)):
        obj = profile_object(
            profile(name, owner=draw(st.sampled_from(OWNERS)), hard=draw(st.sampled_from(QUOTAS)))
        )
        if draw(st.booleans()):
            del obj["metadata"]["labels"]
        cluster.profiles[name] = obj
    cluster.reconcile()
    for name in draw(st.lists(st.sampled_from(NAMESPACES), unique=True)):
        owner = draw(st.sampled_from([*OWNERS, None]))
        annotations = {"owner": owner} if owner else {}
        labels = draw(st.sampled_from([{}, {}, JUJU_MODEL, JUJU_MANAGED]))
        cluster.namespaces.setdefault(
            name, {"metadata": {"name": name, "annotations": annotations, "labels": labels}}
        )
    entries = st.tuples(
        st.sampled_from(NAMESPACES), st.sampled_from(USERS), st.sampled_from(ROLES)
    )
    for ns, user, role in draw(st.lists(entries, max_size=8)):
        if ns not in cluster.namespaces:
            continue
        binding = kfam_binding(ns, user, role, labelled=draw(st.booleans()))
        if draw(st.booleans()):
            binding["roleRef"]["name"] = "kubeflow-" + draw(st.sampled_from(ROLES))
        cluster.role_bindings[(ns, binding["metadata"]["name"])] = binding
        policy = kfam_policy(ns, user, role)
        if draw(st.booleans()):
            policy["spec"]["rules"][0]["when"][0]["values"] = ["someone@else.io"]
        cluster.policies[(ns, policy["metadata"]["name"])] = policy
    for ns in cluster.namespaces:
        cluster.role_bindings[(ns, "default-editor")] = {
            "metadata": {"name": "default-editor", "namespace": ns},
            "roleRef": {"kind": "ClusterRole", "name": "kubeflow-edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "default-editor", "namespace": ns}],
        }
    return cluster


FORCE = PlanOptions(force=True, adopt_namespaces=True)


def _refused(want: DesiredState, cluster: SimCluster, options: PlanOptions) -> set[str]:
    return {r.name for r in plan(want, cluster.observed(), options).refused}


def _converge(want: DesiredState, cluster: SimCluster, rounds: int = 3) -> None:
    for _ in range(rounds):
        cluster.apply(plan(want, cluster.observed(), FORCE).changes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pmr_profiles=pmrs, cluster=clusters())
def test_plan_apply_plan_is_empty(pmr_profiles, cluster):
    want = desired(*pmr_profiles)

    _converge(want, cluster)
    again = plan(want, cluster.observed(), FORCE)

    assert again.is_empty, [str(c) for c in again.changes]
    assert again.pending == ()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pmr_profiles=pmrs, cluster=clusters())
def test_converged_cluster_matches_the_pmr_exactly(pmr_profiles, cluster):
    want = desired(*pmr_profiles)

    _converge(want, cluster)

    refused = _refused(want, cluster, FORCE)
    assert all(_is_juju(cluster, name) for name in refused)  # only Juju's, with adoption on
    for name in set(want.profiles) - refused:
        assert cluster.profiles[name]["spec"]["owner"] == want.profiles[name]["spec"]["owner"]
    kfam_keys = {
        key
        for key, obj in cluster.role_bindings.items()
        if kfam_identity(obj) and key[0] in set(want.profiles) - refused
    }
    assert kfam_keys == {k for k in want.role_bindings if k[0] not in refused}
    for (namespace, name), grant in want.policy_grants.items():
        if namespace in refused:
            continue
        policy = cluster.policies[(namespace, name)]
        assert policy["spec"] == grant.body(cluster.shape)["spec"]  # the owner policy's shape
    for key, obj in want.role_bindings.items():
        if key[0] in refused:
            continue
        assert cluster.role_bindings[key]["roleRef"] == obj["roleRef"]
        assert cluster.role_bindings[key]["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGER_NAME


def _allowed(change: Change, want: DesiredState, stale: set[str], before: SimCluster) -> bool:
    if change.kind == "Profile":
        return change.action != "delete" and change.name in want.profiles
    if change.kind == "Namespace":
        return change.name in want.profiles
    if change.name in OWNER_OBJECT_NAMES:
        return change.phase == PHASE_OWNER_RESET and change.namespace in want.profiles
    if change.namespace in stale:
        store = before.role_bindings if change.kind == "RoleBinding" else before.policies
        obj = store.get((change.namespace, change.name))
        return change.action == "delete" and obj is not None and kfam_identity(obj) is not None
    return change.namespace in want.profiles and change.name != "default-editor"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pmr_profiles=pmrs, cluster=clusters())
def test_only_pmr_profiles_and_stale_contributors_are_ever_touched(pmr_profiles, cluster):
    want = desired(*pmr_profiles)
    before = copy.deepcopy(cluster)

    result = plan(want, cluster.observed(), FORCE)

    stale = set(result.stale_profiles)
    assert stale == set(before.profiles) - set(want.profiles)
    bad = [str(c) for c in result.changes if not _allowed(c, want, stale, before)]
    assert not bad


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pmr_profiles=pmrs, cluster=clusters(), limit=st.integers(min_value=0, max_value=4))
def test_guard_never_lets_more_revocations_through_than_the_limit(pmr_profiles, cluster, limit):
    want = desired(*pmr_profiles)

    result = plan(want, cluster.observed(), PlanOptions(max_revocations=limit))

    revocations = [c for c in result.changes if c.is_revocation]
    assert len({(c.namespace, c.user) for c in revocations}) <= limit  # people, not objects
    if result.held:
        assert not revocations
        assert result.hold_reason


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pmr_profiles=pmrs, cluster=clusters())
def test_plan_is_deterministic_and_pure(pmr_profiles, cluster):
    want = desired(*pmr_profiles)
    observed = cluster.observed()
    snapshot = copy.deepcopy((dict(want.role_bindings), dict(observed.role_bindings)))

    first, second = plan(want, observed, FORCE), plan(want, observed, FORCE)

    assert first == second
    assert snapshot == (dict(want.role_bindings), dict(observed.role_bindings))


def _is_juju(cluster: SimCluster, name: str) -> bool:
    labels = cluster.namespaces.get(name, {}).get("metadata", {}).get("labels") or {}
    return "model.juju.is/name" in labels or labels.get("app.kubernetes.io/managed-by") == "juju"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pmr_profiles=pmrs, cluster=clusters(), adopt=st.booleans())
def test_a_namespace_is_never_taken_over_without_consent(pmr_profiles, cluster, adopt):
    """No write ever lands in (or re-owns) a namespace that no PMR Profile may take."""
    want = desired(*pmr_profiles)
    options = PlanOptions(force=True, adopt_namespaces=adopt)
    foreign = {
        name
        for name in want.profiles
        if name in cluster.namespaces
        and (_is_juju(cluster, name) or (not adopt and name not in cluster.profiles))
    }

    result = plan(want, cluster.observed(), options)

    assert {r.name for r in result.refused} == foreign
    touched = {c.namespace or c.name for c in result.changes}
    assert not touched & foreign
