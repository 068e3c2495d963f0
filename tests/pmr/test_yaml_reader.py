"""The defensive YAML reader: plain data plus the location of every key and value."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles_automator.pmr.problems import Location
from profiles_automator.pmr.yaml_reader import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_NODES,
    ParsedYAML,
    YAMLReadError,
    _Composer,
    extend_path,
    format_path,
    read_yaml,
)

PMR = """\
profiles:
- name: team-a
  owner: {kind: User, name: owner@x.io}
  contributors:
  - name: bob@x.io
    role: edit
"""


def read(text: str, **limits: int) -> ParsedYAML:
    return read_yaml("f.yaml", textwrap.dedent(text).encode(), **limits)


def read_error(content: bytes, **limits: int) -> str:
    with pytest.raises(YAMLReadError) as caught:
        read_yaml("f.yaml", content, **limits)
    return str(caught.value.problem)


def located(*cases: tuple[tuple[str | int, ...], int, int]) -> list:
    """Parametrize rows (path, line, column), each named by its rendered path."""
    return [
        pytest.param(path, Location("f.yaml", line, column), id=format_path(path) or "root")
        for path, line, column in cases
    ]


class TestLocations:
    def test_data_is_plain(self):
        parsed = read(PMR)

        assert parsed.data == {
            "profiles": [
                {
                    "name": "team-a",
                    "owner": {"kind": "User", "name": "owner@x.io"},
                    "contributors": [{"name": "bob@x.io", "role": "edit"}],
                }
            ]
        }

    @pytest.mark.parametrize(
        ("path", "expected"),
        located(
            ((), 1, 1),
            (("profiles",), 2, 1),
            (("profiles", 0), 2, 3),
            (("profiles", 0, "name"), 2, 9),
            (("profiles", 0, "owner"), 3, 10),
            (("profiles", 0, "owner", "name"), 3, 29),
            (("profiles", 0, "contributors", 0), 5, 5),
            (("profiles", 0, "contributors", 0, "role"), 6, 11),
        ),
    )
    def test_value_locations(self, path, expected: Location):
        assert read(PMR).where(path) == expected

    @pytest.mark.parametrize(
        ("path", "expected"),
        located(
            (("profiles",), 1, 1),
            (("profiles", 0, "owner"), 3, 3),
            (("profiles", 0, "owner", "name"), 3, 23),
            (("profiles", 0, "contributors", 0, "role"), 6, 5),
        ),
    )
    def test_key_locations(self, path, expected: Location):
        assert read(PMR).where(path, key=True) == expected

    def test_missing_path_falls_back_to_the_closest_parent(self):
        parsed = read(PMR)

        assert parsed.where(("profiles", 0, "resources", "hard")) == Location("f.yaml", 2, 3)

    def test_byte_order_mark_is_accepted_and_not_counted(self):
        parsed = read_yaml("f.yaml", b"\xef\xbb\xbfprofiles: []\n")

        assert parsed.data == {"profiles": []}
        assert parsed.where(("profiles",)) == Location("f.yaml", 1, 11)


class TestMergeKeys:
    TEXT = """\
        base: &base {kind: User, name: owner@x.io, namespace: ci}
        owner:
          <<: *base
          name: other@x.io
        """

    def test_explicit_keys_win_over_merged_ones(self):
        parsed = read(self.TEXT)

        assert parsed.data["owner"] == {"kind": "User", "name": "other@x.io", "namespace": "ci"}

    def test_explicit_key_keeps_its_own_location(self):
        parsed = read(self.TEXT)

        assert parsed.where(("owner", "name")) == Location("f.yaml", 4, 9)

    def test_merged_key_is_located_where_it_was_defined(self):
        parsed = read(self.TEXT)

        assert parsed.where(("owner", "kind")) == Location("f.yaml", 1, 20)

    def test_explicit_key_before_the_merge_also_wins(self):
        parsed = read(
            """\
            base: &base {role: view}
            contributor:
              role: admin
              <<: *base
            """
        )

        assert parsed.data["contributor"] == {"role": "admin"}

    def test_list_of_mappings_is_merged(self):
        parsed = read(
            """\
            a: &a {kind: User}
            b: &b {name: owner@x.io}
            owner:
              <<: [*a, *b]
            """
        )

        assert parsed.data["owner"] == {"kind": "User", "name": "owner@x.io"}

    def test_merging_a_scalar_is_an_error(self):
        message = read_error(b"owner:\n  <<: 1\n")

        assert message == "f.yaml:2:7: owner: '<<' must merge a mapping"


class TestAnchors:
    def test_aliases_within_budget_are_expanded(self):
        parsed = read(
            """\
            team: &team [alice@x.io, bob@x.io]
            groups:
              a: {members: *team}
              b: {members: *team}
            """
        )

        assert parsed.data["groups"] == {
            "a": {"members": ["alice@x.io", "bob@x.io"]},
            "b": {"members": ["alice@x.io", "bob@x.io"]},
        }

    def test_budget_counts_every_value_reached_through_aliases(self):
        """The root, ``a``'s list and its 2 items, then the same 3 again through ``*x``."""
        text = b"a: &x [1, 2]\nb: *x\n"

        assert read_yaml("f.yaml", text, max_nodes=7).data == {"a": [1, 2], "b": [1, 2]}
        assert read_error(text, max_nodes=6).startswith(
            "f.yaml:1:11: b[1]: document expands to more than 6 values"
        )

    def test_defaults_are_one_mebibyte_and_100000_values(self):
        assert (DEFAULT_MAX_BYTES, DEFAULT_MAX_NODES) == (1024 * 1024, 100_000)

    def test_file_at_the_byte_limit_is_read(self):
        content = b"profiles: []\n"

        assert read_yaml("f.yaml", content, max_bytes=len(content)).data == {"profiles": []}


