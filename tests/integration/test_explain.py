"""`detector explain` on the real node: the right verdict for each kind of term, as the engine
and the brute-force oracle see them."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.alerts.store import AlertStore
from detector.engine import execution
from detector.es.client import Elastic
from detector.explain.investigation import explain
from detector.explain.verdict import (
    ALERTED,
    EXCLUDED,
    OVERFLOW,
    SEEN,
    WOULD_ALERT,
    DocRef,
    Explanation,
)
from detector.results import ExecutionResult
from detector.rules import Rule
from detector.rules.exceptions import ExceptionItem, ExceptionList
from detector.settings import Settings
from tests.integration.test_engine import (
    BUILTIN_ID,
    T0,
    cloudtrail_index,
    event,
    spec_for,
    token_rule,
)
from tests.support import bruteforce
from tests.support import cloudtrail as ct
from tests.support.bruteforce import Doc
from tests.support.runs import add_events

REPO = Path(__file__).resolve().parents[2]
BUILTIN_FILE = REPO / "detector" / "builtin" / "aws_s3_unauthenticated_access_rare_source.toml"
EXCEPTIONSED = "203.0.113.9"
EXCEPTIONS = ExceptionList(
    (ExceptionItem("*", "source.address", (EXCEPTIONSED,), (), "the test's exceptions"),)
)

# Documents, indexed as doc-0, doc-1, ... in this order.
DOCS = [
    event("198.51.100.8", T0 - timedelta(days=8)),  # doc-0: outside the 7-day history
    event("198.51.100.8", T0 - timedelta(minutes=6)),  # doc-1
    event("198.51.100.10", T0 - timedelta(minutes=5)),  # doc-2: new
    event("198.51.100.11", T0 - timedelta(minutes=4)),  # doc-3: new, beyond max_signals 2
    event("198.51.100.3", T0 - timedelta(days=3)),  # doc-4: in the history
    event("198.51.100.3", T0 - timedelta(minutes=2)),  # doc-5
    event(EXCEPTIONSED, T0 - timedelta(days=2)),  # doc-6
    event(EXCEPTIONSED, T0 - timedelta(minutes=2)),  # doc-7
]


@dataclass
class Scene:
    elastic: Elastic
    store: AlertStore
    rule: Rule
    index: str

    def explain(self, address: str) -> Explanation:
        return explain(self.elastic, self.store, self.rule, T0, (address,), exceptions=EXCEPTIONS)

    def execute(self) -> ExecutionResult:
        return execution.execute(self.elastic, self.store, self.rule, T0, exceptions=EXCEPTIONS)


@pytest.fixture
def scene(elastic: Elastic, store: AlertStore, token: str) -> Scene:
    index = cloudtrail_index(token)
    add_events(elastic, index, [dict(doc) for doc in DOCS])
    return Scene(elastic, store, token_rule(token, max_signals=2), index)


def oracle_new(scene: Scene) -> set[str]:
    """The new terms at T0 by the brute force, the exceptions applied."""
    excluded = bruteforce.excluded_source([EXCEPTIONSED])

    def predicate(source: Any) -> bool:
        return bruteforce.is_anonymous_s3_access(source) and not excluded(source)

    spec = spec_for(scene.rule, predicate=predicate)
    docs = [Doc(scene.index, doc) for doc in DOCS]
    return {values[0] for values in bruteforce.new_terms(docs, spec, T0)}


def test_the_oracle_agrees_on_which_terms_are_new(scene: Scene) -> None:
    addresses = ["198.51.100.8", "198.51.100.10", "198.51.100.11", "198.51.100.3", EXCEPTIONSED]
    new = {address for address in addresses if scene.explain(address).new}
    assert new == oracle_new(scene) == {"198.51.100.8", "198.51.100.10", "198.51.100.11"}


def test_a_new_term_before_any_execution_would_alert_with_its_window_documents(
    scene: Scene,
) -> None:
    found = scene.explain("198.51.100.10")

    assert (found.new, found.verdict) == (True, WOULD_ALERT)
    assert found.window_count == 1
    assert found.first_seen == T0 - timedelta(minutes=5)
    assert found.first_document == DocRef(T0 - timedelta(minutes=5), scene.index, "doc-2")
    assert (found.last_history, found.alert_id, found.overflow) == (None, None, False)


def test_a_term_seen_3_days_before_names_that_document(scene: Scene) -> None:
    found = scene.explain("198.51.100.3")

    assert (found.new, found.verdict) == (False, SEEN)
    assert found.last_history == DocRef(T0 - timedelta(days=3), scene.index, "doc-4")
    assert f"{scene.index}/doc-4" in found.reason()


def test_a_term_seen_only_8_days_before_is_new_and_alerted(scene: Scene) -> None:
    created = scene.execute()

    found = scene.explain("198.51.100.8")

    assert (found.new, found.verdict, found.last_history) == (True, ALERTED, None)
    assert found.alert_id in created.created_ids


def test_an_excepted_term_names_the_exception_that_removed_its_documents(
    scene: Scene,
) -> None:
    found = scene.explain(EXCEPTIONSED)

    assert (found.new, found.verdict, found.window_count) == (False, EXCLUDED, 0)
    (entry,) = found.exceptions
    assert (entry.origin, entry.field, entry.window, entry.history) == (
        "the test's exceptions",
        "source.address",
        1,
        1,
    )


def test_a_term_already_alerted_gives_its_alert_id(scene: Scene) -> None:
    created = scene.execute()
    (alert,) = [a for a in created.alerts if a["kibana"]["alert"]["new_terms"] == ["198.51.100.10"]]

    found = scene.explain("198.51.100.10")

    assert (found.new, found.verdict) == (True, ALERTED)
    assert found.alert_id == alert["kibana"]["alert"]["uuid"]


def test_a_term_beyond_max_signals_is_overflow_at_that_execution(scene: Scene) -> None:
    created = scene.execute()
    assert created.overflow_terms == (("198.51.100.11",),)

    found = scene.explain("198.51.100.11")

    assert (found.new, found.verdict, found.overflow) == (True, OVERFLOW, True)
    assert found.alert_id is None


def another_pipelines_index(elastic: Elastic, name: str) -> None:
    """An index of another pipeline of the rule's patterns: its mapping has no
    `event.ingested` (the rule's timestamp override)."""
    body = copy.deepcopy(ct.INDEX_BODY)
    del body["mappings"]["properties"]["event"]["properties"]["ingested"]
    elastic.call(lambda es: es.indices.create(index=name, body=body))


def test_an_index_without_the_override_field_is_explained_as_the_execution_runs_it(
    scene: Scene, token: str
) -> None:
    other = f"filebeat-8.0-{token}"
    another_pipelines_index(scene.elastic, other)
    late = event("198.51.100.12", T0 - timedelta(minutes=1), ingested=None)
    ct.index_documents(scene.elastic, other, [late, event("198.51.100.3", T0, ingested=None)])
    scene.elastic.refresh(other)
    addresses = [*dict.fromkeys(doc["source"]["address"] for doc in DOCS), "198.51.100.12"]

    before = {address: scene.explain(address).verdict for address in addresses}
    created = scene.execute()

    assert created.status == "partial failure", created.error  # 2 of 4 new: max_signals
    alerted = {alert["kibana"]["alert"]["new_terms"][0] for alert in created.alerts}
    left = {values[0] for values in created.overflow_terms}
    assert {address for address, verdict in before.items() if verdict == WOULD_ALERT} == alerted
    assert {address for address, verdict in before.items() if verdict == OVERFLOW} == left
    assert alerted | left == {"198.51.100.8", "198.51.100.10", "198.51.100.11", "198.51.100.12"}
    assert (before["198.51.100.3"], before[EXCEPTIONSED]) == (SEEN, EXCLUDED)


def test_json_has_the_boolean_new_and_the_readable_output_the_verdict(
    scene: Scene, es_settings: Settings, tmp_path: Path, token: str
) -> None:
    at = ["--rule", str(rule_file(tmp_path, token)), "--at", "2025-01-15T12:00:00Z"]

    as_json = detector(es_settings, tmp_path, ["explain", *at, "--json", "198.51.100.3"])
    readable = detector(es_settings, tmp_path, ["explain", *at, "198.51.100.10"])
    wrong = detector(es_settings, tmp_path, ["explain", *at, "198.51.100.3", "extra"])

    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (answer["new"], answer["verdict"], answer["rule_id"]) == (False, SEEN, BUILTIN_ID)
    assert answer["last_history_document"]["id"] == "doc-4"
    assert readable.returncode == 0, readable.stderr
    assert "verdict: new, and no alert exists yet" in readable.stdout
    assert f"first document 2025-01-15T11:55:00.000Z ({scene.index}/doc-2)" in readable.stdout
    assert wrong.returncode == 2
    assert "give one VALUE for each" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_new_term_prints_only_the_answer_no_log_line_of_the_engine(
    scene: Scene, es_settings: Settings, tmp_path: Path, token: str
) -> None:
    # A new term not alerted: explain runs the execution at that time as a dry run.
    at = ["--rule", str(rule_file(tmp_path, token)), "--at", "2025-01-15T12:00:00Z"]

    readable = detector(es_settings, tmp_path, ["explain", *at, "198.51.100.10"])
    as_json = detector(es_settings, tmp_path, ["explain", *at, "--json", "198.51.100.11"])

    assert (readable.returncode, as_json.returncode) == (0, 0), readable.stderr + as_json.stderr
    assert readable.stdout.startswith(f"rule {BUILTIN_ID} at 2025-01-15T12:00:00.000Z: ")
    assert json.loads(as_json.stdout)["verdict"] == WOULD_ALERT  # one JSON object, no more
    assert (readable.stderr, as_json.stderr) == ("", "")


def test_a_disabled_rule_is_explained_and_said_to_be_disabled(
    scene: Scene, es_settings: Settings, tmp_path: Path, token: str
) -> None:
    disabled = rule_file(tmp_path, token, "enabled = false\n")
    at = ["--rule", str(disabled), "--at", "2025-01-15T12:00:00Z"]

    readable = detector(es_settings, tmp_path, ["explain", *at, "198.51.100.10"])
    as_json = detector(es_settings, tmp_path, ["explain", *at, "--json", "198.51.100.10"])

    assert (readable.returncode, as_json.returncode) == (0, 0), readable.stderr + as_json.stderr
    lines = readable.stdout.splitlines()
    assert lines[1] == (
        "  verdict: new, and no alert exists yet, but the rule is disabled (enabled = false): "
        "no execution runs it; enabled, an execution at that time alerts it"
    )
    assert lines[2] == "  rule: disabled (enabled = false); below, what an execution finds"
    answer = json.loads(as_json.stdout)
    assert (answer["enabled"], answer["verdict"], answer["new"]) == (False, WOULD_ALERT, True)


def rule_file(tmp_path: Path, token: str, extra: str = "") -> Path:
    """The built-in rule on this test's CloudTrail indices, with `extra` lines in `[rule]`."""
    path = tmp_path / "rule.toml"
    path.write_text(
        BUILTIN_FILE.read_text(encoding="utf-8").replace(
            'index = ["filebeat-*", "logs-aws.cloudtrail*"]\n',
            f'index = ["logs-aws.cloudtrail*-{token}"]\n{extra}',
        ),
        encoding="utf-8",
    )
    return path


def detector(settings: Settings, cwd: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DETECTOR_ES_URL": settings.es_url[0],
        "DETECTOR_ALERTS_INDEX": settings.alerts_index,
        "DETECTOR_EXECUTION_LOG_INDEX": settings.execution_log_index,
    }
    if settings.es_username and settings.es_password:
        env["DETECTOR_ES_USERNAME"] = settings.es_username
        env["DETECTOR_ES_PASSWORD"] = settings.es_password.get_secret_value()
    return subprocess.run(
        [sys.executable, "-m", "detector", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
