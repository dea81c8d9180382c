"""`detector demo` and `detector setup` against the real node."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from detector.cli import main
from detector.deployment import demo, provision, scenario
from detector.errors import DemoError
from detector.es.client import Elastic
from detector.execution_log import documents
from detector.execution_log.store import ExecutionStore
from detector.results import ExecutionRef, ExecutionResult
from detector.settings import Settings
from detector.times import iso

NOW = datetime(2026, 3, 2, 10, 7, 30, tzinfo=UTC)


@pytest.fixture
def settings(es_settings: Settings, token: str) -> Settings:
    return es_settings.model_copy(update={"execution_log_index": f"detector-executions-{token}"})


def _quiet() -> demo.Progress:
    return demo.Progress(io.StringIO())


def _count(elastic: Elastic, index: str) -> int:
    elastic.refresh(index)
    return int(elastic.call(lambda es: es.count(index=index)).body["count"])


def test_demo_alerts_on_returning_and_new_sources_only_and_is_idempotent(
    settings: Settings, elastic: Elastic, token: str
) -> None:
    index = f"logs-aws.cloudtrail-detectordemo-{token}"
    first = demo.run(settings, NOW, _quiet(), index)
    expected = {source.address for source in (*scenario.RETURNING, *scenario.NEW)}
    assert not first.failed
    assert {alert["source"]["address"] for alert in first.alerts} == expected
    assert len(first.executions) == 12 and first.end == datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
    written = _count(elastic, settings.alerts_index)
    assert written == len(expected)

    again = demo.run(settings, NOW, _quiet(), index)
    assert sum(result.alerts_written for result in again.executions) == 0
    assert again.alerts == first.alerts
    assert _count(elastic, settings.alerts_index) == written
    assert _count(elastic, settings.execution_log_index) >= 24


def test_demo_data_is_never_in_the_future_of_an_execution(
    settings: Settings, elastic: Elastic, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    index = f"logs-aws.cloudtrail-detectordemo-{token}"
    with caplog.at_level(logging.WARNING, logger="detector.engine.execution"):
        result = demo.run(settings, NOW, _quiet(), index)
    assert [execution.future_documents for execution in result.executions] == [0] * 12
    assert "in the future" not in caplog.text


def test_status_and_health_show_the_demos_scheduled_executions(
    settings: Settings,
    elastic: Elastic,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = f"logs-aws.cloudtrail-detectordemo-{token}"
    result = demo.run(settings, datetime.now(UTC), _quiet(), index)
    assert result.execution_type == "scheduled"
    _env(monkeypatch, settings)
    capsys.readouterr()

    assert main(["status", "--json"]) == 0
    [shown] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown["last_scheduled"] == iso(result.end)
    assert (shown["last_status"], shown["last_replica"]) == ("succeeded", demo.DEMO_REPLICA)
    assert shown["checkpoint"] is None and shown["holder"] is None  # the schedule's, untouched
    assert main(["health"]) == 0
    assert capsys.readouterr().out.startswith("healthy: 1 rule(s) succeeded within 900 s\n")


def test_demo_leaves_a_deployments_state_alone_recording_its_executions_as_manual(
    settings: Settings, elastic: Elastic, token: str
) -> None:
    index = f"logs-aws.cloudtrail-detectordemo-{token}"
    log = ExecutionStore(elastic, settings.execution_log_index)
    log.ensure_index()
    [rule] = demo.demo_rules()
    deployed = ExecutionResult(rule.rule_id, rule.name, NOW, "failed", error="boom")
    timing = documents.Timing(NOW, NOW)
    doc = documents.execution_doc(
        deployed,
        execution=ExecutionRef("scheduled", "deployed"),
        timing=timing,
        interval=rule.interval,
    )
    log.write("deployed", doc)

    result = demo.run(settings, NOW, _quiet(), index)

    assert result.execution_type == "manual" and not result.failed
    assert log.last_runs(rule).last == doc  # health and status still see the deployment's


def test_demo_keeps_documents_it_did_not_write_and_refuses_to_mix_with_them(
    settings: Settings, elastic: Elastic, token: str
) -> None:
    index = f"logs-aws.cloudtrail-detectordemo-{token}"
    loaded = demo.run(settings, NOW, _quiet(), index).documents
    elastic.index_document(index, "mine", {"@timestamp": "2026-03-01T00:00:00Z", "note": "x"})
    elastic.refresh(index)

    with pytest.raises(DemoError, match=r"holds 1 CloudTrail document\(s\) the demo did not"):
        demo.run(settings, NOW, _quiet(), index)
    forced = demo.run(settings, NOW, _quiet(), index, force=True)

    assert not forced.failed
    assert elastic.get_document(index, "mine") == {
        "@timestamp": "2026-03-01T00:00:00Z",
        "note": "x",
    }
    assert _count(elastic, index) == loaded + 1  # its own events replaced, the other one kept


def test_demo_template_matches_its_own_index_only(
    settings: Settings, elastic: Elastic, token: str
) -> None:
    index = f"logs-aws.cloudtrail-detectordemo-{token}"
    demo.run(settings, NOW, _quiet(), index)
    name = scenario.template_name(index)
    templates = elastic.call(lambda es: es.indices.get_index_template(name=name)).body
    [template] = templates["index_templates"]
    assert template["index_template"]["index_patterns"] == [index]
    assert scenario.INDEX == "logs-aws.cloudtrail-detectordemo"


def test_demo_never_touches_an_index_it_did_not_create(
    settings: Settings, elastic: Elastic, token: str
) -> None:
    index = f"logs-aws.cloudtrail-default-{token}"
    elastic.call(lambda es: es.indices.create(index=index))
    with pytest.raises(DemoError, match="was not created by the demo"):
        demo.run(settings, NOW, _quiet(), index)
    assert elastic.matching_indices(index) == [index]


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.chdir("/")
    monkeypatch.setenv("DETECTOR_ES_URL", ",".join(settings.es_url))
    monkeypatch.setenv("DETECTOR_ALERTS_INDEX", settings.alerts_index)
    monkeypatch.setenv("DETECTOR_EXECUTION_LOG_INDEX", settings.execution_log_index)
    if settings.es_username and settings.es_password:
        monkeypatch.setenv("DETECTOR_ES_USERNAME", settings.es_username)
        monkeypatch.setenv("DETECTOR_ES_PASSWORD", settings.es_password.get_secret_value())


def _templates(elastic: Elastic, token: str) -> set[str]:
    body: dict[str, Any] = elastic.call(
        lambda es: es.indices.get_index_template(name=f"*{token}*")
    ).body
    return {template["name"] for template in body["index_templates"]}


def test_setup_installs_both_templates(
    settings: Settings,
    elastic: Elastic,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _env(monkeypatch, settings)
    assert main(["setup"]) == 0
    assert _templates(elastic, token) == {
        f"{settings.alerts_index}-template",
        f"{settings.execution_log_index}-template",
    }
    assert elastic.matching_indices(f"*{token}*") == sorted(
        [settings.alerts_index, settings.execution_log_index]
    )
    assert main(["setup"]) == 0  # idempotent
    assert "Kibana: skipped" in capsys.readouterr().err


def test_setup_role_on_a_cluster_without_security_index_is_a_clear_error(
    settings: Settings,
    elastic: Elastic,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The integ-test-zip cannot create the .security index (no analysis-common module).
    _env(monkeypatch, settings)
    assert main(["setup", "--create-role"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot create the role {provision.ROLE_NAME}: ")
    assert "cannot store native roles or API keys" in err and "Traceback" not in err
    assert len(_templates(elastic, token)) == 2  # the templates came first


def test_role_descriptor_reads_the_rule_indices_and_owns_only_its_own(settings: Settings) -> None:
    descriptor = provision.role_descriptor(settings)
    read, own = descriptor["indices"]
    assert set(read["names"]) == {"filebeat-*", "logs-aws.cloudtrail*"}
    assert read["privileges"] == ["read", "view_index_metadata"]
    assert own["names"] == [
        settings.alerts_index,
        f"{settings.alerts_index}-*",
        settings.execution_log_index,
        f"{settings.execution_log_index}-*",
    ]
    assert descriptor["cluster"] == ["monitor", "manage_index_templates"]
