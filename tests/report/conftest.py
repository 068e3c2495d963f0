"""Fixtures for the report tests: the Microsoft Graph imitation for group-resolving reviews."""

from tests.graph_fixtures import *  # noqa: F403 - the graph and graph_ca fixtures
