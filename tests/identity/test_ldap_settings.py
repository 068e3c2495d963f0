"""The LDAP client's pure parts: settings validation and DN handling, with no server."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.dn import escape_rdn

from profiles_automator.identity import ldap
from profiles_automator.identity.directory import DirectoryError, GroupRef
from profiles_automator.identity.ldap import LDAPDirectory, LDAPSettingsError

SETTINGS = {
    "url": "ldaps://dc1.corp.example",
    "user_base": "ou=people,dc=corp,dc=example",
    "schema": "activeDirectory",
    "bind_dn": "cn=reader,dc=corp,dc=example",
    "password": "s3cret-Pass",
}


def client(**overrides: object) -> LDAPDirectory:
    return LDAPDirectory("corp-ad", **{**SETTINGS, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schema": "novell"}, "schema must be one of activeDirectory, rfc2307bis"),
        ({"url": "https://dc1"}, "must be ldaps://HOST"),
        ({"url": "ldap://dc1"}, "clear text: use ldaps:// or set startTLS: true"),
        ({"url": "ldaps://dc1", "start_tls": True}, "startTLS is for ldap:// URLs"),
        ({"url": "ldaps://dc1:99999"}, "url 'ldaps://dc1:99999'"),
        ({"user_base": "people"}, "userBase 'people' is not a DN"),
        ({"group_base": "=x"}, "groupBase '=x' is not a DN"),
        ({"max_members": 0}, "must be positive"),
    ],
)
def test_settings_that_can_never_work_are_refused(overrides: dict[str, object], message: str):
    with pytest.raises(LDAPSettingsError, match=message) as caught:
        client(**overrides)

    # A DirectoryError for every group of the provider, so the resolver reports, not crashes.
    assert isinstance(caught.value, DirectoryError)
    assert caught.value.group == "*"
    assert not caught.value.retryable


def test_default_ports():
    assert client()._port == 636
    assert client(url="ldap://dc1", start_tls=True)._port == 389


def test_repr_leaves_out_the_password():
    assert "s3cret-Pass" not in repr(client())
    assert "corp-ad" in repr(client())


def test_a_reference_needs_exactly_one_of_group_and_filter():
    with pytest.raises(DirectoryError, match="needs a group DN or a filter"):
        client().members(GroupRef("corp-ad"), deadline=time.monotonic() + 1)


def test_the_group_base_is_checked_before_connecting():
    directory = client(group_base="ou=groups,dc=corp,dc=example")

    with pytest.raises(DirectoryError, match="is not under groupBase"):
        directory.members(GroupRef("corp-ad", group="cn=x,dc=other"), deadline=time.monotonic())


def test_equal_dns_normalise_equal():
    assert ldap._normal_dn("CN=Doe\\, John,OU=People, DC=corp") == ldap._normal_dn(
        "cn=doe\\2c john,ou=people,dc=CORP"
    )
    assert ldap._normal_dn("cn=a+uid=b,dc=x") == ldap._normal_dn("UID=b+CN=a,dc=x")
    assert ldap._normal_dn("cn=a#1,dc=x") == ldap._normal_dn("cn=a\\231,dc=x")
    # caseIgnoreMatch (RFC 4518): surrounding spaces, even escaped ones, are insignificant.
    assert ldap._normal_dn("cn=a\\ ,dc=x") == ldap._normal_dn("cn= a,dc=x")


@pytest.mark.parametrize("dn", ["", "people", "cn=a,", "=a,dc=x", "c n=a", "cn=a,dc"])
def test_not_dns(dn: str):
    assert not ldap._valid_dn(dn)


def test_under():
    base = ldap._normal_dn("ou=people,dc=corp")
    assert ldap._under(ldap._normal_dn("uid=a,ou=People,dc=corp"), base)
    assert ldap._under(base, base)
    assert not ldap._under(ldap._normal_dn("uid=a,ou=partners,dc=corp"), base)


def test_split_rdn_escapes_filter_characters():
    parent, rdn_filter = ldap._split_rdn("cn=a*(b)\\, c,ou=x,dc=y")

    assert parent == "ou=x,dc=y"
    assert rdn_filter == "(cn=a\\2a\\28b\\29, c)"


def test_split_rdn_of_a_multi_valued_rdn():
    assert ldap._split_rdn("cn=a+uid=b,dc=y") == ("dc=y", "(&(cn=a)(uid=b))")


@pytest.mark.parametrize(
    ("attributes", "disabled"),
    [
        ({"pwdAccountLockedTime": ["000001010000Z"]}, True),
        ({"pwdAccountLockedTime": ["20260101000000Z"]}, False),  # a temporary lockout
        ({"shadowExpire": ["1"]}, True),
        ({"shadowExpire": ["-1"]}, False),
        ({"shadowExpire": ["99999"]}, False),
        ({"nsAccountLock": ["TRUE"]}, True),
        ({"nsAccountLock": ["false"]}, False),
        ({}, False),
    ],
)
def test_rfc2307bis_disabled_markers(attributes: dict[str, list[str]], disabled: bool):
    assert ldap._disabled(attributes) is disabled


values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda v: v.strip() == v and v)


@given(st.lists(values, min_size=1, max_size=4))
def test_an_escaped_dn_normalises_to_its_values(parts: list[str]):
    # Any value, escaped as RFC 4514 says, round-trips through parsing and normalising.
    dn = ",".join(f"cn={escape_rdn(part)}" for part in parts)

    normal = ldap._normal_dn(dn)

    assert normal == tuple(frozenset({("cn", " ".join(p.lower().split()))}) for p in parts)
    assert ldap._normal_dn(dn.upper()) == ldap._normal_dn(dn) or any(
        p.upper().lower() != p.lower() for p in parts
    )
