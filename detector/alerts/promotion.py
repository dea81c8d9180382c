"""Kibana's prebuilt "External Alerts" rule and what makes an alert promotable by it (pure).

Kibana's Security Alerts page shows only alerts Kibana created. Its prebuilt query rule
"External Alerts" (elastic/detection-rules `rules/promotions/external_alerts.toml`, rule_id
`eb079c62-4481-4d6e-9643-3ca499df7aaa`) turns every document of its index patterns that matches

    event.kind:alert and not event.module:(endgame or endpoint or cloud_defend) and
        not data_stream.dataset:(m365_defender.alert or m365_defender.incident)

into a Kibana alert, taking from the document (`_source`, through lodash `get`):

- the alert's rule name from `message` (`rule_name_override`; used only when it is a string);
- its severity from `event.severity` (`severity_mapping`: 21 low, 47 medium, 73 high,
  99 critical; the value must be a JSON integer, RT/utils/mappings/build_severity_from_mapping.ts);
- its risk score from `event.risk_score` (`risk_score_mapping`: a number from 0 to 100);
- its time from `event.ingested` (`timestamp_override`; documents without it are searched by
  `@timestamp`).

ECS reserves `event.kind: alert` for exactly this: an alert from a detection rule running
outside the Elastic Stack (`signal` is Kibana's own engine's). The fields here are the ECS ones,
with their ECS types in `mappings/alerts-template.json`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from detector.rules import Rule
from detector.times import iso

EXTERNAL_ALERTS_RULE_ID = "eb079c62-4481-4d6e-9643-3ca499df7aaa"
EXTERNAL_ALERTS_RULE_NAME = "External Alerts"
# The rule's `index` (tests/support/external_alerts_rule.toml holds the rule's own copy).
EXTERNAL_ALERTS_INDEX_PATTERNS = (
    "apm-*-transaction*",
    "traces-apm*",
    "auditbeat-*",
    "filebeat-*",
    "logs-*",
    "packetbeat-*",
    "winlogbeat-*",
)
# The documented alerts index its `logs-*` reads: `logs-<dataset>-<namespace>`, the shape of
# Elastic's data streams, but a plain index from the detector's own template.
PROMOTABLE_ALERTS_INDEX = "logs-newterms_detector.alert-default"
# The numbers the rule's severity mapping turns back into these severities (Kibana's default
# risk score of each severity).
EVENT_SEVERITY = {"low": 21, "medium": 47, "high": 73, "critical": 99}
EVENT_MODULE = "newterms_detector"
EVENT_DATASET = "newterms_detector.alert"
RULESET = "newterms-detector"


def event_fields(rule: Rule, written_at: datetime) -> dict[str, Any]:
    """The alert's own `event.*`: an alert (not the source event, whose fields are in
    `kibana.alert.original_event.*`), with the severity and risk score the rule maps."""
    return {
        "kind": "alert",
        "module": EVENT_MODULE,
        "dataset": EVENT_DATASET,
        "severity": EVENT_SEVERITY[rule.severity],
        # ECS `float`; a float in JSON is mapped as one even by an alerts index created before
        # the template had the field (dynamic mapping).
        "risk_score": float(rule.risk_score),
        # The promotion rule's time field: the alert is written right after this instant.
        "ingested": iso(written_at),
    }


def rule_fields(rule: Rule) -> dict[str, Any]:
    """ECS `rule.*`: the detection rule that raised the alert."""
    fields: dict[str, Any] = {
        "id": rule.rule_id,
        "uuid": rule.rule_id,
        "name": rule.name,
        "description": rule.description,
        "version": str(rule.version),
        "ruleset": RULESET,
    }
    if rule.author:
        fields["author"] = list(rule.author)
    if rule.references:
        fields["reference"] = list(rule.references)
    if rule.license is not None:
        fields["license"] = rule.license
    return fields


@cache
def _pattern(pattern: str) -> re.Pattern[str]:
    # Index patterns know one wildcard, `*` (any run of characters).
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def matches(pattern: str, index: str) -> bool:
    """Whether the index pattern `pattern` (wildcard `*`) matches the index name `index`."""
    return _pattern(pattern).fullmatch(index) is not None


def promoting_patterns(index: str) -> list[str]:
    """The External Alerts rule's index patterns that match `index` (none: not promoted)."""
    return [pattern for pattern in EXTERNAL_ALERTS_INDEX_PATTERNS if matches(pattern, index)]


def reads(patterns: Sequence[str], index: str) -> bool:
    """Whether a search on `patterns` reads `index`: a pattern matching it includes it, a later
    `-pattern` matching it excludes it again (Elasticsearch's multi-target syntax)."""
    included = False
    for pattern in patterns:
        if pattern.startswith("-") and pattern != "-":
            included = included and not matches(pattern[1:], index)
        else:
            included = included or matches(pattern, index)
    return included


def promotion_line(index: str) -> str:
    """What `detector check` says about the alerts index and Kibana's Security Alerts page."""
    patterns = promoting_patterns(index)
    if patterns:
        # Only the prebuilt rule's published index patterns are known here: whether the rule
        # is installed and enabled is Kibana's to say (`detector check` does not ask Kibana).
        return (
            f"Kibana's {EXTERNAL_ALERTS_RULE_NAME} rule reads it ({', '.join(patterns)}) by its "
            "prebuilt index patterns; whether that rule is installed and enabled only Kibana "
            "knows (Security > Rules): once it is, it promotes the alerts to the Security "
            "Alerts page"
        )
    return (
        f"Kibana's {EXTERNAL_ALERTS_RULE_NAME} rule does not read it: set "
        f"DETECTOR_ALERTS_INDEX={PROMOTABLE_ALERTS_INDEX} to see the alerts on the Security "
        "Alerts page"
    )


def rules_reading(rules: Sequence[Rule], index: str) -> list[str]:
    """A warning per enabled rule whose index patterns read the alerts index itself."""
    return [
        f"rule {rule.rule_id} reads the alerts index {index} ({', '.join(rule.index)}): its "
        "alerts count as events for it; add -" + index + " to its index patterns"
        for rule in rules
        if rule.enabled and reads(rule.index, index)
    ]
