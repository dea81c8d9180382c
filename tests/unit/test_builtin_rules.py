"""The built-in rules shipped in the package, and how settings select the rules to run."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.rules import Rule, builtin_rules, load_rule_file, rules_for
from detector.settings import Settings

DEFAULT_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"
LEGACY_ID = "5ba88a8c-dc0a-4ff8-8163-dfe43ac7348e"
QUERY = "\n".join(
    [
        'event.dataset: "aws.cloudtrail"',
        '    and event.provider: "s3.amazonaws.com"',
        '    and event.action: ("GetObject" or "PutObject" or "ListObjects" or "DeleteObject"'
        ' or "ListBucket")',
        '    and event.outcome: "success"',
        '    and aws.cloudtrail.user_identity.type: ("AWSAccount" or "Unknown")',
        '    and cloud.account.id: "anonymous"',
    ]
)


@pytest.fixture
def default_rule() -> Rule:
    return next(rule for rule in builtin_rules() if rule.rule_id == DEFAULT_ID)


@pytest.fixture
def legacy_rule() -> Rule:
    return next(rule for rule in builtin_rules() if rule.rule_id == LEGACY_ID)


def test_builtin_rules_are_the_default_and_its_legacy_variant() -> None:
    assert [(rule.rule_id, rule.enabled) for rule in builtin_rules()] == [
        (DEFAULT_ID, True),
        (LEGACY_ID, False),
    ]


def test_default_rule_identity(default_rule: Rule) -> None:
    assert default_rule.name == "AWS S3 Unauthenticated Bucket Access by Rare Source"
    assert (default_rule.type, default_rule.language) == ("new_terms", "kuery")
    assert (default_rule.version, default_rule.author) == (2, ("Elastic",))
    assert default_rule.license == "Elastic License v2"


def test_default_rule_query_is_exact(default_rule: Rule) -> None:
    assert default_rule.query == QUERY


def test_default_rule_schedule_and_scoring(default_rule: Rule) -> None:
    assert default_rule.index == ("filebeat-*", "logs-aws.cloudtrail*")
    assert (default_rule.interval, default_rule.from_, default_rule.to) == ("5m", "now-9m", "now")
    assert default_rule.max_signals == 100
    assert (default_rule.severity, default_rule.risk_score) == ("medium", 47)


def test_default_rule_time_and_new_terms(default_rule: Rule) -> None:
    assert default_rule.timestamp_override == "event.ingested"
    assert default_rule.timestamp_override_fallback_disabled is False
    assert default_rule.new_terms_fields == ("source.address",)
    assert default_rule.history_window_start == "now-7d"


def test_default_rule_tags(default_rule: Rule) -> None:
    assert default_rule.tags == (
        "Domain: Cloud",
        "Data Source: AWS",
        "Data Source: Amazon Web Services",
        "Data Source: Amazon S3",
        "Use Case: Asset Visibility",
        "Resources: Investigation Guide",
        "Tactic: Collection",
    )


def test_default_rule_threat(default_rule: Rule) -> None:
    mapping = [
        (threat.tactic.id, threat.tactic.name, [(t.id, t.name) for t in threat.technique])
        for threat in default_rule.threat
    ]
    assert mapping == [
        ("TA0009", "Collection", [("T1530", "Data from Cloud Storage")]),
        ("TA0007", "Discovery", [("T1619", "Cloud Storage Object Discovery")]),
        ("TA0040", "Impact", [("T1485", "Data Destruction")]),
    ]
    for threat in default_rule.threat:
        assert threat.framework == "MITRE ATT&CK"
        assert threat.tactic.reference == f"https://attack.mitre.org/tactics/{threat.tactic.id}/"
        for technique in threat.technique:
            assert technique.reference == f"https://attack.mitre.org/techniques/{technique.id}/"


@pytest.mark.parametrize(
    "topic",
    [
        "aws.cloudtrail.resources.arn",
        "aws.cloudtrail.request_parameters",
        "source.address",
        "source.geo",
        "user_agent.original",
        "aws.cloudtrail.user_identity.type",
        "event.action",
        'Principal: "*"',
        "PutBucketPolicy",
        "False positive",
        "DETECTOR_EXCEPTION_SOURCE_ADDRESSES",
        "Block Public Access",
        "escalate",
        "Prevent recurrence",
    ],
)
def test_investigation_guide_covers(default_rule: Rule, topic: str) -> None:
    assert default_rule.note is not None
    assert topic in default_rule.note


def test_setup_asks_for_s3_data_events(default_rule: Rule) -> None:
    assert default_rule.setup is not None
    assert "data events" in default_rule.setup
    for action in ("GetObject", "PutObject", "ListObjects", "DeleteObject"):
        assert action in default_rule.setup


def test_description_explains_the_detection(default_rule: Rule) -> None:
    for words in ("--no-sign-request", "anonymous", "7 days", "policy"):
        assert words in default_rule.description


def test_investigation_fields_include_the_new_term(default_rule: Rule) -> None:
    assert "source.address" in default_rule.investigation_fields
    assert "aws.cloudtrail.resources.arn" in default_rule.investigation_fields


def test_legacy_variant_accepts_the_old_anonymous_value(legacy_rule: Rule) -> None:
    assert legacy_rule.enabled is False
    assert 'cloud.account.id: ("anonymous" or "ANONYMOUS_PRINCIPAL")' in legacy_rule.query
    assert "ANONYMOUS_PRINCIPAL" in legacy_rule.description


def test_legacy_variant_differs_only_where_documented(
    default_rule: Rule, legacy_rule: Rule
) -> None:
    same = ("index", "interval", "from_", "new_terms_fields", "history_window_start", "threat")
    for name in same:
        assert getattr(legacy_rule, name) == getattr(default_rule, name)


def test_rules_for_starts_with_the_builtin_rules(tmp_path: Path) -> None:
    settings = Settings(rules_path=[], builtin_rules=True)
    assert [rule.rule_id for rule in rules_for(settings).rules] == [DEFAULT_ID, LEGACY_ID]


def test_rules_for_without_builtin_rules(tmp_path: Path) -> None:
    assert rules_for(Settings(rules_path=[], builtin_rules=False)).rules == []


def test_a_rule_in_rules_path_replaces_the_builtin_one(tmp_path: Path) -> None:
    [source] = [rule.source for rule in builtin_rules() if rule.rule_id == LEGACY_ID]
    assert source is not None
    copy = tmp_path / "legacy.toml"
    copy.write_text(source.read_text().replace("enabled = false", "enabled = true"))
    result = rules_for(Settings(rules_path=[tmp_path], builtin_rules=True))
    assert result.errors == []
    legacy = [rule for rule in result.rules if rule.rule_id == LEGACY_ID]
    assert [(rule.source, rule.enabled) for rule in legacy] == [(copy, True)]
    assert load_rule_file(copy).enabled is True
