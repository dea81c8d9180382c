"""Shared fixtures (see docs/architecture.md, "Tests").

`es_node` starts one Elasticsearch node per session with `scripts/local-es` (version from
`ES_VERSION`), or uses the node that `DETECTOR_TEST_ES_URL` (with `DETECTOR_TEST_ES_USERNAME`,
default `elastic`, and `DETECTOR_TEST_ES_PASSWORD`; its least-privilege users from
`DETECTOR_TEST_ES_READER_*` and `DETECTOR_TEST_ES_DETECTOR_*`) points at. Tests under
`tests/integration/` are marked `es`; tests under `tests/unit/` may not use the node at all.

`DETECTOR_*` variables of the developer's shell (other than `DETECTOR_TEST_*`) are removed at
start-up so they cannot leak into the settings the tests build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError
from hypothesis import HealthCheck, settings

from detector.es.client import Elastic
from detector.settings import ENV_PREFIX, Settings
from tests.support import reference

# Property tests check what is generated, not how fast: on a loaded 2-core CI machine one draw
# took 6.6 s once, failing Hypothesis' speed health check and deadline, not the property.
settings.register_profile(
    "loaded-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("loaded-machine")

TESTS = Path(__file__).resolve().parent
LOCAL_ES = TESTS.parent / "scripts" / "local-es"
START_TIMEOUT = 300


@dataclass(frozen=True)
class EsNode:
    """How to reach the test node; `reader_*` is a user that may only read `logs-*`,
    `detector_*` a user with the detector's role `newterms-detector` (default settings)."""

    url: str
    username: str | None
    password: str | None
    version: str
    reader_username: str | None = None
    reader_password: str | None = None
    detector_username: str | None = None
    detector_password: str | None = None

    def client(self) -> Elasticsearch:
        """A raw client for test setup and cleanup (the code under test uses `Elastic`)."""
        auth = (self.username, self.password) if self.username and self.password else None
        return Elasticsearch(self.url, basic_auth=auth, request_timeout=30)


def pytest_configure(config: pytest.Config) -> None:
    for name in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
        if not name.startswith("DETECTOR_TEST_"):
            del os.environ[name]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parents = Path(item.path).resolve().parents
        if TESTS / "integration" in parents:
            item.add_marker(pytest.mark.es)
        elif TESTS / "unit" in parents and "es_node" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: unit tests must not use Elasticsearch")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # First, so that it also decides a parametrization left empty by the missing data (which
    # pytest would skip as "got empty parameter set", even under CI).
    if item.get_closest_marker("reference_data"):
        reference.require()


def _external_node(url: str) -> EsNode:
    password = os.environ.get("DETECTOR_TEST_ES_PASSWORD")
    username = os.environ.get("DETECTOR_TEST_ES_USERNAME", "elastic") if password else None
    elastic = Elastic(_settings(es_url=[url], es_username=username, es_password=password))
    try:
        version = elastic.wait_ready(30).version
    except Exception as exc:
        pytest.fail(f"DETECTOR_TEST_ES_URL={url} is not usable: {exc}", pytrace=False)
    finally:
        elastic.close()
    return EsNode(
        url,
        username,
        password,
        version,
        os.environ.get("DETECTOR_TEST_ES_READER_USERNAME"),
        os.environ.get("DETECTOR_TEST_ES_READER_PASSWORD"),
        os.environ.get("DETECTOR_TEST_ES_DETECTOR_USERNAME"),
        os.environ.get("DETECTOR_TEST_ES_DETECTOR_PASSWORD"),
    )


def _local_es(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Not measured by coverage's subprocess support (scripts/check): local-es is no part of the
    # detector, and its watcher outlives the session, writing a data file after it is combined.
    env = {key: value for key, value in os.environ.items() if not key.startswith("COVERAGE_")}
    return subprocess.run(
        [sys.executable, str(LOCAL_ES), *args],
        env={**env, "LOCAL_ES_STATE": str(state)},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )


def _start_local_node(state: Path) -> EsNode:
    version = os.environ.get("ES_VERSION", "the default version")
    try:
        # The node is stopped at the session's end, or by local-es if this process dies first.
        started = _local_es(state, "start", "--stop-with-pid", str(os.getpid()))
    except subprocess.TimeoutExpired:
        _local_es(state, "stop")
        pytest.fail(f"scripts/local-es start ({version}) took over {START_TIMEOUT}s", pytrace=False)
    if started.returncode != 0:
        pytest.fail(
            f"could not start Elasticsearch ({version}) with scripts/local-es:\n{started.stderr}",
            pytrace=False,
        )
    recorded = json.loads(state.read_text())
    return EsNode(
        recorded["url"],
        recorded["username"],
        recorded["password"],
        recorded["version"],
        recorded.get("reader_username"),
        recorded.get("reader_password"),
        recorded.get("detector_username"),
        recorded.get("detector_password"),
    )


@pytest.fixture(scope="session")
def es_node() -> Iterator[EsNode]:
    """The Elasticsearch node of this session; a failure to start fails every test using it."""
    external = os.environ.get("DETECTOR_TEST_ES_URL")
    if external:
        yield _external_node(external)
        return
    # Not under pytest's basetemp: a concurrent session may delete old ones.
    state_dir = Path(tempfile.mkdtemp(prefix="detector-test-es-"))
    state = state_dir / "state.json"
    try:
        yield _start_local_node(state)
    finally:
        stopped = _local_es(state, "stop")
        if stopped.returncode != 0:
            print(f"scripts/local-es stop failed: {stopped.stderr}", file=sys.stderr)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def token(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique lowercase hex string; with the node in use, `*<token>*` is deleted afterwards."""
    value = uuid.uuid4().hex[:12]
    yield value
    if "es_node" in request.fixturenames:
        _delete_test_objects(request.getfixturevalue("es_node"), value)


def _delete_test_objects(node: EsNode, token: str) -> None:
    pattern = f"*{token}*"
    with node.client() as es:
        resolved = es.indices.resolve_index(name=pattern, expand_wildcards="all").body
        for stream in resolved.get("data_streams", []):
            es.indices.delete_data_stream(name=stream["name"])
        indices = [index["name"] for index in resolved.get("indices", [])]
        if indices:
            es.indices.delete(index=",".join(indices), expand_wildcards="all")
        try:
            templates = es.indices.get_index_template(name=pattern).body["index_templates"]
        except NotFoundError:
            templates = []
        for template in templates:
            es.indices.delete_index_template(name=template["name"])
        try:
            components = es.cluster.get_component_template(name=pattern).body
        except NotFoundError:
            components = {"component_templates": []}
        for component in components["component_templates"]:
            es.cluster.delete_component_template(name=component["name"])


@pytest.fixture
def es_settings(es_node: EsNode, token: str) -> Settings:
    """Settings for the node, with alerts and execution-log indices of this test's own."""
    return _settings(
        es_url=[es_node.url],
        es_username=es_node.username,
        es_password=es_node.password,
        alerts_index=f"detector-alerts-{token}",
        execution_log_index=f"detector-executions-{token}",
        es_retry_attempts=3,
        es_retry_max_seconds=10,
    )


def _settings(**values: Any) -> Settings:
    """Settings from `values` only: no `.env` file (the environment is cleaned above)."""
    return Settings(**{"_env_file": None, **values})


@pytest.fixture
def elastic(es_settings: Settings) -> Iterator[Elastic]:
    """The detector's Elasticsearch access for the node, closed after the test."""
    client = Elastic(es_settings)
    try:
        yield client
    finally:
        client.close()
