"""Logging: text or ECS JSON lines, structured fields, and secrets that never reach a log."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import ecs_logging

from detector.settings import Settings

MASK = "**********"
# Attributes every LogRecord has; anything else was passed through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields given to a log call through `extra=`."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


class SecretFilter(logging.Filter):
    """Replaces every configured secret in a record's message and fields with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self._mask(record.getMessage())
            record.args = None
            for key, value in fields_of(record).items():
                if isinstance(value, str):
                    setattr(record, key, self._mask(value))
        return True

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        extra = " ".join(f"{key}={_text(value)}" for key, value in fields_of(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {extra}" if extra else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class EcsFormatter(ecs_logging.StdlibFormatter):
    """ECS JSON lines as Elastic's `ecs-logging` writes them (so Filebeat and Elastic Agent
    ingest them with no pipeline), the structured fields at the top level beside ECS's."""

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        body: dict[str, Any] = super().format_to_ecs(record)
        # ECS maps `error` as an object: an execution's error text is its `error.message`.
        if isinstance(body.get("error"), str):
            body["error"] = {"message": body["error"]}
        return body


def _text(value: Any) -> str:
    if isinstance(value, str) and " " not in value:
        return value
    return json.dumps(value, default=str)


def _secrets(settings: Settings) -> list[str]:
    secrets = [settings.es_password, settings.es_api_key]
    return [secret.get_secret_value() for secret in secrets if secret is not None]


def configure_logging(settings: Settings, stream: Any = None) -> None:
    """Send the detector's logs to stderr (or `stream`) in the configured format and level."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(EcsFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(SecretFilter(_secrets(settings)))
    root = logging.getLogger("detector")
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    root.propagate = False


def json_lines() -> bool:
    """Whether the detector's logs are JSON lines (`DETECTOR_LOG_FORMAT=json`): a command then
    writes its messages for people (progress, errors) as log records, never as plain text."""
    handlers = logging.getLogger("detector").handlers
    return any(isinstance(handler.formatter, EcsFormatter) for handler in handlers)


def structured(**fields: Any) -> Mapping[str, Any]:
    """`extra=` for a log call, so the fields reach both formats as key/value pairs."""
    return fields


class ReplicaFilter(logging.Filter):
    """Adds `replica_id` to every record, so each line says which replica wrote it."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "replica_id"):
            record.replica_id = self.replica
        return True


def tag_replica(replica: str) -> None:
    """Name `replica` in every log record of the detector from now on."""
    for handler in logging.getLogger("detector").handlers:
        handler.addFilter(ReplicaFilter(replica))
