"""The rule model: the typed `Rule` of a detection-rules file and Kibana's defaults (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Kibana's defaults for a rule that leaves these out.
DEFAULT_INTERVAL = "5m"
DEFAULT_FROM = "now-6m"
DEFAULT_TO = "now"
DEFAULT_MAX_SIGNALS = 100
DEFAULT_LANGUAGE = "kuery"
SUPPORTED_TYPES = ("new_terms",)
SUPPORTED_LANGUAGES = ("kuery",)
SEVERITIES = ("low", "medium", "high", "critical")
MAX_NEW_TERMS_FIELDS = 3


@dataclass(frozen=True)
class ThreatEntry:
    """A MITRE ATT&CK tactic, technique or subtechnique."""

    id: str
    name: str
    reference: str


@dataclass(frozen=True)
class Technique:
    """A technique with its subtechniques."""

    id: str
    name: str
    reference: str
    subtechnique: tuple[ThreatEntry, ...] = ()


@dataclass(frozen=True)
class Threat:
    """One `[[rule.threat]]` entry: a tactic and the techniques under it."""

    framework: str
    tactic: ThreatEntry
    technique: tuple[Technique, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One detection rule, as loaded from a TOML file (keys in Kibana's snake_case)."""

    rule_id: str
    name: str
    description: str
    type: str
    language: str
    query: str
    index: tuple[str, ...]
    new_terms_fields: tuple[str, ...]
    history_window_start: str
    risk_score: int
    severity: str
    interval: str = DEFAULT_INTERVAL
    from_: str = DEFAULT_FROM
    to: str = DEFAULT_TO
    max_signals: int = DEFAULT_MAX_SIGNALS
    tags: tuple[str, ...] = ()
    threat: tuple[Threat, ...] = ()
    timestamp_override: str | None = None
    timestamp_override_fallback_disabled: bool = False
    note: str | None = None
    setup: str | None = None
    references: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    license: str | None = None
    investigation_fields: tuple[str, ...] = ()
    version: int = 1
    enabled: bool = True
    source: Path | None = None
    builtin: bool = False
    # `baseline` of the file's `[detector]` table ("alert" or "hold"); None: DETECTOR_BASELINE.
    baseline: str | None = None
    metadata: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
