"""`detector run`, `backfill` and `health`: argument parsing and output; the work is in
`detector.runner`, `detector.execution_store` and `detector.health`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from detector.errors import ConfigError
from detector.es import Elastic
from detector.rules import Rule, load_rule_file, rules_for
from detector.settings import Settings

if TYPE_CHECKING:
    from detector.results import ExecutionResult
    from detector.runner import Runner

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

# How far in the future a backfill may end (clock differences), beyond which it is a mistake.
FUTURE_SLACK = timedelta(minutes=1)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time argument; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time (e.g. 2025-01-15T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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


def make_runner(elastic: Elastic, settings: Settings, *, ensure: bool = True) -> Runner:
    """A runner on `elastic` for the settings' indices (created first when `ensure`)."""
    from detector.alert_store import AlertStore
    from detector.allowlist import from_settings
    from detector.execution_store import ExecutionStore
    from detector.runner import Runner

    store = AlertStore(elastic, settings.alerts_index)
    log = ExecutionStore(elastic, settings.execution_log_index)
    if ensure:
        store.ensure_index()
        log.ensure_index()
    return Runner(elastic, store, log, from_settings(settings), settings.max_catchup_delta)


_log = logging.getLogger(__name__)


# --- run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run every enabled rule on its own interval until SIGTERM or SIGINT, catching up."""
    from detector import scheduler
    from detector.metrics import Metrics

    rules, _ = select_rules([], settings)
    if not rules:
        print("error: no enabled rule to run", file=sys.stderr)
        return 1
    elastic = Elastic(settings)
    elastic.wait_ready()
    make_runner(elastic, settings)
    _warn_unreadable(elastic, rules)
    metrics = Metrics() if settings.metrics_port is not None else None
    # One client per rule, so each execution's request figures are its own.
    clients = {rule.rule_id: Elastic(settings) for rule in rules}
    runners = {key: make_runner(client, settings, ensure=False) for key, client in clients.items()}
    server = None
    try:
        if metrics is not None and settings.metrics_port is not None:
            try:
                server = metrics.serve(settings.metrics_port)
            except OSError as exc:
                port = settings.metrics_port
                print(f"error: cannot serve metrics on port {port}: {exc}", file=sys.stderr)
                return 1
        for runner in runners.values():
            runner.metrics = metrics

        def run_rule(rule: Rule) -> None:
            runners[rule.rule_id].run_due(rule, datetime.now(UTC))

        return scheduler.run(rules, run_rule)
    finally:
        if server is not None:
            server.close()
        for client in [elastic, *clients.values()]:
            client.close()


def _warn_unreadable(elastic: Elastic, rules: list[Rule]) -> None:
    """Say loudly at start-up which rule index patterns these credentials may not read: their
    indices would be silently left out of every search (it is not an error to Elasticsearch)."""
    patterns = list(dict.fromkeys(pattern for rule in rules for pattern in rule.index))
    for pattern in elastic.unreadable(patterns) or ():
        users = [rule.rule_id for rule in rules if pattern in rule.index]
        _log.error(
            "no read privilege on %s: searches leave its indices out",
            pattern,
            extra={"index_pattern": pattern, "rule_ids": users},
        )


# --- backfill -------------------------------------------------------------------------------


