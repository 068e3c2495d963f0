"""Whatever bytes arrive, the loader answers with a model or located errors, never a crash."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.problems import PMRInvalidError

KEYS = [
    "profiles",
    "name",
    "owner",
    "kind",
    "User",
    "contributors",
    "role",
    "group",
    "groups",
    "members",
    "defaults",
    "resources",
    "hard",
    "version",
    "clusters",
    "plugins",
    "spec",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(["edit", "view", "admin", "a@x.io", "team-a", "User", "", "1Gi", "x y"]),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(0, 3)), inner, max_size=5),
    ),
    max_leaves=25,
)


def _outcome(content: bytes) -> str:
    try:
        load_pmr([Document("pmr.yaml", content)])
    except PMRInvalidError as exc:
        assert exc.errors, "an invalid PMR must say why"
        for problem in exc.errors:
            assert str(problem).startswith("pmr.yaml:")
        return "invalid"
    return "valid"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=documents)
def test_any_yaml_document_is_loaded_or_refused_with_located_errors(data):
    assert _outcome(yaml.safe_dump(data).encode()) in {"valid", "invalid"}


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=200))
def test_any_bytes_are_loaded_or_refused_with_located_errors(content: bytes):
    assert _outcome(content) in {"valid", "invalid"}


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("profiles:- {}[]&*!<>'\"\n #@,")), max_size=60))
def test_yaml_punctuation_soup_never_crashes_the_reader(text: str):
    assert _outcome(text.encode()) in {"valid", "invalid"}
