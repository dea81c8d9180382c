"""`detector rules test` on a real node: the built-in rules' fixtures pass, and fail when their
rule changes in a way that matters; every scaffold of Elastic's 49 AWS rules passes as written;
the test never writes an index it did not create."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detector import ruletest
from detector.cli import main
from detector.es.client import Elastic
from detector.rules import load_rule_file
from detector.ruletest.runner import PREFIX
from detector.settings import Settings
from tests.support.reference import REFERENCE

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ROOT / "detector" / "builtin"
ELASTIC_AWS = REFERENCE / "rules" / "elastic-new-terms-aws"
DEFAULT_RULE = "aws_s3_unauthenticated_access_rare_source"
LEGACY_RULE = "aws_s3_unauthenticated_access_rare_source_legacy_principal"

# Changes that matter, each with a case of the fixture that must then fail.
MUTATIONS = {
    "history cut to one hour": (
        ('value = "now-7d"', 'value = "now-1h"'),
        "an address seen 3 days before stays silent",
    ),
    "another account in the query": (
        (r"cloud\.account\.id: [^\n]*?(?=\'\'\')", 'cloud.account.id: "999999999999"'),
        "a new address alerts",
    ),
    "a one-minute window": (('from = "now-9m"', 'from = "now-1m"'), "a new address alerts"),
}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, es_settings: Settings) -> None:
    monkeypatch.setenv("DETECTOR_ES_URL", ",".join(es_settings.es_url))
    if es_settings.es_username and es_settings.es_password:
        monkeypatch.setenv("DETECTOR_ES_USERNAME", es_settings.es_username)
        monkeypatch.setenv("DETECTOR_ES_PASSWORD", es_settings.es_password.get_secret_value())


def test_the_builtin_rules_pass_their_fixtures(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "junit.xml"
    assert main(["rules", "test", str(BUILTIN), "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "0 failed, 0 error(s), 0 fixture(s) not loaded" in out
    assert 'failures="0"' in junit.read_text() and 'errors="0"' in junit.read_text()


def test_each_builtin_fixture_fails_when_its_rule_changes_in_a_way_that_matters(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for number, (old, new) in enumerate(change for change, _ in MUTATIONS.values()):
        for name in (DEFAULT_RULE, LEGACY_RULE):
            folder = tmp_path / f"mutation-{number}"
            folder.mkdir(exist_ok=True)
            text, changed = re.subn(old, new, (BUILTIN / f"{name}.toml").read_text())
            assert changed == 1
            (folder / f"{name}.toml").write_text(text)
            shutil.copy(BUILTIN / f"{name}.tests.toml", folder)
    assert main(["rules", "test", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = {
        (Path(case["fixture"]).parent.name, Path(case["fixture"]).name, case["case"])
        for case in report["cases"]
        if case["status"] == "FAIL"
    }
    for number, (_, must_fail) in enumerate(MUTATIONS.values()):
        for name in (DEFAULT_RULE, LEGACY_RULE):
            assert (f"mutation-{number}", f"{name}.tests.toml", must_fail) in failed


def test_a_failure_names_the_case_the_missing_term_and_its_events(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (BUILTIN / f"{DEFAULT_RULE}.toml").read_text()
    (tmp_path / f"{DEFAULT_RULE}.toml").write_text(
        text.replace('value = "now-7d"', 'value = "now-10d"')
    )
    shutil.copy(BUILTIN / f"{DEFAULT_RULE}.tests.toml", tmp_path)
    assert main(["rules", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    at = out.index(next(line for line in out if "seen only 8 days before alerts" in line))
    assert out[at].startswith("FAIL")
    assert out[at + 1].strip().startswith("missing 198.51.100.12 (expected to alert, did not")
    assert "(time -8d)" in out[at + 1] and "(time -2m)" in out[at + 1]


@pytest.mark.reference_data
def test_every_scaffold_of_the_elastic_aws_rules_passes_as_written(
    cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = sorted(ELASTIC_AWS.glob("*.toml"))
    assert len(rules) == 49
    for rule in rules:
        shutil.copy(rule, tmp_path)
    assert main(["rules", "test", "--scaffold", *(str(tmp_path / r.name) for r in rules)]) == 0
    assert len(list(tmp_path.glob("*.tests.toml"))) == 49
    capsys.readouterr()

    code = main(["rules", "test", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if not line.startswith("PASS")] == [out[-1]], out
    assert out[-1].startswith("98 passed, 0 failed, 0 error(s), 0 fixture(s) not loaded")
    assert code == 0
    print(out[-1])


def test_a_taken_index_name_is_refused_and_left_alone(elastic: Elastic, token: str) -> None:
    rule = load_rule_file(BUILTIN / f"{DEFAULT_RULE}.toml")
    fixture = ruletest.parse_fixture(
        (BUILTIN / f"{DEFAULT_RULE}.tests.toml").read_text(),
        BUILTIN / f"{DEFAULT_RULE}.tests.toml",
        datetime.now(UTC),
    )
    taken = f"{PREFIX}-{token}-1-filebeat"
    elastic.create_index(taken)
    elastic.index_document(taken, "theirs", {"message": "not the test's"})
    elastic.refresh(taken)
    with ruletest.Session(elastic, token) as session:
        result = session.run_case(fixture, rule, fixture.cases[0])
    assert result.status == ruletest.ERROR and f"index {taken} exists already" in str(result.error)
    assert elastic.get_document(taken, "theirs") == {"message": "not the test's"}
    assert elastic.matching_indices(f"{PREFIX}-{token}-*") == [taken]
