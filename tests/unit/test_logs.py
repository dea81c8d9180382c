"""Logs are structured, in text or ECS JSON, and never contain a secret."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from detector.cli.detection import ProgressBar
from detector.logs import MASK, configure_logging
from detector.results import ExecutionResult
from detector.settings import Settings


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def _log(settings: Settings, message: str, **fields: object) -> str:
    stream = io.StringIO()
    configure_logging(settings, stream)
    logging.getLogger("detector.test").warning(message, extra=fields)
    return stream.getvalue()


def test_password_is_masked_in_messages_and_fields() -> None:
    settings = _settings(es_username="u", es_password=SecretStr("hunter2-secret"))
    out = _log(settings, "login with hunter2-secret failed", detail="pw=hunter2-secret")
    assert "hunter2-secret" not in out
    assert out.count(MASK) == 2


def test_api_key_is_masked() -> None:
    out = _log(_settings(es_api_key=SecretStr("c2VjcmV0LWtleQ==")), "key c2VjcmV0LWtleQ==")
    assert "c2VjcmV0LWtleQ==" not in out


def test_json_format_puts_fields_at_the_top_level() -> None:
    out = _log(_settings(log_format="json"), "execution", rule_id="r1", alerts_written=3)
    record = json.loads(out)
    assert record["message"] == "execution"
    assert record["rule_id"] == "r1"
    assert record["alerts_written"] == 3
    assert record["log.level"] == "warning"


def test_json_lines_are_the_ecs_logging_librarys_own() -> None:
    out = _log(_settings(log_format="json"), "execution", rule_id="r1")
    record = json.loads(out)
    assert {"@timestamp", "log.level", "message", "ecs.version"} <= set(record)
    assert record["log"]["logger"] == "detector.test"
    assert record["@timestamp"].endswith("Z")


def test_an_error_text_field_becomes_ecs_error_message() -> None:
    record = json.loads(_log(_settings(log_format="json"), "failed", error="timed out"))
    assert record["error"] == {"message": "timed out"}


def test_an_exception_is_ecs_error_fields() -> None:
    stream = io.StringIO()
    configure_logging(_settings(log_format="json"), stream)
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("detector.test").exception("it broke")
    error = json.loads(stream.getvalue())["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "bad value"
    assert "raise ValueError" in error["stack_trace"]


def test_backfill_progress_is_a_log_record_in_json_mode() -> None:
    stream, bar_stream = io.StringIO(), io.StringIO()
    configure_logging(_settings(log_format="json"), stream)
    bar = ProgressBar(bar_stream)
    for done in range(1, 4):
        bar(done, 3, _result(alerts_written=1))
    assert bar_stream.getvalue() == ""
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [record["progress_done"] for record in records] == [1, 2, 3]
    assert records[-1]["alerts_written"] == 3
    assert records[-1]["message"].startswith("backfill 3/3 r1 at ")


def test_backfill_progress_is_a_text_line_in_text_mode() -> None:
    stream, bar_stream = io.StringIO(), io.StringIO()
    configure_logging(_settings(), stream)
    ProgressBar(bar_stream)(1, 1, _result())
    assert stream.getvalue() == ""
    assert bar_stream.getvalue().startswith("backfill [###")


def _result(**values: Any) -> ExecutionResult:
    now = datetime(2025, 1, 15, 12, tzinfo=UTC)
    return ExecutionResult(rule_id="r1", rule_name="R", now=now, status="succeeded", **values)


def test_text_format_appends_fields_as_key_values() -> None:
    out = _log(_settings(), "execution", rule_id="r1", window="a b")
    assert out.rstrip().endswith('execution rule_id=r1 window="a b"')


def test_settings_repr_masks_secrets() -> None:
    settings = _settings(es_username="u", es_password=SecretStr("hunter2"), es_api_key="k-secret")
    assert "hunter2" not in repr(settings)
    assert "k-secret" not in repr(settings)
