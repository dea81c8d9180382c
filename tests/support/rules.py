"""`make_rule`: a `Rule` for tests, with sensible defaults for every required field."""

from __future__ import annotations

import dataclasses
from typing import Any

from detector.rules import Rule

# A minimal valid new_terms rule; every other field keeps `Rule`'s own (Kibana's) default.
DEFAULT_RULE = Rule(
    rule_id="test-rule",
    name="test rule",
    description="d",
    type="new_terms",
    language="kuery",
    query="*",
    index=("logs-*",),
    new_terms_fields=("source.address",),
    history_window_start="now-7d",
    risk_score=47,
    severity="medium",
)


def make_rule(**overrides: Any) -> Rule:
    """`DEFAULT_RULE` with the given fields replaced (an unknown field is a `TypeError`)."""
    return dataclasses.replace(DEFAULT_RULE, **overrides)
