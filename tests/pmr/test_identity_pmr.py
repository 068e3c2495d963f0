"""identityProviders, groups `from:` providers and personalProfiles: loading and located errors."""

from __future__ import annotations

import pickle
import textwrap

import pytest

from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.membership import expand, personal_name
from profiles_automator.pmr.model import EntraProvider, GroupSource, LDAPProvider, Role
from profiles_automator.pmr.problems import PMRInvalidError

ENTRA_GROUP = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
PROVIDERS = """\
identityProviders:
  corp-entra:
    entra: {tenantId: 0c2b5d3e-1f4a-4b6c-9d8e-7f6a5b4c3d2e, userIdAttribute: mail}
  corp-ad:
    ldap: {url: "ldaps://dc1.corp.example:636", userBase: "ou=people,dc=corp,dc=example",
           schema: activeDirectory}
"""


def load(text: str):
    return load_pmr([Document("pmr.yaml", textwrap.dedent(text).encode())])


def errors(text: str) -> list[str]:
    with pytest.raises(PMRInvalidError) as caught:
        load(text)
    return [str(p) for p in caught.value.errors]


def test_providers_sources_and_templates_load_into_the_model():
    result = load(
        PROVIDERS
        + f"""\
groups:
  ml-team: {{from: [{{provider: corp-entra, group: {ENTRA_GROUP}}}]}}
  data-eng:
    from: [{{provider: corp-ad, group: "cn=data-eng,ou=groups,dc=corp,dc=example"}},
           {{provider: corp-ad, filter: "(department=Machine Learning)"}}]
    members: [contractor@partner.example]
profiles:
- name: data
  owner: {{kind: User, name: lead@corp.example}}
  contributors: [{{group: data-eng, role: edit}}]
personalProfiles:
- group: ml-team
  name: "ws-{{local}}"
  resources: {{hard: {{limits.cpu: "8"}}}}
  contributors: [{{group: data-eng, role: view}}]
"""
    )

    pmr = result.pmr
    assert pmr.identity_providers["corp-entra"] == EntraProvider(
        "corp-entra", "0c2b5d3e-1f4a-4b6c-9d8e-7f6a5b4c3d2e"
    )
    assert isinstance(pmr.identity_providers["corp-ad"], LDAPProvider)
    assert pmr.sources() == (
        GroupSource("corp-entra", ENTRA_GROUP),
        GroupSource("corp-ad", "cn=data-eng,ou=groups,dc=corp,dc=example"),
        GroupSource("corp-ad", filter="(department=Machine Learning)"),
    )
    (data,) = pmr.profiles
    assert [c.name for c in data.contributors] == ["contractor@partner.example"]
    assert [(g.group, g.role) for g in data.group_grants] == [("data-eng", Role.EDIT)]
    assert [t.group for t in pmr.personal_profiles] == ["ml-team"]
    pickle.loads(pickle.dumps(result.warnings))


def test_resolved_members_become_contributors_and_personal_profiles():
    pmr = load(
        PROVIDERS
        + f"""\
groups:
  ml-team: {{from: [{{provider: corp-entra, group: {ENTRA_GROUP}}}]}}
profiles:
- name: ml
  owner: {{kind: User, name: lead@corp.example}}
  contributors: [{{name: bob@corp.example, role: admin}}, {{group: ml-team, role: edit}}]
personalProfiles:
- {{group: ml-team, name: "{{local}}", contributors: [{{group: ml-team, role: view}}]}}
"""
    ).pmr
    members = frozenset({"alice@corp.example", "bob@corp.example", "lead@corp.example"})

    expanded = expand(pmr, {GroupSource("corp-entra", ENTRA_GROUP): members}).pmr

    by_name = {p.name: p for p in expanded.profiles}
    assert {c.name: c.role for c in by_name["ml"].contributors} == {
        "alice@corp.example": Role.EDIT,
        "bob@corp.example": Role.ADMIN,  # most permissive wins
    }
    assert by_name["ml"].group_grants == ()
    assert sorted(by_name) == ["alice", "bob", "lead", "ml"]
    alice = by_name["alice"]
    assert (alice.owner.kind, alice.owner.name, alice.personal_group) == (
        "User",
        "alice@corp.example",
        "ml-team",
    )
    assert [c.name for c in alice.contributors] == ["bob@corp.example", "lead@corp.example"]
    assert expanded.personal_profiles == ()


