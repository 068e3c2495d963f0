"""Fixtures for the Microsoft Graph imitation, shared by identity, engine and charm tests.

Imported with `from tests.graph_fixtures import *` in those folders' conftest modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.graph_api import FakeGraph

trustme: Any = pytest.importorskip("trustme")

__all__ = ["graph", "graph_ca"]


@pytest.fixture(scope="session")
def graph_ca() -> Any:
    return trustme.CA()


@pytest.fixture
def graph(graph_ca: Any) -> Iterator[FakeGraph]:
    with FakeGraph(tls=graph_ca.issue_cert("127.0.0.1")) as fake:
        yield fake
