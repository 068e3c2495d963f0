"""Provider groups in the planner: an unresolved group is unknown, never empty.

A fixed PMR with two provider groups (one also with a static member), a profile reached
through both and personal profiles for one of them; hypothesis draws memberships and which
providers fail. The cluster is first converged with one membership, then planned again.
"""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.membership import expand
from profiles_automator.pmr.model import PMR, GroupSource
from profiles_automator.sync.kfam import kfam_identity
from profiles_automator.sync.planner import Plan, PlanOptions, plan
from profiles_automator.sync.state import DesiredState, desired_state
from tests.cluster_sim import SimCluster
from tests.pmr_builders import ACCESS

TEAM = GroupSource("corp-entra", "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b")
EXTRA = GroupSource("corp-ad", "cn=extra,ou=groups,dc=corp,dc=example")
USERS = [
    "ann@corp.example",
    "ben@corp.example",
    "cy@corp.example",
    "dee@corp.example",
    "lead@corp.example",
]
PMR_TEXT = f"""\
identityProviders:
  corp-entra: {{entra: {{tenantId: 0c2b5d3e-1f4a-4b6c-9d8e-7f6a5b4c3d2e}}}}
  corp-ad: {{ldap: {{url: "ldaps://dc1:636", userBase: "dc=corp,dc=example",
             schema: rfc2307bis}}}}
groups:
  team: {{from: [{{provider: corp-entra, group: {TEAM.group}}}]}}
  extra: {{from: [{{provider: corp-ad, group: "{EXTRA.group}"}}], members: [static@corp.example]}}
profiles:
- name: ml
  owner: {{kind: User, name: lead@corp.example}}
  contributors: [{{group: team, role: edit}}, {{group: extra, role: view}},
                 {{name: fixed@corp.example, role: view}}]
personalProfiles:
- {{group: team, name: "ws-{{local}}", contributors: [{{group: extra, role: view}}]}}
"""
LOADED: PMR = load_pmr([Document("pmr.yaml", textwrap.dedent(PMR_TEXT).encode())]).pmr
FORCE = PlanOptions(force=True)
memberships = st.frozensets(st.sampled_from(USERS))


def want(resolved: dict[GroupSource, frozenset[str]]) -> DesiredState:
    return desired_state(expand(LOADED, resolved).pmr, cluster_name=None, access=ACCESS)


def converged(resolved: dict[GroupSource, frozenset[str]]) -> SimCluster:
    cluster = SimCluster()
    for _ in range(3):
        cluster.apply(plan(want(resolved), cluster.observed(), FORCE).changes)
    return cluster


def bindings(cluster: SimCluster) -> set[tuple[str, str, str]]:
    """(namespace, user, role) of every contributor RoleBinding."""
    found = set()
    for (ns, _), obj in cluster.role_bindings.items():
        identity = kfam_identity(obj)
        if identity:
            found.add((ns, identity[0], str(identity[1])))
    return found


def expected_bindings(team: frozenset[str], extra: frozenset[str]) -> set[tuple[str, str, str]]:
    """What the PMR means, worked out independently of the loader and planner."""
    extra = extra | {"static@corp.example"}
    out = set()
    for user in (team | extra | {"fixed@corp.example"}) - {"lead@corp.example"}:
        out.add(("ml", user, "edit" if user in team else "view"))
    for member in team:
        home = "ws-" + member.split("@")[0]
        for user in extra - {member}:
            out.add((home, user, "view"))
    return out


def delete_changes(result: Plan) -> list[str]:
    return [str(c) for c in (*result.changes, *result.held) if c.action == "delete"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    team=memberships,
    extra=memberships,
    new_team=memberships,
    new_extra=memberships,
    failing=st.sampled_from([{TEAM}, {EXTRA}, {TEAM, EXTRA}]),
)
def test_a_failed_provider_never_revokes_or_reports_stale(
    team, extra, new_team, new_extra, failing
):
    cluster = converged({TEAM: team, EXTRA: extra})
    resolved = {s: m for s, m in ((TEAM, new_team), (EXTRA, new_extra)) if s not in failing}
    state = want(resolved)

    result = plan(state, cluster.observed(), PlanOptions())

    # Where an unknown group grants access, no one loses it (role upgrades still happen);
    # the only revocations left are in personal profiles whose owner verifiably left.
    revoked = [str(c) for c in (*result.changes, *result.held) if c.is_revocation]
    assert [r for r in revoked if " ml/" in r] == []
    for name in result.stale_profiles:
        assert TEAM not in failing
        assert name.removeprefix("ws-") + "@corp.example" in team - new_team
    if TEAM in failing:
        assert revoked == [] and result.stale_profiles == ()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(team=memberships, extra=memberships, team2=memberships, extra2=memberships)
