"""The fast validity check in front of jsonschema never accepts what jsonschema rejects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from profiles_automator.pmr import schema
from profiles_automator.pmr.loader import read_paths
from profiles_automator.pmr.yaml_reader import read_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

NAMES = st.sampled_from(["team-a", "Team_A", "", "a" * 64, "kubeflow", 7, None, "x.y"])
EMAILS = st.sampled_from(["a@example.com", "b@x.org", "no-at-sign", "a b@c.d", "", 1, True])
KINDS = st.sampled_from(["User", "Group", "ServiceAccount", "Robot", 1, None])
ROLES = st.sampled_from(["admin", "edit", "view", "owner", 0, None])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
    st.sampled_from(["8", "32Gi", "1.5", "", "-1", "cpu", "WorkloadIdentity", "x" * 300]),
)
KEYS = st.sampled_from(
    ["name", "owner", "kind", "namespace", "resources", "hard", "role", "group", "members",
     "plugins", "spec", "clusters", "limits.cpu", "bad key!", "gcpServiceAccount", "scopes"]
)  # fmt: skip
ANY = st.recursive(
    SCALARS | NAMES | EMAILS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, ANY)


OWNER = st.fixed_dictionaries(
    {"kind": _maybe(KINDS), "name": st.one_of(EMAILS, NAMES)},
    optional={"namespace": NAMES, "extra": ANY},
)
CONTRIBUTOR = st.one_of(
    st.fixed_dictionaries({"name": EMAILS, "role": _maybe(ROLES)}, optional={"group": NAMES}),
    st.fixed_dictionaries({"group": NAMES, "role": ROLES}),
    ANY,
)
RESOURCES = st.one_of(
    st.fixed_dictionaries({"hard": st.dictionaries(KEYS, SCALARS, max_size=3)}), ANY
)
PLUGIN = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["WorkloadIdentity", "AwsIamForServiceAccount", "Other"]),
        "spec": st.one_of(
            st.fixed_dictionaries({"gcpServiceAccount": _maybe(NAMES)}),
            st.fixed_dictionaries({"awsIamRole": _maybe(NAMES)}),
            ANY,
        ),
    }
)
PROFILE = st.fixed_dictionaries(
    {"name": _maybe(NAMES)},
    optional={
        "owner": _maybe(OWNER),
        "contributors": st.lists(CONTRIBUTOR, max_size=3),
        "resources": RESOURCES,
        "plugins": st.lists(PLUGIN, max_size=2),
        "clusters": st.lists(NAMES, max_size=2),
    },
)
DOCUMENT = st.fixed_dictionaries(
    {"profiles": st.lists(PROFILE, max_size=3)},
    optional={
        "version": SCALARS,
        "groups": st.dictionaries(
            st.sampled_from(["ml", "bad name", "a" * 70]),
            st.fixed_dictionaries({"members": st.lists(EMAILS, max_size=2)}) | ANY,
            max_size=2,
        ),
        "defaults": st.fixed_dictionaries({}, optional={"owner": OWNER, "resources": RESOURCES}),
    },
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(DOCUMENT, ANY))
def test_what_the_fast_check_accepts_jsonschema_accepts(document):
    # Arrange
    fast = schema._fast_check()
    assert fast is not None  # the shipped schema compiles

    # Act
    accepted = fast(document)
    event("accepted" if accepted else "rejected")

    # Assert
    if accepted:
        assert list(schema._validator().iter_errors(document)) == []


def test_the_fast_check_accepts_the_shipped_examples():
    # Arrange
    documents = read_paths([EXAMPLES / "full", EXAMPLES / "minimal"])

    # Act
    fast = schema._fast_check()
    assert fast is not None
    accepted = [fast(read_yaml(d.name, d.content).data) for d in documents]

    # Assert
    assert all(accepted)
