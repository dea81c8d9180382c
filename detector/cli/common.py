"""What the command modules share: argument types, rule selection, messages."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, TypeAlias

from detector.errors import ConfigError
from detector.rules import Rule, load_rule_file, rules_for
from detector.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
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


class Bar:
    """A progress bar on stderr: redrawn in place on a terminal, a line every tenth of the way
    otherwise (logs, CI, pipes)."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()

    def show(self, done: int, total: int, detail: str) -> None:
        """Draw `label [###...] done/total detail`."""
        step = max(total // 10, 1)
        if not self.tty and done % step and done != total:
            return
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = f"{self.label} [{bar}] {done}/{total} {detail}"
        if self.tty:
            self.stream.write(f"\r\x1b[2K{line}" + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
