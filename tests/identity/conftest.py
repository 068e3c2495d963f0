"""A Microsoft Graph imitation over HTTPS with a test CA, and Entra clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from profiles_automator.identity.entra import EntraDirectory
from tests.fakes.graph_api import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGraph
from tests.graph_fixtures import *  # noqa: F403 - the graph and graph_ca fixtures


@pytest.fixture
def entra(graph: FakeGraph, graph_ca: Any) -> Callable[..., EntraDirectory]:
    def make(**overrides: Any) -> EntraDirectory:
        settings: dict[str, Any] = {
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authority_host": graph.url,
            "graph_url": graph.url,
            "ca_cert": graph_ca.cert_pem.bytes().decode(),
            "timeout": 5.0,
        }
        settings.update(overrides)
        return EntraDirectory("corp-entra", **settings)

    return make
