"""Reserved namespaces: the one compiled pattern reads shell patterns as fnmatch does."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from profiles_automator.pmr.reserved import RESERVED_NAMESPACES, is_reserved

NAMES = st.one_of(
    st.sampled_from(["default", "kube-system", "kube-", "kubeflow", "kubeflow-user", "team-a",
                     "knative-serving", "dex", "auth", "authz", "ml-prod", "ml-", "x"]),
    st.text("abk-*?[]!", max_size=10),
)  # fmt: skip
PATTERNS = st.lists(st.sampled_from(["ml-*", "prod", "team-?", "[ab]*", "", "x[!y]"]), max_size=3)


@given(NAMES, PATTERNS)
def test_a_name_is_reserved_exactly_when_a_pattern_matches_it(name, protected):
    # Arrange
    patterns = [p for p in (*RESERVED_NAMESPACES, *protected) if p]

    # Act
    reserved = is_reserved(name, protected)

    # Assert
    assert reserved == any(fnmatch.fnmatchcase(name, p) for p in patterns)
