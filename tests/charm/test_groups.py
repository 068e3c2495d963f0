"""The charm with Entra ID groups: credentials from Juju secrets, statuses, show-groups.

The PMR comes from the fake GitHub, groups from the Microsoft Graph imitation, the cluster is
the fake API server; the charm runs unmodified under ops.testing.
"""

from __future__ import annotations

import textwrap
from typing import Any

import ops
import pytest
from ops import testing

from tests.charm.conftest import (
    PROFILE_API,
    REPO,
    ROLE_BINDING_API,
    contributor_names,
    head,
    leader,
    names,
)
from tests.fakes.github_api import FakeGitHub
from tests.fakes.graph_api import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGraph
from tests.fakes.kube_api import FakeKubeAPI

GROUP = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


@pytest.fixture
def entra_pmr(github: FakeGitHub, graph: FakeGraph) -> None:
    alice, bob = graph.add_user("alice@corp.example"), graph.add_user("bob@corp.example")
    graph.add_group([alice, bob], oid=GROUP)
    pmr = f"""\
    identityProviders:
      corp-entra:
        entra: {{tenantId: {TENANT}, authorityHost: "{graph.url}", graphUrl: "{graph.url}"}}
    groups:
      ml-team: {{from: [{{provider: corp-entra, group: {GROUP}}}]}}
    profiles:
    - name: ml
      owner: {{kind: User, name: lead@corp.example}}
      contributors: [{{group: ml-team, role: edit}}]
    personalProfiles:
    - {{group: ml-team, name: "ws-{{local}}"}}
    """
    github.commit(REPO, {"pmr.yaml": textwrap.dedent(pmr).encode()})


@pytest.fixture
def secret(graph_ca: Any) -> testing.Secret:
    return testing.Secret(
        {
            "client-id": CLIENT_ID,
            "client-secret": CLIENT_SECRET,
            "ca-cert": graph_ca.cert_pem.bytes().decode(),
        },
        owner=None,
    )


def with_idp(config: dict[str, Any], secret: testing.Secret, **kwargs: Any) -> testing.State:
    return leader(
        {**config, "idp-credentials": f"corp-entra={secret.id}"}, secrets={secret}, **kwargs
    )


@pytest.mark.usefixtures("entra_pmr")
def test_groups_from_entra_are_synced_and_counted_in_the_status(
    ctx: testing.Context[Any], kube: FakeKubeAPI, github: FakeGitHub, config, secret
):
    out = ctx.run(ctx.on.update_status(), with_idp(config, secret))

    assert out.unit_status == ops.ActiveStatus(
        f"3 profiles in sync @ {head(github)[:7]}; 1 group from corp-entra"
    )
    assert {"ml", "ws-alice", "ws-bob"} <= set(names(kube, PROFILE_API))
    assert sorted(contributor_names(kube, ROLE_BINDING_API, "ml")) == [
        "user-alice-corp-example-clusterrole-edit",
        "user-bob-corp-example-clusterrole-edit",
    ]


@pytest.mark.usefixtures("entra_pmr")
def test_a_permission_failure_blocks_with_the_fix_and_keeps_access(
    ctx: testing.Context[Any], kube: FakeKubeAPI, graph: FakeGraph, config, secret
):
    synced = ctx.run(ctx.on.update_status(), with_idp(config, secret))
    graph.granted.clear()

    out = ctx.run(ctx.on.update_status(), synced)

    assert out.unit_status == ops.BlockedStatus(
        f"corp-entra group {GROUP}: 403 Authorization_RequestDenied: grant the application "
        "GroupMember.Read.All (application permission) and admin consent"
    )
    assert len(contributor_names(kube, ROLE_BINDING_API, "ml")) == 2
    assert {"ws-alice", "ws-bob"} <= set(names(kube, PROFILE_API))


@pytest.mark.usefixtures("entra_pmr")
def test_throttling_past_the_deadline_is_waiting(
    ctx: testing.Context[Any], kube: FakeKubeAPI, graph: FakeGraph, config, secret
):
    graph.add_fault("/transitiveMembers/", 429, retry_after=120, times=None)

    out = ctx.run(ctx.on.update_status(), with_idp(config, secret))

    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert out.unit_status.message.startswith(
        f"corp-entra group {GROUP}: 429 TooManyRequests: throttled past the deadline"
    )
    assert "ml" in names(kube, PROFILE_API)  # the rest of the PMR was applied


@pytest.mark.usefixtures("entra_pmr", "kube")
def test_an_ungranted_secret_names_the_grant_command(ctx: testing.Context[Any], config, secret):
    state = leader({**config, "idp-credentials": f"corp-entra={secret.id}"})

    out = ctx.run(ctx.on.update_status(), state)

    assert out.unit_status == ops.BlockedStatus(
        f"corp-entra group {GROUP}: cannot read the secret for corp-entra in `idp-credentials`: "
        f"juju grant-secret {secret.id} kubeflow-profiles-automator"
    )


@pytest.mark.usefixtures("entra_pmr", "kube")
def test_a_missing_key_names_the_update_command(ctx: testing.Context[Any], config):
    secret = testing.Secret({"client-id": CLIENT_ID}, owner=None)

    out = ctx.run(ctx.on.update_status(), with_idp(config, secret))

    assert out.unit_status == ops.BlockedStatus(
        f"corp-entra group {GROUP}: the secret for corp-entra in `idp-credentials` has no "
        f"`client-secret` key: juju update-secret {secret.id} client-secret=..."
    )


def test_a_malformed_option_is_a_config_error(ctx: testing.Context[Any], config):
    out = ctx.run(ctx.on.config_changed(), leader({**config, "idp-credentials": "corp-entra"}))

    assert out.unit_status == ops.BlockedStatus(
        "Invalid config: `idp-credentials` must be comma-separated NAME=secret:ID (NAME as in "
        "the PMR's identityProviders), got 'corp-entra'=...: juju config "
        "kubeflow-profiles-automator idp-credentials=corp-entra=secret:ID"
    )


@pytest.mark.usefixtures("entra_pmr", "kube")
def test_show_groups_and_sync_now_report_groups_without_secrets(
    ctx: testing.Context[Any], config, secret
):
    state = with_idp(config, secret)

    ctx.run(ctx.on.action("show-groups", params={"group": "ml-team"}), state)
    shown = dict(ctx.action_results or {})
    ctx.run(ctx.on.action("sync-now"), state)
    synced = dict(ctx.action_results or {})

    assert shown["groups"].startswith(f"ml-team: 2 members from corp-entra:{GROUP} in ")
    assert shown["members"] == (
        f"alice@corp.example (corp-entra:{GROUP})\nbob@corp.example (corp-entra:{GROUP})"
    )
    assert synced["groups"] == "1 group from corp-entra"
    assert synced["unknown-groups"] == "none"
    texts = [str(shown), str(synced), *(log.message for log in ctx.juju_log)]
    assert not [t for t in texts if CLIENT_SECRET in t]


@pytest.mark.usefixtures("entra_pmr", "kube")
def test_show_groups_refuses_an_unknown_group(ctx: testing.Context[Any], config, secret):
    with pytest.raises(testing.ActionFailed) as caught:
        ctx.run(
            ctx.on.action("show-groups", params={"group": "ml-teem"}), with_idp(config, secret)
        )

    assert caught.value.message == "no group 'ml-teem' in the PMR; groups: ml-team"