class TestRefusals:
    def test_explicit_standard_tag_is_allowed(self):
        assert read("name: !!str 1\n").data == {"name": "1"}

    def test_custom_tag_is_refused(self):
        message = read_error(b"profiles: !vault secret\n")

        assert message.startswith("f.yaml:1:11: profiles: tag '!vault' is not allowed")

    def test_document_start_marker_alone_is_one_document(self):
        assert read("---\nprofiles: []\n").data == {"profiles": []}

    def test_null_key_is_refused(self):
        message = read_error(b"profiles: []\n~: 1\n")

        assert message.startswith("f.yaml:2:1: mapping keys must be plain strings")

    def test_duplicate_key_error_names_the_line_of_the_first(self):
        message = read_error(b"a: 1\nb:\n  c: 1\n  c: 2\n")

        assert message.startswith("f.yaml:4:3: b.c: key 'c' appears twice in the same mapping")
        assert "(first at line 3)" in message

    def test_bad_byte_column_counts_characters(self):
        message = read_error("name: café ".encode() + b"\xff")

        assert message.startswith("f.yaml:1:12: not valid UTF-8")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("profiles", 3, "contributors", 1, "role"), "profiles[3].contributors[1].role"),
        (("resources", "hard", "limits.cpu"), 'resources.hard["limits.cpu"]'),
        (("groups", "ml-team", "members", 0), "groups.ml-team.members[0]"),
        (("groups", "ml team"), 'groups["ml team"]'),
        (("groups", "ml_team"), "groups.ml_team"),
        ((0, "name"), "[0].name"),
        (("a", ""), 'a[""]'),
        ((), ""),
    ],
    ids=repr,
)
def test_format_path(path, expected: str):
    assert format_path(path) == expected


def _tags(node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value)
    if isinstance(node, yaml.SequenceNode):
        return (node.tag, [_tags(item) for item in node.value])
    return (node.tag, [(_tags(key), _tags(value)) for key, value in node.value])


# Plain scalars YAML 1.1 reads as something other than a string, and some it does not.
PLAIN = st.sampled_from(
    ["1", "-1", "0x1f", "0o17", "017", "1_000", "1:20", ".inf", "-.NaN", "1e3", "1.5", "yes",
     "No", "on", "OFF", "TRUE", "y", "~", "null", "Null", "", "2020-01-01",
     "2020-01-01 10:00:00Z", "8", "32Gi", "team-a", "a@b.c", "=", "<<"]
)  # fmt: skip
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(PLAIN, max_size=6),
    st.lists(st.tuples(ANY_TEXT, st.sampled_from(["'", '"', "|", ">"])), max_size=4),
)
def test_the_composer_tags_every_scalar_as_pyyaml_does(plain, styled):
    # Arrange: plain scalars as values, in flow lists and (suffixed) as keys; then
    # any text quoted or as a block
    text = "start: here\n"
    text += "".join(f"k{i}: {v}\nf{i}: [{v}]\n{v}x{i}: v\n" for i, v in enumerate(plain))
    for i, (value, style) in enumerate(styled):
        text += yaml.safe_dump({f"s{i}": value}, default_style=style, allow_unicode=True)

    # Act
    expected = _tags(yaml.compose(text, Loader=yaml.SafeLoader))
    actual = _tags(yaml.compose(text, Loader=_Composer))

    # Assert
    assert actual == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            b"a: &x [*x]\n",
            "f.yaml:1:4: a[0][0][0][0][0]: nested more than 32 levels deep",
            id="list-holding-itself",
        ),
        pytest.param(
            b"a: &a {b: {c: *a}}\n",
            "f.yaml:1:11: a.b.c.b.c.b: nested more than 32 levels deep",
            id="mapping-holding-itself",
        ),
        pytest.param(
            b"x: " + b"[" * 40 + b"]" * 40 + b"\n",
            "f.yaml:1:35: x[0][0][0][0][0]: nested more than 32 levels deep",
            id="deep-lists",
        ),
        pytest.param(
            b"a: &a {<<: *a}\n",
            "f.yaml:1:4: a: '<<' merges a mapping into itself (through an alias)",
            id="mapping-merging-itself",
        ),
        pytest.param(
            b"x: " + b"[" * 2000 + b"]" * 2000 + b"\n",
            "f.yaml:1:1003: invalid YAML: exceeded maximum nesting depth",
            id="deeper-than-libyaml-reads",
        ),
    ],
)
def test_self_holding_anchors_and_deep_nesting_are_refused_with_a_location(content, expected):
    # Act
    message = read_error(content)

    # Assert
    assert message.startswith(expected)


PATH_PARTS = st.lists(st.one_of(st.integers(0, 20), st.sampled_from(["name", "a b", "x.y", "-"])))


@given(PATH_PARTS, PATH_PARTS)
def test_a_path_extended_from_its_parents_text_reads_as_the_whole_path(parent, child):
    # Act
    extended = extend_path(format_path(tuple(parent)), tuple(child))

    # Assert
    assert extended == format_path((*parent, *child))
