"""The resolver: directories built per provider kind, each group once, failures made unknown."""

from __future__ import annotations

import textwrap
import time
from typing import Any

from profiles_automator.identity.resolver import resolve
from profiles_automator.pmr.loader import Document, load_pmr
from profiles_automator.pmr.model import PMR, GroupSource
from tests.fakes.graph_api import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGraph

GROUPS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(4)]
DN = "cn=data,ou=groups,dc=corp,dc=example"


def pmr_for(graph: FakeGraph) -> PMR:
    text = f"""\
    identityProviders:
      corp-entra: {{entra: {{tenantId: {TENANT}, authorityHost: "{graph.url}",
                    graphUrl: "{graph.url}"}}}}
      corp-ad: {{ldap: {{url: "ldaps://127.0.0.1:1", userBase: "dc=corp,dc=example",
                 schema: rfc2307bis}}}}
    groups:
      a: {{from: [{{provider: corp-entra, group: {GROUPS[0]}}},
                  {{provider: corp-entra, group: {GROUPS[1]}}}]}}
      b: {{from: [{{provider: corp-entra, group: {GROUPS[1]}}},
                  {{provider: corp-ad, group: "{DN}"}}]}}
    profiles:
    - name: p
      owner: {{kind: User, name: o@corp.example}}
      contributors: [{{group: a, role: edit}}, {{group: b, role: view}}]
    """
    return load_pmr([Document("pmr.yaml", textwrap.dedent(text).encode())]).pmr


def credentials(graph_ca: Any) -> dict[str, dict[str, str]]:
    return {
        "corp-entra": {
            "client-id": CLIENT_ID,
            "client-secret": CLIENT_SECRET,
            "ca-cert": graph_ca.cert_pem.bytes().decode(),
        },
        "corp-ad": {"bind-dn": "cn=reader,dc=corp,dc=example", "password": "pw-Lx3"},
    }


def test_each_group_is_resolved_once_and_an_unreachable_ldap_server_is_unknown(
    graph: FakeGraph, graph_ca
):
    for gid in GROUPS[:2]:
        graph.add_group([graph.add_user(f"{gid[-1]}@corp.example")], oid=gid)

    resolution = resolve(pmr_for(graph), credentials(graph_ca))

    assert set(resolution.resolved) == {
        GroupSource("corp-entra", GROUPS[0]),
        GroupSource("corp-entra", GROUPS[1]),
    }
    assert len(graph.requests_to("/transitiveMembers/")) == 2  # GROUPS[1] is used twice
    assert len(graph.requests_to("/token$")) == 1
    (error,) = resolution.unknown.values()
    assert str(error) == (
        "corp-ad: connecting 127.0.0.1:1 failed: [Errno 111] Connection refused (after 3 attempts)"
    )
    assert error.group == DN and error.retryable
    assert resolution.summary() == "2 groups from corp-entra"


def test_missing_credentials_and_keys_make_the_providers_groups_unknown(graph: FakeGraph):
    resolution = resolve(pmr_for(graph), {"corp-ad": {"bind-dn": "cn=x"}})

    errors = {str(e) for e in resolution.unknown.values()}
    assert len(resolution.unknown) == 3 and not resolution.resolved
    assert (
        "corp-entra: no credentials for provider 'corp-entra': add `corp-entra=secret:ID` to "
        "the charm's idp-credentials, or pass --idp-credentials corp-entra=FILE to pmr"
    ) in errors
    assert (
        "corp-ad: the credentials of 'corp-ad' lack key(s) password; a ldap provider needs "
        "bind-dn, password"
    ) in errors


def test_the_overall_deadline_leaves_slow_groups_unknown(graph: FakeGraph, graph_ca):
    for gid in GROUPS[:2]:
        graph.add_group([graph.add_user(None)], oid=gid)
    graph.members_delay = 2.0
    started = time.monotonic()

    resolution = resolve(pmr_for(graph), credentials(graph_ca), deadline_seconds=0.8)

    assert time.monotonic() - started < 1.8
    slow = [e for s, e in resolution.unknown.items() if s.provider == "corp-entra"]
    assert len(slow) == 2 and all(e.retryable for e in slow)
