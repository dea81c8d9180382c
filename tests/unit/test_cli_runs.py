"""`detector backfill` and `detector health`: user mistakes exit 2 with one line, no traceback;
the progress bar on a terminal and in a log."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pytest

from detector.cli import main
from detector.cli.detection import ProgressBar
from detector.results import ExecutionResult

BUILTIN_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "yesterday", "--end", "2025-01-15T12:00:00Z"], "is not an ISO-8601 time"),
        (["--start", "2025-01-15T12:00:00Z"], "the following arguments are required: --end"),
    ],
)
def test_backfill_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backfill", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_backfill_end_before_start_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backfill", "--start", "2025-01-15T12:00:00Z", "--end", "2025-01-15T11:00:00"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == "error: --end 2025-01-15T11:00:00Z is before --start 2025-01-15T12:00:00Z\n"


def test_backfill_end_in_the_future_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert main(["backfill", "--start", "2025-01-15T12:00:00Z", "--end", future]) == 2
    assert "is in the future" in capsys.readouterr().err


def test_backfill_unknown_rule_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    span = ["--start", "2025-01-15T12:00:00Z", "--end", "2025-01-15T13:00:00Z"]
    code = main(["backfill", *span, "--rule", "no-such-rule"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--rule 'no-such-rule': no such rule id or file" in err
    assert BUILTIN_ID in err
    assert "Traceback" not in err


def test_health_max_age_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["health", "--max-age", "-3"])
    assert exit_info.value.code == 2
    assert "'-3' is a negative duration" in capsys.readouterr().err


def test_bad_max_catchup_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_MAX_CATCHUP", "a day")
    assert main(["health"]) == 2
    assert "DETECTOR_MAX_CATCHUP: invalid duration 'a day'" in capsys.readouterr().err


def result(status: str = "succeeded", alerts: int = 0) -> ExecutionResult:
    now = datetime(2025, 1, 15, 12, 5, tzinfo=UTC)
    return ExecutionResult("r1", "Rule", now, status, alerts_written=alerts)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_redraws_one_line() -> None:
    stream = Terminal()
    bar = ProgressBar(stream)
    bar(1, 2, result(alerts=2))
    bar(2, 2, result("failed"))
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") == 2
    assert text.endswith("2/2 r1 at 2025-01-15T12:05Z - 2 alert(s), 1 failed\n")
    assert "[###############...............] 1/2" in text


def test_progress_in_a_log_prints_a_line_every_tenth() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for done in range(1, 101):
        bar(done, 100, result())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("backfill [##############################] 100/100")


def _engine_lines(level: str) -> list[str]:
    from detector.cli.common import executions_at_debug
    from detector.logs import configure_logging
    from detector.settings import Settings

    stream = io.StringIO()
    configure_logging(Settings(_env_file=None, log_level=level), stream)
    with executions_at_debug():
        logging.getLogger("detector.engine.execution").info("rule r1: 1 new term(s)")
        logging.getLogger("detector.engine.execution").error("rule r2 failed: boom")
    return stream.getvalue().splitlines()


def test_execution_lines_are_debug_while_a_progress_bar_shows() -> None:
    [line] = _engine_lines("INFO")
    assert "ERROR" in line and "rule r2 failed" in line


def test_execution_lines_show_at_debug_level() -> None:
    first, second = _engine_lines("DEBUG")
    assert "DEBUG" in first and "rule r1: 1 new term(s)" in first
    assert "ERROR" in second


def test_once_at_a_future_time_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_ES_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("DETECTOR_ES_READY_TIMEOUT", "0")
    assert main(["once", "--dry-run", "--at", "2999-01-01T00:00:00Z"]) == 1
    assert "--at 2999-01-01T00:00:00Z is in the future" in capsys.readouterr().err
