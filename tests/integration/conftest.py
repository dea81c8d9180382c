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


# `scripts/check` runs the integration tests against two Elasticsearch versions side by side
# and, to fit CI in 20 minutes on 2 cores, runs what does not depend on the server's version
# against one of them only (`DETECTOR_TEST_SPLIT=1`; a plain `pytest tests/integration` runs
# everything against `ES_VERSION`). Both versions run everything that asks Elasticsearch
# something a version could answer differently: queries, aggregations, mappings, privileges,
# explain, preview. One version runs the detector's own process-level behaviour: schedules,
# replicas, real `detector` processes, notifications, the demo, the import, rule tests. The
# README's "Development" section lists the same split.
NEWEST, OLDEST = "9.5.4", "8.19.21"
ONE_VERSION = {
    # the long real-process scenarios (marker `scenario`) run against NEWEST; the tests that
    # start clusters of their own (marker `clusters`: a remote, joined nodes) against OLDEST;
    "test_run": NEWEST,
    "test_notifications": NEWEST,
    # against OLDEST:
    "test_execution_log": OLDEST,
    "test_lease_store": OLDEST,
    "test_seams": OLDEST,
    "test_engine_runs": OLDEST,
    "test_failed_windows": OLDEST,
    "test_backfill": OLDEST,
    "test_demo_setup": OLDEST,
    "test_catchup_runs": OLDEST,
    "test_cloudtrail_import": OLDEST,
    "test_json_logs": OLDEST,
    "test_pool": OLDEST,
    "test_rules_test": OLDEST,
}


def version_for(item: pytest.Item) -> str | None:
    """The one version `scripts/check` runs this test against, or None for both."""
    if item.get_closest_marker("scenario"):
        return NEWEST
    if item.get_closest_marker("clusters"):
        return OLDEST
    return ONE_VERSION.get(Path(item.path).stem)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest's hook sees every item of the session: mark only this directory's.
    ours = [item for item in items if HERE in Path(item.path).resolve().parents]
    for item in ours:
        item.add_marker(pytest.mark.es)
    version = os.environ.get("ES_VERSION", OLDEST)
    if os.environ.get("DETECTOR_TEST_SPLIT") != "1":
        return
    elsewhere = [item for item in ours if version_for(item) not in (None, version)]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in set(elsewhere)]


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
