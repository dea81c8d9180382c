"""What the command modules share: argument types, rule selection, messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from detector.errors import ConfigError

if TYPE_CHECKING:
    from detector.rules import Rule
    from detector.settings import Settings

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


def positive_seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def select_rules(wanted: Sequence[str], settings: Settings) -> tuple[list[Rule], int]:
    """The rules named by `--rule` (ids or files), default the enabled ones; and how many rule
    problems were printed. Raises `ConfigError` for an unknown id."""
    # lazy: start-up (`--help` needs neither pydantic nor the KQL parser)
    from detector.rules import load_rule_file, rules_for

    loaded = rules_for(settings)
    for error in loaded.errors:
        print(f"rule problem: {error}", file=sys.stderr)
    if not wanted:
        return [rule for rule in loaded.rules if rule.enabled], len(loaded.errors)
    by_id = {rule.rule_id: rule for rule in loaded.rules}
    chosen: list[Rule] = []
    for name in wanted:
        if name in by_id:
            chosen.append(by_id[name])
        elif name.endswith(".toml") or Path(name).is_file():
            chosen.append(load_rule_file(name))
        else:
            known = ", ".join(sorted(by_id)) or "none"
            raise ConfigError([f"--rule {name!r}: no such rule id or file (rules: {known})"])
    return chosen, len(loaded.errors)


def usage_error(message: str) -> int:
    """Print a usage mistake; its exit code (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def text(moment: datetime) -> str:
    """A time to the second, `Z` for UTC."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
