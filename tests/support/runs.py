"""Runners with indices of their own, and what they wrote (integration tests of the runner)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol, Unpack

from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.execution_log.store import ExecutionStore
from detector.service.runner import Options, Runner
from tests.support import cloudtrail as ct

DAY = timedelta(hours=24)


class MakeRunner(Protocol):
    """Makes a runner named `name`; `options` are `Runner.on`'s (exceptions, metrics, ...)."""

    def __call__(self, name: str, /, **options: Unpack[Options]) -> Runner: ...


def runner_factory(elastic: Elastic, token: str) -> MakeRunner:
    """Runners with alerts and execution-log indices of their own, named after `name`."""

    def make(name: str, /, **options: Unpack[Options]) -> Runner:
        store = AlertStore(elastic, f"detector-alerts-{token}-{name}")
        log = ExecutionStore(elastic, f"detector-executions-{token}-{name}")
        store.ensure_index()
        log.ensure_index()
        # Alerts are written with refresh=wait_for: a short interval keeps the tests quick.
        elastic.client.indices.put_settings(
            index=store.index, settings={"index": {"refresh_interval": "100ms"}}
        )
        options.setdefault("max_catchup", DAY)
        return Runner.on(elastic, store, log, **options)

    return make


def add_events(elastic: Elastic, index: str, docs: list[dict[str, Any]]) -> None:
    ct.create_index(elastic, index)
    ct.index_documents(elastic, index, docs)
    elastic.refresh(index)


def alerts_index(runner: Runner) -> str:
    """The index the runner writes its alerts to."""
    assert runner.records.alerts_index is not None
    return runner.records.alerts_index


def alert_documents(runner: Runner) -> dict[str, dict[str, Any]]:
    """Alert id -> alert document of every alert the runner wrote."""
    runner.elastic.refresh(alerts_index(runner))
    body = {"size": 1000, "query": {"match_all": {}}}
    hits = runner.elastic.search([alerts_index(runner)], body)["hits"]["hits"]
    return {hit["_id"]: hit["_source"] for hit in hits}


def alerts_of(runner: Runner) -> dict[str, tuple[Any, ...]]:
    """Alert id -> (new terms, first seen) of every alert the runner wrote."""
    return {
        alert_id: (tuple(doc["kibana"]["alert"]["new_terms"]), doc["detector"]["first_seen"])
        for alert_id, doc in alert_documents(runner).items()
    }


def log_docs(runner: Runner) -> list[dict[str, Any]]:
    """The execution documents of the runner's log, oldest scheduled time first."""
    runner.executions.refresh()
    body = {
        "size": 1000,
        "query": {"term": {"kind": "execution"}},
        "sort": [{"execution.scheduled": "asc"}, {"execution.started": "asc"}],
    }
    return [
        hit["_source"]
        for hit in runner.elastic.search([runner.executions.index], body)["hits"]["hits"]
    ]
