"""Alerts that Kibana's prebuilt "External Alerts" rule promotes to the Security Alerts page.

The rule's own query, index patterns and mappings are in tests/support/external_alerts_rule.toml;
what Kibana takes from a promoted document is restated in tests/support/external_alerts.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.alerts import promotion
from detector.alerts.document import build_alert
from detector.deployment import kibana, provision
from detector.results import ExecutionContext, NewTerm
from detector.rules import SEVERITIES, Rule
from detector.settings import Settings
from tests.support import external_alerts
from tests.support.cloudtrail import anonymous_s3_event
from tests.support.kql_eval import matches
from tests.support.rules import make_rule

AT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
ADDRESS = "203.0.113.7"
CTX = ExecutionContext(
    execution_uuid="6f1c7d0e-0000-4000-8000-000000000001",
    started_at=AT + timedelta(minutes=3, seconds=2),
    now=AT + timedelta(minutes=3),
    window_start=AT - timedelta(minutes=6),
    window_end=AT + timedelta(minutes=3),
    history_start=AT - timedelta(days=7),
)
RULE_QUERY: str = external_alerts.rule()["query"]


def _alert(source: dict[str, Any] | None = None, rule: Rule | None = None) -> dict[str, Any]:
    doc = source if source is not None else anonymous_s3_event(ADDRESS, at=AT)
    hit = {"_index": "logs-aws.cloudtrail-default", "_id": "doc-0", "_source": doc}
    return build_alert(rule or make_rule(), NewTerm((ADDRESS,), AT, hit), CTX)


# --- the rule the detector knows ----------------------------------------------------------


def test_the_detector_knows_the_rules_own_id_and_index_patterns() -> None:
    rule = external_alerts.rule()
    assert rule["rule_id"] == promotion.EXTERNAL_ALERTS_RULE_ID
    assert rule["name"] == promotion.EXTERNAL_ALERTS_RULE_NAME
    assert list(promotion.EXTERNAL_ALERTS_INDEX_PATTERNS) == rule["index"]


def test_each_severity_number_is_the_one_the_rules_mapping_turns_back_into_it() -> None:
    mapping = {
        item["severity"]: int(item["value"]) for item in external_alerts.rule()["severity_mapping"]
    }
    assert mapping == promotion.EVENT_SEVERITY
    assert set(promotion.EVENT_SEVERITY) == set(SEVERITIES)


# --- the alert document -------------------------------------------------------------------


def test_an_alert_matches_the_rules_query_and_its_source_event_does_not() -> None:
    source = anonymous_s3_event(ADDRESS, at=AT)
    assert matches(RULE_QUERY, external_alerts.flat(_alert(source)))
    assert not matches(RULE_QUERY, external_alerts.flat(source))


def test_an_alert_from_an_m365_defender_alert_is_still_promoted() -> None:
    # The rule leaves out data_stream.dataset m365_defender.alert (Elastic's own integration
    # promotes those): a copied data_stream would hide the detector's alert on such a source.
    source = anonymous_s3_event(ADDRESS, at=AT, dataset="m365_defender.alert")
    alert = _alert(source)
    assert matches(RULE_QUERY, external_alerts.flat(alert))
    assert alert["kibana"]["alert"]["original_data_stream"]["dataset"] == "m365_defender.alert"


@pytest.mark.parametrize("severity", SEVERITIES)
def test_kibana_takes_the_rules_severity_risk_score_and_name(severity: str) -> None:
    rule = make_rule(severity=severity, risk_score=88, name=f"Rare source ({severity})")
    alert = _alert(rule=rule)
    assert external_alerts.promoted_severity(alert) == severity
    assert external_alerts.promoted_risk_score(alert) == 88
    assert external_alerts.promoted_name(alert) == f"Rare source ({severity})"


def test_the_alert_is_an_alert_event_with_ecs_rule_fields() -> None:
    rule = make_rule(author=("Elastic",), references=("https://example.com/r",), version=4)
    alert = _alert(rule=rule)
    assert alert["event"] == {
        "kind": "alert",
        "module": "newterms_detector",
        "dataset": "newterms_detector.alert",
        "severity": promotion.EVENT_SEVERITY[rule.severity],
        "risk_score": float(rule.risk_score),
        "ingested": "2025-01-15T12:03:02.000Z",
    }
    assert alert["message"] == rule.name
    assert alert["rule"] == {
        "id": rule.rule_id,
        "uuid": rule.rule_id,
        "name": rule.name,
        "description": rule.description,
        "version": "4",
        "ruleset": "newterms-detector",
        "author": ["Elastic"],
        "reference": ["https://example.com/r"],
    }


def test_the_source_events_message_and_rule_fields_are_kept_under_detector_original() -> None:
    source = anonymous_s3_event(ADDRESS, at=AT)
    source["message"] = "raw log line"
    source["rule"] = {"name": "firewall rule 7"}
    source["rule.id"] = "fw-7"
    alert = _alert(source)
    assert alert["detector"]["original"] == {
        "message": "raw log line",
        "rule": {"name": "firewall rule 7", "id": "fw-7"},
    }
    assert "rule.id" not in alert
    assert alert["rule"]["name"] == make_rule().name


def test_a_data_stream_that_is_not_an_object_is_kept_under_detector_original() -> None:
    source = anonymous_s3_event(ADDRESS, at=AT, dataset=None)
    source["data_stream"] = "odd"
    alert = _alert(source)
    assert alert["detector"]["original"] == {"data_stream": "odd"}
    assert "original_data_stream" not in alert["kibana"]["alert"]


# --- the alerts index ---------------------------------------------------------------------


def test_the_documented_alerts_index_is_read_by_the_rules_logs_pattern() -> None:
    assert promotion.promoting_patterns(promotion.PROMOTABLE_ALERTS_INDEX) == ["logs-*"]


def test_the_default_alerts_index_is_not_promoted() -> None:
    assert promotion.promoting_patterns(Settings.model_fields["alerts_index"].default) == []


@pytest.mark.parametrize(
    ("pattern", "index", "expected"),
    [
        ("logs-*", "logs-newterms_detector.alert-default", True),
        ("logs-*", "logs", False),
        ("apm-*-transaction*", "apm-7.17-transaction-000001", True),
        ("apm-*-transaction*", "apm-7.17-span-000001", False),
        ("filebeat-*", "filebeat", False),
        ("detector-alerts", "detector-alerts", True),
        ("detector-alerts", "detector-alerts-x", False),
        ("logs.+-*", "logs.+-x", True),
    ],
)
def test_index_patterns_know_one_wildcard(pattern: str, index: str, expected: bool) -> None:
    assert promotion.matches(pattern, index) is expected


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["logs-*"], True),
        (["logs-aws.cloudtrail*"], False),
        (["logs-*", "-logs-newterms_detector*"], False),
        (["-logs-*", "logs-*"], True),
        (["filebeat-*", "logs-*", "-logs-other*"], True),
    ],
)
def test_a_rule_reads_the_alerts_index_unless_a_later_pattern_excludes_it(
    patterns: list[str], expected: bool
) -> None:
    assert promotion.reads(patterns, promotion.PROMOTABLE_ALERTS_INDEX) is expected


def test_the_kibana_data_views_follow_the_alerts_index_setting() -> None:
    settings = Settings(_env_file=None, alerts_index=promotion.PROMOTABLE_ALERTS_INDEX)
    objects = kibana.objects_for(settings)
    views = {item["id"]: item["attributes"]["title"] for item in objects}
    assert views[kibana.ALERTS_DATA_VIEW] == promotion.PROMOTABLE_ALERTS_INDEX
    text = kibana.to_ndjson(objects).decode()
    assert '"detector-alerts"' not in text and "detector-alerts," not in text


def test_the_role_lets_the_detector_write_the_documented_index() -> None:
    settings = Settings(_env_file=None, alerts_index=promotion.PROMOTABLE_ALERTS_INDEX)
    _, own = provision.role_descriptor(settings)["indices"]
    assert promotion.PROMOTABLE_ALERTS_INDEX in own["names"]
    assert {"create_index", "create_doc"} <= set(own["privileges"])


def test_check_says_the_rule_reads_the_documented_index() -> None:
    line = promotion.promotion_line(promotion.PROMOTABLE_ALERTS_INDEX)
    assert line.startswith("Kibana's External Alerts rule reads it (logs-*)")


def test_check_does_not_claim_to_know_whether_kibana_enabled_the_rule() -> None:
    line = promotion.promotion_line(promotion.PROMOTABLE_ALERTS_INDEX)
    assert "whether that rule is installed and enabled only Kibana knows" in line
    assert "enabled, it promotes" not in line


def test_check_says_which_setting_reaches_the_security_alerts_page() -> None:
    line = promotion.promotion_line("detector-alerts")
    assert "does not read it" in line
    assert "DETECTOR_ALERTS_INDEX=logs-newterms_detector.alert-default" in line


def test_only_enabled_rules_reading_the_alerts_index_are_named() -> None:
    reading = make_rule(rule_id="wide", index=("filebeat-*", "logs-*"))
    excluding = make_rule(rule_id="excludes", index=("logs-*", "-logs-newterms_detector.*"))
    disabled = make_rule(rule_id="disabled", index=("logs-*",), enabled=False)
    elsewhere = make_rule(rule_id="elsewhere", index=("logs-aws.cloudtrail*",))
    rules = [reading, excluding, disabled, elsewhere]
    warnings = promotion.rules_reading(rules, promotion.PROMOTABLE_ALERTS_INDEX)
    assert len(warnings) == 1
    assert warnings[0].startswith("rule wide reads the alerts index")
