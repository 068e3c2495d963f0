"""``binding_name`` must name contributor objects exactly as Kubeflow KFAM does.

KFAM's ``getBindingName`` (dashboard, components/access-management/kfam/bindings.go):
replace each run of ``[^a-zA-Z0-9]`` in the user with ``-``, ``url.QueryEscape`` it,
join ``User``, that, ``ClusterRole`` and the role with ``-``, lower-case the whole,
then replace each run of ``[^a-zA-Z0-9]`` with ``-`` once more. Go's regexp works on
runes, so every non-ASCII character is one non-alphanumeric character.
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles_automator.pmr.kfam_names import binding_name, binding_user_part
from profiles_automator.pmr.model import Role

NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
KUBERNETES_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@pytest.mark.parametrize(
    ("user", "role", "expected"),
    [
        pytest.param(
            "alice@example.com", "view", "user-alice-example-com-clusterrole-view", id="plain"
        ),
        pytest.param(
            "Alice.Smith@Example.COM",
            "edit",
            "user-alice-smith-example-com-clusterrole-edit",
            id="uppercase",
        ),
        pytest.param(
            "bob+ml@example.com", "admin", "user-bob-ml-example-com-clusterrole-admin", id="plus"
        ),
        pytest.param(
            # User--alice-example-com--ClusterRole-view before the second pass.
            "_alice@example.com_",
            "view",
            "user-alice-example-com-clusterrole-view",
            id="leading-and-trailing-symbols",
        ),
        pytest.param("a..b@@x.io", "edit", "user-a-b-x-io-clusterrole-edit", id="symbol-runs"),
        pytest.param("a.-_+~b@x.io", "view", "user-a-b-x-io-clusterrole-view", id="mixed-run"),
        pytest.param(
            "jürgen@example.com", "view", "user-j-rgen-example-com-clusterrole-view", id="umlaut"
        ),
        pytest.param(
            "日本@example.jp", "edit", "user-example-jp-clusterrole-edit", id="cjk-only-local-part"
        ),
        pytest.param(
            # e + COMBINING ACUTE ACCENT: the accent alone is one rune.
            "rene\u0301e@x.io",
            "view",
            "user-rene-e-x-io-clusterrole-view",
            id="combining-mark",
        ),
        pytest.param(
            # KELVIN SIGN would lower-case to "k", but it is replaced before lower-casing.
            "\u212aelvin@x.io",
            "view",
            "user-elvin-x-io-clusterrole-view",
            id="kelvin-sign",
        ),
        pytest.param("007@x.io", "admin", "user-007-x-io-clusterrole-admin", id="digits"),
        pytest.param("", "view", "user-clusterrole-view", id="empty"),
        pytest.param("@", "view", "user-clusterrole-view", id="only-symbols"),
    ],
)
def test_binding_name_matches_kfam(user: str, role: str, expected: str):
    assert binding_name(user, role) == expected


def test_role_enum_and_role_string_give_the_same_name():
    assert binding_name("bob@x.io", Role.EDIT) == binding_name("bob@x.io", "edit")


def test_unknown_role_is_refused():
    with pytest.raises(ValueError):
        binding_name("bob@x.io", "owner")


def test_user_part_drops_the_role_suffix():
    assert binding_user_part("Bob.Smith@x.io") == "user-bob-smith-x-io"


def test_spellings_kfam_cannot_tell_apart_share_a_user_part():
    assert binding_user_part("a.b@x.io") == binding_user_part("a-b@x.io")


def kfam_reference(user: str, role: str) -> str:
    """A line-by-line transcription of getBindingName, query-escape included."""
    raw = "-".join(["User", quote_plus(NON_ALNUM.sub("-", user)), "ClusterRole", role]).lower()
    return NON_ALNUM.sub("-", raw)


users = st.text(max_size=80)
roles = st.sampled_from(list(Role))


@given(users, roles)
def test_binding_name_is_a_valid_kubernetes_name(user: str, role: Role):
    assert KUBERNETES_NAME.fullmatch(binding_name(user, role))


@given(users, roles)
def test_binding_name_ends_with_the_cluster_role(user: str, role: Role):
    name = binding_name(user, role)

    assert name.startswith("user-")
    assert name.endswith(f"-clusterrole-{role.value}")


@given(users, roles)
def test_binding_name_is_stable_under_sanitising_again(user: str, role: Role):
    name = binding_name(user, role)

    assert NON_ALNUM.sub("-", name) == name


@given(users, roles)
def test_sanitised_user_gives_the_same_binding_name(user: str, role: Role):
    assert binding_name(NON_ALNUM.sub("-", user), role) == binding_name(user, role)


@given(users, roles)
def test_binding_name_agrees_with_a_transcription_of_kfam(user: str, role: Role):
    assert binding_name(user, role) == kfam_reference(user, role.value)