def test_an_unresolved_source_stays_unknown_and_static_members_still_count():
    pmr = load(
        PROVIDERS
        + f"""\
groups:
  mixed:
    from: [{{provider: corp-entra, group: {ENTRA_GROUP}}}]
    members: [static@corp.example]
profiles:
- name: ml
  owner: {{kind: User, name: lead@corp.example}}
  contributors: [{{group: mixed, role: view}}]
personalProfiles:
- {{group: mixed, name: "{{local}}"}}
"""
    ).pmr

    expanded = expand(pmr, {}).pmr

    ml = next(p for p in expanded.profiles if p.name == "ml")
    assert [c.name for c in ml.contributors] == ["static@corp.example"]
    assert [g.group for g in ml.group_grants] == ["mixed"]
    assert [p.name for p in expanded.profiles] == ["ml", "static"]
    assert [t.group for t in expanded.personal_profiles] == ["mixed"]


def test_member_collisions_after_resolution_are_warnings_naming_both_users():
    pmr = load(
        PROVIDERS
        + f"""\
groups:
  ml-team: {{from: [{{provider: corp-entra, group: {ENTRA_GROUP}}}]}}
profiles:
- name: carol
  owner: {{kind: User, name: carol@other.example}}
personalProfiles:
- {{group: ml-team, name: "{{local}}"}}
"""
    ).pmr
    members = frozenset({"a.b@corp.example", "a-b@corp.example", "carol@corp.example"})

    expansion = expand(pmr, {GroupSource("corp-entra", ENTRA_GROUP): members})

    names = sorted(p.name for p in expansion.pmr.profiles)
    assert names == ["a-b", "carol"]
    messages = [p.message for p in expansion.warnings]
    assert any(
        "a.b@corp.example gets no personal profile: 'a-b' is already taken by the personal "
        "profile of a-b@corp.example" in m
        for m in messages
    )
    assert any(
        "carol@corp.example gets no personal profile: 'carol' is already taken by profile "
        "'carol'" in m
        for m in messages
    )


@pytest.mark.parametrize(
    ("user", "template", "name"),
    [
        ("Alice.Smith@Corp.Example", "{local}", "alice-smith"),
        ("bob@corp.example", "{local}-{domain}", "bob-corp-example"),
        ("_x_@corp.example", "ws-{local}", "ws-x"),
        ("a" * 80 + "@corp.example", "{local}", "a" * 63),
    ],
)
def test_personal_names_are_dns_labels(user: str, template: str, name: str):
    assert personal_name(template, user) == name


