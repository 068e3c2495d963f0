"""Provider credentials never show in an exception, a log record, a repr or CLI output.

Same approach as tests/sources/test_token_secrecy.py: drive every failure path with the
secret in play, collect every text a person could see, and look for the secret in them.
"""

from __future__ import annotations

import logging
import pathlib
import textwrap
import time
from collections.abc import Callable
from typing import Any

import pytest

from profiles_automator.cli import main
from profiles_automator.identity.directory import DirectoryError, GroupRef
from profiles_automator.identity.entra import EntraDirectory
from profiles_automator.identity.ldap import LDAPDirectory
from profiles_automator.identity.resolver import resolve
from profiles_automator.pmr.loader import Document, load_pmr
from tests.fakes.graph_api import CLIENT_SECRET, TENANT, FakeGraph
from tests.servers import slapd
from tests.servers.slapd import Slapd
from tests.sources.test_token_secrecy import texts_of

GROUP = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def test_the_client_secret_and_tokens_never_leak(
    graph: FakeGraph,
    entra: Callable[..., EntraDirectory],
    graph_ca: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
):
    caplog.set_level(logging.DEBUG)
    graph.add_group([graph.add_user("a@corp.example"), graph.add_user(None)], oid=GROUP)
    texts: list[str] = []

    def attempt(client: EntraDirectory, group: str = GROUP) -> None:
        texts.append(repr(client))
        try:
            texts.append(
                repr(client.members(GroupRef("corp-entra", group), deadline=time.monotonic() + 3))
            )
        except DirectoryError as error:
            texts.extend(texts_of(error))

    attempt(entra())
    attempt(entra(client_secret=CLIENT_SECRET + "-wrong"))
    attempt(entra(tenant_id="11111111-2222-4333-8444-555555555555"))
    attempt(entra(ca_cert=None))
    attempt(entra(), "00000000-0000-4000-8000-000000000000")
    graph.granted.clear()
    attempt(entra())
    graph.granted.add("GroupMember.Read.All")
    client = entra()
    attempt(client)
    graph.expire_tokens()
    attempt(client)
    graph.add_fault("/transitiveMembers/", 429, retry_after=100, times=None)
    attempt(entra())
    graph.faults.clear()
    pmr = load_pmr(
        [
            Document(
                "pmr.yaml",
                textwrap.dedent(
                    f"""\
                    identityProviders:
                      corp-entra: {{entra: {{tenantId: {TENANT}, authorityHost: "{graph.url}",
                                    graphUrl: "{graph.url}"}}}}
                    groups:
                      g: {{from: [{{provider: corp-entra, group: {GROUP}}}]}}
                    profiles: []
                    """
                ).encode(),
            )
        ]
    ).pmr
    for credentials in (
        {"corp-entra": {"client-secret": CLIENT_SECRET}},
        {"corp-entra": {"client-id": "x", "client-secret": CLIENT_SECRET}},
    ):
        resolution = resolve(pmr, credentials)
        texts += [repr(resolution), str(resolution.to_json())]
    creds = tmp_path / "entra.yaml"
    creds.write_text(f"client-id: nobody\nclient-secret: {CLIENT_SECRET}\n")
    for output in ("text", "json"):
        main(
            [
                "groups",
                str(tmp_path / "missing.yaml"),
                "--idp-credentials",
                f"corp-entra={creds}",
                "--output",
                output,
            ]
        )
    texts += list(capsys.readouterr())

    assert any(r.method == "POST" for r in graph.log)  # the secret was really sent
    tokens = list(graph._tokens)
    texts += [caplog.text, *(r.getMessage() for r in caplog.records)]
    texts += [repr(r.args) for r in caplog.records]
    leaks = [t for t in texts if CLIENT_SECRET in t or any(tok in t for tok in tokens)]
    assert not leaks, leaks[:3]
    assert caplog.records


def test_the_ldap_bind_password_never_leaks(
    slapd_server: Slapd,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
):
    # Arrange: every failure path of the LDAP client with a password in play.
    caplog.set_level(logging.DEBUG)
    password = slapd_server.password
    wrong = "Wrong-secrecy-pw-71c2"
    texts: list[str] = []
    settings: dict[str, Any] = {
        "url": slapd_server.ldaps_url,
        "user_base": slapd.PEOPLE,
        "schema": "rfc2307bis",
        "bind_dn": slapd_server.bind_dn,
        "password": password,
        "ca_cert": slapd_server.ca_pem,
    }
    data_eng = f"cn=data-eng,{slapd.GROUPS}"

    def attempt(ref: GroupRef, **overrides: Any) -> None:
        try:
            client = LDAPDirectory("corp-ldap", **{**settings, **overrides})
            texts.append(repr(client))
            texts.append(repr(client.members(ref, deadline=time.monotonic() + 5)))
        except DirectoryError as error:
            texts.extend(texts_of(error))

    # Act
    attempt(GroupRef("corp-ldap", data_eng))
    attempt(GroupRef("corp-ldap", data_eng), password=wrong)
    attempt(GroupRef("corp-ldap", data_eng), ca_cert=None)
    attempt(GroupRef("corp-ldap", f"cn=nobody,{slapd.GROUPS}"))
    attempt(GroupRef("corp-ldap", data_eng), max_members=1)
    attempt(GroupRef("corp-ldap", filter="(uid=alice"))
    attempt(GroupRef("corp-ldap", data_eng), url="ldaps://127.0.0.1:1")
    attempt(GroupRef("corp-ldap", data_eng), url="ldap://127.0.0.1:1")
    attempt(GroupRef("corp-ldap", data_eng), ca_cert="not PEM " + password)
    creds = tmp_path / "ldap.yaml"
    creds.write_text(f"bind-dn: {slapd_server.bind_dn}\npassword: {wrong}\n")
    pmr = tmp_path / "pmr.yaml"
    pmr.write_text(
        textwrap.dedent(
            f"""\
            identityProviders:
              corp-ldap: {{ldap: {{url: "{slapd_server.ldaps_url}", userBase: "{slapd.PEOPLE}",
                          schema: rfc2307bis}}}}
            groups:
              g: {{from: [{{provider: corp-ldap, group: "{data_eng}"}}]}}
            profiles: []
            """
        )
    )
    for output in ("text", "json"):
        main(["groups", str(pmr), "--idp-credentials", f"corp-ldap={creds}", "--output", output])
    texts += list(capsys.readouterr())

    # Assert
    texts += [caplog.text, *(r.getMessage() for r in caplog.records)]
    texts += [repr(r.args) for r in caplog.records]
    leaks = [t for t in texts if password in t or wrong in t]
    assert not leaks, leaks[:3]
    assert any("invalid credentials (49)" in t for t in texts)  # the wrong password was used
