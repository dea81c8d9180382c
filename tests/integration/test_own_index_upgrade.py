"""An execution log or alerts index created by an earlier version gets this version's fields."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.execution_log.store import ExecutionStore
from detector.settings import Settings
from tests.integration.test_least_privilege import as_detector, user

__all__ = ["as_detector", "user"]  # fixtures


def _older(store: ExecutionStore) -> dict[str, Any]:
    """The index body of an earlier version: without `metrics.skipped_documents`."""
    template: dict[str, Any] = copy.deepcopy(ExecutionStore.template_body(store.index)["template"])
    del template["mappings"]["properties"]["metrics"]["properties"]["skipped_documents"]
    return template


def _metrics_fields(elastic: Elastic, index: str) -> set[str]:
    body = elastic.call(lambda es: es.indices.get_mapping(index=index)).body
    return set(body[index]["mappings"]["properties"]["metrics"]["properties"])


def test_an_older_execution_log_gets_the_new_fields(
    elastic: Elastic, es_settings: Settings
) -> None:
    store = ExecutionStore(elastic, es_settings.execution_log_index)
    elastic.create_index(store.index, _older(store))
    assert "skipped_documents" not in _metrics_fields(elastic, store.index)

    assert store.ensure_index() is False  # it existed
    assert "skipped_documents" in _metrics_fields(elastic, store.index)


def test_bringing_an_index_up_to_date_twice_changes_nothing(
    elastic: Elastic, es_settings: Settings
) -> None:
    store = AlertStore(elastic, es_settings.alerts_index)
    assert store.ensure_index() is True
    before = elastic.call(lambda es: es.indices.get_mapping(index=store.index)).body
    assert store.ensure_index() is False
    assert elastic.call(lambda es: es.indices.get_mapping(index=store.index)).body == before


def test_the_detectors_own_role_brings_its_index_up_to_date(
    elastic: Elastic, as_detector: Elastic, es_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Its `write` privilege on its own indices covers put-mapping: no `manage` needed.
    store = ExecutionStore(elastic, es_settings.execution_log_index)
    elastic.create_index(store.index, _older(store))

    with caplog.at_level(logging.WARNING, logger="detector.es.own_index"):
        assert ExecutionStore(as_detector, store.index).ensure_index() is False
    assert not [r for r in caplog.records if r.name == "detector.es.own_index"]
    assert "skipped_documents" in _metrics_fields(elastic, store.index)
