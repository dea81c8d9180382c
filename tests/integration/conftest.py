"""The integration tests' fixtures: the Elasticsearch node and what is built on it (see
docs/architecture.md, "Tests").

`es_node` starts one Elasticsearch node per session with `scripts/local-es` (version from
`ES_VERSION`), or uses the node that `DETECTOR_TEST_ES_URL` points at (see
`tests.support.es_node`). Every test here is marked `es`; the unit tests cannot reach these
fixtures at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.settings import Settings
from tests.support.es_node import (
    EsNode,
    delete_test_objects,
    external_node,
    settings_of,
    start_local_node,
    stop_local_node,
)
from tests.support.runs import MakeRunner, runner_factory

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest's hook sees every item of the session: mark only this directory's.
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.es)


@pytest.fixture(scope="session")
def es_node() -> Iterator[EsNode]:
    """The Elasticsearch node of this session; a failure to start fails every test using it."""
    external = os.environ.get("DETECTOR_TEST_ES_URL")
    if external:
        yield external_node(external)
        return
    # Not under pytest's basetemp: a concurrent session may delete old ones.
    state_dir = Path(tempfile.mkdtemp(prefix="detector-test-es-"))
    state = state_dir / "state.json"
    try:
        yield start_local_node(state)
    finally:
        stop_local_node(state)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def token(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique lowercase hex string; with the node in use, `*<token>*` is deleted afterwards."""
    value = uuid.uuid4().hex[:12]
    yield value
    if "es_node" in request.fixturenames:
        delete_test_objects(request.getfixturevalue("es_node"), value)


@pytest.fixture
def es_settings(es_node: EsNode, token: str) -> Settings:
    """Settings for the node, with alerts and execution-log indices of this test's own."""
    return settings_of(
        es_url=[es_node.url],
        es_username=es_node.username,
        es_password=es_node.password,
        alerts_index=f"detector-alerts-{token}",
        execution_log_index=f"detector-executions-{token}",
        es_retry_attempts=3,
        es_retry_max_seconds=10,
    )


@pytest.fixture
def elastic(es_settings: Settings) -> Iterator[Elastic]:
    """The detector's Elasticsearch access for the node, closed after the test."""
    client = Elastic(es_settings)
    try:
        yield client
    finally:
        client.close()


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
