"""The LDAP client in activeDirectory mode against a real Samba AD domain controller.

Samba (tests/servers/samba.py) implements Active Directory's LDAP semantics that OpenLDAP
lacks: LDAP_MATCHING_RULE_IN_CHAIN on ``memberOf`` (nested groups, cycles included),
``userAccountControl`` with the bitwise matching rule, ``objectCategory=person`` (which leaves
out computers and contacts), simple paged results and StartTLS. The domain is provisioned
afresh for each test session, so no imitation of AD is needed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import trustme

from profiles_automator.identity.directory import DirectoryError, GroupRef
from profiles_automator.identity.ldap import LDAPDirectory
from tests.servers.samba import BIG_GROUP_SIZE, GROUPS, PEOPLE, SambaDC

PROVIDER = "corp-ad"
OUTER = f"CN=outer,{GROUPS}"
BIG = f"CN=big,{GROUPS}"
BIG_IDS = frozenset(f"u{n:02d}@corp.example" for n in range(1, BIG_GROUP_SIZE + 1))


def directory(server: SambaDC, **overrides: Any) -> LDAPDirectory:
    settings: dict[str, Any] = {
        "url": server.ldaps_url,
        "user_base": PEOPLE,
        "schema": "activeDirectory",
        "bind_dn": server.bind_dn,
        "password": server.password,
        "ca_cert": server.ca_pem,
        "page_size": 3,
    }
    settings.update(overrides)
    return LDAPDirectory(PROVIDER, **settings)


def soon() -> float:
    return time.monotonic() + 30


def group(dn: str) -> GroupRef:
    return GroupRef(PROVIDER, group=dn)


def resolve_error(client: LDAPDirectory, ref: GroupRef, deadline: float | None = None):
    with pytest.raises(DirectoryError) as caught:
        client.members(ref, deadline=soon() if deadline is None else deadline)
    return caught.value


def test_nested_groups_and_a_cycle_through_the_in_chain_rule(samba_dc: SambaDC):
    # Arrange: outer -> inner -> deepest -> outer; dave is disabled (userAccountControl bit 2),
    # frank has no mail, laptop1 is a computer, partner-contact a contact, outsider lives
    # outside userBase.
    client = directory(samba_dc)

    # Act
    members = client.members(group(OUTER), deadline=soon())

    # Assert
    assert members.user_ids == {"alice@corp.example", "bob@corp.example", "carol@corp.example"}
    assert members.skipped_count == 1
    assert members.skipped == (f"CN=frank,{PEOPLE}",)


def test_a_large_group_is_paged_to_the_end(samba_dc: SambaDC):
    client = directory(samba_dc)

    members = client.members(group(BIG), deadline=soon())

    assert members.user_ids == BIG_IDS
    assert members.requests >= 2 + BIG_GROUP_SIZE // 3  # bind, the group, eight pages


def test_the_default_page_size_reads_the_same(samba_dc: SambaDC):
    members = directory(samba_dc, page_size=500).members(group(BIG), deadline=soon())

    assert members.user_ids == BIG_IDS


def test_a_group_dn_with_filter_metacharacters_is_escaped(samba_dc: SambaDC):
    members = directory(samba_dc).members(group(f"CN=ml (all)*,{GROUPS}"), deadline=soon())

    assert members.user_ids == {"alice@corp.example"}


def test_a_filter_leaves_out_disabled_accounts_and_non_people(samba_dc: SambaDC):
    client = directory(samba_dc)

    members = client.members(
        GroupRef(PROVIDER, filter="(department=Machine Learning)"), deadline=soon()
    )

    assert members.user_ids == {"alice@corp.example", "bob@corp.example"}
    assert members.skipped == (f"CN=frank,{PEOPLE}",)


def test_user_principal_style_attribute(samba_dc: SambaDC):
    client = directory(samba_dc, user_id_attribute="sAMAccountName")

    members = client.members(group(OUTER), deadline=soon())

    assert members.user_ids == {"alice", "bob", "carol", "frank"}


def test_start_tls_on_port_389(samba_dc: SambaDC):
    client = directory(samba_dc, url=samba_dc.ldap_url, start_tls=True)

    members = client.members(group(OUTER), deadline=soon())

    assert "alice@corp.example" in members.user_ids


def test_wrong_password(samba_dc: SambaDC, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-Samba-pw-5512"
    client = directory(samba_dc, password=wrong)

    error = resolve_error(client, group(OUTER))

    assert "invalid credentials (49): check the bind-dn and password keys" in str(error)
    assert not error.retryable
    for text in (str(error), repr(client), caplog.text):
        assert wrong not in text


def test_unknown_group(samba_dc: SambaDC):
    error = resolve_error(directory(samba_dc), group(f"CN=nobody,{GROUPS}"))

    assert "does not exist (32 noSuchObject)" in str(error)
    assert not error.retryable


def test_a_user_is_not_a_group(samba_dc: SambaDC):
    error = resolve_error(directory(samba_dc), group(f"CN=alice,{PEOPLE}"))

    assert "is not a group" in str(error)


def test_untrusted_certificate(samba_dc: SambaDC):
    client = directory(samba_dc, ca_cert=trustme.CA().cert_pem.bytes().decode())

    error = resolve_error(client, group(OUTER))

    assert "'ca-cert' key of the corp-ad credentials" in str(error)


def test_member_cap(samba_dc: SambaDC):
    error = resolve_error(directory(samba_dc, max_members=20), group(BIG))

    assert "has more than 20 members" in str(error)


def test_deadline(samba_dc: SambaDC):
    error = resolve_error(directory(samba_dc), group(OUTER), deadline=time.monotonic() - 1)

    assert error.retryable
