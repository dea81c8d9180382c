"""Settings from `DETECTOR_*` variables: every invalid value is named, secrets never shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.errors import ConfigError
from detector.settings import Settings, env_name, load_settings

SECRET = "s3cret-value-never-shown"


def _types(annotation: Any) -> set[Any]:
    """The types an annotation admits (`X | None` is both; `Annotated[X, ...]` is X)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {kind for arg in typing.get_args(annotation) for kind in _types(arg)}
    if typing.get_origin(annotation) is typing.Annotated:
        return _types(typing.get_args(annotation)[0])
    return {annotation}


@pytest.fixture(autouse=True)
def _no_env_file(tmp_path, monkeypatch):
    """Run where no `.env` file is, so only the variables a test sets count."""
    monkeypatch.chdir(tmp_path)


def _problems(monkeypatch, **variables: str) -> list[str]:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    return raised.value.problems


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DETECTOR_ES_URL", "not a url", "'not a url' is not an http:// or https:// URL"),
        ("DETECTOR_ES_URL", "ftp://es:9200", "'ftp://es:9200' is not an http:// or https:// URL"),
        ("DETECTOR_ES_URL", "http://es:99999", "'http://es:99999' has an invalid port"),
        ("DETECTOR_ES_REQUEST_TIMEOUT", "-1", "greater than 0"),
        ("DETECTOR_ES_READY_TIMEOUT", "-5", "greater than or equal to 0"),
        ("DETECTOR_ES_CA_CERTS", "/nonexistent/ca.pem", "no such file: /nonexistent/ca.pem"),
        ("DETECTOR_ALERTS_INDEX", ".hidden", "'.hidden' is not a valid visible index name"),
        ("DETECTOR_ALERTS_INDEX", "Upper", "'Upper' is not a valid visible index name"),
        (
            "DETECTOR_EXCEPTION_SOURCE_ADDRESSES",
            "10.0.0.0/33",
            "'10.0.0.0/33' is not a valid CIDR range",
        ),
        ("DETECTOR_ES_URLS", "http://es:9200", "unknown setting"),
    ],
)
def test_an_invalid_value_is_reported_under_its_variable(monkeypatch, variable, value, message):
    problems = _problems(monkeypatch, **{variable: value})

    assert len(problems) == 1
    assert problems[0].startswith(f"{variable}: ")
    assert message in problems[0]


def test_a_username_without_password_names_both_variables(monkeypatch):
    problems = _problems(monkeypatch, DETECTOR_ES_USERNAME="elastic")

    assert problems == ["DETECTOR_ES_USERNAME and DETECTOR_ES_PASSWORD must be set together"]


def test_every_problem_is_reported_at_once(monkeypatch):
    problems = _problems(
        monkeypatch, DETECTOR_ES_URL="not a url", DETECTOR_ALERTS_INDEX="Upper", DETECTOR_NOPE="1"
    )

    named = sorted(problem.split(":", 1)[0] for problem in problems)
    assert named == ["DETECTOR_ALERTS_INDEX", "DETECTOR_ES_URL", "DETECTOR_NOPE"]


def test_valid_variables_become_typed_settings(monkeypatch):
    monkeypatch.setenv("DETECTOR_ES_URL", "https://a:9200, https://b:9200")
    monkeypatch.setenv("DETECTOR_ES_RETRY_ATTEMPTS", "7")
    monkeypatch.setenv("DETECTOR_EXCEPTION_SOURCE_ADDRESSES", "10.0.0.0/8,192.0.2.7")

    settings = load_settings()

    assert settings.es_url == ["https://a:9200", "https://b:9200"]
    assert settings.es_retry_attempts == 7
    assert settings.exception_source_addresses == ["10.0.0.0/8", "192.0.2.7"]


def test_secrets_are_masked_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("DETECTOR_ES_USERNAME", "elastic")
    monkeypatch.setenv("DETECTOR_ES_PASSWORD", SECRET)
    monkeypatch.setenv("DETECTOR_ES_API_KEY", SECRET + "-key")

    settings = load_settings()

    assert SECRET not in repr(settings)
    assert settings.es_password is not None
    assert settings.es_password.get_secret_value() == SECRET


