"""Properties of access_diff: the review is exact (it rebuilds HEAD's access from BASE's)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from profiles_automator.pmr.model import PMR, Role
from profiles_automator.report.access_diff import AccessDiff, access_diff
from tests.pmr_builders import pmr, profile

NAMES = ["team-a", "team-b", "team-c"]
USERS = ["alice@example.com", "bob@example.com", "carol@example.com", "owner@example.com"]
OWNERS = ["owner@example.com", "alice@example.com"]

profiles = st.builds(
    profile,
    name=st.sampled_from(NAMES),
    owner=st.sampled_from(OWNERS),
    contributors=st.dictionaries(
        st.sampled_from(USERS), st.sampled_from(["admin", "edit", "view"]), max_size=4
    ),
    hard=st.sampled_from([None, {"cpu": "1"}, {"cpu": "2"}]),
    clusters=st.sampled_from([None, ("prod",)]),
)
pmrs = st.lists(profiles, max_size=3, unique_by=lambda p: p.name).map(lambda ps: pmr(*ps))


def access(model: PMR) -> dict[str, dict[str, Role]]:
    """Who has which contributor role in each profile."""
    return {p.name: {c.name: c.role for c in p.contributors} for p in model.profiles}


def owners(model: PMR) -> dict[str, str]:
    return {p.name: p.owner.name for p in model.profiles}


def _strip_owner(model: PMR) -> PMR:
    """Drop owners from their own contributors, as the loader does."""
    return pmr(
        *(
            profile(
                p.name,
                owner=p.owner.name,
                contributors={
                    c.name: c.role.value for c in p.contributors if c.name != p.owner.name
                },
                hard=dict(p.resources.get("hard", {})) or None,
                clusters=p.clusters,
            )
            for p in model.profiles
        )
    )


def rebuild(base: PMR, diff: AccessDiff, head: PMR) -> dict[str, dict[str, Role]]:
    """BASE's access with the diff's changes applied."""
    result = {name: dict(users) for name, users in access(base).items()}
    new_owners = owners(head)
    for change in diff.profiles:
        users = result.setdefault(change.name, {})
        for item in change.access:
            if item.kind == "loses":
                users.pop(item.user)
            else:
                assert item.after is not None
                users[item.user] = item.after
        if change.change == "removed":
            del result[change.name]
        elif change.name in new_owners:
            users.pop(new_owners[change.name], None)  # a contributor who became the owner
    return result


@settings(max_examples=60)
@given(pmrs, pmrs)
def test_the_review_rebuilds_heads_access_from_bases(base: PMR, head: PMR):
    base, head = _strip_owner(base), _strip_owner(head)

    diff = access_diff(base, head)

    assert rebuild(base, diff, head) == access(head)


@given(pmrs)
def test_a_pmr_against_itself_is_no_change(model: PMR):
    assert not access_diff(model, model).has_changes


@settings(max_examples=60)
@given(pmrs, pmrs)
def test_swapping_the_sides_swaps_gains_and_losses(base: PMR, head: PMR):
    base, head = _strip_owner(base), _strip_owner(head)
    same_owner = {n for n, o in owners(base).items() if owners(head).get(n) == o}

    forward, backward = access_diff(base, head), access_diff(head, base)

    def moves(diff: AccessDiff, kind: str) -> set[tuple[str, str]]:
        return {
            (p.name, a.user)
            for p in diff.profiles
            if p.name in same_owner
            for a in p.access
            if a.kind == kind
        }

    assert moves(forward, "gains") == moves(backward, "loses")
    assert moves(forward, "role") == moves(backward, "role")
