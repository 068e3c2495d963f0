"""Malformed PMRs: each must be refused with the first error at the offending YAML node.

Every expected line is ``FILE:LINE:COL: path: message`` worked out by hand from the
YAML text: LINE and COL are 1-based and point at the node a reviewer would point at
(the bad key, the bad value, or the entry that cannot be used).
"""

from __future__ import annotations

import textwrap
from typing import Any, cast

import pytest
from _pytest.mark import ParameterSet

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.problems import PMRInvalidError

DNS_LABEL = (
    "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
    "starting and ending with a letter or digit"
)
EMAIL = (
    "must be an email address such as alice@example.com, without spaces, quotes, commas or "
    "control characters (they would break the Istio header match)"
)
RESERVED = (
    "is a reserved namespace and can never be a profile: a contributor binding there "
    "would hand out power over the platform; choose another name"
)
QUANTITY = 'must be a Kubernetes quantity such as "1", "500m" or "2Gi"'
ONE_OF_NAME_OR_GROUP = (
    "a contributor needs exactly one of `name` (a user) or `group` (a group from `groups`)"
)
SCOPES = (
    "Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass, "
    "CrossNamespacePodAffinity, VolumeAttributesClass"
)
PROFILE_KEYS = "clusters, contributors, name, owner, plugins, resources"
NOT_STRING_KEY = "mapping keys must be plain strings (quote keys such as yes, no, on or 1)"
EMPTY_FILE = "pmr.yaml:1:1: file is empty; a PMR needs at least a `profiles:` list"

# Lines 1-3 of most cases; the owner's name value is at 3:29.
HEADER = "profiles:\n- name: team-a\n  owner: {kind: User, name: owner@x.io}\n"

BILLION_LAUGHS = """\
    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    profiles: []
"""


def header(more_keys: str) -> str:
    """HEADER followed by more keys of its profile (written at any indentation)."""
    return HEADER + textwrap.indent(textwrap.dedent(more_keys), "  ")


def _bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else textwrap.dedent(text).encode()


def case(case_id: str, text: str | bytes, expected: str, **options: Any) -> ParameterSet:
    """One file named pmr.yaml; ``options`` go to load_pmr."""
    return pytest.param([Document("pmr.yaml", _bytes(text))], expected, options, id=case_id)


def files(case_id: str, expected: str, **texts: str) -> ParameterSet:
    """Several files, ``a=...`` becoming a.yaml, loaded in the order given."""
    documents = [Document(f"{name}.yaml", _bytes(text)) for name, text in texts.items()]
    return pytest.param(documents, expected, {}, id=case_id)


