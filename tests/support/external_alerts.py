"""Kibana's "External Alerts" promotion rule (`external_alerts_rule.toml`) as the tests use it:
its query, index patterns, and what Kibana takes from a promoted document.

The three `promoted_*` functions restate Kibana's mapping code (RT/utils/mappings/
build_rule_name_from_mapping.ts, build_severity_from_mapping.ts, build_risk_score_from_mapping.ts)
over a document's `_source`, independently of the detector's code: the rule name only from a
string; for `event.severity`, only JSON integers equal to a mapping's number; for the risk score,
the largest number (or numeric string) from 0 to 100; otherwise the rule's defaults.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).with_name("external_alerts_rule.toml")
SEVERITY_ORDER = ("low", "medium", "high", "critical")


@cache
def _rule() -> dict[str, Any]:
    with FIXTURE.open("rb") as file:
        rule: dict[str, Any] = tomllib.load(file)["rule"]
    return rule


def rule() -> dict[str, Any]:
    """The rule's fields, as in the fixture file."""
    return dict(_rule())


def _get(source: Any, path: str) -> Any:
    """lodash `get`: a key named `path` itself, else the dotted path through objects."""
    if not isinstance(source, Mapping):
        return None
    if path in source:
        return source[path]
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def promoted_name(source: Mapping[str, Any]) -> str:
    """The rule name Kibana gives the promoted alert (`rule_name_override`)."""
    value = _get(source, _rule()["rule_name_override"])
    return value if isinstance(value, str) else str(_rule()["name"])


def promoted_severity(source: Mapping[str, Any]) -> str:
    """The severity Kibana gives the promoted alert (`severity_mapping`, highest match wins)."""
    found: str = _rule()["severity"]
    mappings = sorted(
        _rule()["severity_mapping"], key=lambda m: SEVERITY_ORDER.index(m["severity"])
    )
    for mapping in mappings:
        values = _listed(_get(source, mapping["field"]))
        # event.severity: only safe integers count, compared as numbers (a string "47" does not).
        integers = {v for v in values if _safe_integer(v)}
        if math.floor(float(mapping["value"])) in integers:
            found = mapping["severity"]
    return found


def _safe_integer(value: Any) -> bool:
    # JavaScript's Number.isSafeInteger: JSON 47 and 47.0 are the same number there.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value).is_integer() and abs(value) <= 2**53 - 1


def promoted_risk_score(source: Mapping[str, Any]) -> float:
    """The risk score Kibana gives the promoted alert (`risk_score_mapping`)."""
    field = _rule()["risk_score_mapping"][0]["field"]
    scores = [score for value in _listed(_get(source, field)) if (score := _score(value)) >= 0]
    return max(scores) if scores else float(_rule()["risk_score"])


def _score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return -1.0
    try:
        number = float(value)
    except ValueError:
        return -1.0
    return number if math.isfinite(number) and 0 <= number <= 100 else -1.0


def flat(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`doc` as dotted field names -> value or list of values (objects in lists flattened too),
    the shape `tests.support.kql_eval.matches` reads."""
    fields: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping):
                for inner, seen in flat(item, f"{name}.").items():
                    fields.setdefault(inner, []).extend(_listed(seen))
            else:
                fields.setdefault(name, []).append(item)
    return fields
