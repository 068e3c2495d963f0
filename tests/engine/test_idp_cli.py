"""`pmr groups`, `plan` and `sync` with Entra groups, end to end over HTTP.

The Microsoft Graph imitation serves the groups, the fake API server is the cluster; the
provider failing between two syncs must leave every grant it made in place.
"""

from __future__ import annotations

import json
import pathlib
import textwrap
from typing import Any

import pytest

from profiles_automator.cli import main
from tests.engine.conftest import PROFILE, ROLE_BINDING, contributor_names, get, names
from tests.fakes.graph_api import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGraph
from tests.fakes.kube_api import FakeKubeAPI

GROUP = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def pmr_text(graph: FakeGraph) -> str:
    return textwrap.dedent(
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
          contributors: [{{group: ml-team, role: edit}}]
        personalProfiles:
        - {{group: ml-team, name: "ws-{{local}}", resources: {{hard: {{limits.cpu: "8"}}}}}}
        """
    )


@pytest.fixture
def setup(graph: FakeGraph, graph_ca: Any, tmp_path: pathlib.Path) -> dict[str, Any]:
    alice = graph.add_user("Alice@Corp.Example")
    bob = graph.add_user("bob@corp.example")
    graph.add_group([alice, bob, graph.add_object("device")], oid=GROUP)
    pmr = tmp_path / "pmr.yaml"
    pmr.write_text(pmr_text(graph))
    creds = tmp_path / "entra.yaml"
    creds.write_text(
        f"client-id: {CLIENT_ID}\nclient-secret: {CLIENT_SECRET}\n"
        f"ca-cert: |\n{textwrap.indent(graph_ca.cert_pem.bytes().decode(), '  ')}"
    )
    return {"pmr": str(pmr), "idp": f"corp-entra={creds}", "alice": alice, "bob": bob}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_groups_lists_members_with_their_source(setup, capsys):
    code, out, err = run(capsys, "groups", setup["pmr"], "--idp-credentials", setup["idp"])

    assert code == 0, err
    assert out.splitlines() == [
        "ml-team: 3 members",
        "  alice@corp.example  (corp-entra:" + GROUP + ")",
        "  bob@corp.example  (corp-entra:" + GROUP + ")",
        "  contractor@partner.example  (static)",
    ]
    assert "Resolved 1 group from corp-entra" in err
    assert CLIENT_SECRET not in out + err


def test_groups_json_and_an_unknown_group(setup, graph: FakeGraph, capsys):
    graph.granted.clear()

    code, out, _ = run(
        capsys, "groups", setup["pmr"], "--idp-credentials", setup["idp"], "--output", "json"
    )

    document = json.loads(out)
    assert code == 1
    team = document["groups"]["ml-team"]
    assert team["complete"] is False
    assert team["members"] == [{"user": "contractor@partner.example", "sources": ["static"]}]
    assert team["errors"] == [
        "corp-entra: 403 Authorization_RequestDenied: grant the application "
        "GroupMember.Read.All (application permission) and admin consent"
    ]


def test_sync_grants_members_and_makes_personal_profiles(
    setup, api: FakeKubeAPI, kubeconfig: pathlib.Path, capsys
):
    code, out, err = run(
        capsys,
        "sync",
        setup["pmr"],
        "--idp-credentials",
        setup["idp"],
        "--kubeconfig",
        str(kubeconfig),
    )

    assert code == 0, out + err
    assert names(api, PROFILE) >= {"ml", "ws-alice", "ws-bob", "ws-contractor"}
    assert get(api, PROFILE, "ws-alice")["spec"]["owner"]["name"] == "alice@corp.example"
    assert contributor_names(api, ROLE_BINDING, "ml") == {
        "user-alice-corp-example-clusterrole-edit",
        "user-bob-corp-example-clusterrole-edit",
        "user-contractor-partner-example-clusterrole-edit",
    }
    assert "groups resolved: 1 group from corp-entra" in out


def test_a_provider_outage_keeps_access_and_a_leaver_is_revoked_later(
    setup, graph: FakeGraph, api: FakeKubeAPI, kubeconfig: pathlib.Path, capsys
):
    argv = (
        "sync",
        setup["pmr"],
        "--idp-credentials",
        setup["idp"],
        "--kubeconfig",
        str(kubeconfig),
    )
    run(capsys, *argv)
    graph.granted.clear()

    code, out, err = run(capsys, *argv)

    assert code == 1
    assert "group unknown (its access is left as it is): corp-entra: 403" in out
    assert "Applied: nothing." in out
    assert "Stale profiles" not in out
    assert len(contributor_names(api, ROLE_BINDING, "ml")) == 3
    code, _, err = run(capsys, "stale", *argv[1:], "--delete", "ws-alice", "--yes")
    assert code == 1
    assert (
        "refused ws-alice: personal profile of group 'ml-team', which could not be resolved "
        "this run: not stale"
    ) in err

    graph.granted.add("GroupMember.Read.All")
    graph.objects[GROUP].members.remove(setup["bob"])
    code, out, _ = run(capsys, *argv)

    assert code == 3  # a leaver's revocation goes through the usual safety guard
    assert "Held back: 1 of 4 managed profiles would become stale" in out

    code, out, err = run(capsys, *argv, "--force")

    assert code == 0, out + err
    assert "user-bob-corp-example-clusterrole-edit" not in contributor_names(
        api, ROLE_BINDING, "ml"
    )
    assert (
        "Stale profiles (in the cluster, not in the PMR; never deleted by a sync): ws-bob" in out
    )
    assert "ws-bob" in names(api, PROFILE)


def test_validate_checks_providers_offline(tmp_path: pathlib.Path, capsys):
    pmr = tmp_path / "pmr.yaml"
    pmr.write_text(
        "identityProviders:\n  corp: {entra: {tenantId: " + TENANT + "}}\n"
        "groups:\n  g: {from: [{provider: crop, group: " + GROUP + "}]}\n"
        "profiles: []\n"
    )

    code, _, err = run(capsys, "validate", str(pmr))

    assert code == 1
    assert (
        "groups.g.from[0].provider: unknown identity provider 'crop'; did you mean 'corp'?" in err
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- a\n- b\n", "must be a YAML mapping of keys to strings"),
        ("client_id: x\n", "unknown key 'client_id'"),
    ],
)
def test_bad_credential_files_are_usage_errors(
    setup, tmp_path: pathlib.Path, capsys, content: str, message: str
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)

    code, _, err = run(capsys, "groups", setup["pmr"], "--idp-credentials", f"corp-entra={bad}")

    assert code == 2
    assert message in err


def test_missing_credentials_name_the_option(setup, capsys):
    code, out, _ = run(capsys, "groups", setup["pmr"])

    assert code == 1
    assert "INCOMPLETE: corp-entra: no credentials for provider 'corp-entra'" in out


def test_plan_json_reports_the_groups(setup, graph: FakeGraph, kubeconfig: pathlib.Path, capsys):
    graph.objects[GROUP].members.append(graph.add_user(None))

    code, out, err = run(
        capsys,
        "plan",
        setup["pmr"],
        "--idp-credentials",
        setup["idp"],
        "--kubeconfig",
        str(kubeconfig),
        "--output",
        "json",
    )

    groups = json.loads(out)["groups"]
    assert code == 2
    assert groups["resolved"] == {"corp-entra": 1} and groups["unknown"] == []
    assert groups["requests"] >= 2  # a token and one page
    assert "1 member(s) of group " + GROUP + " have no mail and are left out" in err