UNKNOWN_KEYS = [
    case(
        "unknown-key-top",
        """\
        profiles: []
        profils: []
        """,
        "pmr.yaml:2:1: profils: unknown key 'profils' (did you mean 'profiles'?); "
        "allowed keys: defaults, groups, identityProviders, personalProfiles, profiles, version",
    ),
    case(
        "unknown-key-profile",
        """\
        profiles:
        - name: team-a
          ownr: {kind: User, name: owner@x.io}
        """,
        "pmr.yaml:3:3: profiles[0].ownr: unknown key 'ownr' (did you mean 'owner'?); "
        f"allowed keys: {PROFILE_KEYS}",
    ),
    case(
        "unknown-key-owner",
        """\
        profiles:
        - name: team-a
          owner:
            kind: User
            name: owner@x.io
            namespce: ci
        """,
        "pmr.yaml:6:5: profiles[0].owner.namespce: unknown key 'namespce' "
        "(did you mean 'namespace'?); allowed keys: kind, name, namespace",
    ),
    case(
        "unknown-key-contributor",
        header(
            """\
              contributors:
              - name: bob@x.io
                role: edit
                rol: view
            """
        ),
        "pmr.yaml:7:5: profiles[0].contributors[0].rol: unknown key 'rol' "
        "(did you mean 'role'?); allowed keys: group, name, role",
    ),
    case(
        "unknown-key-resources",
        header(
            """\
              resources:
                hrad: {cpu: "1"}
            """
        ),
        "pmr.yaml:5:5: profiles[0].resources.hrad: unknown key 'hrad' "
        "(did you mean 'hard'?); allowed keys: hard, scopeSelector, scopes",
    ),
    case(
        "unknown-key-scopeSelector",
        header(
            """\
              resources:
                scopeSelector:
                  matchExpression: []
            """
        ),
        "pmr.yaml:6:7: profiles[0].resources.scopeSelector.matchExpression: unknown key "
        "'matchExpression' (did you mean 'matchExpressions'?); allowed keys: matchExpressions",
    ),
    case(
        "unknown-key-matchExpressions-item",
        header(
            """\
              resources:
                scopeSelector:
                  matchExpressions:
                  - scopeName: PriorityClass
                    operator: In
                    value: [high]
            """
        ),
        "pmr.yaml:9:9: profiles[0].resources.scopeSelector.matchExpressions[0].value: "
        "unknown key 'value' (did you mean 'values'?); allowed keys: operator, scopeName, values",
    ),
    case(
        "unknown-key-group",
        """\
        groups:
          ml-team:
            members: [bob@x.io]
            Description: Data scientists
        profiles: []
        """,
        "pmr.yaml:4:5: groups.ml-team.Description: unknown key 'Description' "
        "(did you mean 'description'?); allowed keys: description, from, members",
    ),
    case(
        "unknown-key-defaults",
        """\
        defaults:
          ownr: {kind: User, name: owner@x.io}
        profiles: []
        """,
        "pmr.yaml:2:3: defaults.ownr: unknown key 'ownr' (did you mean 'owner'?); "
        "allowed keys: contributors, owner, resources",
    ),
    case(
        "unknown-key-plugin",
        header(
            """\
              plugins:
              - kind: WorkloadIdentity
                spec: {gcpServiceAccount: sa@proj.iam.gserviceaccount.com}
                specs: {}
            """
        ),
        "pmr.yaml:7:5: profiles[0].plugins[0].specs: unknown key 'specs' "
        "(did you mean 'spec'?); allowed keys: kind, spec",
    ),
]

WRONG_TYPES = [
    case(
        "profiles-not-a-list",
        """\
        profiles:
          name: team-a
        """,
        "pmr.yaml:2:3: profiles: expected a list, got a mapping",
    ),
    case(
        "name-an-int",
        """\
        profiles:
        - name: 42
          owner: {kind: User, name: owner@x.io}
        """,
        "pmr.yaml:2:9: profiles[0].name: expected a string, got 42 (a number)",
    ),
    case(
        "contributors-a-mapping",
        header(
            """\
              contributors:
                name: bob@x.io
                role: edit
            """
        ),
        "pmr.yaml:5:5: profiles[0].contributors: expected a list, got a mapping",
    ),
    case(
        "role-a-number",
        header(
            """\
              contributors:
              - {name: bob@x.io, role: 3}
            """
        ),
        "pmr.yaml:5:28: profiles[0].contributors[0].role: expected a string, got 3 (a number)",
    ),
    case(
        "members-a-string",
        """\
        groups:
          ml-team:
            members: bob@x.io
        profiles: []
        """,
        "pmr.yaml:3:14: groups.ml-team.members: expected a list, got 'bob@x.io'",
    ),
    case(
        "clusters-a-string",
        HEADER + "  clusters: prod\n",
        "pmr.yaml:4:13: profiles[0].clusters: expected a list, got 'prod'",
    ),
]

BAD_ENUMS = [
    case(
        "role-edtor",
        header(
            """\
              contributors:
              - {name: bob@x.io, role: edtor}
            """
        ),
        "pmr.yaml:5:28: profiles[0].contributors[0].role: 'edtor' is not one of admin, edit, view",
    ),
    case(
        "owner-kind-lowercase-user",
        """\
        profiles:
        - name: team-a
          owner: {kind: user, name: owner@x.io}
        """,
        "pmr.yaml:3:17: profiles[0].owner.kind: 'user' is not one of User, Group, ServiceAccount",
    ),
    case(
        "quota-scope-name",
        header(
            """\
              resources:
                scopes: [terminating]
            """
        ),
        f"pmr.yaml:5:14: profiles[0].resources.scopes[0]: 'terminating' is not one of {SCOPES}",
    ),
    case(
        "scope-selector-operator",
        header(
            """\
              resources:
                scopeSelector:
                  matchExpressions:
                  - scopeName: PriorityClass
                    operator: Equals
            """
        ),
        "pmr.yaml:8:19: profiles[0].resources.scopeSelector.matchExpressions[0].operator: "
        "'Equals' is not one of In, NotIn, Exists, DoesNotExist",
    ),
    case(
        "plugin-kind",
        header(
            """\
              plugins:
              - kind: Vault
                spec: {}
            """
        ),
        "pmr.yaml:5:11: profiles[0].plugins[0].kind: "
        "'Vault' is not one of WorkloadIdentity, AwsIamForServiceAccount",
    ),
]


