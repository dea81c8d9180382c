"""The start-up validation `run`, `once` and `check` share: what one refuses (exit 2), each
refuses, before connecting (nothing listens at the Elasticsearch URL: a command that got past
validation would exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.cli import main

COMMANDS = [["run"], ["once"], ["check"]]


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no `.env` file
    monkeypatch.setenv("DETECTOR_ES_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DETECTOR_ES_READY_TIMEOUT", "0")


def _exceptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "exceptions.toml"
    path.write_text(text)
    monkeypatch.setenv("DETECTOR_EXCEPTIONS_FILE", str(path))
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_a_misspelt_key_in_the_exceptions_file_exits_2(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _exceptions(tmp_path, monkeypatch, '[[exception]]\nrule_id = "*"\nfeild = "x"\n')

    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"configuration error: {path}: exception #1" in err
    assert "feild" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_notification_url_of_no_known_scheme_exits_2(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", "nosuchscheme://foo")

    assert main(command) == 2
    assert "configuration error: DETECTOR_NOTIFY_URLS: URL 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_exceptions_and_channel_problems_are_listed_in_one_run(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _exceptions(tmp_path, monkeypatch, '[[exception]]\nrule_id = "*"\nfeild = "x"\n')
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", "nosuchscheme://foo")

    assert main(command) == 2
    lines = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("configuration error: ") for line in lines) == 2


@pytest.mark.parametrize("command", [["run"], ["once"]])
def test_no_enabled_rule_exits_1_saying_so(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_BUILTIN_RULES", "false")

    assert main(command) == 1
    assert capsys.readouterr().err == "error: no enabled rule to run\n"


def test_check_says_when_run_would_have_no_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_BUILTIN_RULES", "false")

    assert main(["check"]) == 1
    assert "error: no enabled rule to run: `detector run` would exit 1" in capsys.readouterr().out
