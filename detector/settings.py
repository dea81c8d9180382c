"""Typed settings, read from `DETECTOR_*` environment variables and an optional `.env` file."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from detector.datemath import format_duration, parse_duration
from detector.errors import ConfigError, DateMathError

ENV_PREFIX = "DETECTOR_"
# Variables with this prefix belong to the test suite, not to the service.
_TEST_PREFIX = "DETECTOR_TEST_"
# Elasticsearch index names: lowercase, no leading `-_+`, none of `\/*?"<>| ,#:` (see the
# create-index API docs). A leading dot would make a hidden index that Kibana data views skip.
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
# A remote cluster's alias as `cluster.remote.<alias>` names it (or a wildcard over aliases).
_CLUSTER_ALIAS = re.compile(r"^[A-Za-z0-9_*][A-Za-z0-9_*-]*$")


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _duration(value: Any) -> Any:
    """Every duration setting's one convention: seconds, or a number with s, m, h or d."""
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except DateMathError as exc:
        raise ValueError(str(exc)) from None


# A span of time: `30` (seconds), `0.5`, `10s`, `5m`, `24h`, `7d` (see the README).
Duration = Annotated[timedelta, BeforeValidator(_duration)]
# Durations that may be zero (no waiting); every other one must be positive.
_ZERO_ALLOWED = frozenset({"es_ready_timeout"})
MIN_LEASE = timedelta(seconds=3)