def _named(name: str) -> str:
    return f"profiles:\n- name: {name}\n  owner: {{kind: User, name: owner@x.io}}\n"


BAD_PROFILE_NAMES = [
    case(
        "name-uppercase", _named("Team-A"), f"pmr.yaml:2:9: profiles[0].name: 'Team-A' {DNS_LABEL}"
    ),
    case(
        "name-underscore",
        _named("team_a"),
        f"pmr.yaml:2:9: profiles[0].name: 'team_a' {DNS_LABEL}",
    ),
    case(
        "name-64-chars",
        _named("a" * 64),
        f"pmr.yaml:2:9: profiles[0].name: '{'a' * 64}' {DNS_LABEL}",
    ),
    case(
        "name-leading-dash",
        _named("-team"),
        f"pmr.yaml:2:9: profiles[0].name: '-team' {DNS_LABEL}",
    ),
    case("name-empty", _named('""'), f"pmr.yaml:2:9: profiles[0].name: '' {DNS_LABEL}"),
]

RESERVED_NAMES = [
    *(
        case(
            f"reserved-{name}",
            _named(name),
            f"pmr.yaml:2:9: profiles[0].name: '{name}' {RESERVED}",
        )
        for name in ("kubeflow", "kube-system", "knative-serving", "istio-system", "default")
    ),
    case(
        "reserved-protected-by-caller",
        _named("finance"),
        f"pmr.yaml:2:9: profiles[0].name: 'finance' {RESERVED}",
        protected_namespaces=["finance"],
    ),
    case(
        "reserved-protected-glob",
        _named("team-secret"),
        f"pmr.yaml:2:9: profiles[0].name: 'team-secret' {RESERVED}",
        protected_namespaces=["audit", "team-*"],
    ),
]


def _contributor(name: str) -> str:
    """HEADER plus one contributor on line 5; its name value starts at column 12."""
    return HEADER + f"  contributors:\n  - {{name: {name}, role: edit}}\n"


BAD_USERS = [
    case(
        "user-not-an-email",
        _contributor("alice"),
        f"pmr.yaml:5:12: profiles[0].contributors[0].name: 'alice' {EMAIL}",
    ),
    case(
        "user-with-comma",
        _contributor("'alice,bob@x.io'"),
        f"pmr.yaml:5:12: profiles[0].contributors[0].name: 'alice,bob@x.io' {EMAIL}",
    ),
    case(
        "user-with-quote",
        _contributor("'al\"ice@x.io'"),
        f"pmr.yaml:5:12: profiles[0].contributors[0].name: 'al\"ice@x.io' {EMAIL}",
    ),
    case(
        "user-with-space",
        _contributor("'alice smith@x.io'"),
        f"pmr.yaml:5:12: profiles[0].contributors[0].name: 'alice smith@x.io' {EMAIL}",
    ),
    case(
        "user-with-control-character",
        _contributor('"a\\u0001b@x.io"'),
        f"pmr.yaml:5:12: profiles[0].contributors[0].name: 'a\\x01b@x.io' {EMAIL}",
    ),
    case(
        "user-kfam-binding-name-too-long",
        _contributor("u" * 227 + "@x.io"),
        f"pmr.yaml:5:12: profiles[0].contributors[0].name: '{'u' * 227}@x.io' is too long: "
        "its KFAM binding name would exceed 253 characters",
    ),
    case(
        "users-with-same-kfam-binding-name",
        header(
            """\
              contributors:
              - {name: a-b@x.io, role: edit}
              - {name: a.b@x.io, role: edit}
            """
        ),
        "pmr.yaml:6:12: profiles[0].contributors[1].name: 'a.b@x.io' and 'a-b@x.io' (at "
        "pmr.yaml:5:12) in profile 'team-a' get the same KFAM binding name "
        "(user-a-b-x-io-clusterrole-edit), so "
        "Kubeflow cannot tell them apart; keep only one spelling",
    ),
]