GROUP_OK = f"groups:\n  ml-team: {{from: [{{provider: corp-entra, group: {ENTRA_GROUP}}}]}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            PROVIDERS
            + "groups:\n  g: {from: [{provider: corp-entr, group: "
            + ENTRA_GROUP
            + "}]}\n",
            "pmr.yaml:8:25: groups.g.from[0].provider: unknown identity provider 'corp-entr'; "
            "did you mean 'corp-entra'?",
            id="unknown-provider",
        ),
        pytest.param(
            PROVIDERS + "groups:\n  g: {from: [{provider: corp-entra, group: ml-team}]}\n",
            "pmr.yaml:8:44: groups.g.from[0].group: 'ml-team' is not an Entra group object id",
            id="entra-id-shape",
        ),
        pytest.param(
            PROVIDERS + "groups:\n  g: {from: [{provider: corp-entra, filter: '(a=b)'}]}\n",
            "pmr.yaml:8:45: groups.g.from[0].filter: corp-entra is Entra ID: filters are for "
            "LDAP providers",
            id="entra-filter",
        ),
        pytest.param(
            PROVIDERS + "groups:\n  g: {from: [{provider: corp-ad, group: data-eng}]}\n",
            "pmr.yaml:8:41: groups.g.from[0].group: 'data-eng' is not an LDAP distinguished name",
            id="ldap-dn-shape",
        ),
        pytest.param(
            PROVIDERS + "groups:\n  g: {from: [{provider: corp-ad, filter: 'department=ML'}]}\n",
            "pmr.yaml:8:42: groups.g.from[0].filter: 'department=ML' is not an LDAP filter",
            id="ldap-filter-shape",
        ),
        pytest.param(
            "identityProviders:\n  ad:\n    ldap: {url: 'ldap://dc1:389', userBase: 'dc=x', "
            "schema: rfc2307bis}\n",
            "pmr.yaml:3:17: identityProviders.ad.ldap.url: 'ldap://dc1:389' would send the bind "
            "password in clear text; use ldaps:// or set `startTLS: true`",
            id="ldap-plaintext",
        ),
        pytest.param(
            "identityProviders:\n  ad:\n    ldap: {url: 'ldaps://dc1', userBase: 'dc=x', "
            "schema: openldap}\n",
            "pmr.yaml:3:58: identityProviders.ad.ldap.schema: 'openldap' is not one of "
            "activeDirectory, rfc2307bis",
            id="ldap-schema",
        ),
        pytest.param(
            "identityProviders:\n  e: {entra: {tenantId: x}, ldap: {url: 'ldaps://a'}}\n",
            "pmr.yaml:2:6: identityProviders.e: an identity provider needs exactly one of "
            "`entra` or `ldap`",
            id="provider-two-kinds",
        ),
        pytest.param(
            PROVIDERS + GROUP_OK + "personalProfiles:\n- {group: ml-team, name: 'ws-{user}'}\n",
            "pmr.yaml:10:26: personalProfiles[0].name: unknown placeholder {user} in 'ws-{user}'",
            id="template-placeholder",
        ),
        pytest.param(
            PROVIDERS + GROUP_OK + "personalProfiles:\n- {group: ml-team, name: team}\n",
            "pmr.yaml:10:26: personalProfiles[0].name: 'team' has no {local}, so every member "
            "would get the same profile name",
            id="template-constant",
        ),
        pytest.param(
            PROVIDERS + GROUP_OK + "personalProfiles:\n- {group: ml-team, name: 'kube-{local}'}\n",
            "pmr.yaml:10:26: personalProfiles[0].name: the template always gives a reserved name",
            id="template-reserved",
        ),
        pytest.param(
            PROVIDERS + GROUP_OK + "personalProfiles:\n- {group: ml-teem, name: '{local}'}\n",
            "pmr.yaml:10:11: personalProfiles[0].group: unknown group 'ml-teem'; did you mean "
            "'ml-team'?",
            id="template-unknown-group",
        ),
        pytest.param(
            "groups:\n  g: {members: [a.b@x.io, a-b@y.io]}\n"
            "personalProfiles:\n- {group: g, name: '{local}'}\n",
            "pmr.yaml:4:20: personalProfiles[0].name: a-b@y.io (at pmr.yaml:2:27) and a.b@x.io "
            "(at pmr.yaml:2:17) would both get personal profile 'a-b'",
            id="static-members-collide",
        ),
        pytest.param(
            "groups:\n  g: {members: [ml@x.io]}\n"
            "profiles:\n- {name: ml, owner: {kind: User, name: boss@x.io}}\n"
            "personalProfiles:\n- {group: g, name: '{local}'}\n",
            "pmr.yaml:6:20: personalProfiles[0].name: the personal profile of ml@x.io would be "
            "'ml', which is already profile 'ml' (at pmr.yaml:4:10, owner boss@x.io)",
            id="static-member-vs-explicit",
        ),
        pytest.param(
            "groups:\n  g: {description: nobody}\nprofiles: []\n",
            "pmr.yaml:2:6: groups.g: a group needs `members`, `from` or both",
            id="group-without-members-or-from",
        ),
    ],
)
def test_located_errors(text: str, expected: str):
    text = text if "profiles:" in text else text + "profiles: []\n"

    found = errors(text)

    assert any(line.startswith(expected) for line in found), found