def test_a_membership_change_gives_exactly_the_expected_access(team, extra, team2, extra2):
    cluster = converged({TEAM: team, EXTRA: extra})
    before = bindings(cluster)
    assert before == expected_bindings(team, extra)

    result = plan(want({TEAM: team2, EXTRA: extra2}), cluster.observed(), FORCE)

    after = expected_bindings(team2, extra2)
    live = set(cluster.namespaces)
    granted = {
        (c.namespace, *kfam_identity(c.body or {}))  # type: ignore[misc]
        for c in result.changes
        if c.kind == "RoleBinding" and c.action == "create"
    }
    assert {(ns, u, str(r)) for ns, u, r in granted} == {b for b in after - before if b[0] in live}
    revoked_users = {
        (c.namespace, c.reason.split(" ")[0])
        for c in result.changes
        if c.kind == "RoleBinding" and c.is_revocation
    }
    left = {(ns, u) for ns, u, _ in before} - {(ns, u) for ns, u, _ in after}
    assert revoked_users == left
    stale = {"ws-" + m.split("@")[0] for m in team - team2}
    assert set(result.stale_profiles) == stale
    created = {c.name for c in result.changes if c.kind == "Profile" and c.action == "create"}
    assert created == {"ws-" + m.split("@")[0] for m in team2 - team}
    assert not any(c.kind == "Profile" and c.action == "delete" for c in result.changes)


def test_personal_profiles_are_owned_by_the_member_and_marked_with_their_group():
    state = want({TEAM: frozenset({"ann@corp.example"}), EXTRA: frozenset()})

    profile = state.profiles["ws-ann"]

    assert profile["spec"]["owner"] == {
        "kind": "User",
        "name": "ann@corp.example",
        "apiGroup": "rbac.authorization.k8s.io",
    }
    annotations = profile["metadata"]["annotations"]
    assert annotations == {"kubeflow-profiles-automator/personal-profile-of-group": "team"}


def test_an_unknown_group_still_lets_known_grants_through():
    cluster = converged({TEAM: frozenset({"ann@corp.example"}), EXTRA: frozenset()})
    # extra gains a static-like member through the PMR's fixed entry only; team is down
    state = want({EXTRA: frozenset({"ben@corp.example"})})

    result = plan(state, cluster.observed(), PlanOptions())

    creates = {(c.namespace, c.name) for c in result.changes if c.action == "create"}
    assert ("ml", "user-ben-corp-example-clusterrole-view") in creates
    assert ("ws-ann", "user-ben-corp-example-clusterrole-view") not in creates  # left alone
    assert delete_changes(result) == []


def test_access_an_unknown_group_may_give_is_never_taken_away():
    cluster = converged({TEAM: frozenset({"ann@corp.example"}), EXTRA: frozenset()})
    # ann left team (edit); extra (view) cannot be resolved: she may still be in it, so her
    # binding stays until extra resolves (a higher role kept a while, never access lost).
    state = want({TEAM: frozenset()})

    result = plan(state, cluster.observed(), FORCE)

    assert [c for c in result.changes if c.action == "delete" and c.namespace == "ml"] == []
    assert result.stale_profiles == ("ws-ann",)  # her own profile: she did leave team


def test_a_known_grant_that_covers_the_unknown_role_lets_the_higher_role_go():
    cluster = converged({TEAM: frozenset({"ann@corp.example"}), EXTRA: frozenset()})
    # ann moves from team (edit) to extra (view).
    state = want({TEAM: frozenset(), EXTRA: frozenset({"ann@corp.example"})})
    state_unknown_team = want({EXTRA: frozenset({"ann@corp.example"})})

    resolved = plan(state, cluster.observed(), FORCE)
    unresolved = plan(state_unknown_team, cluster.observed(), FORCE)

    edit = ("ml", "user-ann-corp-example-clusterrole-edit")
    assert edit in {(c.namespace, c.name) for c in resolved.changes if c.action == "delete"}
    assert not [c for c in resolved.changes if c.is_revocation and c.namespace == "ml"]
    assert edit not in {(c.namespace, c.name) for c in unresolved.changes if c.action == "delete"}