BAD_ENTRIES = [
    case(
        "owner-missing-without-defaults",
        """\
        profiles:
        - name: team-a
          contributors:
          - {name: bob@x.io, role: edit}
        """,
        "pmr.yaml:2:3: profiles[0]: profile 'team-a' has no owner: "
        "set `owner` on it or `defaults.owner`",
    ),
    case(
        "service-account-owner-without-namespace",
        """\
        profiles:
        - name: team-a
          owner: {kind: ServiceAccount, name: ci-bot}
        """,
        "pmr.yaml:3:10: profiles[0].owner: missing required key 'namespace'",
    ),
    case(
        "contributor-with-name-and-group",
        """\
        groups:
          ml-team: {members: [bob@x.io]}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {name: bob@x.io, group: ml-team, role: edit}
        """,
        f"pmr.yaml:7:5: profiles[0].contributors[0]: {ONE_OF_NAME_OR_GROUP}",
    ),
    case(
        "contributor-without-name-or-group",
        header(
            """\
              contributors:
              - {role: edit}
            """
        ),
        f"pmr.yaml:5:5: profiles[0].contributors[0]: {ONE_OF_NAME_OR_GROUP}",
    ),
    case(
        "unknown-group-with-hint",
        """\
        groups:
          ml-team: {members: [bob@x.io]}
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io}
          contributors:
          - {group: ml-teem, role: edit}
        """,
        "pmr.yaml:7:13: profiles[0].contributors[0].group: unknown group 'ml-teem'; "
        "did you mean 'ml-team'?",
    ),
    case(
        "version-2",
        """\
        version: 2
        profiles: []
        """,
        "pmr.yaml:1:10: version: PMR version 2 is not supported; this release reads version 1",
    ),
    case(
        "version-a-string",
        """\
        version: "1"
        profiles: []
        """,
        "pmr.yaml:1:10: version: PMR version '1' is not supported; this release reads version 1",
    ),
    case(
        "quantity-with-bad-suffix",
        header(
            """\
              resources:
                hard: {cpu: 1x}
            """
        ),
        f"pmr.yaml:5:17: profiles[0].resources.hard.cpu: '1x' {QUANTITY}",
    ),
    case(
        "quantity-negative-number",
        header(
            """\
              resources:
                hard: {limits.memory: -1}
            """
        ),
        f'pmr.yaml:5:27: profiles[0].resources.hard["limits.memory"]: -1 (a number) {QUANTITY}',
    ),
    case(
        "workload-identity-without-gcp-service-account",
        header(
            """\
              plugins:
              - kind: WorkloadIdentity
                spec: {}
            """
        ),
        "pmr.yaml:6:11: profiles[0].plugins[0].spec: missing required key 'gcpServiceAccount'",
    ),
    case(
        "clusters-empty",
        HEADER + "  clusters: []\n",
        "pmr.yaml:4:13: profiles[0].clusters: must not be empty",
    ),
    case(
        "profile-defined-twice-in-one-file",
        HEADER + "- name: team-a\n  owner: {kind: User, name: other@x.io}\n",
        "pmr.yaml:4:9: profiles[1].name: profile 'team-a' is defined twice "
        "(also at pmr.yaml:2:9); keep one definition",
    ),
]

CROSS_FILE = [
    files(
        "profile-defined-in-two-files",
        "b.yaml:4:9: profiles[1].name: profile 'team-a' is defined twice "
        "(also at a.yaml:2:9); keep one definition",
        a=HEADER,
        b="""\
        profiles:
        - name: team-b
          owner: {kind: User, name: owner@x.io}
        - name: team-a
          owner: {kind: User, name: other@x.io}
        """,
    ),
    files(
        "group-defined-in-two-files",
        "b.yaml:3:3: groups.ml-team: group 'ml-team' is defined twice (also at a.yaml:2:3); "
        "define each group once",
        a="""\
        groups:
          ml-team: {members: [bob@x.io]}
        """,
        b="""\
        profiles: []
        groups:
          ml-team:
            members: [carol@x.io]
        """,
    ),
    files(
        "defaults-in-two-files",
        "b.yaml:2:1: defaults: `defaults` is set in two files (also at a.yaml:1:1); "
        "keep it in one file",
        a="""\
        defaults:
          owner: {kind: User, name: owner@x.io}
        """,
        b="""\
        profiles: []
        defaults:
          contributors: []
        """,
    ),
]

