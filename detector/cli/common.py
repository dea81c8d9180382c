"""What the command modules share: argument types, rule selection, messages."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

from detector.datemath import parse_duration
from detector.errors import ConfigError, DateMathError, RuleError, UnsupportedRuleError

if TYPE_CHECKING:
    from detector.notify.routing import Routing
    from detector.rules import LoadResult, Rule
    from detector.settings import Settings

_log = logging.getLogger("detector.rules")
_say = logging.getLogger("detector.cli")

Handler = Callable[[argparse.Namespace, "Settings"], int]
# The subparsers object (`add_subparsers()`); subscriptable only for the type checker.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def parse_time(text: str) -> datetime:
    """An ISO-8601 time argument; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time (e.g. 2025-01-15T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def duration(text: str) -> timedelta:
    """A duration option, in the settings' convention: seconds, or a number with s, m, h or d."""
    try:
        value = parse_duration(text)
    except DateMathError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is a negative duration")
    return value


def positive_duration(text: str) -> timedelta:
    """A duration option that must be more than zero."""
    value = duration(text)
    if not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return value


def report_rule_problems(loaded: LoadResult, settings: Settings) -> int:
    """Log the problems of the configured rules; the exit code they call for (0 or 2).

    A broken rule file is bad configuration (2); a valid rule of a type or language the
    detector does not run is skipped with one summary warning, unless the settings make it an
    error. Logged, so `DETECTOR_LOG_FORMAT=json` keeps every problem on one JSON line.
    """
    unsupported = [error for error in loaded.errors if isinstance(error, UnsupportedRuleError)]
    fatal = [error for error in loaded.errors if not isinstance(error, UnsupportedRuleError)]
    if settings.unsupported_rules == "fail":
        fatal, unsupported = loaded.errors, []
    for error in fatal:
        _log.error("rule problem: %s", error, extra=_located(error))
    if unsupported:
        counts = Counter(error.what for error in unsupported)
        kinds = ", ".join(f"{what}: {count}" for what, count in sorted(counts.items()))
        _log.warning(
            "%d rule(s) not run, of a type or language this detector does not run (%s); "
            "`detector rules check PATH` names each",
            len(unsupported),
            kinds,
            extra={"unsupported_rules": len(unsupported)},
        )
    return 2 if fatal else 0


def _located(error: RuleError) -> dict[str, object]:
    where = error.location
    return {
        "rule_file": str(where.path) if where.path else None,
        "rule_id": where.rule_id,
        "rule_key": where.key,
        "rule_line": where.line,
    }


def select_rules(wanted: Sequence[str], settings: Settings) -> tuple[list[Rule], int]:
    """The rules named by `--rule` (ids or files), default the enabled ones; and the exit code
    the rule problems call for (`report_rule_problems`). Raises `ConfigError` for an unknown id
    or a `--rule` file that does not load."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector.rules import rules_for

    loaded = rules_for(settings)
    problems = report_rule_problems(loaded, settings)
    check_exceptions(settings, [rule.rule_id for rule in loaded.rules])
    if not wanted:
        return [rule for rule in loaded.rules if rule.enabled], problems
    by_id = {rule.rule_id: rule for rule in loaded.rules}
    chosen: list[Rule] = []
    for name in wanted:
        if name in by_id:
            chosen.append(by_id[name])
        elif name.endswith(".toml") or Path(name).is_file():
            chosen.append(_rule_file(name))
        else:
            known = ", ".join(sorted(by_id)) or "none"
            raise ConfigError([f"--rule {name!r}: no such rule id or file (rules: {known})"])
    return chosen, problems


@dataclass(frozen=True)
class Startup:
    """What a command that runs rules validated before it connects."""

    rules: list[Rule]  # the selected rules (default: the enabled ones)
    problems: int  # the exit code the rule problems call for (0, or 2: skipped broken files)
    routing: Routing | None  # the notification routing (None when not asked for)


NO_RULES = "no enabled rule to run"


def validate_startup(
    settings: Settings, wanted: Sequence[str] = (), *, notifications: bool = True
) -> Startup:
    """Everything `run`, `once` and `check` validate before they connect, the same for each:
    the rules (each problem logged), the exceptions, `--rule`, the notification channels. Raises
    `ConfigError` (exit 2) listing every problem of the exceptions and channels at once."""
    config: list[str] = []
    rules: list[Rule] = []
    problems = 2
    try:
        rules, problems = select_rules(wanted, settings)
    except ConfigError as exc:
        config.extend(exc.problems)
    routing = None
    if notifications:
        # lazy: apprise is slow to import
        from detector.notify.notifier import validated

        try:
            routing = validated(settings)
        except ConfigError as exc:
            config.extend(exc.problems)
    if config:
        raise ConfigError(config)
    return Startup(rules, problems, routing)


def check_exceptions(settings: Settings, rule_ids: Sequence[str]) -> None:
    """Load the exceptions before anything connects, so a bad entry stops the command (a
    `ConfigError`, exit 2) instead of failing every execution; warn about entries for a rule
    id no loaded rule has."""
    # lazy: start-up (the exceptions reads the settings, pydantic)
    from detector.rules.exceptions import from_settings, unknown_rule_ids

    for item in unknown_rule_ids(from_settings(settings), rule_ids):
        _log.warning(
            "%s: rule_id %r matches no loaded rule, so it excepts nothing",
            item.origin,
            item.rule_id,
            extra={"rule_id": item.rule_id},
        )


def _rule_file(name: str) -> Rule:
    from detector.rules import load_rule_file  # lazy: start-up (see select_rules)

    try:
        return load_rule_file(name)
    except RuleError as exc:
        raise ConfigError([f"--rule {name}: {exc}"]) from None


class _AtDebug(logging.Filter):
    """Turns INFO records into DEBUG ones, shown only when the log level is DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("detector").getEffectiveLevel() <= logging.DEBUG


@contextmanager
def executions_at_debug() -> Iterator[None]:
    """While a progress bar is shown, the one INFO line per execution would bury it: show those
    lines at DEBUG instead (warnings and errors stay as they are)."""
    loggers = [
        logging.getLogger(name) for name in ("detector.engine.execution", "detector.service.runner")
    ]
    demote = _AtDebug()
    for logger in loggers:
        logger.addFilter(demote)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(demote)


def say(line: str, level: int = logging.INFO, **fields: Any) -> None:
    """A line for the person running the command, on stderr: plain text, or a log record when
    the logs are JSON lines (`DETECTOR_LOG_FORMAT=json`), so every line there is one."""
    from detector.logs import json_lines  # lazy: start-up (`--help` needs no ecs-logging)

    if json_lines():
        _say.log(level, line, extra=fields)
    else:
        print(line, file=sys.stderr)


def usage_error(message: str) -> int:
    """Say a usage mistake; its exit code (2)."""
    say(f"error: {message}", logging.ERROR)
    return 2


def text(moment: datetime) -> str:
    """A time to the second, `Z` for UTC."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class Bar:
    """A progress bar on stderr: redrawn in place on a terminal, a line every tenth of the way
    otherwise (logs, CI, pipes), a log record every tenth with JSON logs."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str) -> None:
        from detector.logs import json_lines  # lazy: start-up

        self.stream = stream
        self.label = label
        self.records = json_lines()
        self.tty = stream.isatty() and not self.records

    def show(self, done: int, total: int, detail: str, **fields: Any) -> None:
        """Draw `label [###...] done/total detail` (a record with `fields` in JSON mode)."""
        step = max(total // 10, 1)
        if not self.tty and done % step and done != total:
            return
        if self.records:
            extra = {"progress_done": done, "progress_total": total, **fields}
            _say.info("%s %d/%d %s", self.label, done, total, detail, extra=extra)
            return
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"{self.label} [{bar}] {done}/{total} {detail}"
        if self.tty:
            self.stream.write(f"\r\x1b[2K{line}" + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
