"""`detector rules test`: a rule's cases (`X.tests.toml` beside `X.toml`) run by the real engine.

- `fixture` (pure): the fixture model and parser (relative times, dotted keys; `FixtureError`
  with file, case and line).
- `scaffold` (pure): a starting fixture from the rule's KQL (a document satisfying it).
- `data` (pure): the mapping of the throw-away data indices (Elastic's CloudTrail template).
- `verdict` (pure): what a case alerted against what it expects; `check_fit` of fixture and rule.
- `collect`: the (fixture, rule) pairs of the paths given (reads files only).
- `runner`: the throw-away indices and the engine, on a real node.
- `report` (pure): text, JSON and JUnit XML.

Dependencies run one way: fixture, scaffold <- data, verdict <- collect, runner, report.
"""

from __future__ import annotations

from detector.ruletest.collect import Collected, Options, collect, rule_files
from detector.ruletest.data import field_types
from detector.ruletest.fixture import Case, Event, Fixture, Run, fixture_path, parse_fixture
from detector.ruletest.report import junit_xml, text_lines, to_json
from detector.ruletest.runner import Session, run_all
from detector.ruletest.scaffold import satisfying_document, scaffold
from detector.ruletest.verdict import ERROR, FAIL, PASS, CaseResult, Suite

__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "Case",
    "CaseResult",
    "Collected",
    "Event",
    "Fixture",
    "Options",
    "Run",
    "Session",
    "Suite",
    "collect",
    "field_types",
    "fixture_path",
    "junit_xml",
    "parse_fixture",
    "rule_files",
    "run_all",
    "satisfying_document",
    "scaffold",
    "text_lines",
    "to_json",
]