DEFENSIVE_PARSING = [
    case(
        "file-over-max-bytes",
        b"profiles: []\n# " + b"x" * 60 + b"\n",
        "pmr.yaml:1:1: file is 76 bytes, over the 64-byte limit; "
        "split it into several files in a folder",
        max_bytes=64,
    ),
    case(
        "billion-laughs-past-max-nodes",
        BILLION_LAUGHS,
        # The 100,001st value is the second `lol` of line 1, reached through f's aliases.
        "pmr.yaml:1:13: f[0][3][3][7][2][1]: document expands to more than 100000 values "
        "(YAML aliases used to inflate it?); simplify the anchors and aliases",
    ),
    case(
        "same-key-twice",
        HEADER + "  name: team-b\n",
        "pmr.yaml:4:3: profiles[0].name: key 'name' appears twice in the same mapping "
        "(first at line 2); YAML keeps only one, so remove the duplicate",
    ),
    case(
        "not-utf-8",
        b"profiles:\n- name: team-\xe9\n",
        "pmr.yaml:2:14: not valid UTF-8 (byte 0xe9); save the file as UTF-8",
    ),
    case(
        "two-yaml-documents",
        """\
        profiles: []
        ---
        version: 1
        """,
        "pmr.yaml:3:1: holds 2 YAML documents separated by '---'; "
        "put each in its own file of the PMR folder",
    ),
    case(
        "python-object-tag",
        "profiles: !!python/object/apply:os.system ['echo pwned']\n",
        "pmr.yaml:1:11: profiles: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not "
        "allowed; the PMR holds plain mappings, lists and scalars",
    ),
    case(
        "top-level-a-list",
        "- name: team-a\n",
        "pmr.yaml:1:1: the top level must be a mapping with a `profiles:` key, not a list",
    ),
    case(
        "top-level-a-scalar",
        "just some text\n",
        "pmr.yaml:1:1: the top level must be a mapping with a `profiles:` key",
    ),
    case("empty-file", b"", EMPTY_FILE),
    case("whitespace-only", b"  \n\n   \n", EMPTY_FILE),
    case("comments-only", b"# profiles come later\n# really\n", EMPTY_FILE),
    case(
        "no-profiles-key-anywhere",
        "groups:\n  ml: {members: [a@x.io]}\n",
        "pmr.yaml:1:1: profiles: no file of the PMR has a `profiles:` list; write "
        "`profiles: []` if this cluster should have no profiles",
    ),
    case(
        "unclosed-flow-mapping",
        """\
        profiles:
        - name: team-a
          owner: {kind: User, name: owner@x.io
          contributors: []
        """,
        "pmr.yaml:4:15: invalid YAML: expected ',' or '}', but got ':'",
    ),
    case(
        "unclosed-flow-list-at-end",
        HEADER + "  clusters: [prod, staging\n",
        "pmr.yaml:5:1: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ),
    case(
        "bad-indentation",
        """\
        profiles:
        - name: team-a
           owner: {kind: User, name: owner@x.io}
        """,
        "pmr.yaml:3:9: invalid YAML: mapping values are not allowed here",
    ),
    case(
        "tab-indentation",
        b"profiles:\n\t- name: team-a\n",
        "pmr.yaml:2:1: invalid YAML: found character '\\t' that cannot start any token",
    ),
    case(
        "key-yes-is-a-boolean",
        """\
        profiles: []
        yes: true
        """,
        f"pmr.yaml:2:1: {NOT_STRING_KEY}",
    ),
    case(
        "key-1-is-an-int",
        """\
        profiles:
        - name: team-a
          1: x
        """,
        f"pmr.yaml:3:3: profiles[0]: {NOT_STRING_KEY}",
    ),
    case(
        "nul-character",
        b"profiles: []\n\x00\n",
        "pmr.yaml:2:1: contains a NUL character; is it binary?",
    ),
]

MALFORMED = [
    *UNKNOWN_KEYS,
    *WRONG_TYPES,
    *BAD_ENUMS,
    *BAD_PROFILE_NAMES,
    *RESERVED_NAMES,
    *BAD_USERS,
    *BAD_ENTRIES,
    *CROSS_FILE,
    *DEFENSIVE_PARSING,
]


def first_error(documents: list[Document], **options: Any) -> str:
    with pytest.raises(PMRInvalidError) as caught:
        load_pmr(documents, **options)
    return str(caught.value.first)


def test_the_table_holds_at_least_45_distinct_cases():
    ids = [param.id for param in MALFORMED]
    inputs = {
        (tuple(d.content for d in cast(list[Document], param.values[0])), str(param.values[2]))
        for param in MALFORMED
    }

    assert len(set(ids)) == len(ids) >= 45
    assert len(inputs) == len(ids)


@pytest.mark.parametrize(("documents", "expected", "options"), MALFORMED)
def test_first_error_points_at_the_offending_node(
    documents: list[Document], expected: str, options: dict[str, Any]
):
    """``expected`` is the whole first line, or its location, path and key phrase."""
    assert first_error(documents, **options).startswith(expected)


def test_owner_with_control_character_is_refused():
    text = HEADER.replace("owner@x.io", '"own\\u0001er@x.io"')

    line = first_error([Document("pmr.yaml", _bytes(text))])

    assert line.startswith("pmr.yaml:3:29: profiles[0].owner.name: ")
    assert "control character" in line


def test_nul_character_inside_a_line_is_located_at_its_column():
    line = first_error([Document("pmr.yaml", b"profiles: []\nversion: 1\x00\n")])

    assert line.startswith("pmr.yaml:2:11: ")


def test_independent_errors_in_one_file_are_all_reported():
    text = """\
    profiles:
    - name: Team-A
      owner: {kind: user, name: owner@x.io}
      contributors:
      - {name: bob@x.io, role: edtor}
    """

    with pytest.raises(PMRInvalidError) as caught:
        load_pmr([Document("pmr.yaml", _bytes(text))])

    assert [(str(p.location), p.path) for p in caught.value.errors] == [
        ("pmr.yaml:2:9", "profiles[0].name"),
        ("pmr.yaml:3:17", "profiles[0].owner.kind"),
        ("pmr.yaml:5:28", "profiles[0].contributors[0].role"),
    ]


def test_errors_from_several_files_are_all_reported():
    documents = [
        Document("a.yaml", b"profiles: {}\n"),
        Document("b.yaml", b"version: 3\n"),
    ]

    with pytest.raises(PMRInvalidError) as caught:
        load_pmr(documents)

    assert [str(p.location) for p in caught.value.errors] == ["a.yaml:1:11", "b.yaml:1:10"]


def test_more_than_50_errors_print_50_lines_and_a_count():
    text = "profiles:\n" + "".join(
        f"- name: P{i}\n  owner: {{kind: User, name: owner@x.io}}\n" for i in range(60)
    )

    with pytest.raises(PMRInvalidError) as caught:
        load_pmr([Document("pmr.yaml", text.encode())])
    lines = caught.value.lines()

    assert len(lines) == 51
    assert lines[49].startswith("pmr.yaml:100:9: profiles[49].name: 'P49' ")
    assert lines[50] == "and 10 more"


def test_summary_names_the_first_error_and_how_many_follow():
    text = "profiles:\n- name: A\n  owner: {kind: User, name: owner@x.io}\n- name: B\n"

    with pytest.raises(PMRInvalidError) as caught:
        load_pmr([Document("pmr.yaml", text.encode())])

    assert str(caught.value) == (
        f"pmr.yaml:2:9: profiles[0].name: 'A' {DNS_LABEL} (1 more, run `pmr validate`)"
    )


def test_warnings_do_not_stop_the_load():
    text = """\
    groups:
      unused: {members: [bob@x.io]}
    profiles:
    - name: team-a
      owner: {kind: User, name: owner@x.io}
    """

    result = load_pmr([Document("pmr.yaml", _bytes(text))])

    assert [p.name for p in result.pmr.profiles] == ["team-a"]
    assert [str(w) for w in result.warnings] == [
        "pmr.yaml:2:3: groups.unused: warning: group 'unused' is not used"
    ]


def test_no_documents_is_an_error():
    with pytest.raises(PMRInvalidError) as caught:
        load_pmr([])

    assert caught.value.lines() == ["<pmr>:1:1: no PMR files were given"]
