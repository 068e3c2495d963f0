"""`pmr diff` with identity-provider groups: resolved with credentials, else said unresolved."""

from __future__ import annotations

import json
import pathlib
import textwrap
from typing import Any

import pytest

from profiles_automator.cli import main
from tests.fakes.graph_api import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGraph

GROUP = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


@pytest.fixture
def sides(graph: FakeGraph, graph_ca: Any, tmp_path: pathlib.Path) -> dict[str, str]:
    graph.add_group(
        [graph.add_user("alice@corp.example"), graph.add_user("bob@corp.example")], oid=GROUP
    )
    common = textwrap.dedent(
        f"""\
        identityProviders:
          corp-entra:
            entra: {{tenantId: {TENANT}, authorityHost: "{graph.url}", graphUrl: "{graph.url}"}}
        groups:
          ml-team:
            from: [{{provider: corp-entra, group: {GROUP}}}]
            members: [contractor@partner.example]
        profiles:
        - name: ml
          owner: {{kind: User, name: lead@corp.example}}
        """
    )
    (tmp_path / "base.yaml").write_text(common)
    grant = "  contributors: [{group: ml-team, role: edit}]\n"
    (tmp_path / "head.yaml").write_text(common + grant)
    creds = tmp_path / "entra.yaml"
    creds.write_text(
        f"client-id: {CLIENT_ID}\nclient-secret: {CLIENT_SECRET}\n"
        f"ca-cert: |\n{textwrap.indent(graph_ca.cert_pem.bytes().decode(), '  ')}"
    )
    return {
        "base": str(tmp_path / "base.yaml"),
        "head": str(tmp_path / "head.yaml"),
        "idp": f"corp-entra={creds}",
    }


def gains(out: str) -> list[str]:
    return [a["user"] for p in json.loads(out)["profiles"] for a in p["access"]]


def test_without_credentials_only_static_members_show_and_the_review_says_so(
    graph: FakeGraph, sides: dict[str, str], capsys: pytest.CaptureFixture[str]
):
    code = main(["diff", sides["base"], sides["head"]])

    out = capsys.readouterr().out
    assert code == 2
    assert "  + contractor@partner.example gains edit (via group ml-team)" in out
    assert "Note: group membership was not resolved for ml-team" in out
    assert graph.log == []


def test_with_credentials_provider_members_are_reviewed(
    graph: FakeGraph, sides: dict[str, str], capsys: pytest.CaptureFixture[str]
):
    code = main(
        [
            "diff",
            sides["base"],
            sides["head"],
            "--idp-credentials",
            sides["idp"],
            "--output",
            "json",
        ]
    )

    out = capsys.readouterr().out
    assert code == 2
    assert gains(out) == ["alice@corp.example", "bob@corp.example", "contractor@partner.example"]
    assert json.loads(out)["group_membership_resolved"] is True


def test_a_provider_failure_leaves_the_group_unresolved_in_the_review(
    graph: FakeGraph, sides: dict[str, str], capsys: pytest.CaptureFixture[str]
):
    graph.add_fault(r"/groups/", 403, times=None, code="Authorization_RequestDenied")

    main(
        [
            "diff",
            sides["base"],
            sides["head"],
            "--idp-credentials",
            sides["idp"],
            "--output",
            "json",
        ]
    )

    document = json.loads(capsys.readouterr().out)
    assert document["unresolved_groups"] == ["ml-team"]
    assert gains(json.dumps(document)) == ["contractor@partner.example"]
