"""Fixtures shared by several integration test files (the node's own are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.settings import Settings
from tests.support.runs import MakeRunner, runner_factory


@pytest.fixture
def store(elastic: Elastic, es_settings: Settings) -> AlertStore:
    """The alerts store of this test's own alerts index, with the index created."""
    alerts = AlertStore(elastic, es_settings.alerts_index)
    alerts.ensure_index()
    return alerts


@pytest.fixture
def make_runner(elastic: Elastic, token: str) -> MakeRunner:
    """Runners with alerts and execution-log indices of their own (see `runner_factory`)."""
    return runner_factory(elastic, token)
