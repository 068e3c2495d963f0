"""The Entra ID client against the Microsoft Graph imitation: members, paging and faults."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests

from profiles_automator.identity.directory import DirectoryError, GroupRef
from profiles_automator.identity.entra import EntraDirectory
from tests.fakes.graph_api import CLIENT_SECRET, FakeGraph

MEMBERS = r"/transitiveMembers/"


def later(seconds: float = 20.0) -> float:
    return time.monotonic() + seconds


def ref(group: str) -> GroupRef:
    return GroupRef("corp-entra", group=group)


def test_nested_members_are_enabled_users_lower_cased(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    alice = graph.add_user("Alice@Corp.Example")
    bob = graph.add_user("bob@corp.example")
    carol = graph.add_user("carol@corp.example", enabled=False)
    device, app = graph.add_object("device"), graph.add_object("servicePrincipal")
    inner = graph.add_group([bob, carol, device])
    outer = graph.add_group([alice, inner, app])
    graph.objects[inner].members.append(outer)  # a cycle Graph flattens

    members = entra().members(ref(outer), deadline=later())

    assert members.user_ids == {"alice@corp.example", "bob@corp.example"}
    assert members.skipped_count == 0


def test_members_without_the_attribute_are_counted_and_named_once(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    no_mail = [graph.add_user(None) for _ in range(7)]
    group = graph.add_group([graph.add_user("dan@corp.example"), *no_mail])

    members = entra().members(ref(group), deadline=later())

    assert members.user_ids == {"dan@corp.example"}
    assert members.skipped_count == 7
    assert len(members.skipped) == 5 and set(members.skipped) <= set(no_mail)
    assert len(members.warnings) == 1 and "7 member(s)" in members.warnings[0]


def test_user_principal_name_as_user_id(graph: FakeGraph, entra: Callable[..., EntraDirectory]):
    group = graph.add_group([graph.add_user(None, upn="Erin@Corp.onmicrosoft.com")])

    members = entra(user_id_attribute="userPrincipalName").members(ref(group), deadline=later())

    assert members.user_ids == {"erin@corp.onmicrosoft.com"}


def test_pages_to_the_end_with_consistency_level_on_every_page(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    graph.max_page = 10
    group = graph.add_group([graph.add_user(f"u{i}@corp.example") for i in range(35)])

    members = entra().members(ref(group), deadline=later())

    pages = graph.requests_to(MEMBERS)
    assert len(members.user_ids) == 35
    assert len(pages) == 4
    assert all(p.headers.get("ConsistencyLevel") == "eventual" for p in pages)
    assert pages[0].query["$top"] == ["999"] and pages[0].query["$count"] == ["true"]
    assert all("$skiptoken" in p.query for p in pages[1:])


def test_the_user_cast_needs_count_and_consistency_level(graph: FakeGraph, graph_ca):
    """The imitation refuses what Graph refuses, so the client's query is really checked."""
    group = graph.add_group([graph.add_user("f@corp.example")])
    with graph_ca.cert_pem.tempfile() as ca_file:
        token = requests.post(
            f"{graph.url}/{graph.tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": next(iter(graph.clients)),
                "client_secret": CLIENT_SECRET,
                "scope": "https://graph.microsoft.com/.default",
            },
            verify=ca_file,
            timeout=5,
        ).json()["access_token"]
        answer = requests.get(
            f"{graph.url}/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$top=5",
            headers={"Authorization": f"Bearer {token}"},
            verify=ca_file,
            timeout=5,
        )

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_throttling_is_retried_after_the_servers_delay(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    group = graph.add_group([graph.add_user("g@corp.example")])
    graph.add_fault(MEMBERS, 429, retry_after=0.3, times=2)
    started = time.monotonic()

    members = entra().members(ref(group), deadline=later())

    assert members.user_ids == {"g@corp.example"}
    assert len(graph.requests_to(MEMBERS)) == 3
    assert time.monotonic() - started >= 0.6


def test_throttled_past_the_deadline_is_a_retryable_failure(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    group = graph.add_group([graph.add_user("h@corp.example")])
    graph.add_fault(MEMBERS, 503, retry_after=30, times=None, code="ServiceUnavailable")

    with pytest.raises(DirectoryError) as caught:
        entra().members(ref(group), deadline=later(2.0))

    assert caught.value.retryable
    assert "503 ServiceUnavailable: throttled past the deadline" in str(caught.value)


def test_an_expired_token_is_acquired_again(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    group = graph.add_group([graph.add_user("i@corp.example")])
    client = entra()
    client.members(ref(group), deadline=later())
    graph.expire_tokens()

    members = client.members(ref(group), deadline=later())

    assert members.user_ids == {"i@corp.example"}
    assert len(graph.requests_to(r"/oauth2/v2.0/token$")) == 2
    assert [r.authorized for r in graph.requests_to(MEMBERS)] == [True, False, True]


def test_missing_permission_names_the_fix(graph: FakeGraph, entra: Callable[..., EntraDirectory]):
    group = graph.add_group([graph.add_user("j@corp.example")])
    graph.granted.clear()

    with pytest.raises(DirectoryError) as caught:
        entra().members(ref(group), deadline=later())

    assert str(caught.value) == (
        "corp-entra: 403 Authorization_RequestDenied: grant the application "
        "GroupMember.Read.All (application permission) and admin consent"
    )
    assert not caught.value.retryable and caught.value.group == group


def test_unknown_group(graph: FakeGraph, entra: Callable[..., EntraDirectory]):
    missing = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"

    with pytest.raises(DirectoryError) as caught:
        entra().members(ref(missing), deadline=later())

    assert f"404 Request_ResourceNotFound: group {missing} does not exist" in str(caught.value)
    assert not caught.value.retryable


def test_a_wrong_secret_is_explained_without_showing_it(
    graph: FakeGraph, entra: Callable[..., EntraDirectory]
):
    group = graph.add_group([graph.add_user("k@corp.example")])
    wrong = "not-the-secret-Zq9"

    with pytest.raises(DirectoryError) as caught:
        entra(client_secret=wrong).members(ref(group), deadline=later())

    assert "invalid_client" in str(caught.value) and "client secret" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(entra(client_secret=wrong))


def test_an_unknown_tenant_is_explained(graph: FakeGraph, entra: Callable[..., EntraDirectory]):
    with pytest.raises(DirectoryError) as caught:
        entra(tenant_id="11111111-2222-4333-8444-555555555555").members(
            ref("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"), deadline=later()
        )

    assert "check tenantId and authorityHost" in str(caught.value)


def test_the_member_cap(graph: FakeGraph, entra: Callable[..., EntraDirectory]):
    group = graph.add_group([graph.add_user(f"m{i}@corp.example") for i in range(12)])

    with pytest.raises(DirectoryError) as caught:
        entra(max_members=10).members(ref(group), deadline=later())

    assert "has 12 members, more than the cap of 10" in str(caught.value)
    assert len(graph.requests_to(MEMBERS)) == 1  # @odata.count stops it before paging


def test_without_the_ca_tls_fails_clearly(graph: FakeGraph, entra: Callable[..., EntraDirectory]):
    with pytest.raises(DirectoryError) as caught:
        entra(ca_cert=None).members(ref("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"), deadline=later())

    assert "corp-entra" in str(caught.value)
    assert not caught.value.retryable
