"""`pmr groups` and `pmr sync` with LDAP groups, end to end against real directory servers.

The PMR names the session's slapd (rfc2307bis) or Samba AD DC (tests/servers/) as providers,
credentials come from a `--idp-credentials` YAML file, and the fake API server is the cluster:
the resolver builds the LDAP client from the PMR's settings and the file's keys.
"""

from __future__ import annotations

import json
import pathlib
import textwrap

import pytest
import yaml

from profiles_automator.cli import main
from tests.engine.conftest import ROLE_BINDING, contributor_names
from tests.fakes.kube_api import FakeKubeAPI
from tests.servers import samba, slapd
from tests.servers.samba import SambaDC
from tests.servers.slapd import Slapd


def write_pmr(path: pathlib.Path, provider: str) -> str:
    path.write_text(
        textwrap.dedent(provider)
        + textwrap.dedent(
            """\
        profiles:
        - name: data
          owner: {kind: User, name: lead@example.org}
          contributors: [{group: data-eng, role: edit}]
        """
        )
    )
    return str(path)


def credentials(path: pathlib.Path, bind_dn: str, password: str, ca_pem: str) -> str:
    path.write_text(yaml.safe_dump({"bind-dn": bind_dn, "password": password, "ca-cert": ca_pem}))
    return f"corp-ldap={path}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def openldap_pmr(slapd_server: Slapd, tmp_path: pathlib.Path) -> dict[str, str]:
    pmr = write_pmr(
        tmp_path / "pmr.yaml",
        f"""\
        identityProviders:
          corp-ldap:
            ldap: {{url: "{slapd_server.ldaps_url}", userBase: "{slapd.PEOPLE}",
                    schema: rfc2307bis}}
        groups:
          data-eng:
            from: [{{provider: corp-ldap, group: "cn=data-eng,{slapd.GROUPS}"}}]
            members: [contractor@partner.example]
          ml:
            from: [{{provider: corp-ldap, filter: "(departmentNumber=ML)"}}]
        """,
    )
    good = credentials(
        tmp_path / "ldap.yaml", slapd_server.bind_dn, slapd_server.password, slapd_server.ca_pem
    )
    bad = credentials(
        tmp_path / "bad.yaml", slapd_server.bind_dn, "Wrong-pw-e2e-0000", slapd_server.ca_pem
    )
    return {"pmr": pmr, "idp": good, "bad": bad, "password": slapd_server.password}


def test_pmr_groups_resolves_nested_ldap_groups_and_filters(openldap_pmr, capsys):
    code, out, err = run(
        capsys, "groups", openldap_pmr["pmr"], "--idp-credentials", openldap_pmr["idp"]
    )

    assert code == 0, err
    source = f"corp-ldap:cn=data-eng,{slapd.GROUPS}"
    assert out.splitlines() == [
        "data-eng: 7 members",
        f"  alice@example.org  ({source})",
        f"  bob@example.org  ({source})",
        f"  carol@example.org  ({source})",
        "  contractor@partner.example  (static)",
        f"  heidi@example.org  ({source})",
        f"  john.doe@example.org  ({source})",
        f"  ops1@example.org  ({source})",
        "ml: 2 members",
        "  alice@example.org  (corp-ldap:(departmentNumber=ML))",
        "  bob@example.org  (corp-ldap:(departmentNumber=ML))",
    ]
    assert "Resolved 2 groups from corp-ldap" in err
    assert openldap_pmr["password"] not in out + err


def test_pmr_groups_with_a_wrong_password_reports_the_group_unknown(openldap_pmr, capsys):
    code, out, _ = run(
        capsys,
        "groups",
        openldap_pmr["pmr"],
        "--idp-credentials",
        openldap_pmr["bad"],
        "--output",
        "json",
    )

    document = json.loads(out)
    assert code == 1
    team = document["groups"]["data-eng"]
    assert team["complete"] is False
    assert team["members"] == [{"user": "contractor@partner.example", "sources": ["static"]}]
    assert "invalid credentials (49): check the bind-dn and password keys" in team["errors"][0]
    assert "Wrong-pw-e2e-0000" not in out


def test_pmr_sync_grants_ldap_members_and_an_outage_revokes_nothing(
    openldap_pmr, api: FakeKubeAPI, kubeconfig: pathlib.Path, capsys
):
    # Arrange: a first sync with working credentials.
    argv = ["sync", openldap_pmr["pmr"], "--kubeconfig", str(kubeconfig)]
    code, out, err = run(capsys, *argv, "--idp-credentials", openldap_pmr["idp"])
    assert code == 0, out + err
    granted = contributor_names(api, ROLE_BINDING, "data")

    # Act: the directory rejects the bind on the next sync.
    code, out, _ = run(capsys, *argv, "--idp-credentials", openldap_pmr["bad"])

    # Assert
    assert "user-alice-example-org-clusterrole-edit" in granted
    assert "user-john-doe-example-org-clusterrole-edit" in granted
    assert code == 1
    assert contributor_names(api, ROLE_BINDING, "data") == granted


def test_pmr_groups_against_active_directory(samba_dc: SambaDC, tmp_path: pathlib.Path, capsys):
    pmr = write_pmr(
        tmp_path / "pmr.yaml",
        f"""\
        identityProviders:
          corp-ldap:
            ldap: {{url: "{samba_dc.ldap_url}", startTLS: true, userBase: "{samba.PEOPLE}",
                    schema: activeDirectory}}
        groups:
          data-eng:
            from: [{{provider: corp-ldap, group: "CN=outer,{samba.GROUPS}"}}]
        """,
    )
    idp = credentials(tmp_path / "ad.yaml", samba_dc.bind_dn, samba_dc.password, samba_dc.ca_pem)

    code, out, err = run(capsys, "groups", pmr, "--idp-credentials", idp, "--output", "json")

    assert code == 0, err
    users = [m["user"] for m in json.loads(out)["groups"]["data-eng"]["members"]]
    assert users == ["alice@corp.example", "bob@corp.example", "carol@corp.example"]
