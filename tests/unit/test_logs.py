"""Logs are structured, in text or JSON, and never contain a secret."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from pydantic import SecretStr

from detector.logs import MASK, configure_logging
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


def test_text_format_appends_fields_as_key_values() -> None:
    out = _log(_settings(), "execution", rule_id="r1", window="a b")
    assert out.rstrip().endswith('execution rule_id=r1 window="a b"')


def test_settings_repr_masks_secrets() -> None:
    settings = _settings(es_username="u", es_password=SecretStr("hunter2"), es_api_key="k-secret")
    assert "hunter2" not in repr(settings)
    assert "k-secret" not in repr(settings)