class Settings(BaseSettings):
    """Everything the detector can be configured with; see the README's configuration table,
    whose sections are the ones below, in the same order."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- Elasticsearch ---
    es_url: Annotated[list[str], NoDecode] = Field(
        default=["http://localhost:9200"],
        description="Elasticsearch URL, or several separated by commas (http:// or https://).",
    )
    es_api_key: SecretStr | None = Field(
        default=None,
        description="Elasticsearch API key (its `encoded` form); used instead of user/password.",
    )
    es_username: str | None = Field(default=None, description="User name for basic authentication.")
    es_password: SecretStr | None = Field(
        default=None, description="Password for basic authentication."
    )
    es_ca_certs: Path | None = Field(
        default=None, description="PEM file of the CA that signed Elasticsearch's HTTP certificate."
    )
    es_verify_certs: bool = Field(
        default=True,
        description="Verify Elasticsearch's TLS certificate (keep true in production).",
    )
    es_request_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="How long to wait for one Elasticsearch response.",
    )
    es_retry_attempts: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Attempts per request on transient failures (connection, timeout, 429, 50x).",
    )
    es_retry_max_seconds: Duration = Field(
        default=timedelta(minutes=1),
        description="Upper bound on the time one request may spend retrying.",
    )
    es_ready_timeout: Duration = Field(
        default=timedelta(minutes=1),
        description="How long to wait at start-up for Elasticsearch to answer and be yellow "
        "(0: not at all).",
    )

    # --- Indices ---
    alerts_index: str = Field(
        default="detector-alerts",
        description=(
            "Index the alerts are written to (not hidden, so Kibana data views match it); "
            "`logs-newterms_detector.alert-default` puts them where Kibana's prebuilt External "
            "Alerts rule promotes them to the Security Alerts page."
        ),
    )
    execution_log_index: str = Field(
        default="detector-executions",
        description=(
            "Index of the execution log (one document per execution) and of each rule's "
            "checkpoint (not hidden)."
        ),
    )

    # --- Rules ---
    rules_path: Annotated[list[Path], NoDecode] = Field(
        default=[],
        description="Rule files or directories of `.toml` rules to run, separated by commas.",
    )
    builtin_rules: bool = Field(
        default=True, description="Also run the built-in rules shipped with the detector."
    )
    remote_clusters: Annotated[list[str], NoDecode] = Field(
        default=[],
        description=(
            "Remote clusters (cross-cluster search aliases, separated by commas; `*`: every "
            "remote configured) on which each rule's index patterns are searched as well "
            "(`logs-*` also as `east:logs-*`). A remote that does not answer in full fails the "
            "execution, which is retried."
        ),
    )
    unsupported_rules: Literal["warn", "fail"] = Field(
        default="warn",
        description="Rules of a type or language the detector does not run (eql, esql, "
        "query...): `warn` skips them with one summary line; `fail` makes them configuration "
        "errors (exit 2).",
    )
    baseline: Literal["alert", "hold"] = Field(
        default="alert",
        description=(
            "While a rule's data does not reach its history start yet: `alert` as usual (alerts "
            "carry `detector.baseline.coverage`) or `hold` (no alert; the held terms are in the "
            "execution log). A rule file's `[detector] baseline` overrides it."
        ),
    )

    # --- Rule exceptions ---
    exception_source_addresses: Annotated[list[str], NoDecode] = Field(
        default=[],
        description=(
            "Comma-separated `source.address` values or CIDR ranges never to alert on; applied to "
            "every rule, history included."
        ),
    )
    exceptions_file: Path | None = Field(
        default=None,
        description=(
            "TOML file of per-rule exceptions (`[[exception]]` with `rule_id` or `*`, `field`, "
            "`values`; CIDR ranges allowed for IP fields); applied to every phase, history "
            "included."
        ),
    )

    # --- Schedule and catch-up ---
    max_catchup: Duration = Field(
        default=timedelta(hours=24),
        description=(
            "How far back `detector run` catches up missed executions after downtime or "
            "failures; anything older is reported as a gap."
        ),
    )
    window_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Scheduled executions of one window that may fail before `detector run` records "
            "it as a failed window to backfill and moves on to newer windows."
        ),
    )
    rule_concurrency: int = Field(
        default=2,
        ge=1,
        le=32,
        description=(
            "How many rules `detector once` and `detector run` execute at the same time (a "
            "thread pool shared by the rules): bounds the detector's load on the cluster."
        ),
    )

    # --- Health ---
    health_max_age: Duration = Field(
        default=timedelta(minutes=15),
        description=(
            "How recently each enabled rule must have succeeded for `detector health` to pass."
        ),
    )
    health_max_failures: int = Field(
        default=1,
        ge=1,
        description=(
            "`detector health` is red once this many of a rule's newest scheduled executions "
            "failed in a row."
        ),
    )

    # --- Replicas ---
    replica_id: str | None = Field(
        default=None,
        description=(
            "This replica's id in the leases, the execution log and the logs of `detector run` "
            "(default: host:pid)."
        ),
    )
    lease_seconds: Duration = Field(
        default=timedelta(minutes=1),
        description=(
            "How long a rule's lease lasts beyond its holder's last renewal (at least 3s); a dead "
            "replica's rules are taken over after it."
        ),
    )
    lease_renew_seconds: Duration | None = Field(
        default=None,
        description=(
            "How often a replica renews its leases and rebalances them (default: a third of "
            "DETECTOR_LEASE_SECONDS)."
        ),
    )

    # --- Logs and metrics ---
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Minimum level of log records (any case)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log format: human-readable text or one JSON object per line (ECS).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port that `detector run` serves Prometheus metrics on (off when unset).",
    )

    # --- Kibana ---
    kibana_url: str | None = Field(
        default=None,
        description=(
            "Kibana URL that `detector setup` imports the data views, saved search and dashboard "
            "into (e.g. http://localhost:5601)."
        ),
    )
    kibana_username: str | None = Field(
        default=None,
        description="User name for Kibana; unset, the Elasticsearch credentials are used.",
    )
    kibana_password: SecretStr | None = Field(
        default=None, description="Password for Kibana, with `DETECTOR_KIBANA_USERNAME`."
    )
    kibana_public_url: str | None = Field(
        default=None,
        description=(
            "Kibana URL as readers of notifications reach it (e.g. https://kibana.example.com): "
            "each message links to its alert in Discover (no link when unset)."
        ),
    )

    # --- Notifications ---
    notify_urls: SecretStr | None = Field(
        default=None,
        description=(
            "Comma-separated notification URLs (apprise's, e.g. slack://..., mailto://..., or "
            "webhook+https://... for the JSON webhook); every created alert goes to each."
        ),
    )
    notifications_file: Path | None = Field(
        default=None,
        description=(
            "TOML file of named notification channels and routes (rule ids, tags, minimum "
            "severity) and digest thresholds; `detector notify check` validates it."
        ),
    )
    notify_webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Key of the webhook's HMAC-SHA256 signature header (X-Detector-Signature); no "
            "signature when unset. A channel's `secret_env` overrides it."
        ),
    )
    notify_digest_threshold: int | None = Field(
        default=20,
        ge=1,
        description=(
            "Alerts of one execution for a DETECTOR_NOTIFY_URLS channel above which it gets one "
            "summary message instead (webhooks always get each alert)."
        ),
    )
    notify_max_age: Duration = Field(
        default=timedelta(hours=24),
        description=(
            "How old an alert may be and still be delivered; older undelivered alerts are left "
            "alone."
        ),
    )
    notify_retry_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per message before a delivery pass gives up."
    )
    notify_retry_max_seconds: Duration = Field(
        default=timedelta(minutes=1),
        description=(
            "Longest pause before a failing channel is tried again (the pause doubles from 1s)."
        ),
    )
    notify_pass_seconds: Duration = Field(
        default=timedelta(seconds=30),
        description=(
            "Longest time one delivery pass of `detector run` or `once` may take; what is left "
            "is delivered by the next pass."
        ),
    )

    # --- Validators, one per concern ---

    @field_validator(
        "es_url", "rules_path", "exception_source_addresses", "remote_clusters", mode="before"
    )
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("*")
    @classmethod
    def _check_duration(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, timedelta):
            return value
        if info.field_name in _ZERO_ALLOWED:
            if value < timedelta(0):
                raise ValueError("must be greater than or equal to 0")
        elif value <= timedelta(0):
            raise ValueError("must be greater than 0")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("es_url")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("at least one URL is required")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise ValueError(f"{url!r} has an invalid port") from None
        return urls

    @field_validator("kibana_url", "kibana_public_url")
    @classmethod
    def _check_kibana_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        return url.rstrip("/")

    @field_validator("es_ca_certs", "exceptions_file", "notifications_file")
    @classmethod
    def _check_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no such file: {path}")
        return path

    @field_validator("alerts_index", "execution_log_index")
    @classmethod
    def _check_index(cls, name: str) -> str:
        if not _INDEX_NAME.match(name) or len(name.encode()) > 255:
            raise ValueError(
                f"{name!r} is not a valid visible index name (lowercase letters, digits, "
                "'-', '_', '.', '+'; not starting with '.', '-', '_' or '+')"
            )
        return name

    @field_validator("remote_clusters")
    @classmethod
    def _check_remotes(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if not _CLUSTER_ALIAS.match(alias):
                raise ValueError(
                    f"{alias!r} is not a cluster alias (letters, digits, `_`, `-`, `*` wildcards)"
                )
        return aliases

    @field_validator("exception_source_addresses")
    @classmethod
    def _check_exceptions(cls, values: list[str]) -> list[str]:
        for value in values:
            if "/" in value:
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    raise ValueError(f"{value!r} is not a valid CIDR range") from None
        return values

    @field_validator("replica_id")
    @classmethod
    def _check_replica(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 200):
            raise ValueError("must be 1 to 200 characters, not blank")
        return value

    @model_validator(mode="after")
    def _check_credential_pairs(self) -> Settings:
        if (self.es_username is None) != (self.es_password is None):
            raise ValueError("DETECTOR_ES_USERNAME and DETECTOR_ES_PASSWORD must be set together")
        if (self.kibana_username is None) != (self.kibana_password is None):
            raise ValueError(
                "DETECTOR_KIBANA_USERNAME and DETECTOR_KIBANA_PASSWORD must be set together"
            )
        return self

    @model_validator(mode="after")
    def _check_lease(self) -> Settings:
        lease, renew = self.lease_seconds, self.lease_renew_seconds
        if lease < MIN_LEASE:
            raise ValueError(
                f"DETECTOR_LEASE_SECONDS ({format_duration(lease)}) must be at least "
                f"{format_duration(MIN_LEASE)}"
            )
        if renew is not None and renew * 2 > lease:
            raise ValueError(
                f"DETECTOR_LEASE_RENEW_SECONDS ({format_duration(renew)}) must be at most half of "
                f"DETECTOR_LEASE_SECONDS ({format_duration(lease)}), so a lease is renewed before "
                "it can expire"
            )
        return self

    @property
    def renew_delta(self) -> timedelta:
        """How often leases are renewed (default: a third of the lease)."""
        renew = self.lease_renew_seconds
        return self.lease_seconds / 3 if renew is None else renew


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return f"{ENV_PREFIX}{field.upper()}"


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    field = str(error["loc"][0])
    value = error.get("input")
    # Never echo what was given for a secret.
    secret = field.endswith(("password", "api_key", "_urls", "_secret"))
    shown = f" (got {value!r})" if isinstance(value, str) and not secret else ""
    return f"{env_name(field)}: {message}{shown}"


def _unknown_variables(env_file: Path | None) -> list[str]:
    """`DETECTOR_*` names set in the environment or the `.env` file that no setting has."""
    known = {env_name(name) for name in Settings.model_fields}
    found = [(key, "") for key in os.environ]
    if env_file is not None and env_file.is_file():
        found += [(key.upper(), f" (in {env_file})") for key in dotenv_values(env_file)]
    return sorted(
        f"{key}{where}"
        for key, where in found
        if key.startswith(ENV_PREFIX) and not key.startswith(_TEST_PREFIX) and key not in known
    )


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and `.env`), raising `ConfigError` with every problem."""
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    unknown = _unknown_variables(Path(env_file) if isinstance(env_file, str | Path) else None)
    problems = [f"{name}: unknown setting (see the README's table)" for name in unknown]
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors())
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings
