"""`detector rules test` without a node: the fixture format, the scaffold's search for a
satisfying document, the verdict, the reports, and the errors that exit 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detector.cli import main
from detector.cloudtrail.template import ECS_MAPPINGS
from detector.errors import FixtureError
from detector.kql import parse
from detector.rules import load_rule_file, load_rules
from detector.ruletest import Fixture, Suite, field_types, junit_xml, parse_fixture, text_lines
from detector.ruletest.report import to_json
from detector.ruletest.scaffold import mapping_types, satisfying_document
from detector.ruletest.verdict import CaseResult, RunOutcome, compare
from tests.support.reference import REFERENCE

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ROOT / "detector" / "builtin"
ELASTIC_AWS = REFERENCE / "rules" / "elastic-new-terms-aws"
RULE = BUILTIN / "aws_s3_unauthenticated_access_rare_source.toml"
AT = datetime(2025, 6, 2, 12, tzinfo=UTC)
PATH = Path("x.tests.toml")


def _fixture(text: str) -> Fixture:
    return parse_fixture(text, PATH, AT)


def test_event_times_are_relative_to_the_case_and_ingested_defaults_to_time() -> None:
    fixture = _fixture(
        '[[case]]\nname = "c"\nat = "2025-06-02T12:00:00Z"\n'
        '[[case.events]]\ntime = "-3d"\n"source.address" = "a"\n'
    )
    doc = fixture.cases[0].events[0].doc
    assert doc["@timestamp"] == "2025-05-30T12:00:00.000Z"
    assert doc["event"]["ingested"] == doc["@timestamp"]
    assert doc["source"] == {"address": "a"}


def test_a_relative_at_is_taken_from_the_clock() -> None:
    fixture = _fixture('[[case]]\nname = "c"\nat = "now-1h"\n')
    assert fixture.cases[0].at == datetime(2025, 6, 2, 11, tzinfo=UTC)


def test_dotted_keys_and_tables_give_one_document() -> None:
    dotted = _fixture('[[case]]\nname = "c"\n[[case.events]]\ntime = "-1m"\n"a.b.c" = 1\n')
    tables = _fixture('[[case]]\nname = "c"\n[[case.events]]\ntime = "-1m"\na.b = { c = 1 }\n')
    assert dotted.cases[0].events[0].doc == tables.cases[0].events[0].doc


def test_ingested_false_leaves_event_ingested_out_and_defaults_yield_to_the_event() -> None:
    fixture = _fixture(
        '[defaults]\n"event.outcome" = "success"\n"event.action" = "GetObject"\n'
        '[[case]]\nname = "c"\n[[case.events]]\ntime = "-1m"\ningested = false\n'
        '"event.outcome" = "failure"\n'
    )
    assert fixture.cases[0].events[0].doc["event"] == {"outcome": "failure", "action": "GetObject"}


def test_terms_are_values_or_arrays_of_values() -> None:
    case = _fixture('[[case]]\nname = "c"\nalert = ["a", ["b", 2]]\n').cases[0]
    assert case.alert == (("a",), ("b", 2))


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ('[[case]]\nname = "c"\nalert = ["a"]\nalrt = 1\n', "unknown key(s) ['alrt']", 3),
        ('[[case]]\nname = "c"\nat = "yesterday"\n', "`at`: invalid date-math", 3),
        ('[[case]]\nname = "c"\n[[case.events]]\n"a" = 1\n', "an event needs `time`", 5),
        ('[[case]]\nname = "c"\nruns = ["now", "-5m"]\n', "increasing time order", 3),
        ('[[case]]\nname = "c"\nbaseline = "wait"\n', "`baseline` must be one of", 3),
        ('[[case]]\nname = "c"\nmax_signals = 0\n', "positive integer", 3),
    ],
)
def test_a_bad_case_names_file_case_and_line(text: str, message: str, line: int) -> None:
    with pytest.raises(FixtureError) as caught:
        _fixture("# cases\n\n" + text)
    assert str(caught.value).startswith(f"x.tests.toml:{line}: case 'c': ")
    assert message in str(caught.value)


def test_invalid_toml_names_the_file_and_line() -> None:
    with pytest.raises(FixtureError, match=r"x\.tests\.toml: not valid TOML: .*line 1"):
        _fixture("[[case]\n")


@pytest.mark.reference_data
def test_the_scaffold_document_satisfies_negations_wildcards_and_alternatives() -> None:
    rule = load_rule_file(
        ELASTIC_AWS / "discovery_new_terms_sts_getcalleridentity_ec2_role_new_source_as.toml"
    )
    doc = satisfying_document(rule, field_types())
    assert doc["user.id"] == "example:i-example"
    assert doc["source.as.organization.name"] == "example-name"  # no AMAZON*, Google*...
    assert "aws.cloudtrail.user_identity.arn" not in doc


@pytest.mark.reference_data
def test_the_scaffold_types_values_by_the_mapping() -> None:
    rule = load_rule_file(ELASTIC_AWS / "discovery_new_terms_vpn_asn_discovery_api_calls.toml")
    doc = satisfying_document(rule, field_types())
    assert doc["source.as.number"] == 216025  # a long, not "216025"


@pytest.mark.reference_data
def test_a_field_only_negated_is_left_out() -> None:
    rule = load_rule_file(ELASTIC_AWS / "execution_ssm_sendcommand_by_rare_user.toml")
    assert "source.address" not in satisfying_document(rule, field_types())


@pytest.mark.reference_data
@pytest.mark.parametrize("path", sorted(ELASTIC_AWS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_elastic_aws_rule_gets_a_document_with_its_new_terms_fields(path: Path) -> None:
    rule = load_rule_file(path)
    doc = satisfying_document(rule, field_types())
    assert all(name in doc for name in rule.new_terms_fields)
    parse(rule.query)  # the rule's query is what was solved


def test_mapping_types_read_nested_properties_and_flattened_subfields() -> None:
    types = mapping_types(ECS_MAPPINGS)
    assert types("source.ip") == "ip"
    assert types("aws.cloudtrail.flattened.request_parameters.x-amz-acl") == "keyword"
    assert types("no.such.field") == "keyword"


def _case(alert: str = "", silent: str = "", runs: str = "") -> Fixture:
    return _fixture(
        f'[[case]]\nname = "c"\n{alert}\n{silent}\n{runs}\n'
        '[[case.events]]\ntime = "-2m"\n"source.address" = "a"\n'
    )


def test_a_term_expected_to_alert_that_did_not_is_missing_with_its_events() -> None:
    case = _case(alert='alert = ["a"]').cases[0]
    [difference] = compare(case, [RunOutcome(AT)], ["source.address"])
    assert (difference.kind, difference.term, len(difference.events)) == ("missing", ("a",), 1)


def test_with_alert_given_any_other_term_that_alerts_is_unexpected() -> None:
    case = _case(alert='alert = ["a"]').cases[0]
    found = compare(case, [RunOutcome(AT, (("a",), ("b",)))], ["source.address"])
    assert [(d.kind, d.term) for d in found] == [("unexpected", ("b",))]


def test_with_silent_alone_only_the_silent_terms_must_not_alert() -> None:
    case = _case(silent='silent = ["a"]').cases[0]
    assert compare(case, [RunOutcome(AT, (("b",),))], ["source.address"]) == ()
    assert compare(case, [RunOutcome(AT, (("a",),))], ["source.address"])[0].kind == "unexpected"


def test_terms_compare_as_text() -> None:
    case = _fixture('[[case]]\nname = "c"\nalert = [64500]\n').cases[0]
    assert compare(case, [RunOutcome(AT, (("64500",),))], ["source.as.number"]) == ()


def test_expectations_of_one_run_apply_to_that_run_only() -> None:
    runs = 'runs = [{ at = "-5m", alert = [] }, { at = "now", alert = ["a"] }]'
    case = _case(runs=runs).cases[0]
    outcomes = [RunOutcome(case.runs[0].at), RunOutcome(AT, (("a",),))]
    assert compare(case, outcomes, ["source.address"]) == ()
    late = [RunOutcome(case.runs[0].at, (("a",),)), RunOutcome(AT)]
    assert {d.kind for d in compare(case, late, ["source.address"])} == {"missing"}


def _suite() -> Suite:
    case = _case(alert='alert = ["a"]').cases[0]
    runs = (RunOutcome(AT),)
    failed = CaseResult(PATH, "r1", case, runs, compare(case, runs, ["source.address"]))
    passed = CaseResult(PATH, "r1", case, runs)
    return Suite([passed, failed], ["y.tests.toml: not valid TOML"], 1.5)


def test_the_text_report_has_a_line_per_case_details_and_a_summary() -> None:
    lines = text_lines(_suite())
    assert lines[0] == "error: y.tests.toml: not valid TOML"
    assert lines[1] == "PASS  x.tests.toml: c"
    assert lines[2] == "FAIL  x.tests.toml: c"
    assert lines[3].strip().startswith("missing a (expected to alert, did not, over all runs)")
    assert "events: line 6 (time -2m)" in lines[3]
    assert lines[-1] == "1 passed, 1 failed, 0 error(s), 1 fixture(s) not loaded, in 1.5 s"


def test_the_json_report_counts_and_details_each_case() -> None:
    report = json.loads(json.dumps(to_json(_suite())))
    assert (report["passed"], report["failed"], report["errors"]) == (1, 1, 0)
    assert report["cases"][1]["differences"][0]["term"] == ["a"]


def test_the_junit_report_has_a_failure_per_failed_case_and_an_error_per_problem() -> None:
    root = ET.fromstring(junit_xml(_suite()))
    suites = root.findall("testsuite")
    assert suites[0].get("failures") == "1" and len(suites[0].findall("testcase")) == 2
    assert suites[0].findall("testcase")[1].find("failure") is not None
    assert suites[1].find("testcase/error") is not None


def test_rule_folders_do_not_load_fixtures_as_rules() -> None:
    loaded = load_rules([BUILTIN])
    assert loaded.errors == [] and len(loaded.rules) == 2


@pytest.fixture
def rule_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DETECTOR_ES_URL", "http://127.0.0.1:1")  # never reached
    (tmp_path / RULE.name).write_text(RULE.read_text())
    return tmp_path


def test_a_fixture_that_does_not_load_exits_2_naming_file_and_case(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rule_dir / f"{RULE.stem}.tests.toml").write_text('[[case]]\nname = "late"\nat = "soon"\n')
    assert main(["rules", "test", str(rule_dir)]) == 2
    out = capsys.readouterr()
    assert f"{RULE.stem}.tests.toml:1: case 'late': `at`: invalid date-math" in out.out
    assert "Traceback" not in out.out + out.err


def test_a_one_sided_fixture_exits_2_unless_allowed(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rule_dir / f"{RULE.stem}.tests.toml").write_text('[[case]]\nname = "c"\nalert = []\n')
    assert main(["rules", "test", str(rule_dir)]) == 2
    assert "no alerting case" in capsys.readouterr().out


def test_a_term_of_the_wrong_arity_does_not_fit_the_rule(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rule_dir / f"{RULE.stem}.tests.toml").write_text(
        '[[case]]\nname = "c"\nalert = [["a", "b"]]\nsilent = ["c"]\n'
    )
    assert main(["rules", "test", str(rule_dir)]) == 2
    assert "case 'c': term ['a', 'b'] has 2 value(s)" in capsys.readouterr().out


def test_a_rule_without_fixture_is_named_with_the_scaffold_command(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "test", str(rule_dir)]) == 2
    assert "--scaffold" in capsys.readouterr().out
    assert main(["rules", "test", "--skip-untested", str(rule_dir)]) == 0


def test_scaffold_writes_a_fixture_that_loads_and_never_overwrites_one(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = rule_dir / RULE.name
    assert main(["rules", "test", "--scaffold", str(rule)]) == 0
    fixture = rule.with_name(f"{RULE.stem}.tests.toml")
    cases = parse_fixture(fixture.read_text(), fixture, AT).cases
    assert [case.alerting for case in cases] == [True, False]
    assert [case.silencing for case in cases] == [False, True]
    assert main(["rules", "test", "--scaffold", str(rule)]) == 2


def test_scaffold_of_a_folder_writes_each_rule_without_a_fixture_and_keeps_the_others(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = BUILTIN / "aws_s3_unauthenticated_access_rare_source_legacy_principal.toml"
    (rule_dir / "nested").mkdir()
    (rule_dir / "nested" / legacy.name).write_text(legacy.read_text())
    kept = rule_dir / f"{RULE.stem}.tests.toml"
    kept.write_text("# the engineer's own cases\n")

    assert main(["rules", "test", "--scaffold", str(rule_dir)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {rule_dir / 'nested' / legacy.stem}.tests.toml" in out
    assert "1 rule(s) already have a fixture, left as they are" in out
    assert kept.read_text() == "# the engineer's own cases\n"


def test_scaffold_names_a_rule_it_cannot_read_and_writes_the_others(
    rule_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rule_dir / "broken.toml").write_text("not toml [")

    assert main(["rules", "test", "--scaffold", str(rule_dir)]) == 2
    captured = capsys.readouterr()
    assert f"error: {rule_dir / 'broken.toml'}:1: invalid TOML" in captured.err
    assert (rule_dir / f"{RULE.stem}.tests.toml").exists()
    assert not (rule_dir / "broken.tests.toml").exists()
