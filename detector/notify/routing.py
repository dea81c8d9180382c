"""Which alert goes to which channel: `DETECTOR_NOTIFY_URLS` and the routing TOML file. Pure.

The file (`DETECTOR_NOTIFICATIONS_FILE`) names channels and routes:

    [channel.oncall]
    url_env = "ONCALL_SLACK_URL"     # the URL, from this environment variable (or `url = ...`)
    digest_threshold = 20            # more alerts in one execution: one summary message

    [channel.soar]
    url_env = "SOAR_WEBHOOK_URL"     # webhook+https://...
    secret_env = "SOAR_HMAC_KEY"     # its HMAC-SHA256 signature key

    [[route]]
    channels = ["oncall"]
    min_severity = "high"            # and/or rule_ids = [...], tags = [...]

A channel receives the alerts of every route that names it; a file without routes sends every
alert to every channel. The URLs of `DETECTOR_NOTIFY_URLS` receive every alert. Every problem
is collected and named with the file and the entry (`ConfigError`, exit 2), never the URL.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import ConfigError
from detector.notify import channels as ch
from detector.notify.channels import Channel
from detector.settings import Settings

CHANNEL_KEYS = frozenset({"url", "url_env", "secret_env", "digest_threshold"})
ROUTE_KEYS = frozenset({"channels", "rule_ids", "tags", "min_severity"})
TOP_KEYS = frozenset({"channel", "route"})


@dataclass(frozen=True)
class Route:
    """Alerts matching every filter given (none given: every alert) go to `channels`."""

    channels: tuple[str, ...]
    rule_ids: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    min_severity: str | None = None

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """Whether the alert passes this route's filters (tags: any of them)."""
        rule = alert.get("kibana", {}).get("alert", {}).get("rule", {})
        if self.rule_ids and rule.get("rule_id") not in self.rule_ids:
            return False
        if self.tags and not self.tags.intersection(rule.get("tags") or ()):
            return False
        if self.min_severity is None:
            return True
        severity = alert.get("kibana", {}).get("alert", {}).get("severity")
        return ch.severity_rank(severity) >= ch.severity_rank(self.min_severity)


@dataclass(frozen=True)
class Routing:
    """Every configured channel and the routes to them."""

    channels: tuple[Channel, ...] = ()
    routes: tuple[Route, ...] = ()
    by_name: dict[str, Channel] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_name.update((channel.name, channel) for channel in self.channels)

    def __bool__(self) -> bool:
        return bool(self.channels)

    def targets(self, alert: Mapping[str, Any]) -> list[str]:
        """The names of the channels that want this alert, in configuration order."""
        wanted = {name for route in self.routes if route.matches(alert) for name in route.channels}
        return [channel.name for channel in self.channels if channel.name in wanted]


