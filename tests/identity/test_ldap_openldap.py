"""The LDAP client in rfc2307bis mode against a real OpenLDAP slapd (tests/servers/slapd.py).

slapd's size limit is 5 entries and its paged-results page limit 5, so every answer larger
than that only comes back whole when the client pages to the end.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
import trustme

from profiles_automator.identity.directory import DirectoryError, GroupRef
from profiles_automator.identity.ldap import LDAPDirectory, LDAPSettingsError
from tests.servers.slapd import (
    BIG_GROUP_SIZE,
    GROUPS,
    LIMITED_DN,
    PEOPLE,
    SIZE_LIMIT,
    SUFFIX,
    Slapd,
)

PROVIDER = "corp-ldap"
DATA_ENG = f"cn=data-eng,{GROUPS}"
BIG = f"cn=big,{GROUPS}"
BIG_IDS = frozenset(f"u{n:02d}@example.org" for n in range(1, BIG_GROUP_SIZE + 1))


def directory(server: Slapd, **overrides: Any) -> LDAPDirectory:
    settings: dict[str, Any] = {
        "url": server.ldaps_url,
        "user_base": PEOPLE,
        "schema": "rfc2307bis",
        "bind_dn": server.bind_dn,
        "password": server.password,
        "ca_cert": server.ca_pem,
        "page_size": 4,
    }
    settings.update(overrides)
    return LDAPDirectory(PROVIDER, **settings)


def group(dn: str) -> GroupRef:
    return GroupRef(provider=PROVIDER, group=dn)


def soon(seconds: float = 20.0) -> float:
    return time.monotonic() + seconds


def resolve_error(client: LDAPDirectory, ref: GroupRef, deadline: float | None = None):
    with pytest.raises(DirectoryError) as caught:
        client.members(ref, deadline=soon() if deadline is None else deadline)
    return caught.value


def test_the_server_really_needs_paging(slapd_server: Slapd):
    # Arrange: a plain (unpaged) search as the same bind DN the client uses.
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_data=slapd_server.ca_pem)
    server = ldap3.Server(slapd_server.ldaps_url, tls=tls, get_info=ldap3.NONE)
    connection = ldap3.Connection(
        server, slapd_server.bind_dn, slapd_server.password, auto_bind=True, raise_exceptions=True
    )

    # Act
    connection.search(PEOPLE, "(departmentNumber=big)", attributes=["mail"])

    # Assert
    assert connection.result["description"] == "sizeLimitExceeded"
    assert len(connection.response or ()) == SIZE_LIMIT
    connection.unbind()


def test_nested_groups_with_a_cycle_resolve_to_enabled_users_with_mail(slapd_server: Slapd):
    # Arrange: data-eng -> ml-core -> deep -> deep, and ml-core -> data-eng (a cycle).
    client = directory(slapd_server)

    # Act
    members = client.members(group(DATA_ENG), deadline=soon())

    # Assert: lower-cased ids; bob via uniqueMember with a UID suffix; John Doe's DN matched
    # despite different case and escaping; dave (admin lock) and erin (shadowExpire) left out,
    # heidi's temporary lockout is not; the partner outside userBase and the dangling DN too.
    assert members.user_ids == {
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
        "heidi@example.org",
        "john.doe@example.org",
        "ops1@example.org",
    }
    assert members.skipped_count == 2
    assert set(members.skipped) == {f"uid=frank,{PEOPLE}", f"uid=grace,{PEOPLE}"}
    (warning,) = members.warnings  # one per group; disabled accounts are no cause for one
    assert warning.startswith(
        f"corp-ldap: group {DATA_ENG}: 2 member(s) have no mail and are left out (e.g. "
    )
    assert warning.endswith(
        "; 1 member DNs that do not exist left out; 1 users outside userBase left out"
    )


def test_a_group_larger_than_the_size_limit_is_read_to_the_end(slapd_server: Slapd):
    # Arrange: 23 members, a server size limit of 5, pages of 4.
    client = directory(slapd_server)

    # Act
    members = client.members(group(BIG), deadline=soon())

    # Assert
    assert members.user_ids == BIG_IDS
    assert members.requests >= 1 + BIG_GROUP_SIZE // 4  # bind, group, at least six pages


def test_a_page_size_above_the_servers_limit_is_lowered_not_fatal(slapd_server: Slapd):
    # Arrange: the default 500 per page; slapd refuses pages above 5 (adminLimitExceeded).
    client = directory(slapd_server, page_size=500)

    # Act
    members = client.members(GroupRef(PROVIDER, filter="(departmentNumber=big)"), deadline=soon())

    # Assert
    assert members.user_ids == BIG_IDS


def test_a_filter_selects_enabled_users_under_user_base(slapd_server: Slapd):
    # Arrange: ML = alice, bob, erin (disabled), frank (no mail).
    client = directory(slapd_server)

    # Act
    members = client.members(GroupRef(PROVIDER, filter="(departmentNumber=ML)"), deadline=soon())

    # Assert
    assert members.user_ids == {"alice@example.org", "bob@example.org"}
    assert members.skipped == (f"uid=frank,{PEOPLE}",)
    assert members.warnings == (
        f"corp-ldap: group (departmentNumber=ML): 1 member(s) have no mail and are left out "
        f"(e.g. uid=frank,{PEOPLE})",
    )


def test_a_filter_without_parentheses_and_a_large_answer_is_paged(slapd_server: Slapd):
    client = directory(slapd_server)

    members = client.members(GroupRef(PROVIDER, filter="departmentNumber=big"), deadline=soon())

    assert members.user_ids == BIG_IDS


def test_another_user_id_attribute_is_used_lower_cased(slapd_server: Slapd):
    client = directory(slapd_server, user_id_attribute="uid")

    members = client.members(GroupRef(PROVIDER, filter="(departmentNumber=ML)"), deadline=soon())

    assert members.user_ids == {"alice", "bob", "frank"}


def test_start_tls_on_ldap_url(slapd_server: Slapd):
    client = directory(slapd_server, url=slapd_server.ldap_url, start_tls=True)

    members = client.members(group(DATA_ENG), deadline=soon())

    assert "alice@example.org" in members.user_ids


def test_plain_ldap_without_start_tls_is_refused_before_connecting(slapd_server: Slapd):
    with pytest.raises(LDAPSettingsError, match="clear text: use ldaps:// or set startTLS: true"):
        directory(slapd_server, url=slapd_server.ldap_url)


def test_wrong_password_names_the_secret_keys_and_never_the_password(
    slapd_server: Slapd, caplog: pytest.LogCaptureFixture
):
    # Arrange
    caplog.set_level(logging.DEBUG)
    wrong = "Not-The-Password-93ad"
    client = directory(slapd_server, password=wrong)

    # Act
    error = resolve_error(client, group(DATA_ENG))

    # Assert
    assert "invalid credentials (49): check the bind-dn and password keys" in str(error)
    assert not error.retryable
    assert error.provider == PROVIDER and error.group == DATA_ENG
    for text in (str(error), repr(error), repr(client), str(vars(error)), caplog.text):
        assert wrong not in text
        assert slapd_server.password not in text


def test_unknown_group_dn(slapd_server: Slapd):
    error = resolve_error(directory(slapd_server), group(f"cn=nobody,{GROUPS}"))

    assert f"the group cn=nobody,{GROUPS} does not exist (32 noSuchObject)" in str(error)
    assert not error.retryable


def test_a_dn_that_is_not_a_group(slapd_server: Slapd):
    error = resolve_error(directory(slapd_server), group(f"cn=not-a-group,{SUFFIX}"))

    assert "is not a group (objectClass organizationalRole)" in str(error)


def test_group_base_limits_where_groups_are(slapd_server: Slapd):
    client = directory(slapd_server, group_base=f"ou=partners,{SUFFIX}")

    error = resolve_error(client, group(DATA_ENG))

    assert "is not under groupBase" in str(error)


def test_unknown_user_base(slapd_server: Slapd):
    client = directory(slapd_server, user_base=f"ou=nobody,{SUFFIX}")

    error = resolve_error(client, GroupRef(PROVIDER, filter="(uid=alice)"))

    assert f"userBase ou=nobody,{SUFFIX} does not exist" in str(error)


def test_an_invalid_filter_is_an_admin_error(slapd_server: Slapd):
    error = resolve_error(directory(slapd_server), GroupRef(PROVIDER, filter="(uid=alice"))

    assert "is not valid" in str(error)
    assert not error.retryable


def test_a_member_dn_with_filter_metacharacters_is_escaped(slapd_server: Slapd):
    # A DN whose value holds "*" and parentheses names no group, rather than matching all.
    error = resolve_error(directory(slapd_server), group(f"cn=*(x),{GROUPS}"))

    assert "does not exist" in str(error)


def test_a_malformed_group_dn(slapd_server: Slapd):
    error = resolve_error(directory(slapd_server), group("data-eng"))

    assert "not a valid DN" in str(error)
    assert not error.retryable


@pytest.mark.parametrize("trust", ["another CA", "the system store"])
def test_an_untrusted_certificate_names_the_ca_cert_key(slapd_server: Slapd, trust: str):
    ca_cert = trustme.CA().cert_pem.bytes().decode() if trust == "another CA" else None
    client = directory(slapd_server, ca_cert=ca_cert)

    error = resolve_error(client, group(DATA_ENG))

    assert "is not trusted" in str(error)
    assert "'ca-cert' key of the corp-ldap credentials" in str(error)
    assert not error.retryable


def test_a_certificate_for_another_host_name_is_refused(slapd_server: Slapd):
    # Arrange: the same server, reached by an address its certificate does not name.
    client = directory(slapd_server, url=slapd_server.mismatched_url)

    # Act
    error = resolve_error(client, group(DATA_ENG))

    # Assert
    assert "not trusted" in str(error)
    assert "127.0.0.2" in str(error)
    assert not error.retryable


def test_ldaps_to_a_plain_ldap_port_says_to_check_scheme_and_port(slapd_server: Slapd):
    # slapd hangs up on a TLS hello, which looks the same as a connection cut mid-handshake:
    # retried (so Waiting, not Blocked), and the message says what to check if it persists.
    port = slapd_server.ldap_url.rsplit(":", 1)[1]
    client = directory(slapd_server, url=f"ldaps://localhost:{port}")

    error = resolve_error(client, group(DATA_ENG))

    assert "the server cut the TLS handshake off" in str(error)
    assert "check that the url's scheme and port match the server" in str(error)
    assert "(after 3 attempts)" in str(error)


def test_a_ca_cert_that_is_not_pem_is_refused_up_front(slapd_server: Slapd):
    with pytest.raises(
        LDAPSettingsError, match="the 'ca-cert' credential is not a PEM CA certificate"
    ):
        directory(slapd_server, ca_cert="not a certificate")


def test_an_ip_address_the_certificate_names_is_accepted(slapd_server: Slapd):
    port = slapd_server.ldaps_url.rsplit(":", 1)[1]
    client = directory(slapd_server, url=f"ldaps://127.0.0.1:{port}")

    members = client.members(group(DATA_ENG), deadline=soon())

    assert "alice@example.org" in members.user_ids


def test_an_untrusted_certificate_over_start_tls(slapd_server: Slapd):
    client = directory(slapd_server, url=slapd_server.ldap_url, start_tls=True, ca_cert=None)

    error = resolve_error(client, group(DATA_ENG))

    assert "'ca-cert' key" in str(error)


def test_more_members_than_the_cap_is_a_clear_error(slapd_server: Slapd):
    client = directory(slapd_server, max_members=10)

    error = resolve_error(client, group(BIG))

    assert f"{BIG} has more than 10 members (the cap per group)" in str(error)
    assert not error.retryable


def test_a_server_that_stops_paging_early_is_an_error_not_a_partial_group(slapd_server: Slapd):
    # Arrange: this bind DN's paged searches end after 10 entries (OpenLDAP size.prtotal).
    client = directory(slapd_server, bind_dn=LIMITED_DN)

    # Act
    error = resolve_error(client, GroupRef(PROVIDER, filter="(departmentNumber=big)"))

    # Assert
    assert "at its size limit (4) although the search was paged" in str(error)
    assert "size.prtotal=unlimited" in str(error)
    assert not error.retryable


def test_a_passed_deadline_is_retryable(slapd_server: Slapd):
    error = resolve_error(directory(slapd_server), group(DATA_ENG), deadline=time.monotonic())

    assert error.retryable
    assert "did not finish before the deadline" in str(error)


def test_connection_refused_is_retried_then_retryable(slapd_server: Slapd):
    # Arrange: a port nothing listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = directory(slapd_server, url=f"ldaps://127.0.0.1:{port}")

    # Act
    error = resolve_error(client, group(DATA_ENG))

    # Assert
    assert error.retryable
    assert "(after 3 attempts)" in str(error)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_server_that_never_answers_stops_at_the_deadline(
    slapd_server: Slapd, silent_server: int
):
    # Arrange
    client = directory(slapd_server, url=f"ldaps://127.0.0.1:{silent_server}", timeout=5)
    started = time.monotonic()

    # Act
    error = resolve_error(client, group(DATA_ENG), deadline=started + 1.5)

    # Assert: the whole resolution, retries included, keeps to the deadline.
    assert error.retryable
    assert "deadline" in str(error)
    assert time.monotonic() - started < 4


@contextlib.contextmanager
def flaky_proxy(target_port: int, drop_first: int) -> Iterator[int]:
    """A loopback TCP proxy to slapd that hangs up on the first `drop_first` connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    dropped = 0

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        nonlocal dropped
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if dropped < drop_first:
                dropped += 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_dropped_connection_is_retried_and_the_answer_is_complete(slapd_server: Slapd):
    # Arrange: the first connection is cut before TLS completes; the second goes through.
    port = int(slapd_server.ldaps_url.rsplit(":", 1)[1])
    with flaky_proxy(port, drop_first=1) as proxy_port:
        client = directory(slapd_server, url=f"ldaps://localhost:{proxy_port}")

        # Act
        members = client.members(group(BIG), deadline=soon())

    # Assert
    assert members.user_ids == BIG_IDS