class ProgressBar:
    """A bar redrawn in place on a terminal; a line every tenth of the way otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.failed = 0
        self.alerts = 0

    def __call__(self, done: int, total: int, result: ExecutionResult) -> None:
        self.failed += not result.succeeded
        self.alerts += result.alerts_written
        step = max(total // 10, 1)
        if not self.tty and done % step and done != total:
            return
        filled = self.WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        line = (
            f"backfill [{bar}] {done}/{total} {result.rule_id} at {result.now:%Y-%m-%dT%H:%M}Z"
            f" - {self.alerts} alert(s), {self.failed} failed"
        )
        if self.tty:
            self.stream.write(f"\r\x1b[2K{line}" + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Replay the scheduled executions between --start and --end."""
    from detector.runner import backfill as replay

    if args.end < args.start:
        return _usage(f"--end {_text(args.end)} is before --start {_text(args.start)}")
    if args.end > datetime.now(UTC) + FUTURE_SLACK:
        return _usage(f"--end {_text(args.end)} is in the future")
    rules, problems = select_rules(args.rule, settings)
    if not rules:
        return _usage("no rule to backfill")
    elastic = Elastic(settings)
    started = time.monotonic()
    try:
        elastic.wait_ready()
        runner = make_runner(elastic, settings)
        results = replay(
            elastic,
            runner.store,
            runner.log,
            rules,
            args.start,
            args.end,
            progress=ProgressBar(sys.stderr),
            allowlist=runner.allowlist,
        )
    finally:
        elastic.close()
    _report(results, args.json, time.monotonic() - started)
    failed = problems > 0 or any(not result.succeeded for result in results)
    return 1 if failed else 0


def _report(results: list[ExecutionResult], as_json: bool, seconds: float) -> None:
    if as_json:
        for result in results:
            print(json.dumps(result.to_json(), default=str))
        return
    by_rule: dict[str, list[ExecutionResult]] = {}
    for result in results:
        by_rule.setdefault(result.rule_id, []).append(result)
    for rule_id, runs in by_rule.items():
        failures = [result for result in runs if not result.succeeded]
        print(
            f"{rule_id} ({runs[0].rule_name}): {len(runs)} execution(s) from "
            f"{_text(runs[0].now)} to {_text(runs[-1].now)}, {len(failures)} failed, "
            f"{sum(result.alerts_written for result in runs)} alert(s) written"
        )
        for failure in failures[:5]:
            print(f"  FAILED at {_text(failure.now)}: {failure.error}")
    written = sum(result.alerts_written for result in results)
    failed = sum(not result.succeeded for result in results)
    print(
        f"backfill: {len(results)} execution(s), {failed} failed, {written} alert(s) written "
        f"in {seconds:.1f} s"
    )


# --- health ---------------------------------------------------------------------------------


def health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every enabled rule succeeded recently, else 1 with one line per rule."""
    from detector import health as verdict
    from detector.execution_store import ExecutionStore

    max_age = timedelta(seconds=args.max_age or settings.health_max_age)
    rules, problems = select_rules([], settings)
    if not rules:
        print("unhealthy: no enabled rule", file=sys.stderr)
        return 1
    elastic = Elastic(settings)
    try:
        log = ExecutionStore(elastic, settings.execution_log_index)
        runs = [log.last_runs(rule) for rule in rules]
    finally:
        elastic.close()
    lines = verdict.problems(runs, datetime.now(UTC), max_age)
    for line in lines:
        print(f"unhealthy: {line}")
    if lines or problems:
        return 1
    print(f"healthy: {len(rules)} rule(s) succeeded within {max_age.total_seconds():.0f} s")
    return 0


# --- parsers --------------------------------------------------------------------------------


def add_commands(commands: Commands) -> None:
    """Register `backfill` and `health` (`run` stays registered by the CLI)."""
    replay = commands.add_parser(
        "backfill", help="replay the scheduled executions over a past range (as manual runs)"
    )
    for flag in ("--start", "--end"):
        replay.add_argument(
            flag, type=parse_time, required=True, metavar="ISO8601", help="UTC unless an offset"
        )
    replay.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="ID_OR_PATH",
        help="a rule id or rule TOML file (repeatable; default: the enabled rules)",
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object per execution")
    replay.set_defaults(handler=backfill)
    check = commands.add_parser(
        "health", help="exit 0 if every enabled rule succeeded recently (container healthcheck)"
    )
    check.add_argument(
        "--max-age",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="how recent the last success must be (default: DETECTOR_HEALTH_MAX_AGE)",
    )
    check.set_defaults(handler=health)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
