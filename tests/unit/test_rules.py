"""Loading detection-rules TOML files into `Rule`, and reporting what is wrong with bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.errors import RuleError, UnsupportedRuleError
from detector.rules import (
    DEFAULT_FROM,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_SIGNALS,
    DEFAULT_TO,
    load_rule_file,
    load_rules,
)
from tests.support.reference import REFERENCE

ELASTIC_RULES = REFERENCE / "rules" / "elastic-new-terms-aws"

MINIMAL = """\
[metadata]
maturity = "production"

[rule]
rule_id = "00000000-0000-4000-8000-000000000001"
name = "Test rule"
description = "A rule for tests."
type = "new_terms"
language = "kuery"
index = ["logs-test-*"]
risk_score = 21
severity = "low"
query = '''
event.action: "GetObject"
    and source.address: *
'''

[rule.new_terms]
field = "new_terms_fields"
value = ["source.address"]

[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-7d"
"""


def write(folder: Path, text: str, name: str = "rule.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def with_rule_id(text: str, number: int) -> str:
    return text.replace("000000000001", f"{number:012d}")


def load_error(tmp_path: Path, text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        load_rule_file(write(tmp_path, text))
    return info.value


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


@pytest.mark.reference_data
def test_every_elastic_new_terms_rule_loads() -> None:
    result = load_rules([ELASTIC_RULES])
    assert [str(error) for error in result.errors] == []
    assert len(result.rules) == 49


@pytest.mark.reference_data
def test_elastic_rules_keep_their_new_terms_and_threat() -> None:
    path = ELASTIC_RULES / "collection_s3_unauthenticated_bucket_access_by_rare_source.toml"
    rule = load_rule_file(path)
    assert rule.new_terms_fields == ("source.address", "tls.client.server_name")
    assert rule.history_window_start == "now-5d"
    assert rule.threat[0].technique[0].id == "T1530"
    assert rule.source == path


def test_kibana_defaults_apply_when_keys_are_absent(tmp_path: Path) -> None:
    rule = load_rule_file(write(tmp_path, MINIMAL))
    assert (rule.interval, rule.from_, rule.to) == (DEFAULT_INTERVAL, DEFAULT_FROM, DEFAULT_TO)
    assert rule.max_signals == DEFAULT_MAX_SIGNALS
    assert (rule.enabled, rule.version, rule.tags, rule.threat) == (True, 1, (), ())
    assert rule.timestamp_override is None
    assert rule.timestamp_override_fallback_disabled is False


def test_a_file_can_omit_the_language(tmp_path: Path) -> None:
    rule = load_rule_file(write(tmp_path, MINIMAL.replace('language = "kuery"\n', "")))
    assert rule.language == "kuery"


def test_unknown_keys_are_tolerated(tmp_path: Path) -> None:
    text = MINIMAL.replace("[rule]\n", '[rule]\nfalse_positives = ["x"]\nfuture_key = 3\n')
    assert load_rule_file(write(tmp_path, text)).name == "Test rule"


def test_kibana_shape_of_new_terms_is_accepted(tmp_path: Path) -> None:
    head = MINIMAL[: MINIMAL.index("[rule.new_terms]")]
    text = head.replace(
        "[rule]\n", '[rule]\nnew_terms_fields = ["a", "b"]\nhistory_window_start = "now-3d"\n'
    )
    rule = load_rule_file(write(tmp_path, text))
    assert (rule.new_terms_fields, rule.history_window_start) == (("a", "b"), "now-3d")


def test_kibana_shape_errors_name_its_key(tmp_path: Path) -> None:
    head = MINIMAL[: MINIMAL.index("[rule.new_terms]")]
    text = head.replace(
        "[rule]\n", '[rule]\nnew_terms_fields = ["a"]\nhistory_window_start = "now"\n'
    )
    assert load_error(tmp_path, text).location.key == "rule.history_window_start"


def test_metadata_is_kept(tmp_path: Path) -> None:
    assert load_rule_file(write(tmp_path, MINIMAL)).metadata == {"maturity": "production"}


BAD_RULES = [
    pytest.param('name = "Test rule"\n', "", "rule.name", "required key is missing", id="missing"),
    pytest.param("risk_score = 21", 'risk_score = "21"', "rule.risk_score", "integer", id="type"),
    pytest.param("risk_score = 21", "risk_score = 101", "rule.risk_score", "between", id="range"),
    pytest.param('"low"', '"urgent"', "rule.severity", "must be one of", id="severity"),
    pytest.param('["logs-test-*"]', "[]", "rule.index", "at least one", id="no-index"),
    pytest.param("[rule]\n", '[rule]\ninterval = "5x"\n', "rule.interval", "'5x'", id="interval"),
    pytest.param("[rule]\n", '[rule]\nfrom = "now-6q"\n', "rule.from", "'now-6q'", id="from"),
    pytest.param("[rule]\n", "[rule]\nenabled = 1\n", "rule.enabled", "true or false", id="bool"),
    pytest.param(
        '"now-7d"',
        '"last week"',
        "rule.new_terms.history_window_start",
        "'last week'",
        id="history-datemath",
    ),
    pytest.param(
        '"now-7d"',
        '"now-5m"',
        "rule.new_terms.history_window_start",
        "must be earlier than 'from'",
        id="history-too-short",
    ),
    pytest.param(
        'value = ["source.address"]',
        'value = ["a", "b", "c", "d"]',
        "rule.new_terms.value",
        "1 to 3 fields, got 4",
        id="four-fields",
    ),
    pytest.param(
        'value = ["source.address"]', "value = []", "rule.new_terms.value", "got 0", id="no-fields"
    ),
    pytest.param(
        'field = "new_terms_fields"',
        'field = "fields"',
        "rule.new_terms.field",
        "must be 'new_terms_fields'",
        id="new-terms-shape",
    ),
    pytest.param(
        'severity = "low"\n',
        'severity = "low"\ntags = ["a", 2]\n',
        "rule.tags[1]",
        "must be a string",
        id="list-item",
    ),
]


@pytest.mark.parametrize(("old", "new", "key", "message"), BAD_RULES)
def test_bad_rule_names_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    error = load_error(tmp_path, MINIMAL.replace(old, new, 1))
    assert error.location.path == tmp_path / "rule.toml"
    assert error.location.key == key
    assert message in error.message
    assert str(error).startswith(f"{tmp_path / 'rule.toml'}")


def test_error_gives_the_line_of_the_key(tmp_path: Path) -> None:
    text = MINIMAL.replace("risk_score = 21", "risk_score = -1")
    error = load_error(tmp_path, text)
    assert error.location.line == line_of(text, "risk_score")
    assert str(error).startswith(f"{tmp_path / 'rule.toml'}:{error.location.line}, rule ")


def test_error_names_the_rule_id(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace('severity = "low"', 'severity = "x"'))
    assert error.location.rule_id == "00000000-0000-4000-8000-000000000001"


def test_query_that_does_not_compile_shows_line_and_caret(tmp_path: Path) -> None:
    text = MINIMAL.replace("and source.address: *", "and source.address: (*")
    error = load_error(tmp_path, text)
    assert error.location.key == "rule.query"
    assert error.location.line == line_of(text, "    and source.address")
    assert "query does not compile" in error.message
    assert error.message.rstrip().endswith("^")


def test_invalid_toml_gives_the_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("risk_score = 21", "risk_score = = 21")
    error = load_error(tmp_path, text)
    assert "invalid TOML" in error.message
    assert error.location.line == line_of(text, "risk_score")


def test_missing_rule_table(tmp_path: Path) -> None:
    error = load_error(tmp_path, '[metadata]\nmaturity = "production"\n')
    assert (error.location.key, error.message) == ("rule", "required key is missing")


def test_threat_without_tactic(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[rule.threat]]\nframework = "MITRE ATT&CK"\n'
    error = load_error(tmp_path, text)
    assert error.location.key == "rule.threat[0].tactic"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('type = "new_terms"', 'type = "eql"', "rule.type"),
        ('language = "kuery"', 'language = "lucene"', "rule.language"),
    ],
)
def test_unsupported_rule_is_reported_without_stopping_the_others(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    write(tmp_path, MINIMAL.replace(old, new), "a.toml")
    write(tmp_path, with_rule_id(MINIMAL, 2), "b.toml")
    result = load_rules([tmp_path])
    assert [rule.rule_id[-1] for rule in result.rules] == ["2"]
    [error] = result.errors
    assert isinstance(error, UnsupportedRuleError)
    assert (error.location.path, error.location.key) == (tmp_path / "a.toml", key)


def test_every_bad_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL.replace('severity = "low"', 'severity = "x"'), "a.toml")
    write(tmp_path, with_rule_id(MINIMAL, 2), "b.toml")
    write(tmp_path, MINIMAL.replace("risk_score = 21", ""), "c.toml")
    result = load_rules([tmp_path])
    assert len(result.rules) == 1
    assert [error.location.path.name for error in result.errors if error.location.path] == [
        "a.toml",
        "c.toml",
    ]


def test_duplicate_rule_ids_are_an_error(tmp_path: Path) -> None:
    first, second = write(tmp_path, MINIMAL, "a.toml"), write(tmp_path, MINIMAL, "b.toml")
    result = load_rules([tmp_path])
    assert [rule.source for rule in result.rules] == [first]
    [error] = result.errors
    assert error.location.path == second
    assert error.location.key == "rule.rule_id"
    assert str(first) in error.message


def test_directories_are_read_recursively_in_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, with_rule_id(MINIMAL, 3), "z.toml")
    write(tmp_path / "sub", with_rule_id(MINIMAL, 2), "a.toml")
    write(tmp_path, "not a rule", "notes.txt")
    result = load_rules([tmp_path])
    assert [rule.rule_id[-1] for rule in result.rules] == ["2", "3"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    result = load_rules([tmp_path / "nowhere"])
    assert result.rules == []
    assert "no such file or directory" in str(result.errors[0])


def test_directory_without_rules_is_an_error(tmp_path: Path) -> None:
    result = load_rules([tmp_path])
    assert "no *.toml rule files" in str(result.errors[0])


def test_every_problem_of_one_file_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace('severity = "low"', 'severity = "x"')
        .replace("risk_score = 21", "risk_score = 101")
        .replace('index = ["logs-test-*"]', "index = []")
        .replace("and source.address: *", "and source.address: (*")
    )
    result = load_rules([write(tmp_path, text)])
    keys = [error.location.key for error in result.errors]
    assert keys == ["rule.index", "rule.risk_score", "rule.severity", "rule.query"]
    assert result.rules == []


def test_type_errors_do_not_hide_the_interval_and_history_problems(tmp_path: Path) -> None:
    text = (
        MINIMAL.replace("risk_score = 21", 'risk_score = "high"\ninterval = "5 minutes"')
        .replace("[rule]\n", '[rule]\nfrom = "now-6m"\n')
        .replace('value = ["source.address"]', 'value = "source.address"')
        .replace('value = "now-7d"', 'value = "now-1m"')
    )
    result = load_rules([write(tmp_path, text)])
    assert [error.location.key for error in result.errors] == [
        "rule.new_terms.value",
        "rule.risk_score",
        "rule.interval",
        "rule.new_terms.history_window_start",
    ]
    assert "must be earlier than 'from' ('now-6m')" in str(result.errors[-1])


def test_a_bad_interval_does_not_hide_a_history_after_from(tmp_path: Path) -> None:
    text = MINIMAL.replace("[rule]\n", '[rule]\ninterval = "5 minutes"\nfrom = "now-6m"\n')
    result = load_rules([write(tmp_path, text.replace('value = "now-7d"', 'value = "now-1m"'))])
    keys = [error.location.key for error in result.errors]
    assert keys == ["rule.interval", "rule.new_terms.history_window_start"]


def test_a_type_that_is_no_string_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    text = MINIMAL.replace('type = "new_terms"', "type = 5").replace(
        "risk_score = 21", "risk_score = 'x'"
    )
    result = load_rules([write(tmp_path, text)])
    assert [error.location.key for error in result.errors] == ["rule.type", "rule.risk_score"]


def test_a_missing_new_terms_table_is_reported_once(tmp_path: Path) -> None:
    text = MINIMAL.split("[rule.new_terms]")[0]
    result = load_rules([write(tmp_path, text)])
    assert [error.location.key for error in result.errors] == ["rule.new_terms"]


def test_the_query_and_the_times_are_checked_together(tmp_path: Path) -> None:
    text = MINIMAL.replace("and source.address: *", "and source.address: (*").replace(
        "[rule]\n", '[rule]\nfrom = "now+5m"\n'
    )
    result = load_rules([write(tmp_path, text)])
    assert [error.location.key for error in result.errors] == ["rule.from", "rule.query"]


def test_a_window_that_ends_before_it_starts_is_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace("[rule]\n", '[rule]\nfrom = "now+5m"\n'))
    assert error.location.key == "rule.from"
    assert "the window is empty: 'from' ('now+5m') is after 'to' ('now')" in error.message


def test_several_problems_raise_one_error_with_a_line_each(tmp_path: Path) -> None:
    text = MINIMAL.replace('severity = "low"', 'severity = "x"').replace(
        "risk_score = 21", "risk_score = 101"
    )
    error = load_error(tmp_path, text)
    assert len(str(error).splitlines()) == 2
    assert all(line.startswith(str(tmp_path / "rule.toml")) for line in str(error).splitlines())


def test_a_rule_file_sets_its_own_baseline_mode_in_the_detector_table(tmp_path: Path) -> None:
    held = load_rule_file(write(tmp_path, MINIMAL + '\n[detector]\nbaseline = "hold"\n'))
    assert held.baseline == "hold"
    assert load_rule_file(write(tmp_path, MINIMAL)).baseline is None


def test_a_bad_baseline_mode_names_the_key_and_the_choices(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '\n[detector]\nbaseline = "wait"\n')
    assert error.location.key == "detector.baseline"
    assert "alert, hold" in str(error)


def test_an_unknown_key_of_the_detector_table_is_an_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + '\n[detector]\nbaseline_mode = "hold"\n')
    assert error.location.key == "detector.baseline_mode"