def test_secrets_are_never_echoed_in_configuration_errors(monkeypatch):
    problems = _problems(
        monkeypatch,
        DETECTOR_ES_PASSWORD=SECRET,
        DETECTOR_ES_API_KEY=SECRET,
    )

    assert problems == ["DETECTOR_ES_USERNAME and DETECTOR_ES_PASSWORD must be set together"]
    assert SECRET not in "\n".join(problems)


def _check_command(tmp_path, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector", "check"],
        env={**os.environ, **variables},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_check_command_exits_2_with_one_line_per_problem(tmp_path):
    done = _check_command(tmp_path, DETECTOR_ES_URL="not a url", DETECTOR_ALERTS_INDEX=".hidden")

    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("configuration error: ") for line in lines)
    assert any("DETECTOR_ES_URL: 'not a url'" in line for line in lines)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_an_unknown_variable_in_the_env_file_is_reported_with_the_file(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("DETECTOR_ALERTS_INDEX=alerts-x\nDETECTOR_ALERT_INDEX=typo\n")

    problems = _problems(monkeypatch)

    assert problems == ["DETECTOR_ALERT_INDEX (in .env): unknown setting (see the README's table)"]


def test_known_variables_in_the_env_file_are_read(tmp_path):
    (tmp_path / ".env").write_text("DETECTOR_ALERTS_INDEX=alerts-x\nOTHER_TOOL_SETTING=1\n")

    assert load_settings().alerts_index == "alerts-x"


DURATIONS = [
    name for name, field in Settings.model_fields.items() if timedelta in _types(field.annotation)
]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10s", 10), ("5m", 300), ("24h", 86400), ("2d", 172800), ("45", 45), ("0.5", 0.5)],
)
@pytest.mark.parametrize("field", DURATIONS)
def test_every_duration_setting_takes_seconds_or_a_unit(monkeypatch, field, value, seconds):
    if field == "lease_renew_seconds":
        monkeypatch.setenv("DETECTOR_LEASE_SECONDS", "10d")  # room for any renewal period
    if field == "lease_seconds" and seconds < 3:
        value, seconds = "3.5", 3.5  # a lease is at least 3 s
    monkeypatch.setenv(env_name(field), value)

    assert getattr(load_settings(), field) == timedelta(seconds=seconds)


def test_the_readme_names_every_duration_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    paragraph = readme.split("Durations follow one convention", 1)[1].split("\n\n", 1)[0]

    assert re.findall(r"`(DETECTOR_[A-Z_]+)`", paragraph) == [env_name(n) for n in DURATIONS]


def test_request_timeout_takes_the_same_form_as_max_catchup(monkeypatch):
    monkeypatch.setenv("DETECTOR_ES_REQUEST_TIMEOUT", "10s")
    monkeypatch.setenv("DETECTOR_MAX_CATCHUP", "24h")

    settings = load_settings()

    assert settings.es_request_timeout == timedelta(seconds=10)
    assert settings.max_catchup == timedelta(hours=24)


def test_durations_given_as_numbers_in_code_are_seconds() -> None:
    settings = load_settings(es_request_timeout=600.0, health_max_age=900)

    assert settings.es_request_timeout == timedelta(minutes=10)
    assert settings.health_max_age == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DETECTOR_HEALTH_MAX_AGE", "0", "must be greater than 0"),
        ("DETECTOR_NOTIFY_MAX_AGE", "a day", "invalid duration 'a day'"),
        ("DETECTOR_MAX_CATCHUP", "5 minutes", "invalid duration '5 minutes'"),
        ("DETECTOR_ES_REQUEST_TIMEOUT", "inf", "not a finite number"),
        ("DETECTOR_LEASE_SECONDS", "2s", "must be at least 3s"),
    ],
)
def test_a_bad_duration_is_reported_under_its_variable(monkeypatch, variable, value, message):
    problems = _problems(monkeypatch, **{variable: value})

    assert len(problems) == 1
    assert problems[0].startswith(variable)
    assert message in problems[0]


def test_zero_ready_timeout_means_no_waiting(monkeypatch):
    monkeypatch.setenv("DETECTOR_ES_READY_TIMEOUT", "0")

    assert load_settings().es_ready_timeout == timedelta(0)


@pytest.mark.parametrize("value", ["debug", "Debug", "DEBUG", " warning "])
def test_log_level_is_accepted_in_any_case(monkeypatch, value):
    monkeypatch.setenv("DETECTOR_LOG_LEVEL", value)

    assert load_settings().log_level == value.strip().upper()
