"""Partial answers are refused (`detector.es.responses`): a remote skipped or not successful, a
shard lost with its node, a cluster that holds the rule's indices but searched no shard, a
`_field_caps` that left indices out. Each names the cluster and is retried (transient)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import generate_latest

from detector.engine.execution import _transient
from detector.errors import PartialResultError, RequestError
from detector.es.responses import (
    check_field_caps,
    check_msearch_item,
    check_shards,
    remote_lost,
)
from detector.execution_log import health
from detector.execution_log.health import RuleRuns
from detector.execution_log.status import RuleStatus
from detector.metrics import Metrics
from detector.results import ExecutionResult

SHARDS = {"total": 2, "successful": 2, "skipped": 0, "failed": 0}


def cluster(status: str, total: int = 1, reason: str | None = None) -> dict[str, Any]:
    failures = [{"shard": -1, "reason": {"type": reason, "reason": "down"}}] if reason else []
    return {
        "status": status,
        "indices": "logs-*",
        "_shards": {"total": total, "successful": total, "skipped": 0, "failed": 0},
        "failures": failures,
    }


def answer(**details: dict[str, Any]) -> dict[str, Any]:
    skipped = sum(info["status"] == "skipped" for info in details.values())
    clusters = {"total": len(details), "skipped": skipped, "details": details}
    return {"timed_out": False, "_shards": SHARDS, "_clusters": clusters}


def test_a_skipped_remote_is_refused_naming_it_and_its_reason() -> None:
    response = answer(
        **{"(local)": cluster("successful"), "east": cluster("skipped", 0, "connect_transport")}
    )
    with pytest.raises(PartialResultError, match="east: skipped \\(connect_transport: down") as e:
        check_shards(response)
    assert e.value.clusters == ("east",)


@pytest.mark.parametrize("status", ["partial", "failed", "running"])
def test_a_remote_that_did_not_answer_in_full_is_refused(status: str) -> None:
    response = answer(**{"(local)": cluster("successful"), "west": cluster(status)})
    with pytest.raises(PartialResultError) as error:
        check_shards(response)
    assert error.value.clusters == ("west",)


def test_a_skipped_count_without_details_is_refused() -> None:
    response = {"_shards": SHARDS, "_clusters": {"total": 2, "successful": 1, "skipped": 1}}
    with pytest.raises(PartialResultError, match="1 of 2 clusters were skipped"):
        check_shards(response)


def test_every_cluster_successful_is_a_whole_answer() -> None:
    check_shards(answer(**{"(local)": cluster("successful"), "east": cluster("successful")}))


def test_a_shard_lost_with_its_node_is_a_partial_answer_naming_index_and_cluster() -> None:
    failure = {
        "index": "east:logs-a",
        "shard": 1,
        "reason": {"type": "no_shard_available_action_exception", "reason": None},
    }
    response = {"_shards": {"total": 3, "successful": 2, "failed": 1, "failures": [failure]}}
    with pytest.raises(PartialResultError, match="index east:logs-a") as error:
        check_shards(response)
    assert error.value.clusters == ("east",)


def test_a_shard_failing_on_the_query_stays_a_rejected_request() -> None:
    failure = {"index": "logs-a", "reason": {"type": "query_shard_exception", "reason": "bad"}}
    response = {"_shards": {"total": 1, "successful": 0, "failed": 1, "failures": [failure]}}
    with pytest.raises(RequestError, match="query_shard_exception: bad"):
        check_shards(response)


def test_a_cluster_holding_the_indices_must_search_a_shard() -> None:
    response = answer(**{"(local)": cluster("successful", 0), "east": cluster("successful", 2)})
    with pytest.raises(PartialResultError, match=r"\(local\) searched no shard") as error:
        check_shards(response, ["(local)", "east"])
    assert error.value.clusters == ("(local)",)
    check_shards(response, ["east"])  # the local cluster held none of them: nothing is missing


def test_without_cross_cluster_details_the_top_level_shards_count() -> None:
    empty = {"_shards": {"total": 0, "successful": 0, "failed": 0}}
    with pytest.raises(PartialResultError):
        check_shards(empty, ["(local)"])
    check_shards(empty)  # no index was found: an empty answer is whole
    check_shards({"_shards": SHARDS}, ["(local)"])


def test_a_multi_search_item_is_checked_like_a_search() -> None:
    response = answer(**{"(local)": cluster("successful"), "east": cluster("skipped", 0)})
    with pytest.raises(PartialResultError):
        check_msearch_item(response)


def test_field_caps_that_left_a_remote_out_is_refused() -> None:
    response = {
        "indices": ["logs-a"],
        "fields": {},
        "failed_indices": 1,
        "failures": [
            {"indices": ["east:logs-*"], "failure": {"type": "connect_transport_exception"}}
        ],
    }
    with pytest.raises(PartialResultError, match="east:logs-") as error:
        check_field_caps(response)
    assert error.value.clusters == ("east",)
    check_field_caps({"indices": ["logs-a"], "fields": {}})


def test_a_partial_answer_is_retried_like_any_failed_window() -> None:
    assert _transient(PartialResultError("east skipped", ("east",)))


NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def test_the_lost_cluster_is_counted_by_cluster() -> None:
    result = ExecutionResult("r1", "Rule one", NOW, "failed", unavailable_clusters=("east",))
    metrics = Metrics()
    metrics.observe(result, "failed", "scheduled", NOW)
    text = generate_latest(metrics.registry).decode()
    assert 'detector_cluster_unavailable_total{cluster="east"} 1.0' in text


def test_status_and_health_name_the_lost_cluster() -> None:
    row = RuleStatus(
        "r1", "Rule one", None, None, False, None, "failed", None, None, None, None, ("east",)
    ).row()
    assert "failed (east unavailable)" in row
    doc = {
        "execution": {
            "status": "failed",
            "ended": "2025-01-15T11:59:00.000Z",
            "error": "cluster(s) did not answer in full: east: skipped",
            "unavailable_clusters": ["east"],
        }
    }
    line = health.problem(RuleRuns("r1", "Rule one", doc, None), NOW, NOW - NOW)
    assert line is not None
    assert "last execution failed (cluster east unavailable)" in line


def test_a_remote_refusing_a_whole_request_is_named_by_alias() -> None:
    body = {
        "error": {"type": "connect_transport_exception", "reason": "Unable to connect to [east]"}
    }
    lost = remote_lost(body)
    assert lost is not None
    assert lost.clusters == ("east",)
    assert "remote cluster east is unavailable" in str(lost)


def test_a_remote_refused_at_its_address_is_named_by_the_address() -> None:
    reason = "[][127.0.0.1:60121] connect_exception"
    lost = remote_lost({"error": {"type": "connect_transport_exception", "reason": reason}})
    assert lost is not None
    assert lost.clusters == ("127.0.0.1:60121",)


def test_other_errors_are_not_a_lost_remote() -> None:
    assert remote_lost({"error": {"type": "parsing_exception", "reason": "bad"}}) is None
