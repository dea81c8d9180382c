"""The Elasticsearch node of an integration test session (the fixtures are in
tests/integration/conftest.py).

- `EsNode`: how to reach the node, and its least-privilege users;
- `external_node(url)`: the node `DETECTOR_TEST_ES_URL` points at (with `DETECTOR_TEST_ES_USERNAME`,
  default `elastic`, `DETECTOR_TEST_ES_PASSWORD`, `DETECTOR_TEST_ES_READER_*` and
  `DETECTOR_TEST_ES_DETECTOR_*`);
- `start_local_node(state)`, `stop_local_node(state)`: a node of the session's own through
  `scripts/local-es` (version from `ES_VERSION`);
- `delete_test_objects(node, token)`: what a test created (`*<token>*`);
- `settings_of(**values)`: `Settings` from these values only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError

from detector.es.client import Elastic
from detector.settings import Settings

LOCAL_ES = Path(__file__).resolve().parents[2] / "scripts" / "local-es"
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


def settings_of(**values: Any) -> Settings:
    """Settings from `values` only: no `.env` file (tests/conftest.py cleans the environment)."""
    return Settings(**{"_env_file": None, **values})


def external_node(url: str) -> EsNode:
    password = os.environ.get("DETECTOR_TEST_ES_PASSWORD")
    username = os.environ.get("DETECTOR_TEST_ES_USERNAME", "elastic") if password else None
    elastic = Elastic(settings_of(es_url=[url], es_username=username, es_password=password))
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


def local_es(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
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


def start_local_node(state: Path, *options: str) -> EsNode:
    """A node (or cluster: `--nodes 3`) of `scripts/local-es start` with `options`."""
    version = os.environ.get("ES_VERSION", "the default version")
    try:
        # The node is stopped at the session's end, or by local-es if this process dies first.
        started = local_es(state, "start", "--stop-with-pid", str(os.getpid()), *options)
    except subprocess.TimeoutExpired:
        local_es(state, "stop")
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


def stop_local_node(state: Path) -> None:
    stopped = local_es(state, "stop")
    if stopped.returncode != 0:
        print(f"scripts/local-es stop failed: {stopped.stderr}", file=sys.stderr)


def delete_test_objects(node: EsNode, token: str) -> None:
    """Delete the data streams, indices, index and component templates named `*<token>*`."""
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
