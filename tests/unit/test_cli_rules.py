"""`detector rules check`, `detector rules list` and `detector kql`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detector.cli import main
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
    assert lines[1].startswith(f"{tmp_path / 'eql.toml'}:")
    assert "key 'rule.type'" in lines[1]


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
    assert index_patterns(settings) == ["filebeat-*", "logs-aws.cloudtrail*", "x-*"]


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
