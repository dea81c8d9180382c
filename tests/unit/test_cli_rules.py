"""`detector rules check`, `detector rules list` and `detector kql`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detector.cli import main
from detector.cli.common import validate_startup
from detector.cli.operations import index_patterns
from detector.settings import Settings
from tests.unit.test_rules import MINIMAL, write

BUILTIN_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"


def test_rules_check_passes_on_valid_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, MINIMAL)
    assert main(["rules", "check", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "1 rule(s) OK\n"


def test_rules_check_prints_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, MINIMAL.replace("000000000001", "000000000002"), "good.toml")
    write(tmp_path, MINIMAL.replace('severity = "low"', 'severity = "x"'), "bad.toml")
    write(tmp_path, MINIMAL.replace('type = "new_terms"', 'type = "eql"'), "eql.toml")
    assert main(["rules", "check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'bad.toml'}:")
    assert "key 'rule.severity'" in lines[0]
    assert lines[1].startswith(f"not run: {tmp_path / 'eql.toml'}:")
    assert "key 'rule.type'" in lines[1]


def test_rules_check_passes_when_the_only_problems_are_unsupported_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, MINIMAL, "good.toml")
    write(
        tmp_path,
        MINIMAL.replace('type = "new_terms"', 'type = "eql"').replace("01", "02"),
        "e.toml",
    )
    assert main(["rules", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"not run: {tmp_path / 'e.toml'}:")
    assert out[-1] == "1 rule(s) OK, 1 not run (unsupported)"


def test_unsupported_rules_fail_rules_check_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL.replace('type = "new_terms"', 'type = "eql"'), "e.toml")
    assert main(["rules", "check", "--strict", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'e.toml'}:")


def test_rules_list_warns_once_about_unsupported_rules_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL, "good.toml")
    for number, kind in enumerate(["eql", "eql", "esql"], start=2):
        rule = MINIMAL.replace('type = "new_terms"', f'type = "{kind}"')
        write(tmp_path, rule.replace("000000000001", f"00000000000{number}"), f"{number}.toml")
    monkeypatch.setenv("DETECTOR_RULES_PATH", str(tmp_path))
    assert main(["rules", "list"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "WARNING" in err[0]
    assert "3 rule(s) not run, of a type or language this detector does not run" in err[0]
    assert "(type eql: 2, type esql: 1)" in err[0]


def test_a_broken_configured_rule_is_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL.replace('severity = "low"', 'severity = "x"'), "bad.toml")
    monkeypatch.setenv("DETECTOR_RULES_PATH", str(tmp_path))
    assert main(["rules", "list"]) == 2
    assert "rule problem: " in capsys.readouterr().err


def test_rule_problems_are_one_json_line_each_with_json_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL.replace("source.address: *", "source.address: (*"), "bad.toml")
    monkeypatch.setenv("DETECTOR_RULES_PATH", str(tmp_path))
    monkeypatch.setenv("DETECTOR_LOG_FORMAT", "json")
    assert main(["rules", "list"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["message"].startswith("rule problem: ")
    assert record["rule_file"] == str(tmp_path / "bad.toml")
    assert record["rule_key"] == "rule.query"


def test_once_with_a_rule_file_that_does_not_load_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["once", "--rule", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "missing.toml" in err and "no such file" in err.lower()
    assert "Traceback" not in err


def test_rules_check_shows_the_caret_under_a_query_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, MINIMAL.replace("source.address: *", "source.address: (*"))
    assert main(["rules", "check", str(tmp_path)]) == 1
    first, *caret = capsys.readouterr().out.splitlines()
    assert "key 'rule.query'" in first
    assert caret[-1].strip() == "^"
    assert all(line.startswith("    ") for line in caret)


def test_rules_list_shows_the_builtin_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["RULE_ID", "NAME", "TYPE", "INTERVAL", "ENABLED", "SOURCE"]
    [row] = [row for row in rows if row.startswith(BUILTIN_ID)]
    assert "AWS S3 Unauthenticated Bucket Access by Rare Source  " in row
    assert "new_terms  5m" in row
    assert row.index("new_terms") == header.index("TYPE")


def test_rules_list_includes_rules_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("DETECTOR_RULES_PATH", str(path))
    monkeypatch.setenv("DETECTOR_BUILTIN_RULES", "false")
    assert main(["rules", "list"]) == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.endswith(str(path))


def test_kql_prints_the_query_dsl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kql", 'event.outcome: "success"']) == 0
    assert "event.outcome" in json.dumps(json.loads(capsys.readouterr().out))


def test_kql_error_shows_a_caret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kql", "a: (b or"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert captured.err.rstrip().endswith("^")


def test_check_looks_at_the_index_patterns_of_enabled_rules(tmp_path: Path) -> None:
    disabled = MINIMAL.replace("[rule]\n", "[rule]\nenabled = false\n").replace("test", "off")
    write(tmp_path, disabled.replace("000000000001", "000000000002"), "off.toml")
    write(tmp_path, MINIMAL.replace('["logs-test-*"]', '["logs-aws.cloudtrail*", "x-*"]'))
    settings = Settings(rules_path=[tmp_path], builtin_rules=True)
    startup = validate_startup(settings)
    assert index_patterns(startup.rules) == ["filebeat-*", "logs-aws.cloudtrail*", "x-*"]
    assert startup.problems == 0


def test_a_bad_exception_stops_once_before_it_connects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "exceptions.toml"
    path.write_text('[[exception]]\nrule_id = "*"\nfield = "source.ip"\nvalues = ["nope"]\n')
    monkeypatch.setenv("DETECTOR_EXCEPTIONS_FILE", str(path))
    monkeypatch.setenv("DETECTOR_ES_URL", "http://127.0.0.1:9")  # nothing listens: not reached
    assert main(["once", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: exception #1: 'nope' is not an IP address" in err
    assert "Traceback" not in err


def test_an_exception_for_an_unknown_rule_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "exceptions.toml"
    path.write_text('[[exception]]\nrule_id = "no-such-rule"\nfield = "f"\nvalues = ["v"]\n')
    monkeypatch.setenv("DETECTOR_EXCEPTIONS_FILE", str(path))
    monkeypatch.setenv("DETECTOR_ES_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DETECTOR_ES_READY_TIMEOUT", "0")
    main(["once", "--dry-run"])
    err = capsys.readouterr().err
    assert "exception #1: rule_id 'no-such-rule' matches no loaded rule" in err


def test_rules_check_and_kql_read_no_setting_and_start_without_pydantic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL)
    monkeypatch.setenv("DETECTOR_ES_URL", "not a url")  # a bad setting does not matter here
    assert main(["rules", "check", str(tmp_path)]) == 0
    probe = (
        "import sys; from detector.cli import main; "
        f"main(['rules', 'check', {str(tmp_path)!r}]); main(['kql', 'a: 1']); "
        "print('pydantic' in sys.modules, 'elasticsearch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "False False"
