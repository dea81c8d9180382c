"""Detection rules: the typed model of an Elastic detection-rules TOML file, and its loader.

`model` holds the `Rule` and Kibana's defaults; `toml_reader` reads TOML tables with located
errors; `builder` validates one rule file's text into a `Rule` (compiling its query with
`detector.kql`); `loader` loads files, folders and the built-in rules.

Dependencies run one way: model <- toml_reader, builder <- loader.
"""

from __future__ import annotations

from detector.rules.builder import parse_rule
from detector.rules.loader import (
    LoadResult,
    builtin_rules,
    load_rule_file,
    load_rules,
    rules_for,
)
from detector.rules.model import (
    DEFAULT_FROM,
    DEFAULT_INTERVAL,
    DEFAULT_LANGUAGE,
    DEFAULT_MAX_SIGNALS,
    DEFAULT_TO,
    MAX_NEW_TERMS_FIELDS,
    SEVERITIES,
    SUPPORTED_LANGUAGES,
    SUPPORTED_TYPES,
    Rule,
    Technique,
    Threat,
    ThreatEntry,
)

__all__ = [
    "DEFAULT_FROM",
    "DEFAULT_INTERVAL",
    "DEFAULT_LANGUAGE",
    "DEFAULT_MAX_SIGNALS",
    "DEFAULT_TO",
    "MAX_NEW_TERMS_FIELDS",
    "SEVERITIES",
    "SUPPORTED_LANGUAGES",
    "SUPPORTED_TYPES",
    "LoadResult",
    "Rule",
    "Technique",
    "Threat",
    "ThreatEntry",
    "builtin_rules",
    "load_rule_file",
    "load_rules",
    "parse_rule",
    "rules_for",
]