class Problems:
    """Problems of one file, each prefixed with the file and its entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, entry: str, message: str) -> None:
        self.lines.append(f"{self.path}: {entry}: {message}")


def from_settings(settings: Settings, env: Mapping[str, str] | None = None) -> Routing:
    """The routing of these settings (`env`: where `url_env`/`secret_env` are read, by default
    the process environment); raises `ConfigError` naming every problem."""
    secret = settings.notify_webhook_secret
    urls = settings.notify_urls
    return from_settings_values(
        urls.get_secret_value() if urls is not None else None,
        settings.notifications_file,
        os.environ if env is None else env,
        settings.notify_digest_threshold,
        secret.get_secret_value() if secret is not None else None,
    )


def from_settings_values(
    urls: str | None,
    file: Path | None,
    env: Mapping[str, str],
    digest_threshold: int | None,
    webhook_secret: str | None,
) -> Routing:
    """The routing of these settings (raises `ConfigError` naming every problem)."""
    listed = ch.from_url_list(urls or "", digest_threshold, webhook_secret)
    found: list[Channel] = []
    routes: list[Route] = []
    if file is not None:
        found, routes = load_file(file, env, webhook_secret)
    clash = sorted({c.name for c in listed} & {c.name for c in found})
    if clash:
        raise ConfigError(
            [f"{file}: channel.{name}: clashes with a DETECTOR_NOTIFY_URLS name" for name in clash]
        )
    if listed:
        routes.append(Route(tuple(channel.name for channel in listed)))
    return Routing(tuple(listed + found), tuple(routes))


def load_file(
    path: Path, env: Mapping[str, str], webhook_secret: str | None = None
) -> tuple[list[Channel], list[Route]]:
    """The channels and routes of a routing file; a file without routes routes everything."""
    problems = Problems(path)
    data = _read(path)
    for key in sorted(set(data) - TOP_KEYS):
        problems.add(key, f"unknown key (expected {', '.join(sorted(TOP_KEYS))})")
    found = _channels(data.get("channel", {}), env, webhook_secret, problems)
    table = data.get("channel", {})
    # Every name the file defines, valid or not: a channel with a problem of its own is not
    # also "unknown" to its routes.
    defined = {str(name) for name in table} if isinstance(table, dict) else set()
    routes = _routes(data.get("route", []), defined, problems)
    named = {name for route in routes for name in route.channels}
    for channel in found:
        if routes and channel.name not in named:
            problems.add(f"channel.{channel.name}", "no route names it: it would receive nothing")
    if not found and not problems.lines:
        problems.add("channel", "no channel defined")
    if problems.lines:
        raise ConfigError(problems.lines)
    if not routes:
        routes = [Route(tuple(channel.name for channel in found))]
    return found, routes


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the notifications file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def _channels(
    table: object, env: Mapping[str, str], webhook_secret: str | None, problems: Problems
) -> list[Channel]:
    if not isinstance(table, dict):
        problems.add("channel", "must be a table of [channel.NAME] tables")
        return []
    found = []
    for name, entry in table.items():
        channel = _channel(str(name), entry, env, webhook_secret, problems)
        if channel is not None:
            found.append(channel)
    return found


def _channel(
    name: str, entry: object, env: Mapping[str, str], webhook_secret: str | None, problems: Problems
) -> Channel | None:
    where = f"channel.{name}"
    count = len(problems.lines)
    if not ch.NAME.match(name):
        problems.add(where, "a channel name is 1-64 lowercase letters, digits, '-' or '_'")
    if not isinstance(entry, dict):
        problems.add(where, "must be a table")
        return None
    for key in sorted(set(entry) - CHANNEL_KEYS):
        problems.add(where, f"unknown key {key!r} (expected {', '.join(sorted(CHANNEL_KEYS))})")
    url = _secret(entry, "url", where, env, problems, required=True)
    secret = _secret(entry, "secret", where, env, problems, required=False)
    threshold = _threshold(entry.get("digest_threshold"), where, problems)
    if url is not None and ch.scheme(url) not in ch.WEBHOOK_SCHEMES and "secret_env" in entry:
        problems.add(where, "secret_env is for webhook+http(s):// channels only")
    if url is not None and ch.scheme(url) in ch.WEBHOOK_SCHEMES and threshold is not None:
        problems.add(where, "digest_threshold is for human channels: a webhook gets each alert")
    if len(problems.lines) > count or url is None:
        return None
    if ch.scheme(url) in ch.WEBHOOK_SCHEMES and secret is None:
        secret = webhook_secret
    return Channel(name, url, threshold, secret, f"{problems.path}: {where}")


def _secret(
    entry: Mapping[str, Any],
    key: str,
    where: str,
    env: Mapping[str, str],
    problems: Problems,
    *,
    required: bool,
) -> str | None:
    """`url`/`secret` given inline (`url` only) or by the name of an environment variable."""
    variable = entry.get(f"{key}_env")
    inline = entry.get(key) if key == "url" else None
    if variable is not None and inline is not None:
        problems.add(where, f"give {key} or {key}_env, not both")
        return None
    if variable is None:
        if inline is None and required:
            problems.add(
                where, f"missing {key} (or {key}_env, the environment variable holding it)"
            )
        elif inline is not None and (not isinstance(inline, str) or not inline.strip()):
            problems.add(where, f"{key} must be a non-empty string")
            return None
        return inline.strip() if isinstance(inline, str) else None
    if not isinstance(variable, str) or not variable.strip():
        problems.add(where, f"{key}_env must name an environment variable")
        return None
    value = env.get(variable.strip(), "").strip()
    if not value:
        problems.add(
            where, f"missing secret: the environment variable {variable} ({key}_env) is not set"
        )
        return None
    return value


def _threshold(value: object, where: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.add(where, f"digest_threshold must be a positive integer (got {value!r})")
        return None
    return value


def _routes(items: object, names: set[str], problems: Problems) -> list[Route]:
    if not isinstance(items, list):
        problems.add("route", "must be an array of [[route]] tables")
        return []
    return [
        route
        for number, item in enumerate(items, start=1)
        if (route := _route(f"route[{number}]", item, names, problems)) is not None
    ]


def _route(where: str, item: object, names: set[str], problems: Problems) -> Route | None:
    if not isinstance(item, dict):
        problems.add(where, "must be a table")
        return None
    count = len(problems.lines)
    for key in sorted(set(item) - ROUTE_KEYS):
        problems.add(where, f"unknown key {key!r} (expected {', '.join(sorted(ROUTE_KEYS))})")
    targets = _strings(item, "channels", where, problems)
    if not targets:
        problems.add(where, "channels must list at least one channel")
    for name in targets:
        if name not in names:
            problems.add(
                where, f"unknown channel {name!r} (defined: {', '.join(sorted(names)) or 'none'})"
            )
    severity = item.get("min_severity")
    if severity is not None and severity not in ch.SEVERITIES:
        problems.add(
            where, f"min_severity must be one of {', '.join(ch.SEVERITIES)} (got {severity!r})"
        )
    rule_ids = _strings(item, "rule_ids", where, problems)
    tags = _strings(item, "tags", where, problems)
    if len(problems.lines) > count:
        return None
    return Route(tuple(targets), frozenset(rule_ids), frozenset(tags), severity)


def _strings(item: Mapping[str, Any], key: str, where: str, problems: Problems) -> list[str]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(one, str) and one for one in value):
        problems.add(where, f"{key} must be a list of non-empty strings")
        return []
    return list(value)


def unusable_urls(channels: Iterable[Channel], understands: Callable[[str], bool]) -> list[str]:
    """A problem line per channel whose URL cannot be used: a bad webhook URL, or a URL apprise
    does not understand (`understands`, which asks apprise)."""
    lines = []
    for channel in channels:
        if channel.kind == ch.WEBHOOK:
            why = ch.webhook_problem(channel.url)
        else:
            why = None if understands(channel.url) else ch.unknown_url_problem(channel.url)
        if why is not None:
            lines.append(f"{channel.origin}: bad URL: {channel.masked} {why}")
    return lines
